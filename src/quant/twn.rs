//! Ternary Weight Networks (Li & Liu 2016), the baseline: host side of shaders/twn.wgsl.
//! Δ = 0.7·mean|w|, α = mean of |w| above Δ, wq = α·sign(w) above Δ; straight-through backward.

use super::{Quantized, Quantizer, Ternary};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Program, Result, Tensor, Var, shaders};
use crate::ops::{expect_shape, f32_bytes, reduce, u32_of};
use crate::params::ParamSpec;

pub struct Twn;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    splits: u32,
}

/// delta_alpha = [Δ, α] of the latent weights: by one workgroup, or (see `reduce::ranges`) Σ|w|
/// per range, Δ, the sums above Δ per range, then α.
pub fn stats(gpu: &Gpu, label: &str, w: &Tensor, delta_alpha: &Tensor) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/stats");
    expect_shape(&label, delta_alpha, &[2])?;
    let len = u32_of(&label, "len", w.numel())?;
    let cost = Cost::new(4 * w.numel() as u64, f32_bytes(2 * w.numel()));
    let splits = reduce::ranges(gpu, w.numel());
    if splits <= 1 {
        let k = gpu.kernel(&shaders::TWN, "stats")?;
        let p = Params { len, splits: 1 };
        let tensors = [("w", w), ("delta_alpha", delta_alpha)];
        return Ok(vec![Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(1), cost)?]);
    }
    let p = Params { len, splits: splits as u32 };
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits, 2])?;
    let stage = |entry: &str, groups: usize| -> Result<Dispatch> {
        let k = gpu.kernel(&shaders::TWN, entry)?;
        let tensors = k.bound(&[("w", w), ("delta_alpha", delta_alpha), ("partial", &partial)]);
        let cost = if groups > 1 { Cost::new(cost.flops / 2, cost.bytes / 2) } else { Cost::default() };
        Dispatch::new(gpu, &k, format!("{label}/{entry}"), &p, &tensors, Grid::Groups(groups as u64), cost)
    };
    Ok(vec![
        stage("sum_split", splits)?,
        stage("set_delta", 1)?,
        stage("above_split", splits)?,
        stage("set_alpha", 1)?,
    ])
}

pub fn quantize(gpu: &Gpu, label: &str, w: &Tensor, delta_alpha: &Tensor, wq: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/quantize");
    expect_shape(&label, wq, w.shape())?;
    let p = Params { len: u32_of(&label, "len", w.numel())?, splits: 1 };
    let k = gpu.kernel(&shaders::TWN, "quantize")?;
    let cost = Cost::new(2 * w.numel() as u64, f32_bytes(2 * w.numel()));
    let tensors = [("w", w), ("delta_alpha", delta_alpha), ("wq", wq)];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(w.numel() as u64), cost)
}

impl Quantizer for Twn {
    fn kind(&self) -> super::QuantKind {
        super::QuantKind::Twn
    }

    fn extra_params(&self, _layer: &str, _weight_shape: &[usize]) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn build(&self, gpu: &Gpu, layer: &str, latent: &Var, _extra: &[Var]) -> Result<Quantized> {
        let w = &latent.value;
        let delta_alpha = gpu.tensor(&format!("{layer}.delta_alpha"), &[2])?;
        let wq = gpu.tensor(&format!("{layer}.wq"), w.shape())?;
        let mut forward = Program::default();
        forward.extend_from(stats(gpu, layer, w, &delta_alpha)?);
        forward.push(quantize(gpu, layer, w, &delta_alpha, &wq)?);
        // Straight-through: the layer writes ∂L/∂wq straight into the latent gradient.
        Ok(Quantized {
            wq,
            forward,
            gq: latent.grad.clone(),
            backward: Program::default(),
            after_update: Program::default(),
        })
    }

    fn ternarize(&self, latent: &[f32], _extra: &[Vec<f32>]) -> Option<Ternary> {
        let n = latent.len().max(1) as f32;
        let delta = 0.7 * latent.iter().map(|v| v.abs()).sum::<f32>() / n;
        let above: Vec<f32> = latent.iter().map(|v| v.abs()).filter(|a| *a > delta).collect();
        let alpha = if above.is_empty() { 0.0 } else { above.iter().sum::<f32>() / above.len() as f32 };
        let codes = latent.iter().map(|&v| if v.abs() > delta { v.signum() as i8 } else { 0 }).collect();
        Some(Ternary { codes, wp: alpha, wn: alpha })
    }
}
