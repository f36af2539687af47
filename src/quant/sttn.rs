//! Soft Threshold Ternary Networks (Xu et al., IJCAI 2020): host side of shaders/sttn.wgsl.
//! The layer's `weight` is the first binary latent kernel W1 and `weight2` the second; both are
//! clamped to [−1, 1] after every optimizer step.

use super::{Quantized, Quantizer, Ternary};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Grid, Program, Result, Tensor, Var, shaders};
use crate::ops::{expect_shape, f32_bytes, u32_of};
use crate::params::{Init, ParamSpec};

pub struct Sttn {
    /// The soft threshold the two kernels start from, t · max|w| (as TTQ's t).
    pub threshold: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    cout: u32,
    per_channel: u32,
    len: u32,
}

fn params(label: &str, w1: &Tensor, w2: &Tensor) -> Result<Params> {
    expect_shape(label, w2, w1.shape())?;
    let cout = w1.shape()[0];
    if cout == 0 {
        return Err(GpuError::Invalid { label: label.into(), what: "no output channels".into() });
    }
    Ok(Params {
        cout: u32_of(label, "cout", cout)?,
        per_channel: u32_of(label, "n", w1.numel() / cout)?,
        len: u32_of(label, "len", w1.numel())?,
    })
}

pub fn scale(gpu: &Gpu, label: &str, w1: &Tensor, w2: &Tensor, alpha: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/scale");
    let p = params(&label, w1, w2)?;
    expect_shape(&label, alpha, &[p.cout as usize])?;
    let k = gpu.kernel(&shaders::STTN, "scale")?;
    let cost = Cost::new(2 * w1.numel() as u64, f32_bytes(2 * w1.numel()));
    Dispatch::new(
        gpu,
        &k,
        label,
        &p,
        &[("w1", w1), ("w2", w2), ("alpha", alpha)],
        Grid::Groups(p.cout as u64),
        cost,
    )
}

pub fn quantize(
    gpu: &Gpu,
    label: &str,
    w1: &Tensor,
    w2: &Tensor,
    alpha: &Tensor,
    wq: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/quantize");
    let p = params(&label, w1, w2)?;
    expect_shape(&label, wq, w1.shape())?;
    let k = gpu.kernel(&shaders::STTN, "quantize")?;
    let cost = Cost::new(3 * w1.numel() as u64, f32_bytes(3 * w1.numel()));
    let tensors = [("w1", w1), ("w2", w2), ("alpha", alpha), ("wq", wq)];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(w1.numel() as u64), cost)
}

pub fn backward(
    gpu: &Gpu,
    label: &str,
    w1: &Tensor,
    w2: &Tensor,
    alpha: &Tensor,
    gq: &Tensor,
    dw1: &Tensor,
    dw2: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/backward");
    let p = params(&label, w1, w2)?;
    for t in [gq, dw1, dw2] {
        expect_shape(&label, t, w1.shape())?;
    }
    let k = gpu.kernel(&shaders::STTN, "backward")?;
    let cost = Cost::new(8 * w1.numel() as u64, f32_bytes(5 * w1.numel()));
    let tensors = [("w1", w1), ("w2", w2), ("alpha", alpha), ("gq", gq), ("dw1", dw1), ("dw2", dw2)];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(p.cout as u64), cost)
}

/// Keep both latent kernels in [−1, 1] (run after the optimizer step).
pub fn clamp_latent(gpu: &Gpu, label: &str, w1: &Tensor, w2: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/clamp_latent");
    let p = params(&label, w1, w2)?;
    let k = gpu.kernel(&shaders::STTN, "clamp_latent")?;
    let cost = Cost::new(2 * w1.numel() as u64, f32_bytes(4 * w1.numel()));
    Dispatch::new(gpu, &k, label, &p, &[("w1", w1), ("w2", w2)], Grid::Threads(w1.numel() as u64), cost)
}

fn sign(v: f32) -> i8 {
    if v >= 0.0 { 1 } else { -1 }
}

impl Quantizer for Sttn {
    fn kind(&self) -> super::QuantKind {
        super::QuantKind::Sttn
    }

    fn extra_params(&self, layer: &str, weight_shape: &[usize]) -> Vec<ParamSpec> {
        let fan_in = weight_shape[1..].iter().product();
        vec![ParamSpec::new(format!("{layer}.weight2"), weight_shape, Init::KaimingNormal { fan_in }, true)]
    }

    fn per_channel_scales(&self) -> bool {
        true
    }

    fn build(&self, gpu: &Gpu, layer: &str, latent: &Var, extra: &[Var]) -> Result<Quantized> {
        let [second] = extra else { unreachable!("STTN has a second kernel") };
        let (w1, w2) = (&latent.value, &second.value);
        let alpha = gpu.tensor(&format!("{layer}.alpha"), &[w1.shape()[0]])?;
        let wq = gpu.tensor(&format!("{layer}.wq"), w1.shape())?;
        let mut forward = Program::default();
        forward.push(scale(gpu, layer, w1, w2, &alpha)?);
        forward.push(quantize(gpu, layer, w1, w2, &alpha, &wq)?);
        let (mut gq, mut backward, mut after_update) = (None, Program::default(), Program::default());
        if let (Some(dw1), Some(dw2)) = (&latent.grad, &second.grad) {
            let g = gpu.tensor(&format!("{layer}.gq"), w1.shape())?;
            backward.push(self::backward(gpu, layer, w1, w2, &alpha, &g, dw1, dw2)?);
            after_update.push(clamp_latent(gpu, layer, w1, w2)?);
            gq = Some(g);
        }
        Ok(Quantized { wq, forward, gq, backward, after_update })
    }

    /// Codes (sign(W1) + sign(W2)) / 2; the per-channel scales 2α are summarised by their mean.
    fn ternarize(&self, latent: &[f32], extra: &[Vec<f32>]) -> Option<Ternary> {
        let w2 = &extra[0];
        let codes: Vec<i8> = latent.iter().zip(w2).map(|(&a, &b)| (sign(a) + sign(b)) / 2).collect();
        let mean_alpha =
            latent.iter().chain(w2.iter()).map(|v| v.abs()).sum::<f32>() / (2 * latent.len().max(1)) as f32;
        Some(Ternary { codes, wp: 2.0 * mean_alpha, wn: 2.0 * mean_alpha })
    }

    /// W1 = w̃ + t and W2 = w̃ − t with w̃ = w / max|w|, clamped: the two signs disagree (a zero)
    /// exactly where |w̃| < t, the ternarization TTQ would start from.
    fn init_from_full_precision(&self, latent: &mut [f32], extra: &mut [Vec<f32>]) {
        let m = latent.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let t = self.threshold;
        for (a, b) in latent.iter_mut().zip(extra[0].iter_mut()) {
            let w = *a / m;
            *a = (w + t).clamp(-1.0, 1.0);
            *b = (w - t).clamp(-1.0, 1.0);
        }
    }
}
