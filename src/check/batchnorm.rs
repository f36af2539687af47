//! Batch normalisation (shaders/batchnorm.wgsl): stats + forward (training), running_stats +
//! forward (eval), backward_reduce + backward, alone and fused with ReLU, pooling and a residual
//! add (`Unit`). Shapes are [n, c, h, w].

use super::{Case, Cases, TOL, affine, values};
use crate::gpu::{Gpu, Program, Tensor};
use crate::ops::batchnorm::{self as op, BatchNormTensors, EPS, Fused, MOMENTUM, Pool, Residual};
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

/// A fresh layer's per-channel state on the GPU: running statistics (0, 1) and the batch
/// statistics the training forward saves for the backward.
pub struct State {
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub mean: Tensor,
    pub invstd: Tensor,
}

impl State {
    pub fn new(gpu: &Gpu, channels: usize) -> Result<State> {
        let zeros = |name: &str| super::zeros(gpu, name, &[channels]);
        Ok(State {
            running_mean: zeros("running_mean")?,
            running_var: super::upload(gpu, "running_var", &[channels], &vec![1.0; channels])?,
            mean: zeros("mean")?,
            invstd: zeros("invstd")?,
        })
    }

    /// The kernels' tensors: this state with the layer's gamma and beta.
    pub fn with<'a>(&'a self, gamma: &'a Tensor, beta: &'a Tensor) -> BatchNormTensors<'a> {
        BatchNormTensors {
            gamma,
            beta,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            mean: &self.mean,
            invstd: &self.invstd,
        }
    }
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
    let state = State::new(c.gpu, ch)?;
    let (dg, db) = (c.zeros("dgamma", &[ch])?, c.zeros("dbeta", &[ch])?);
    let t = state.with(gamma, beta);
    let (y, dx, ye) = (c.zeros("y", x.shape())?, c.zeros("dx", x.shape())?, c.zeros("y_eval", x.shape())?);
    let mut p = Program::default();
    p.extend_from(op::forward_train(c.gpu, label, x, &y, &t)?);
    p.extend_from(op::backward(c.gpu, label, x, dy, &dx, &t, &dg, &db)?);
    p.extend_from(op::forward_eval(c.gpu, label, x, &ye, &t)?);
    c.run(p.dispatches)?;
    Ok(vec![y, dx, dg, db, state.running_mean, state.running_var, ye])
}

pub fn cases(gpu: &Gpu, shapes: &[[usize; 4]]) -> Result<Vec<Case>> {
    Cases::each(gpu, "batchnorm", shapes, |c, s, &shape| {
        c.reductions_path();
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
        c.reductions_path();
        let [x, gamma, beta, dy] = ["x", "gamma", "beta", "dy"].map(|n| c.golden_input(n));
        let got = launch(c, case, &x?, &gamma?, &beta?, &dy?)?;
        c.expect_golden(&OUTPUTS.into_iter().zip(&got).collect::<Vec<_>>(), TOL)?;
        Ok(())
    })
}

/// A batch norm fused with what follows it: [+ residual] [→ ReLU] [→ pool].
#[derive(Clone, Copy)]
pub struct Unit {
    pub shape: [usize; 4],
    pub relu: bool,
    pub pool: Pool,
    pub residual: Join,
}

/// The residual a unit adds: none, the block input itself, or option A from a block input of
/// `res_c` channels at twice the size (odd when the output is, to reach the edge, or with `odd`
/// one row and column short of twice the size at any output size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    None,
    Identity,
    OptionA { res_c: usize, odd: bool },
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} relu {} pool {:?} {:?}", self.shape, self.relu, self.pool, self.residual)
    }
}

const fn unit(shape: [usize; 4], relu: bool, pool: Pool, residual: Join) -> Unit {
    Unit { shape, relu, pool, residual }
}

/// Every combination the models use, on planes off the elementwise kernels' runs of 16 (their
/// scalar entries) and with odd sizes that drop a pooled row or column; the last four on whole
/// runs of vec4s (the *_vec entries; the last has an option-A residual one row and column short
/// of twice the size, which the scalar entries take).
pub const UNITS: &[Unit] = &[
    unit([3, 5, 6, 7], false, Pool::None, Join::None),
    unit([2, 3, 5, 9], true, Pool::None, Join::None),
    unit([3, 4, 8, 6], true, Pool::Max2, Join::None),
    unit([2, 3, 7, 9], true, Pool::Max2, Join::None),
    unit([2, 2, 5, 4], false, Pool::Max2, Join::None),
    unit([4, 6, 7, 7], true, Pool::Avg, Join::None),
    unit([3, 4, 6, 5], true, Pool::None, Join::Identity),
    unit([2, 5, 3, 7], false, Pool::None, Join::Identity),
    unit([2, 8, 4, 3], true, Pool::None, Join::OptionA { res_c: 4, odd: false }),
    unit([3, 7, 5, 4], true, Pool::None, Join::OptionA { res_c: 3, odd: false }),
    unit([2, 3, 4, 8], true, Pool::None, Join::None),
    unit([2, 4, 8, 4], false, Pool::None, Join::Identity),
    unit([2, 6, 4, 8], true, Pool::None, Join::OptionA { res_c: 2, odd: false }),
    unit([2, 6, 4, 8], true, Pool::None, Join::OptionA { res_c: 4, odd: true }),
];

impl Unit {
    pub fn res_shape(&self) -> [usize; 4] {
        let [n, c, h, w] = self.shape;
        match self.residual {
            Join::OptionA { res_c, odd } => {
                let short = |d: usize| 2 * d - usize::from(odd || d % 2 == 1);
                [n, res_c, short(h), short(w)]
            }
            _ => [n, c, h, w],
        }
    }

    fn shortcut(&self) -> super::shortcut::Shortcut {
        super::shortcut::Shortcut { input: self.res_shape(), cout: self.shape[1], stride: 2 }
    }

    fn pool(&self) -> super::pool::Pool {
        super::pool::Pool { input: self.shape, k: 2, stride: 2 }
    }

    /// Training forward: (output, z = BN(x) + residual before the ReLU).
    pub fn forward(&self, x: &[f64], res: &[f64], gamma: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.after(forward(x, self.shape, gamma, beta).0, res)
    }

    /// What follows the batch norm's output.
    pub fn after(&self, bn: Vec<f64>, res: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let add = |a: Vec<f64>, b: &[f64]| a.iter().zip(b).map(|(u, v)| u + v).collect();
        let z = match self.residual {
            Join::None => bn,
            Join::Identity => add(bn, res),
            Join::OptionA { .. } => add(bn, &super::shortcut::forward(res, &self.shortcut())),
        };
        let a = if self.relu { super::activation::relu_forward(&z) } else { z.clone() };
        let [n, c, h, w] = self.shape;
        let y = match self.pool {
            Pool::None => a,
            Pool::Max2 => super::pool::max_forward(&a, &self.pool()).0,
            Pool::Avg => super::pool::avg_forward(&a, n * c, h * w),
        };
        (y, z)
    }

    /// Training backward: [dx, dgamma, dbeta, dres] (dres empty without a residual).
    pub fn backward(&self, x: &[f64], res: &[f64], gamma: &[f64], beta: &[f64], dy: &[f64]) -> [Vec<f64>; 4] {
        let (_, z) = self.forward(x, res, gamma, beta);
        let a = if self.relu { super::activation::relu_forward(&z) } else { z.clone() };
        let da = match self.pool {
            Pool::None => dy.to_vec(),
            Pool::Max2 => super::pool::max_backward(&a, dy, &self.pool()),
            Pool::Avg => super::pool::avg_backward(dy, self.shape[2] * self.shape[3]),
        };
        let g = if self.relu { super::activation::relu_backward(&z, &da) } else { da };
        let (dx, dgamma, dbeta) = backward(x, &g, self.shape, gamma);
        let dres = match self.residual {
            Join::None => Vec::new(),
            Join::Identity => g,
            Join::OptionA { .. } => super::shortcut::backward(&g, &self.shortcut()),
        };
        [dx, dgamma, dbeta, dres]
    }

    /// Inputs of case `seed`: x, the residual input, gamma (around 1.2) and beta.
    pub fn inputs(&self, seed: u64) -> [Vec<f64>; 4] {
        let (len, c) = (self.shape.iter().product(), self.shape[1]);
        let x = affine(len, seed, 1.7, 0.4);
        let res = values(self.res_shape().iter().product(), seed + 1);
        [x, res, affine(c, seed + 2, 1.0, 1.2), values(c, seed + 3)]
    }

    /// The fused training forward and backward on the GPU: [y, dx, dgamma, dbeta, dres], the
    /// running statistics then updated in `t`. dx accumulates onto what it holds when
    /// `accumulate`; dres is overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        res: &Tensor,
        t: &BatchNormTensors,
        dy: &Tensor,
        dx: &Tensor,
        dres: &Tensor,
        accumulate: bool,
    ) -> Result<[Tensor; 3]> {
        let f = self.fused(res);
        let ch = self.shape[1];
        let y = super::zeros(gpu, "y", &op::output_shape(&self.shape, self.pool))?;
        let (dg, db) = (super::zeros(gpu, "dgamma", &[ch])?, super::zeros(gpu, "dbeta", &[ch])?);
        let mut p = Program::default();
        p.extend_from(op::fused_forward_train(gpu, "bn", x, &y, t, &f, None)?);
        let dres = (self.residual != Join::None).then_some(dres);
        p.extend_from(op::fused_backward(gpu, "bn", x, &y, dy, dx, t, &dg, &db, &f, dres, accumulate)?);
        super::run(gpu, p.dispatches)?;
        Ok([y, dg, db])
    }

    pub fn fused<'a>(&self, res: &'a Tensor) -> Fused<'a> {
        let residual = match self.residual {
            Join::None => Residual::None,
            Join::Identity => Residual::Identity(res),
            Join::OptionA { .. } => Residual::OptionA(res),
        };
        Fused { relu: self.relu, pool: self.pool, residual }
    }
}

/// The fused units: training forward, backward (dx accumulated onto a prior value, dres written
/// over stale contents), running statistics, then the eval forward through the same unit.
pub fn fused_cases(gpu: &Gpu, units: &[Unit]) -> Result<Vec<Case>> {
    Cases::each(gpu, "batchnorm fused", units, |c, s, u| {
        c.reductions_path();
        let seed = 10 * s as u64;
        let [x, res, gamma, beta] = u.inputs(seed);
        let ch = u.shape[1];
        let out = op::output_shape(&u.shape, u.pool);
        let dy = values(out.iter().product(), seed + 5);
        let prior = values(x.len(), seed + 6);
        let (xt, rt, dyt) = (
            c.upload("x", &u.shape, &x)?,
            c.upload("res", &u.res_shape(), &res)?,
            c.upload("dy", &out, &dy)?,
        );
        let (gt, bt) = (c.upload("gamma", &[ch], &gamma)?, c.upload("beta", &[ch], &beta)?);
        let state = State::new(gpu, ch)?;
        let t = state.with(&gt, &bt);
        let dx = c.upload("dx", &u.shape, &prior)?;
        let dres = c.upload("dres", &u.res_shape(), &values(res.len(), 7))?;
        let [y, dg, db] = u.launch(gpu, &xt, &rt, &t, &dyt, &dx, &dres, true)?;
        let ye = c.zeros("y_eval", &out)?;
        c.run(op::fused_forward_eval(gpu, "bn", &xt, &ye, &t, &u.fused(&rt))?)?;
        let [want_dx, want_dg, want_db, want_dres] = u.backward(&x, &res, &gamma, &beta, &dy);
        let want_dx: Vec<f64> = want_dx.iter().zip(&prior).map(|(a, b)| a + b).collect();
        let (_, bmean, bvar) = forward(&x, u.shape, &gamma, &beta);
        let (want_rm, want_rv) = running_stats(&bmean, &bvar, u.shape);
        let bn_eval = forward_eval(&x, u.shape, &gamma, &beta, &want_rm, &want_rv);
        c.expect("y", &y, &u.forward(&x, &res, &gamma, &beta).0, TOL)?;
        c.expect("dx accumulated", &dx, &want_dx, TOL)?;
        c.expect("dgamma", &dg, &want_dg, TOL)?;
        c.expect("dbeta", &db, &want_db, TOL)?;
        if u.residual != Join::None {
            c.expect("dres", &dres, &want_dres, TOL)?;
        }
        c.expect("running_mean", &state.running_mean, &want_rm, TOL)?;
        c.expect("running_var", &state.running_var, &want_rv, TOL)?;
        c.expect("y_eval", &ye, &u.after(bn_eval, &res).0, TOL)?;
        Ok(())
    })
}
