//! Batch normalisation (shaders/batchnorm.wgsl): stats + forward (training), running_stats +
//! forward (eval), backward_reduce + backward. Shapes are [n, c, h, w].

use super::{Case, Cases, TOL, affine, values};
use crate::gpu::{Gpu, Program, Tensor};
use crate::ops::batchnorm::{self as op, BatchNormTensors, EPS, MOMENTUM};
use anyhow::Result;

/// One to eight channels, planes of 3 to 49 values, a single value per channel and batch of 1.
pub const AWKWARD: &[[usize; 4]] = &[[2, 3, 4, 5], [4, 8, 7, 7], [1, 1, 1, 3], [3, 5, 17, 3]];

/// Batch norms of the small CNN and ResNet-20, batch 2.
pub const MODEL: &[[usize; 4]] = &[[2, 8, 28, 28], [2, 32, 7, 7], [2, 16, 32, 32], [2, 64, 8, 8]];

/// Statistics over more than 100k values per channel (batch 128 of 32×32).
pub const LARGE: &[[usize; 4]] = &[[128, 2, 32, 32]];

/// Index of (image b, channel ch, position s).
fn at(shape: [usize; 4], b: usize, ch: usize, s: usize) -> usize {
    (b * shape[1] + ch) * shape[2] * shape[3] + s
}

/// Every (b, ch, s) of a shape, channel by channel.
fn each(shape: [usize; 4]) -> impl Iterator<Item = (usize, usize, usize)> {
    let [n, c, h, w] = shape;
    (0..c).flat_map(move |ch| (0..n).flat_map(move |b| (0..h * w).map(move |s| (b, ch, s))))
}

/// Training forward: (y, batch mean, biased batch variance).
pub fn forward(x: &[f64], shape: [usize; 4], gamma: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (shape[0] * shape[2] * shape[3]) as f64;
    let (mut mean, mut var) = (vec![0.0; shape[1]], vec![0.0; shape[1]]);
    for (b, ch, s) in each(shape) {
        mean[ch] += x[at(shape, b, ch, s)] / m;
    }
    for (b, ch, s) in each(shape) {
        var[ch] += (x[at(shape, b, ch, s)] - mean[ch]).powi(2) / m;
    }
    let y = forward_eval(x, shape, gamma, beta, &mean, &var);
    (y, mean, var)
}

/// Eval forward with the given statistics.
pub fn forward_eval(
    x: &[f64],
    shape: [usize; 4],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
) -> Vec<f64> {
    let hw = shape[2] * shape[3];
    let eps = EPS as f64;
    (0..x.len())
        .map(|i| {
            let ch = (i / hw) % shape[1];
            (x[i] - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}

/// Running statistics after one batch from (0, 1): momentum update, unbiased variance.
pub fn running_stats(mean: &[f64], var: &[f64], shape: [usize; 4]) -> (Vec<f64>, Vec<f64>) {
    let (m, mo) = ((shape[0] * shape[2] * shape[3]) as f64, MOMENTUM as f64);
    let rm = mean.iter().map(|v| mo * v).collect();
    let rv = var.iter().map(|v| (1.0 - mo) + mo * v * m / (m - 1.0).max(1.0)).collect();
    (rm, rv)
}

/// (dx, dgamma, dbeta) of training-mode batch norm.
pub fn backward(x: &[f64], dy: &[f64], shape: [usize; 4], gamma: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = shape[1];
    let (_, mean, var) = forward(x, shape, &vec![1.0; c], &vec![0.0; c]);
    let m = (shape[0] * shape[2] * shape[3]) as f64;
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
    let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
    for (b, ch, s) in each(shape) {
        let i = at(shape, b, ch, s);
        dgamma[ch] += dy[i] * (x[i] - mean[ch]) * invstd[ch];
        dbeta[ch] += dy[i];
    }
    let mut dx = vec![0.0; x.len()];
    for (b, ch, s) in each(shape) {
        let i = at(shape, b, ch, s);
        let xhat = (x[i] - mean[ch]) * invstd[ch];
        dx[i] = gamma[ch] * invstd[ch] * (dy[i] - dbeta[ch] / m - xhat * dgamma[ch] / m);
    }
    (dx, dgamma, dbeta)
}

/// The outputs `launch` compares, in its order.
const OUTPUTS: [&str; 7] = ["y", "dx", "dgamma", "dbeta", "running_mean", "running_var", "y_eval"];

/// Training forward, backward, then eval forward from the updated running statistics (which
/// start at (0, 1)); returns the tensors named by `OUTPUTS`.
fn launch(
    c: &Cases,
    label: &str,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    dy: &Tensor,
) -> Result<Vec<Tensor>> {
    let ch = gamma.numel();
    let per_channel = |name: &str| c.zeros(name, &[ch]);
    let (rm, rv) = (per_channel("running_mean")?, c.upload("running_var", &[ch], &vec![1.0; ch])?);
    let (mean, invstd, dg, db) =
        (per_channel("mean")?, per_channel("invstd")?, per_channel("dgamma")?, per_channel("dbeta")?);
    let t =
        BatchNormTensors { gamma, beta, running_mean: &rm, running_var: &rv, mean: &mean, invstd: &invstd };
    let (y, dx, ye) = (c.zeros("y", x.shape())?, c.zeros("dx", x.shape())?, c.zeros("y_eval", x.shape())?);
    let mut p = Program::default();
    p.extend_from(op::forward_train(c.gpu, label, x, &y, &t)?);
    p.extend_from(op::backward(c.gpu, label, x, dy, &dx, &t, &dg, &db)?);
    p.extend_from(op::forward_eval(c.gpu, label, x, &ye, &t)?);
    c.run(p.dispatches)?;
    Ok(vec![y, dx, dg, db, rm, rv, ye])
}

pub fn cases(gpu: &Gpu, shapes: &[[usize; 4]]) -> Result<Vec<Case>> {
    Cases::each(gpu, "batchnorm", shapes, |c, s, &shape| {
        let (len, ch) = (shape.iter().product(), shape[1]);
        let x = affine(len, 60 + s as u64, 2.0, 0.5);
        let (gamma, beta, dy) = (values(ch, 61), values(ch, 62), values(len, 163 + s as u64));
        let (xt, dyt) = (c.upload("x", &shape, &x)?, c.upload("dy", &shape, &dy)?);
        let (gt, bt) = (c.upload("gamma", &[ch], &gamma)?, c.upload("beta", &[ch], &beta)?);
        let got = launch(c, "bn", &xt, &gt, &bt, &dyt)?;
        let (y, mean, var) = forward(&x, shape, &gamma, &beta);
        let (dx, dgamma, dbeta) = backward(&x, &dy, shape, &gamma);
        let (rm, rv) = running_stats(&mean, &var, shape);
        let y_eval = forward_eval(&x, shape, &gamma, &beta, &rm, &rv);
        for ((name, t), want) in OUTPUTS.iter().zip(&got).zip([y, dx, dgamma, dbeta, rm, rv, y_eval]) {
            c.expect(name, t, &want, TOL)?;
        }
        Ok(())
    })
}

/// PyTorch's BatchNorm2d in training mode, its gradients and running statistics, then eval
/// mode (bn0 … bn2).
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "batchnorm", &["bn0", "bn1", "bn2"], |c, case| {
        let [x, gamma, beta, dy] = ["x", "gamma", "beta", "dy"].map(|n| c.golden_input(n));
        let got = launch(c, case, &x?, &gamma?, &beta?, &dy?)?;
        c.expect_golden(&OUTPUTS.into_iter().zip(&got).collect::<Vec<_>>(), TOL)?;
        Ok(())
    })
}
