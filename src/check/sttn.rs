//! Soft Threshold Ternary Networks (shaders/sttn.wgsl, host side in src/quant/sttn.rs): scale,
//! quantize, backward and clamp_latent. Weights are [cout, n]: n weights per output channel.

use super::{Case, Cases, TOL, affine, values};
use crate::gpu::{Gpu, Tensor};
use crate::quant::sttn as op;
use anyhow::Result;

/// (cout, n): channels under, at and over the scale workgroup of 64.
pub const AWKWARD: &[(usize, usize)] = &[(3, 20), (8, 36), (10, 70), (5, 200)];

/// ResNet-20's largest layer, and more than 100k weights per output channel.
pub const MODEL: &[(usize, usize)] = &[(64, 576)];
pub const LARGE: &[(usize, usize)] = &[(2, 110_000)];

/// +1 for v ≥ 0, else −1.
fn sgn(v: f64) -> f64 {
    if v >= 0.0 { 1.0 } else { -1.0 }
}

/// α per channel: (‖W1‖₁ + ‖W2‖₁) / (2n).
pub fn scale(w1: &[f64], w2: &[f64], cout: usize) -> Vec<f64> {
    let n = w1.len() / cout;
    (0..cout)
        .map(|c| (c * n..(c + 1) * n).map(|i| w1[i].abs() + w2[i].abs()).sum::<f64>() / (2 * n) as f64)
        .collect()
}

/// wq = α·(sign W1 + sign W2).
pub fn quantize(w1: &[f64], w2: &[f64], cout: usize) -> Vec<f64> {
    let (alpha, n) = (scale(w1, w2, cout), w1.len() / cout);
    (0..w1.len()).map(|i| alpha[i / n] * (sgn(w1[i]) + sgn(w2[i]))).collect()
}

/// (∂L/∂W1, ∂L/∂W2) from g = ∂L/∂wq: ∂L/∂W1 = g·α·1{|W1| ≤ 1} + G·sign(W1)/(2n), with
/// G = Σ_channel g·(sign W1 + sign W2); the same for W2.
pub fn backward(w1: &[f64], w2: &[f64], g: &[f64], cout: usize) -> (Vec<f64>, Vec<f64>) {
    let (alpha, n) = (scale(w1, w2, cout), w1.len() / cout);
    let big_g: Vec<f64> = (0..cout)
        .map(|c| (c * n..(c + 1) * n).map(|i| g[i] * (sgn(w1[i]) + sgn(w2[i]))).sum::<f64>() / (2 * n) as f64)
        .collect();
    let grad = |w: &[f64]| -> Vec<f64> {
        let ste = |i: usize| if w[i].abs() <= 1.0 { g[i] * alpha[i / n] } else { 0.0 };
        (0..w.len()).map(|i| ste(i) + big_g[i / n] * sgn(w[i])).collect()
    };
    (grad(w1), grad(w2))
}

pub fn clamp_latent(w: &[f64]) -> Vec<f64> {
    w.iter().map(|v| v.clamp(-1.0, 1.0)).collect()
}

/// scale, quantize, backward, then clamp_latent of w1 and w2 in place; returns [wq, dw1, dw2].
fn launch(c: &Cases, label: &str, [w1, w2, g]: [&Tensor; 3]) -> Result<[Tensor; 3]> {
    let alpha = c.zeros("alpha", &[w1.shape()[0]])?;
    let (wq, dw1, dw2) =
        (c.zeros("wq", w1.shape())?, c.zeros("dw1", w1.shape())?, c.zeros("dw2", w1.shape())?);
    c.run([
        op::scale(c.gpu, label, w1, w2, &alpha)?,
        op::quantize(c.gpu, label, w1, w2, &alpha, &wq)?,
        op::backward(c.gpu, label, w1, w2, &alpha, g, &dw1, &dw2)?,
        op::clamp_latent(c.gpu, label, w1, w2)?,
    ])?;
    Ok([wq, dw1, dw2])
}

pub fn cases(gpu: &Gpu, shapes: &[(usize, usize)]) -> Result<Vec<Case>> {
    Cases::each(gpu, "sttn", shapes, |c, _, &(cout, n)| {
        c.reductions_path();
        // Latent weights beyond ±1, where the straight-through gradient stops and clamping bites.
        let latent = |seed| affine(cout * n, seed, 1.3, 0.0);
        let (w1, w2, g) = (latent(19), latent(20), values(cout * n, 21));
        let t = [
            c.upload("w1", &[cout, n], &w1)?,
            c.upload("w2", &[cout, n], &w2)?,
            c.upload("gq", &[cout, n], &g)?,
        ];
        let [wq, dw1, dw2] = launch(c, "sttn", [&t[0], &t[1], &t[2]])?;
        let (want_dw1, want_dw2) = backward(&w1, &w2, &g, cout);
        c.expect("quantize", &wq, &quantize(&w1, &w2, cout), TOL)?;
        c.expect("backward dw1", &dw1, &want_dw1, TOL)?;
        c.expect("backward dw2", &dw2, &want_dw2, TOL)?;
        c.expect("clamp_latent w1", &t[0], &clamp_latent(&w1), 0.0)?;
        c.expect("clamp_latent w2", &t[1], &clamp_latent(&w2), 0.0)?;
        Ok(())
    })
}

/// PyTorch's STTN forward and gradients (sttn0, sttn1), and the clamp of the latent weights.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "sttn", &["sttn0", "sttn1"], |c, case| {
        c.reductions_path();
        let [w1, w2, g] = ["w1", "w2", "g"].map(|n| c.golden_input(n));
        let w1 = w1?;
        let [wq, dw1, dw2] = launch(c, case, [&w1, &w2?, &g?])?;
        c.expect_golden(&[("wq", &wq), ("dw1", &dw1), ("dw2", &dw2)], TOL)?;
        c.expect("clamp_latent", &w1, &clamp_latent(&c.golden_values("w1")?), 0.0)?;
        Ok(())
    })
}
