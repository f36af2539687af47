//! Fully connected layer (shaders/linear.wgsl): forward, grad_input, grad_weight (with the bias
//! gradient). `x [n, fin]`, `w [fout, fin]`, `b [fout]`.

use super::{Case, Cases, TOL, values};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::ops::linear as op;
use anyhow::Result;

/// (n, fin, fout): a single value, sizes off the workgroup of 64, a batch of 65.
pub const AWKWARD: &[(usize, usize, usize)] =
    &[(1, 1, 1), (3, 17, 10), (65, 64, 10), (8, 100, 33), (3, 20, 7), (67, 33, 3), (5, 70, 66)];

/// (n, fin, fout) of the models' classifiers, batch 2.
pub const MODEL: &[(usize, usize, usize)] = &[(2, 32, 10), (2, 64, 10)];

/// y = x·wᵀ + b.
pub fn forward(x: &[f64], w: &[f64], b: &[f64], n: usize, fin: usize, fout: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for r in 0..n {
        for o in 0..fout {
            y[r * fout + o] = b[o] + (0..fin).map(|k| x[r * fin + k] * w[o * fin + k]).sum::<f64>();
        }
    }
    y
}

/// (dx, dw, db) for upstream gradient dy.
pub fn backward(x: &[f64], w: &[f64], dy: &[f64], n: usize, fin: usize, fout: usize) -> [Vec<f64>; 3] {
    let (mut dx, mut dw, mut db) = (vec![0.0; n * fin], vec![0.0; fout * fin], vec![0.0; fout]);
    for r in 0..n {
        for o in 0..fout {
            let g = dy[r * fout + o];
            db[o] += g;
            for k in 0..fin {
                dx[r * fin + k] += g * w[o * fin + k];
                dw[o * fin + k] += g * x[r * fin + k];
            }
        }
    }
    [dx, dw, db]
}

/// The outputs `launch` fills, in its order.
const OUTPUTS: [&str; 4] = ["y", "dx", "dw", "db"];

/// All three entry points; returns (dispatches, [y, dx, dw, db]).
fn launch(c: &Cases, label: &str, [x, w, b, dy]: [&Tensor; 4]) -> Result<(Vec<Dispatch>, [Tensor; 4])> {
    let (y, dx) = (c.zeros("y", dy.shape())?, c.zeros("dx", x.shape())?);
    let (dw, db) = (c.zeros("dw", w.shape())?, c.zeros("db", b.shape())?);
    let d = vec![
        op::forward(c.gpu, label, x, w, b, &y)?,
        op::grad_input(c.gpu, label, dy, w, &dx)?,
        op::grad_weight(c.gpu, label, x, dy, &dw, &db)?,
    ];
    Ok((d, [y, dx, dw, db]))
}

pub fn cases(gpu: &Gpu, shapes: &[(usize, usize, usize)]) -> Result<Vec<Case>> {
    Cases::each(gpu, "linear", shapes, |c, _, &(n, fin, fout)| {
        c.family_path();
        let (x, w, b, dy) =
            (values(n * fin, 100), values(fout * fin, 101), values(fout, 102), values(n * fout, 103));
        let (xt, wt) = (c.upload("x", &[n, fin], &x)?, c.upload("w", &[fout, fin], &w)?);
        let (bt, dyt) = (c.upload("b", &[fout], &b)?, c.upload("dy", &[n, fout], &dy)?);
        let (d, got) = launch(c, "fc", [&xt, &wt, &bt, &dyt])?;
        c.run(d)?;
        let [dx, dw, db] = backward(&x, &w, &dy, n, fin, fout);
        for ((name, t), want) in OUTPUTS.iter().zip(&got).zip([forward(&x, &w, &b, n, fin, fout), dx, dw, db])
        {
            c.expect(name, t, &want, TOL)?;
        }
        Ok(())
    })
}

/// PyTorch's nn.Linear and its three gradients.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "linear", &["linear"], |c, _| {
        c.family_path();
        let [x, w, b, dy] = ["x", "w", "b", "dy"].map(|n| c.golden_input(n));
        let (d, got) = launch(c, "linear", [&x?, &w?, &b?, &dy?])?;
        c.run(d)?;
        c.expect_golden(&OUTPUTS.into_iter().zip(&got).collect::<Vec<_>>(), TOL)?;
        Ok(())
    })
}
