//! Max pooling and global average pooling.

use super::*;
use tern::internals::check::pool::{self as op, Pool};
use tern::internals::check::values;
use tern::internals::ops::pool as kernel;

op_checks!(pool, golden);

#[test]
fn gradients_match_finite_differences() {
    let p = Pool { input: [2, 3, 6, 5], k: 2, stride: 2 };
    let (x, [n, c, h, w]) = (distinct(180), p.input);
    let xt = upload("x", &p.input, &x);
    let r = values(n * c * 3 * 2, 11);
    let (rt, dx) = (upload("dy", &p.output(), &r), zeros("dx", &p.input));
    run([kernel::max_backward(gpu(), "pool", &xt, &rt, &dx, 2, 2).unwrap()]);
    fd_check("maxpool dx", &x, &download(&dx), |v| dot(&op::max_forward(v, &p).0, &r));
    let r = values(n * c, 12);
    let (rt, dx) = (upload("dy", &[n, c], &r), zeros("dx", &p.input));
    run([kernel::avg_backward(gpu(), "gap", &rt, &dx).unwrap()]);
    fd_check("avgpool dx", &x, &download(&dx), |v| dot(&op::avg_forward(v, n * c, h * w), &r));
}
