//! STTN: per-channel scale, quantize, backward and the clamp of the latent weights.

use super::*;
use tern::internals::check::{sttn as op, values};
use tern::internals::quant::sttn as kernel;

op_checks!(sttn, golden, tree);

/// With the binary signs held fixed, the rest of ∂L/∂W1 is the true derivative through the
/// per-channel scale α = (‖W1‖₁ + ‖W2‖₁)/(2n).
#[test]
fn scale_gradient_matches_finite_differences() {
    let (cout, n) = (3, 20);
    let (w1, w2, g) = (values(cout * n, 19), values(cout * n, 20), values(cout * n, 21));
    let sgn = |v: f64| if v >= 0.0 { 1.0 } else { -1.0 };
    let signs: Vec<f64> = w1.iter().zip(&w2).map(|(a, b)| sgn(*a) + sgn(*b)).collect();
    let loss = |w1: &[f64]| -> f64 {
        let alpha = op::scale(w1, &w2, cout);
        (0..cout * n).map(|i| g[i] * alpha[i / n] * signs[i]).sum()
    };
    let shape = [cout, n];
    let (t1, t2, tg) = (upload("w1", &shape, &w1), upload("w2", &shape, &w2), upload("gq", &shape, &g));
    let alpha = zeros("alpha", &[cout]);
    let (wq, d1, d2) = (zeros("wq", &shape), zeros("dw1", &shape), zeros("dw2", &shape));
    run([
        kernel::scale(gpu(), "sttn", &t1, &t2, &alpha).unwrap(),
        kernel::quantize(gpu(), "sttn", &t1, &t2, &alpha, &wq).unwrap(),
        kernel::backward(gpu(), "sttn", &t1, &t2, &alpha, &tg, &d1, &d2).unwrap(),
    ]);
    let a = download(&alpha);
    let through_alpha: Vec<f64> =
        download(&d1).iter().enumerate().map(|(i, d)| d - g[i] * a[i / n]).collect();
    fd_check("sttn dW1 (α path)", &w1, &through_alpha, loss);
}
