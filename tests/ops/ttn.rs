//! TTN: the truncated-Gaussian fit, quantize and backward (∂L/∂w, ∂L/∂δ).

use super::*;
use tern::internals::check::{assert_close, ttn as op, values};
use tern::internals::quant::ttn as kernel;

op_checks!(ttn, golden, tree);

/// δ is a true parameter of the TTN forward (through α): its gradient must match finite
/// differences; so must the α path of the weight gradient, dw − g.
#[test]
fn threshold_gradient_matches_finite_differences() {
    let (w, g) = (values(400, 17).iter().map(|v| v + 0.05).collect::<Vec<_>>(), values(400, 18));
    for delta in [0.1, 0.45] {
        let (wt, dt, gt) =
            (upload("w", &[400], &w), upload("delta", &[1], &[delta]), upload("gq", &[400], &g));
        let (fit, wq, dw, dd) =
            (zeros("fit", &[8]), zeros("wq", &[400]), zeros("dw", &[400]), zeros("dd", &[1]));
        let mut d = kernel::stats(gpu(), "ttn", &wt, &dt, &fit).unwrap();
        d.push(kernel::quantize(gpu(), "ttn", &wt, &fit, &wq).unwrap());
        d.extend(kernel::backward(gpu(), "ttn", &wt, &fit, &gt, &dw, &dd).unwrap());
        run(d);
        fd_check("ttn dδ", &[delta], &download(&dd), |v| dot(&op::quantize(&w, v[0]), &g));
        assert_close("ttn wq", &download(&wq), &op::quantize(&w, delta), 1e-5);
        // With T held fixed, L = α(w)·Σ g·T: the rest of dw is the α path.
        let t: Vec<f64> =
            op::quantize(&w, delta).iter().map(|&v| v.signum() * (v != 0.0) as u8 as f64).collect();
        let alpha_path: Vec<f64> = download(&dw).iter().zip(&g).map(|(d, gi)| d - gi).collect();
        let alpha_of = |w: &[f64]| op::stats(w, delta)[3];
        fd_check("ttn dw (α path)", &w, &alpha_path, |v| alpha_of(v) * dot(&t, &g));
    }
}
