//! Softmax cross-entropy (shaders/loss.wgsl): forward (per-sample loss, arg-max prediction and
//! ∂mean loss/∂logits) and accumulate (the loss and accuracy counters).

use super::{Case, Cases, TOL, affine};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::ops::loss as op;
use anyhow::Result;

/// (n, classes): one sample, a batch over the workgroup, many classes, a batch the tiled family
/// splits into two ranges.
pub const AWKWARD: &[(usize, usize)] = &[(1, 2), (7, 10), (300, 10), (5, 100), (4099, 3)];

/// (n, classes): a training batch.
pub const MODEL: &[(usize, usize)] = &[(64, 10)];

/// Counters summed over more than 100k samples.
pub const LARGE: &[(usize, usize)] = &[(100_003, 10)];

/// (per-sample loss, dlogits of the mean loss, arg-max predictions, first wins on ties).
pub fn forward(logits: &[f64], labels: &[u32], classes: usize) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let n = labels.len();
    let (mut per, mut d, mut pred) = (vec![0.0; n], vec![0.0; logits.len()], vec![0; n]);
    for i in 0..n {
        let row = &logits[i * classes..(i + 1) * classes];
        let top = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        pred[i] = row.iter().position(|v| *v == top).unwrap() as u32;
        let z: f64 = row.iter().map(|v| (v - top).exp()).sum();
        per[i] = z.ln() + top - row[labels[i] as usize];
        for k in 0..classes {
            let prob = (row[k] - top).exp() / z;
            d[i * classes + k] = (prob - if k == labels[i] as usize { 1.0 } else { 0.0 }) / n as f64;
        }
    }
    (per, d, pred)
}

/// The mean loss (what training minimises).
pub fn mean(logits: &[f64], labels: &[u32], classes: usize) -> f64 {
    forward(logits, labels, classes).0.iter().sum::<f64>() / labels.len() as f64
}

/// The counters one accumulation adds: [Σ loss, Σ correct, n, 0].
pub fn accumulate(per: &[f64], pred: &[u32], labels: &[u32]) -> [f64; 4] {
    let correct = pred.iter().zip(labels).filter(|(a, b)| a == b).count();
    [per.iter().sum(), correct as f64, labels.len() as f64, 0.0]
}

/// forward, then accumulate `times` times; returns (dispatches, [dlogits, loss, pred, metrics]).
fn launch(
    c: &Cases,
    label: &str,
    logits: &Tensor,
    labels: &Tensor,
    times: usize,
) -> Result<(Vec<Dispatch>, [Tensor; 4])> {
    let n = labels.numel();
    let (dl, loss, metrics) =
        (c.zeros("dlogits", logits.shape())?, c.zeros("loss", &[n])?, c.zeros("metrics", &[4])?);
    let pred = c.gpu.tensor_of("pred", &[n], DType::U32)?;
    let mut d = vec![op::forward(c.gpu, label, logits, labels, &dl, &loss, &pred)?];
    for _ in 0..times {
        d.extend(op::accumulate(c.gpu, label, &loss, &pred, labels, &metrics)?);
    }
    Ok((d, [dl, loss, pred, metrics]))
}

pub fn cases(gpu: &Gpu, shapes: &[(usize, usize)]) -> Result<Vec<Case>> {
    Cases::each(gpu, "loss", shapes, |c, _, &(n, classes)| {
        c.reductions_path();
        let logits = affine(n * classes, 110, 5.0, 0.0);
        let labels: Vec<u32> = (0..n).map(|i| ((i * 7 + 3) % classes) as u32).collect();
        let (lt, labt) = (c.upload("logits", &[n, classes], &logits)?, c.u32s("labels", &labels)?);
        // Two accumulations of the same batch.
        let (d, [dl, loss, pred, metrics]) = launch(c, "loss", &lt, &labt, 2)?;
        c.run(d)?;
        let (per, dlogits, want_pred) = forward(&logits, &labels, classes);
        let counters = accumulate(&per, &want_pred, &labels).map(|v| 2.0 * v);
        c.expect("forward loss", &loss, &per, TOL)?;
        c.expect("forward dlogits", &dl, &dlogits, TOL)?;
        c.expect_u32("forward pred", &pred, &want_pred)?;
        c.expect("accumulate", &metrics, &counters, TOL)?;
        Ok(())
    })
}

/// PyTorch's cross_entropy (mean) and its gradient.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "loss", &["xent"], |c, _| {
        c.reductions_path();
        let labels: Vec<u32> = c.golden_values("labels")?.iter().map(|v| *v as u32).collect();
        let (d, [dl, _, _, metrics]) =
            launch(c, "xent", &c.golden_input("logits")?, &c.u32s("labels", &labels)?, 1)?;
        c.run(d)?;
        let mean = super::download(gpu, &metrics)?[0] / labels.len() as f64;
        c.expect_values("loss", &[mean], &c.golden_values("loss")?, TOL);
        c.expect_golden(&[("dlogits", &dl)], TOL)?;
        Ok(())
    })
}
