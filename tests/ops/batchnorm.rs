//! Batch normalisation: training and eval forward, running statistics, backward.

use super::*;
use tern::internals::check::{batchnorm as op, values};
use tern::internals::ops::batchnorm as kernel;

op_checks!(batchnorm, golden, tree);

#[test]
fn gradients_match_finite_differences() {
    let shape = [3, 4, 2, 5];
    let x: Vec<f64> = values(120, 4).iter().map(|v| 1.5 * v + 0.3).collect();
    let (gamma, beta, r) = (values(4, 5), values(4, 6), values(120, 7));
    let (xt, yt, rt) = (upload("x", &shape, &x), zeros("y", &shape), upload("dy", &shape, &r));
    let (gt, bt) = (upload("gamma", &[4], &gamma), upload("beta", &[4], &beta));
    let (dg, db) = (zeros("dgamma", &[4]), zeros("dbeta", &[4]));
    let dx = zeros("dx", &shape);
    let state = op::State::new(gpu(), 4).unwrap();
    let t = state.with(&gt, &bt);
    let fwd = kernel::forward_train(gpu(), "bn", &xt, &yt, &t).unwrap();
    run(fwd.into_iter().chain(kernel::backward(gpu(), "bn", &xt, &rt, &dx, &t, &dg, &db).unwrap()));
    let loss = |x: &[f64], g: &[f64], b: &[f64]| dot(&op::forward(x, shape, g, b).0, &r);
    fd_check("bn dx", &x, &download(&dx), |v| loss(v, &gamma, &beta));
    fd_check("bn dgamma", &gamma, &download(&dg), |v| loss(&x, v, &beta));
    fd_check("bn dbeta", &beta, &download(&db), |v| loss(&x, &gamma, v));
}

#[test]
fn fused_units_match_reference() {
    for gpu in crate::families() {
        crate::assert_passed(op::fused_cases(gpu, op::UNITS));
    }
}

/// The fused backward (ReLU, pooling, residual) against the reference forward.
#[test]
fn fused_gradients_match_finite_differences() {
    for (s, u) in op::UNITS.iter().enumerate().filter(|(_, u)| u.relu || u.residual != op::Join::None) {
        let [x, res, gamma, beta] = u.inputs(500 + 10 * s as u64);
        let ch = u.shape[1];
        let out = kernel::output_shape(&u.shape, u.pool);
        let r = values(out.iter().product(), 77 + s as u64);
        let (xt, rest, rt) =
            (upload("x", &u.shape, &x), upload("res", &u.res_shape(), &res), upload("r", &out, &r));
        let (gt, bt) = (upload("gamma", &[ch], &gamma), upload("beta", &[ch], &beta));
        let state = op::State::new(gpu(), ch).unwrap();
        let t = state.with(&gt, &bt);
        let (dx, dres) = (zeros("dx", &u.shape), zeros("dres", &u.res_shape()));
        let [_, dg, db] = u.launch(gpu(), &xt, &rest, &t, &rt, &dx, &dres, false).unwrap();
        let what = |name: &str| format!("{name} of {u:?}");
        let loss = |x: &[f64], res: &[f64], g: &[f64], b: &[f64]| dot(&u.forward(x, res, g, b).0, &r);
        fd_check(&what("dx"), &x, &download(&dx), |v| loss(v, &res, &gamma, &beta));
        fd_check(&what("dgamma"), &gamma, &download(&dg), |v| loss(&x, &res, v, &beta));
        fd_check(&what("dbeta"), &beta, &download(&db), |v| loss(&x, &res, &gamma, v));
        if u.residual != op::Join::None {
            fd_check(&what("dres"), &res, &download(&dres), |v| loss(&x, v, &gamma, &beta));
        }
    }
}

/// Statistics from the convolution's epilogue (lanes kernels) or, elsewhere, the batch norm's
/// own pass, against the f64 statistics of the convolution's output.
#[test]
fn conv_stats_match_reference() {
    use tern::internals::check::conv_bn;
    for gpu in crate::families() {
        crate::assert_passed(conv_bn::stats_cases(gpu, conv_bn::SHAPES));
    }
}
