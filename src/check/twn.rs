//! Ternary Weight Networks (shaders/twn.wgsl, host side in src/quant/twn.rs): stats ([Δ, α]) and
//! quantize. TWN's backward is the straight-through estimator, written by the convolution straight
//! into the latent gradient: there is no backward kernel to check. No PyTorch golden.

use super::{Case, Cases, TOL, values};
use crate::gpu::Gpu;
use crate::quant::twn as op;
use anyhow::Result;

/// Lengths around and over the single stats workgroup of 256.
pub const AWKWARD: &[usize] = &[1, 100, 257, 1000, 40_000];

pub const MODEL: &[usize] = super::ttq::MODEL;
pub const LARGE: &[usize] = super::ttq::LARGE;

/// [Δ, α]: Δ = 0.7·mean|w|, α = mean of |w| over |w| > Δ (0 when none is).
pub fn stats(w: &[f64]) -> [f64; 2] {
    let delta = 0.7 * w.iter().map(|v| v.abs()).sum::<f64>() / w.len() as f64;
    let above: Vec<f64> = w.iter().map(|v| v.abs()).filter(|a| *a > delta).collect();
    let alpha = if above.is_empty() { 0.0 } else { above.iter().sum::<f64>() / above.len() as f64 };
    [delta, alpha]
}

/// wq = α·sign(w) where |w| > Δ, else 0.
pub fn quantize(w: &[f64]) -> Vec<f64> {
    let [delta, alpha] = stats(w);
    w.iter().map(|&v| if v.abs() > delta { alpha * v.signum() } else { 0.0 }).collect()
}

pub fn cases(gpu: &Gpu, shapes: &[usize]) -> Result<Vec<Case>> {
    Cases::each(gpu, "twn", shapes, |c, _, &len| {
        c.reductions_path();
        let w = values(len, 700 + len as u64);
        let (wt, delta_alpha, wq) =
            (c.upload("w", &[len], &w)?, c.zeros("delta_alpha", &[2])?, c.zeros("wq", &[len])?);
        let mut d = op::stats(gpu, "twn", &wt, &delta_alpha)?;
        d.push(op::quantize(gpu, "twn", &wt, &delta_alpha, &wq)?);
        c.run(d)?;
        c.expect("stats", &delta_alpha, &stats(&w), TOL)?;
        c.expect("quantize", &wq, &quantize(&w), TOL)?;
        Ok(())
    })
}
