//! TTQ: quantize and backward (∂L/∂w, ∂L/∂Wp, ∂L/∂Wn).

use super::*;
use tern::internals::check::{ttq as op, values};
use tern::internals::ops::reduce;
use tern::internals::quant::ttq as kernel;

op_checks!(ttq, golden, tree);

/// Wp and Wn are true parameters of the TTQ forward, so their gradients must match finite
/// differences (the latent-weight gradient is TTQ's defined estimator, checked by the reference
/// and the goldens).
#[test]
fn scale_gradients_match_finite_differences() {
    let (w, g, wp, wn) = (values(300, 15), values(300, 16), 0.7, 1.2);
    let (wt, gt) = (upload("w", &[300], &w), upload("gq", &[300], &g));
    let (wpt, wnt) = (upload("wp", &[1], &[wp]), upload("wn", &[1], &[wn]));
    let [m, dwp, dwn] = ["maxabs", "dwp", "dwn"].map(|n| zeros(n, &[1]));
    let (wq, dw) = (zeros("wq", &[300]), zeros("dw", &[300]));
    let mut d = reduce::max_abs(gpu(), "ttq", &wt, &m).unwrap();
    d.push(kernel::quantize(gpu(), "ttq", 0.05, &wt, &m, &wpt, &wnt, &wq).unwrap());
    d.extend(kernel::backward(gpu(), "ttq", 0.05, &wt, &m, &wpt, &wnt, &gt, &dw, &dwp, &dwn).unwrap());
    run(d);
    fd_check("ttq dWp", &[wp], &download(&dwp), |v| dot(&op::quantize(&w, 0.05, v[0], wn), &g));
    fd_check("ttq dWn", &[wn], &download(&dwn), |v| dot(&op::quantize(&w, 0.05, wp, v[0]), &g));
}
