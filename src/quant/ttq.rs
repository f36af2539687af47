//! Trained Ternary Quantization (Zhu, Han, Mao, Dally, ICLR 2017): host side of shaders/ttq.wgsl.
//!
//! Per layer: Δ = t·max|w| (max by reduce.wgsl/max_abs), wq ∈ {−Wn, 0, +Wp} with Wp and Wn
//! trained; the gradients are in the shader's header.

use super::{Quantized, Quantizer, Ternary, scalar};
use crate::gpu::{Cost, Dispatch, Family, Gpu, Grid, Program, Result, Tensor, Var, shaders};
use crate::ops::{expect_shape, f32_bytes, reduce, u32_of};
use crate::params::ParamSpec;

pub struct Ttq {
    /// t in Δ = t·max|w| (`DEFAULT_THRESHOLD`, the paper's 0.05).
    pub threshold: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    threshold: f32,
    splits: u32,
    pad: u32,
}

/// wq from the latent weights, with Δ from `maxabs`.
pub fn quantize(
    gpu: &Gpu,
    label: &str,
    threshold: f32,
    w: &Tensor,
    maxabs: &Tensor,
    wp: &Tensor,
    wn: &Tensor,
    wq: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/quantize");
    expect_shape(&label, wq, w.shape())?;
    let p = Params { len: u32_of(&label, "len", w.numel())?, threshold, splits: 1, pad: 0 };
    let cost = Cost::new(2 * w.numel() as u64, f32_bytes(2 * w.numel()));
    // Four weights per invocation where they split into vec4s (quantize_vec).
    let (entry, names, threads) = match w.numel().is_multiple_of(4) {
        true => ("quantize_vec", ["w_vec", "wq_vec"], w.numel() / 4),
        false => ("quantize", ["w", "wq"], w.numel()),
    };
    let k = gpu.kernel(&shaders::TTQ, entry)?;
    let tensors = [(names[0], w), ("maxabs", maxabs), ("wp", wp), ("wn", wn), (names[1], wq)];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(threads as u64), cost)
}

/// The forward: max|w| into `maxabs` (kept for the backward), then wq. One dispatch of one
/// workgroup (ttq.wgsl's quantize_layer) where the blocked family reduces the layer in one
/// workgroup anyway and its length splits into vec4s; else `reduce::max_abs`, then `quantize`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    label: &str,
    threshold: f32,
    w: &Tensor,
    maxabs: &Tensor,
    wp: &Tensor,
    wn: &Tensor,
    wq: &Tensor,
) -> Result<Vec<Dispatch>> {
    if gpu.family() != Family::Blocked || !w.numel().is_multiple_of(4) {
        let mut d = reduce::max_abs(gpu, label, w, maxabs)?;
        d.push(quantize(gpu, label, threshold, w, maxabs, wp, wn, wq)?);
        return Ok(d);
    }
    let label = format!("{label}/quantize");
    expect_shape(&label, wq, w.shape())?;
    expect_shape(&label, maxabs, &[1])?;
    let p = Params { len: u32_of(&label, "len", w.numel())?, threshold, splits: 1, pad: 0 };
    let cost = Cost::new(3 * w.numel() as u64, f32_bytes(3 * w.numel()));
    let k = gpu.kernel(&shaders::TTQ, "quantize_layer")?;
    let tensors = [("w_vec", w), ("maxabs", maxabs), ("wp", wp), ("wn", wn), ("wq_vec", wq)];
    Ok(vec![Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(1), cost)?])
}

/// ∂L/∂w, ∂L/∂Wp and ∂L/∂Wn from gq = ∂L/∂wq: by one workgroup, or (see `reduce::ranges`) one
/// per range, whose sums a second kernel adds in order.
pub fn backward(
    gpu: &Gpu,
    label: &str,
    threshold: f32,
    w: &Tensor,
    maxabs: &Tensor,
    wp: &Tensor,
    wn: &Tensor,
    gq: &Tensor,
    dw: &Tensor,
    dwp: &Tensor,
    dwn: &Tensor,
) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/backward");
    expect_shape(&label, gq, w.shape())?;
    expect_shape(&label, dw, w.shape())?;
    let mut p = Params { len: u32_of(&label, "len", w.numel())?, threshold, splits: 1, pad: 0 };
    let cost = Cost::new(3 * w.numel() as u64, f32_bytes(3 * w.numel()));
    let inputs = [("w", w), ("maxabs", maxabs), ("wp", wp), ("wn", wn), ("gq", gq), ("dw", dw)];
    let splits = reduce::ranges(gpu, w.numel());
    if splits <= 1 {
        let k = gpu.kernel(&shaders::TTQ, "backward")?;
        let tensors = [&inputs[..], &[("dwp", dwp), ("dwn", dwn)]].concat();
        return Ok(vec![Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(1), cost)?]);
    }
    p.splits = splits as u32;
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits, 2])?;
    let k = gpu.kernel(&shaders::TTQ, "backward_split")?;
    let tensors = [&inputs[..], &[("partial", &partial)]].concat();
    let first =
        Dispatch::new(gpu, &k, format!("{label}_split"), &p, &tensors, Grid::Groups(splits as u64), cost)?;
    let k = gpu.kernel(&shaders::TTQ, "backward_merge")?;
    let tensors = [("partial", &partial), ("dwp", dwp), ("dwn", dwn)];
    let cost = Cost::new(2 * splits as u64, f32_bytes(2 * splits + 2));
    let second = Dispatch::new(gpu, &k, format!("{label}_merge"), &p, &tensors, Grid::Groups(1), cost)?;
    Ok(vec![first, second])
}

/// Δ exactly as the shader computes it: t · max|w| in f32.
pub fn delta(threshold: f32, latent: &[f32]) -> f32 {
    threshold * latent.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

impl Quantizer for Ttq {
    fn kind(&self) -> super::QuantKind {
        super::QuantKind::Ttq
    }

    fn extra_params(&self, layer: &str, _weight_shape: &[usize]) -> Vec<ParamSpec> {
        vec![scalar(layer, "wp", 1.0), scalar(layer, "wn", 1.0)]
    }

    fn build(&self, gpu: &Gpu, layer: &str, latent: &Var, extra: &[Var]) -> Result<Quantized> {
        let [wp, wn] = extra else { unreachable!("TTQ has two scales") };
        let w = &latent.value;
        let maxabs = gpu.tensor(&format!("{layer}.maxabs"), &[1])?;
        let wq = gpu.tensor(&format!("{layer}.wq"), w.shape())?;
        let mut forward = Program::default();
        forward.extend_from(self::forward(
            gpu,
            layer,
            self.threshold,
            w,
            &maxabs,
            &wp.value,
            &wn.value,
            &wq,
        )?);
        let (mut gq, mut backward) = (None, Program::default());
        if let (Some(dw), Some(dwp), Some(dwn)) = (&latent.grad, &wp.grad, &wn.grad) {
            let g = gpu.tensor(&format!("{layer}.gq"), w.shape())?;
            backward.extend_from(self::backward(
                gpu,
                layer,
                self.threshold,
                w,
                &maxabs,
                &wp.value,
                &wn.value,
                &g,
                dw,
                dwp,
                dwn,
            )?);
            gq = Some(g);
        }
        Ok(Quantized { wq, forward, gq, backward, after_update: Program::default() })
    }

    fn ternarize(&self, latent: &[f32], extra: &[Vec<f32>]) -> Option<Ternary> {
        let d = delta(self.threshold, latent);
        let codes = latent
            .iter()
            .map(|&v| {
                if v > d {
                    1
                } else if v < -d {
                    -1
                } else {
                    0
                }
            })
            .collect();
        Some(Ternary { codes, wp: extra[0][0], wn: extra[1][0] })
    }

    /// The official recipe: rescale so that max|w| = 1 and start from Wp = Wn = 1.
    fn init_from_full_precision(&self, latent: &mut [f32], extra: &mut [Vec<f32>]) {
        let m = latent.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if m > 0.0 {
            latent.iter_mut().for_each(|v| *v /= m);
        }
        extra[0][0] = 1.0;
        extra[1][0] = 1.0;
    }
}
