//! Truncated-Gaussian ternarization (shaders/ttn.wgsl, host side in src/quant/ttn.rs): stats (the
//! fit), quantize and backward (∂L/∂w and ∂L/∂δ); the gradients are derived in the shader header.

use super::{Case, Cases, TOL, affine, values};
use crate::gpu::{Gpu, Tensor};
use crate::quant::ttn as op;
use anyhow::Result;

/// (length, δ): over the single workgroup of 256; δ inside (0, 3σ), clipped at 3σ, and 0; a layer
/// the tiled family splits into ranges.
pub const AWKWARD: &[(usize, f64)] =
    &[(400, 0.1), (400, 0.45), (1000, 0.3), (70, 5.0), (257, 0.0), (40_000, 0.3)];

pub const MODEL: &[(usize, f64)] = &[(36_864, 0.3)];
pub const LARGE: &[(usize, f64)] = &[(150_001, 0.3)];

/// The shader's `fit`: [μ, σ, δ', α, λ, a, inside, 0] with σ the population deviation,
/// δ' = clamp(δ, 0, 3σ), a = δ'/σ, λ = φ(a)/(1 − Φ(a)), α = μ + σ·λ, inside = 1 for 0 < δ < 3σ.
pub fn stats(w: &[f64], delta: f64) -> [f64; 8] {
    let n = w.len() as f64;
    let mu = w.iter().sum::<f64>() / n;
    let sigma = (w.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n).sqrt().max(1e-12);
    let d = delta.clamp(0.0, 3.0 * sigma);
    let a = d / sigma;
    // Φ(a) = 1/2 + φ(a)·Σ a^(2k+1)/(1·3·…·(2k+1))
    let phi = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (mut term, mut sum) = (a, a);
    for k in 1..200 {
        term *= a * a / (2 * k + 1) as f64;
        sum += term;
    }
    let lambda = phi / (0.5 - phi * sum);
    let inside = (delta > 0.0 && delta < 3.0 * sigma) as u8 as f64;
    [mu, sigma, d, mu + sigma * lambda, lambda, a, inside, 0.0]
}

/// T ∈ {−1, 0, +1}: +1 above μ + δ', −1 below μ − δ' (the thresholds rounded to f32 as the
/// shader forms them, so a weight next to one falls on the same side).
fn ternary(v: f64, fit: &[f64; 8]) -> f64 {
    let (mu, d) = (fit[0] as f32, fit[2] as f32);
    ((v > (mu + d) as f64) as i8 - (v < (mu - d) as f64) as i8) as f64
}

/// wq = α·T.
pub fn quantize(w: &[f64], delta: f64) -> Vec<f64> {
    quantize_fit(w, &stats(w, delta))
}

/// wq = α·T for a given fit (the GPU's, to check quantize on its own).
pub fn quantize_fit(w: &[f64], fit: &[f64; 8]) -> Vec<f64> {
    w.iter().map(|&v| fit[3] * ternary(v, fit)).collect()
}

/// (∂L/∂w, ∂L/∂δ) from g = ∂L/∂wq, with G = Σ g·T: ∂L/∂w = g + G·(1/n + ∂α/∂σ·(w − μ)/(nσ)),
/// ∂L/∂δ = G·λ(λ − a) inside, else 0; ∂α/∂σ = λ − a·λ(λ − a) inside, else λ.
pub fn backward(w: &[f64], delta: f64, g: &[f64]) -> (Vec<f64>, f64) {
    backward_fit(w, &stats(w, delta), g)
}

/// `backward` for a given fit.
pub fn backward_fit(w: &[f64], fit: &[f64; 8], g: &[f64]) -> (Vec<f64>, f64) {
    let [mu, sigma, _, _, lambda, a, inside, _] = *fit;
    let big_g: f64 = w.iter().zip(g).map(|(&v, gi)| gi * ternary(v, fit)).sum();
    let dlambda = lambda * (lambda - a);
    let dalpha_dsigma = if inside > 0.5 { lambda - a * dlambda } else { lambda };
    let n = w.len() as f64;
    let dw = w
        .iter()
        .zip(g)
        .map(|(v, gi)| gi + big_g * (1.0 / n + dalpha_dsigma * (v - mu) / (n * sigma)))
        .collect();
    (dw, if inside > 0.5 { big_g * dlambda } else { 0.0 })
}

/// stats, quantize, backward; returns [fit, wq, dw, ddelta].
fn launch(c: &Cases, label: &str, [w, delta, g]: [&Tensor; 3]) -> Result<[Tensor; 4]> {
    let (fit, wq, dw, ddelta) = (
        c.zeros("fit", &[8])?,
        c.zeros("wq", w.shape())?,
        c.zeros("dw", w.shape())?,
        c.zeros("ddelta", &[1])?,
    );
    let mut d = op::stats(c.gpu, label, w, delta, &fit)?;
    d.push(op::quantize(c.gpu, label, w, &fit, &wq)?);
    d.extend(op::backward(c.gpu, label, w, &fit, g, &dw, &ddelta)?);
    c.run(d)?;
    Ok([fit, wq, dw, ddelta])
}

pub fn cases(gpu: &Gpu, shapes: &[(usize, f64)]) -> Result<Vec<Case>> {
    Cases::each(gpu, "ttn", shapes, |c, s, &(len, delta)| {
        c.reductions_path();
        let w = affine(len, 17 + 10 * s as u64, 1.0, 0.05);
        let g = values(len, 18 + 10 * s as u64);
        let t = [c.upload("w", &[len], &w)?, c.upload("delta", &[1], &[delta])?, c.upload("gq", &[len], &g)?];
        let [fit, wq, dw, ddelta] = launch(c, "ttn", [&t[0], &t[1], &t[2]])?;
        // quantize and backward are checked on the GPU's fit: a weight within rounding of a
        // threshold could otherwise fall on the other side in the reference.
        c.expect("stats", &fit, &stats(&w, delta), TOL)?;
        let gpu_fit: [f64; 8] = super::download(c.gpu, &fit)?.try_into().expect("fit has 8 values");
        let (want_dw, want_ddelta) = backward_fit(&w, &gpu_fit, &g);
        c.expect("quantize", &wq, &quantize_fit(&w, &gpu_fit), TOL)?;
        c.expect("backward dw", &dw, &want_dw, TOL)?;
        c.expect("backward ddelta", &ddelta, &[want_ddelta], TOL)?;
        Ok(())
    })
}

/// PyTorch's TTN forward and gradients (ttn0 … ttn2).
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "ttn", &["ttn0", "ttn1", "ttn2"], |c, case| {
        c.reductions_path();
        let [w, delta, g] = ["w", "delta", "g"].map(|n| c.golden_input(n));
        let [_, wq, dw, ddelta] = launch(c, case, [&w?, &delta?, &g?])?;
        c.expect_golden(&[("wq", &wq), ("dw", &dw), ("ddelta", &ddelta)], TOL)?;
        Ok(())
    })
}
