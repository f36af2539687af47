//! Trained Ternary Quantization (shaders/ttq.wgsl, host side in src/quant/ttq.rs): quantize and
//! backward (all three gradients), with Δ = t·max|w| from reduce.wgsl/max_abs.

use super::{Case, Cases, TOL, reduce::max_abs, values};
use crate::gpu::{Gpu, Tensor};
use crate::quant::ttq as op;
use anyhow::Result;

/// Lengths around and over the single backward workgroup of 256.
pub const AWKWARD: &[usize] = &[1, 255, 300, 1000, 40_000];

/// ResNet-20's largest layer (64·64·3·3 weights) and a reduction over more than 100k.
pub const MODEL: &[usize] = &[36_864];
pub const LARGE: &[usize] = &[150_001];

/// The threshold factor t of the cases (the default).
const T: f32 = 0.05;

/// wq = +Wp where w > Δ, −Wn where w < −Δ, else 0, with Δ = t·max|w|.
pub fn quantize(w: &[f64], t: f64, wp: f64, wn: f64) -> Vec<f64> {
    let delta = t * max_abs(w);
    w.iter()
        .map(|&v| {
            if v > delta {
                wp
            } else if v < -delta {
                -wn
            } else {
                0.0
            }
        })
        .collect()
}

/// (∂L/∂w, ∂L/∂Wp, ∂L/∂Wn) from g = ∂L/∂wq: ∂L/∂w is Wp·g, g or Wn·g on the positive, zero and
/// negative sets; ∂L/∂Wp = Σ₊ g, ∂L/∂Wn = −Σ₋ g.
pub fn backward(w: &[f64], g: &[f64], t: f64, wp: f64, wn: f64) -> (Vec<f64>, f64, f64) {
    let delta = t * max_abs(w);
    let (mut dwp, mut dwn) = (0.0, 0.0);
    let dw = w
        .iter()
        .zip(g)
        .map(|(&v, &gi)| {
            if v > delta {
                dwp += gi;
                wp * gi
            } else if v < -delta {
                dwn -= gi;
                wn * gi
            } else {
                gi
            }
        })
        .collect();
    (dw, dwp, dwn)
}

/// The forward (max|w| and quantize, in one kernel or two) and backward; returns [wq, dw, dwp,
/// dwn].
fn launch(c: &Cases, label: &str, t: f32, [w, wp, wn, g]: [&Tensor; 4]) -> Result<[Tensor; 4]> {
    let (maxabs, wq, dw) = (c.zeros("maxabs", &[1])?, c.zeros("wq", w.shape())?, c.zeros("dw", w.shape())?);
    let (dwp, dwn) = (c.zeros("dwp", &[1])?, c.zeros("dwn", &[1])?);
    let mut d = op::forward(c.gpu, label, t, w, &maxabs, wp, wn, &wq)?;
    d.extend(op::backward(c.gpu, label, t, w, &maxabs, wp, wn, g, &dw, &dwp, &dwn)?);
    c.run(d)?;
    Ok([wq, dw, dwp, dwn])
}

pub fn cases(gpu: &Gpu, shapes: &[usize]) -> Result<Vec<Case>> {
    let (wp, wn, t) = (0.75, 1.25, T as f64);
    Cases::each(gpu, "ttq", shapes, |c, _, &len| {
        c.reductions_path();
        let (w, g) = (values(len, 15 + len as u64), values(len, 16 + len as u64));
        let (wt, gt) = (c.upload("w", &[len], &w)?, c.upload("gq", &[len], &g)?);
        let (wpt, wnt) = (c.upload("wp", &[1], &[wp])?, c.upload("wn", &[1], &[wn])?);
        let [wq, dw, dwp, dwn] = launch(c, "ttq", T, [&wt, &wpt, &wnt, &gt])?;
        let (want_dw, want_dwp, want_dwn) = backward(&w, &g, t, wp, wn);
        c.expect("quantize", &wq, &quantize(&w, t, wp, wn), 0.0)?;
        c.expect("backward dw", &dw, &want_dw, TOL)?;
        c.expect("backward dwp", &dwp, &[want_dwp], TOL)?;
        c.expect("backward dwn", &dwn, &[want_dwn], TOL)?;
        Ok(())
    })
}

/// PyTorch's TTQ forward and its three gradients (ttq0 … ttq2).
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "ttq", &["ttq0", "ttq1", "ttq2"], |c, case| {
        c.reductions_path();
        let threshold = c.golden_values("geom")?[0] as f32;
        let [w, wp, wn, g] = ["w", "wp", "wn", "g"].map(|n| c.golden_input(n));
        let [wq, dw, dwp, dwn] = launch(c, case, threshold, [&w?, &wp?, &wn?, &g?])?;
        c.expect_golden(&[("wq", &wq), ("dw", &dw), ("dwp", &dwp), ("dwn", &dwn)], TOL)?;
        Ok(())
    })
}
