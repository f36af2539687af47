//! The fully connected layer.

use super::*;
use tern::internals::check::{linear as op, loss, values};
use tern::internals::gpu::DType;
use tern::internals::ops::{linear as kernel, loss as loss_kernel};

op_checks!(linear, golden);

/// Through the cross-entropy loss: its dlogits feed the linear backward.
#[test]
fn gradients_through_cross_entropy_match_finite_differences() {
    let (n, fin, fout) = (4, 9, 6);
    let (x, w, b) = (values(n * fin, 8), values(fout * fin, 9), values(fout, 10));
    let labels: Vec<u32> = vec![0, 5, 2, 3];
    let (xt, wt, bt) = (upload("x", &[n, fin], &x), upload("w", &[fout, fin], &w), upload("b", &[fout], &b));
    let lt = gpu().tensor_u32("labels", &[n], &labels).unwrap();
    let (logits, dl, l) = (zeros("logits", &[n, fout]), zeros("dlogits", &[n, fout]), zeros("loss", &[n]));
    let pred = gpu().tensor_of("pred", &[n], DType::U32).unwrap();
    let (dx, dw, db) = (zeros("dx", &[n, fin]), zeros("dw", &[fout, fin]), zeros("db", &[fout]));
    run([
        kernel::forward(gpu(), "fc", &xt, &wt, &bt, &logits).unwrap(),
        loss_kernel::forward(gpu(), "loss", &logits, &lt, &dl, &l, &pred).unwrap(),
        kernel::grad_input(gpu(), "fc", &dl, &wt, &dx).unwrap(),
        kernel::grad_weight(gpu(), "fc", &xt, &dl, &dw, &db).unwrap(),
    ]);
    let f = |x: &[f64], w: &[f64], b: &[f64]| loss::mean(&op::forward(x, w, b, n, fin, fout), &labels, fout);
    fd_check("linear+xent dx", &x, &download(&dx), |v| f(v, &w, &b));
    fd_check("linear+xent dw", &w, &download(&dw), |v| f(&x, v, &b));
    fd_check("linear+xent db", &b, &download(&db), |v| f(&x, &w, v));
}
