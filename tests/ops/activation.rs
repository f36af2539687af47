//! Element-wise activations: ReLU, the join (add) and STTN's ternary activation.

use super::*;
use tern::internals::check::{activation as op, values};
use tern::internals::ops::activation as kernel;

op_checks!(activation, golden);

#[test]
fn relu_gradient_matches_finite_differences() {
    let (x, r) = (distinct(180), values(180, 14));
    let (xt, rt, dx) = (upload("x", &[180], &x), upload("dy", &[180], &r), zeros("dx", &[180]));
    run([kernel::relu_backward(gpu(), "relu", &xt, &rt, &dx).unwrap()]);
    fd_check("relu dx", &x, &download(&dx), |v| dot(&op::relu_forward(v), &r));
}
