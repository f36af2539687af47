//! Batch normalisation (shaders/batchnorm.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Result, Tensor, shaders};

pub const EPS: f32 = 1e-5;
pub const MOMENTUM: f32 = 0.1;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    eps: f32,
    momentum: f32,
}

/// The tensors of one batch-norm layer. `mean`/`invstd` hold the batch statistics saved by
/// `stats` for `forward` and the backward pass.
pub struct BatchNormTensors<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub mean: &'a Tensor,
    pub invstd: &'a Tensor,
}

fn params(label: &str, x: &Tensor) -> Result<(Params, usize)> {
    let s = x.shape();
    let hw: usize = s[2..].iter().product();
    let p = Params {
        n: u32_of(label, "n", s[0])?,
        c: u32_of(label, "c", s[1])?,
        hw: u32_of(label, "hw", hw)?,
        eps: EPS,
        momentum: MOMENTUM,
    };
    Ok((p, s[1]))
}

fn check(label: &str, t: &BatchNormTensors, c: usize) -> Result<()> {
    for v in [t.gamma, t.beta, t.running_mean, t.running_var, t.mean, t.invstd] {
        expect_shape(label, v, &[c])?;
    }
    Ok(())
}

fn normalize(
    gpu: &Gpu,
    label: &str,
    p: &Params,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
) -> Result<Dispatch> {
    Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "forward")?,
        format!("{label}/forward"),
        p,
        &[("x", x), ("y", y), ("gamma", t.gamma), ("beta", t.beta), ("mean", t.mean), ("invstd", t.invstd)],
        Grid::Threads(x.numel() as u64),
        Cost { flops: 4 * x.numel() as u64, bytes: f32_bytes(2 * x.numel()) },
    )
}

/// Training forward: batch statistics (and running-statistics update), then normalisation.
pub fn forward_train(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
) -> Result<[Dispatch; 2]> {
    let (p, c) = params(label, x)?;
    check(label, t, c)?;
    expect_shape(label, y, x.shape())?;
    let stats = Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "stats")?,
        format!("{label}/stats"),
        &p,
        &[
            ("x", x),
            ("mean", t.mean),
            ("invstd", t.invstd),
            ("running_mean", t.running_mean),
            ("running_var", t.running_var),
        ],
        Grid::Groups(c as u64),
        Cost { flops: 4 * x.numel() as u64, bytes: f32_bytes(2 * x.numel()) },
    )?;
    let norm = normalize(gpu, label, &p, x, y, t)?;
    Ok([stats, norm])
}

/// Inference forward: the running statistics into mean/invstd, then normalisation.
pub fn forward_eval(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
) -> Result<[Dispatch; 2]> {
    let (p, c) = params(label, x)?;
    check(label, t, c)?;
    expect_shape(label, y, x.shape())?;
    let stats = Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "running_stats")?,
        format!("{label}/running_stats"),
        &p,
        &[
            ("running_mean", t.running_mean),
            ("running_var", t.running_var),
            ("mean", t.mean),
            ("invstd", t.invstd),
        ],
        Grid::Threads(c as u64),
        Cost { flops: 2 * c as u64, bytes: f32_bytes(4 * c) },
    )?;
    Ok([stats, normalize(gpu, label, &p, x, y, t)?])
}

/// Backward: per-channel sums into dgamma/dbeta, then dx.
pub fn backward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    t: &BatchNormTensors,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<[Dispatch; 2]> {
    let (p, c) = params(label, x)?;
    check(label, t, c)?;
    expect_shape(label, dy, x.shape())?;
    expect_shape(label, dx, x.shape())?;
    expect_shape(label, dgamma, &[c])?;
    expect_shape(label, dbeta, &[c])?;
    let reduce = Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "backward_reduce")?,
        format!("{label}/backward_reduce"),
        &p,
        &[("x", x), ("dy", dy), ("mean", t.mean), ("invstd", t.invstd), ("dgamma", dgamma), ("dbeta", dbeta)],
        Grid::Groups(c as u64),
        Cost { flops: 5 * x.numel() as u64, bytes: f32_bytes(2 * x.numel()) },
    )?;
    let grad = Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "backward")?,
        format!("{label}/backward"),
        &p,
        &[
            ("x", x),
            ("dy", dy),
            ("dx", dx),
            ("gamma", t.gamma),
            ("mean", t.mean),
            ("invstd", t.invstd),
            ("dgamma", dgamma),
            ("dbeta", dbeta),
        ],
        Grid::Threads(x.numel() as u64),
        Cost { flops: 8 * x.numel() as u64, bytes: f32_bytes(3 * x.numel()) },
    )?;
    Ok([reduce, grad])
}
