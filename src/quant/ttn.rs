//! Ternarization with a trained threshold and truncated-Gaussian scale (He & Fan,
//! arXiv 1810.01018): host side of shaders/ttn.wgsl. The gradients are in the shader's header.
//!
//! Where this follows the reading of the paper rather than the authors' code: δ is
//! clipped to [0, 3σ] (no gradient to δ while clipped), and the straight-through estimator of T
//! uses ∂T/∂w = 1/α so that the weight gradient through T is the layer's gradient itself.

use super::{Quantized, Quantizer, Ternary, scalar};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Program, Result, Tensor, Var, shaders};
use crate::ops::{expect_shape, f32_bytes, reduce, u32_of};
use crate::params::ParamSpec;

pub struct Ttn {
    /// δ starts at t · max|w|.
    pub threshold: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    splits: u32,
}

fn params(label: &str, w: &Tensor) -> Result<Params> {
    Ok(Params { len: u32_of(label, "len", w.numel())?, splits: 1 })
}

/// A stage of a split reduction: over the ranges (one workgroup each), one invocation adding
/// the ranges' sums, or one invocation per weight.
#[derive(Clone, Copy)]
enum Stage {
    Ranges,
    Merge,
    Weights,
}

/// The split path of a reduction (see `reduce::ranges`): the entry points of `stages` in order,
/// each binding those of `tensors` and a partial-sums buffer it uses.
fn split_stages(
    gpu: &Gpu,
    label: &str,
    w: &Tensor,
    splits: usize,
    tensors: &[(&str, &Tensor)],
    stages: &[(&str, Stage)],
    cost: Cost,
) -> Result<Vec<Dispatch>> {
    let p = Params { len: u32_of(label, "len", w.numel())?, splits: splits as u32 };
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits + 1])?;
    let mut all = tensors.to_vec();
    all.push(("partial", &partial));
    stages
        .iter()
        .map(|&(entry, stage)| {
            let k = gpu.kernel(&shaders::TTN, entry)?;
            let (grid, cost) = match stage {
                Stage::Ranges => (Grid::Groups(splits as u64), cost),
                Stage::Merge => (Grid::Groups(1), Cost::default()),
                Stage::Weights => (Grid::Threads(w.numel() as u64), cost),
            };
            Dispatch::new(gpu, &k, format!("{label}/{entry}"), &p, &k.bound(&all), grid, cost)
        })
        .collect()
}

/// fit = [μ, σ, δ', α, λ, a, inside, 0] of the latent weights: by one workgroup, or (see
/// `reduce::ranges`) Σw per range, μ, Σ(w − μ)² per range, then the fit.
pub fn stats(gpu: &Gpu, label: &str, w: &Tensor, delta: &Tensor, fit: &Tensor) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/stats");
    expect_shape(&label, fit, &[8])?;
    let cost = Cost::new(4 * w.numel() as u64, f32_bytes(2 * w.numel()));
    let tensors = [("w", w), ("delta", delta), ("fit", fit)];
    let splits = reduce::ranges(gpu, w.numel());
    if splits <= 1 {
        let k = gpu.kernel(&shaders::TTN, "stats")?;
        return Ok(vec![Dispatch::new(
            gpu,
            &k,
            label.clone(),
            &params(&label, w)?,
            &tensors,
            Grid::Groups(1),
            cost,
        )?]);
    }
    let stages = [
        ("mean_split", Stage::Ranges),
        ("set_mean", Stage::Merge),
        ("var_split", Stage::Ranges),
        ("set_fit", Stage::Merge),
    ];
    split_stages(gpu, &label, w, splits, &tensors, &stages, cost)
}

pub fn quantize(gpu: &Gpu, label: &str, w: &Tensor, fit: &Tensor, wq: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/quantize");
    expect_shape(&label, wq, w.shape())?;
    let k = gpu.kernel(&shaders::TTN, "quantize")?;
    let cost = Cost::new(3 * w.numel() as u64, f32_bytes(2 * w.numel()));
    let p = params(&label, w)?;
    Dispatch::new(
        gpu,
        &k,
        label,
        &p,
        &[("w", w), ("fit", fit), ("wq", wq)],
        Grid::Threads(w.numel() as u64),
        cost,
    )
}

pub fn backward(
    gpu: &Gpu,
    label: &str,
    w: &Tensor,
    fit: &Tensor,
    gq: &Tensor,
    dw: &Tensor,
    ddelta: &Tensor,
) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/backward");
    expect_shape(&label, gq, w.shape())?;
    expect_shape(&label, dw, w.shape())?;
    let cost = Cost::new(8 * w.numel() as u64, f32_bytes(4 * w.numel()));
    let tensors = [("w", w), ("fit", fit), ("gq", gq), ("dw", dw), ("ddelta", ddelta)];
    let splits = reduce::ranges(gpu, w.numel());
    if splits <= 1 {
        let k = gpu.kernel(&shaders::TTN, "backward")?;
        let p = params(&label, w)?;
        return Ok(vec![Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(1), cost)?]);
    }
    let stages =
        [("backward_split", Stage::Ranges), ("set_g", Stage::Merge), ("backward_apply", Stage::Weights)];
    split_stages(gpu, &label, w, splits, &tensors, &stages, cost)
}

/// erfc by Numerical Recipes' erfcc, as in the shader (in f64 here).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let c = [
        -1.26551223,
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    ];
    let poly = c.iter().rev().fold(0.0, |acc, k| k + t * acc);
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// (μ, δ', α) of `w` for threshold offset δ, as the stats kernel computes them.
pub fn fit(w: &[f32], delta: f32) -> (f64, f64, f64) {
    let n = w.len().max(1) as f64;
    let mu = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let sigma = (w.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n).sqrt().max(1e-12);
    let d = (delta as f64).clamp(0.0, 3.0 * sigma);
    let a = d / sigma;
    let lambda = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt() / (0.5 * erfc(a / 2f64.sqrt()));
    (mu, d, mu + sigma * lambda)
}

impl Quantizer for Ttn {
    fn kind(&self) -> super::QuantKind {
        super::QuantKind::Ttn
    }

    fn extra_params(&self, layer: &str, _weight_shape: &[usize]) -> Vec<ParamSpec> {
        vec![scalar(layer, "delta", 0.0)]
    }

    fn build(&self, gpu: &Gpu, layer: &str, latent: &Var, extra: &[Var]) -> Result<Quantized> {
        let [delta] = extra else { unreachable!("TTN has one threshold") };
        let w = &latent.value;
        let fit = gpu.tensor(&format!("{layer}.fit"), &[8])?;
        let wq = gpu.tensor(&format!("{layer}.wq"), w.shape())?;
        let mut forward = Program::default();
        forward.extend_from(stats(gpu, layer, w, &delta.value, &fit)?);
        forward.push(quantize(gpu, layer, w, &fit, &wq)?);
        let (mut gq, mut backward) = (None, Program::default());
        if let (Some(dw), Some(ddelta)) = (&latent.grad, &delta.grad) {
            let g = gpu.tensor(&format!("{layer}.gq"), w.shape())?;
            backward.extend_from(self::backward(gpu, layer, w, &fit, &g, dw, ddelta)?);
            gq = Some(g);
        }
        Ok(Quantized { wq, forward, gq, backward, after_update: Program::default() })
    }

    fn ternarize(&self, latent: &[f32], extra: &[Vec<f32>]) -> Option<Ternary> {
        let (mu, d, alpha) = fit(latent, extra[0][0]);
        let codes = latent
            .iter()
            .map(|&v| {
                let v = v as f64;
                if v > mu + d {
                    1
                } else if v < mu - d {
                    -1
                } else {
                    0
                }
            })
            .collect();
        Some(Ternary { codes, wp: alpha as f32, wn: alpha as f32 })
    }

    /// δ = t · max|w| of the starting weights.
    fn init_from_full_precision(&self, latent: &mut [f32], extra: &mut [Vec<f32>]) {
        extra[0][0] = self.threshold * latent.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    }
}
