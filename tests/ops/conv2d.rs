//! conv2d: forward, grad_input, grad_weight.

use super::*;
use tern::internals::check::{conv2d as op, values};
use tern::internals::ops::conv2d as kernel;

op_checks!(conv2d, golden);

#[test]
fn gradients_match_finite_differences() {
    let g = op::geom(2, 3, 7, 6, 5, 3, 2, 1);
    let (x, w, r) = (values(2 * 3 * 42, 1), values(5 * 3 * 9, 2), values(2 * 5 * g.oh() * g.ow(), 3));
    let (xt, wt) = (upload("x", &g.input_shape(), &x), upload("w", &g.weight_shape(), &w));
    let rt = upload("dy", &g.output_shape(), &r);
    let (dx, dw) = (zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
    let mut p = kernel::grad_weight(gpu(), "conv", &g, &xt, &rt, &dw).unwrap();
    p.push(kernel::grad_input(gpu(), "conv", &g, &rt, &wt, &dx).unwrap());
    run(p.dispatches);
    fd_check("conv dx", &x, &download(&dx), |x| dot(&op::forward(&g, x, &w), &r));
    fd_check("conv dw", &w, &download(&dw), |w| dot(&op::forward(&g, &x, w), &r));
}

/// The reference backward itself, by one-sided differences of the reference forward.
#[test]
fn reference_gradients_match_finite_differences() {
    let g = op::geom(2, 2, 5, 4, 3, 3, 2, 1);
    let (x, w, r) = (values(2 * 2 * 20, 1), values(3 * 2 * 9, 2), values(2 * 3 * g.oh() * g.ow(), 3));
    let loss = |x: &[f64], w: &[f64]| dot(&op::forward(&g, x, w), &r);
    for (i, want) in op::grad_input(&g, &r, &w).iter().enumerate() {
        let mut xp = x.clone();
        xp[i] += 1e-6;
        assert!(((loss(&xp, &w) - loss(&x, &w)) / 1e-6 - want).abs() < 1e-5, "dx[{i}]");
    }
    for (i, want) in op::grad_weight(&g, &x, &r).iter().enumerate() {
        let mut wp = w.clone();
        wp[i] += 1e-6;
        assert!(((loss(&x, &wp) - loss(&x, &w)) / 1e-6 - want).abs() < 1e-5, "dw[{i}]");
    }
}

#[test]
fn rejects_mismatched_shapes_by_name() {
    let g = op::AWKWARD[1];
    let x = zeros("layer1.conv.x", &[2, 3, 7, 8]);
    let (w, y) = (zeros("layer1.conv.w", &g.weight_shape()), zeros("layer1.conv.y", &g.output_shape()));
    let err = kernel::forward(gpu(), "layer1.conv", &g, &x, &w, &y).err().unwrap().to_string();
    assert!(err.contains("layer1.conv/forward") && err.contains("layer1.conv.x"), "{err}");
    assert!(err.contains("[2, 3, 7, 9]"), "{err}");
}

/// The lanes kernels reading a batch norm's ReLU output from its input (forward, weight
/// gradient) against the f64 convolution of that output; only they do (the blocked family on
/// adapters with 8-lane subgroups, such as llvmpipe).
#[test]
fn bn_relu_source_matches_reference() {
    use tern::internals::check::conv_bn;
    let shapes = [op::AWKWARD, conv_bn::SHAPES].concat();
    for gpu in crate::families().into_iter().filter(|g| g.lanes_kernels()) {
        crate::assert_passed(conv_bn::relu_cases(gpu, &shapes));
    }
}
