//! `tern export`: a trained checkpoint → the packed inference format, with a size report.

use crate::gpu::Gpu;
use crate::infer::load_model;
use crate::packed::{PackedModel, PackedWeightsHost};
use anyhow::{Result, bail};
use std::path::Path;

pub struct ExportReport {
    pub model: PackedModel,
    /// Bytes of all weights and scales, packed.
    pub packed_bytes: usize,
    /// Bytes of the same weights as f32.
    pub fp32_bytes: usize,
}

pub fn export(gpu: &Gpu, checkpoint: &Path, out: &Path) -> Result<ExportReport> {
    if out.exists() {
        bail!("{} already exists; choose another --out", out.display());
    }
    let (model, meta) = load_model(gpu, checkpoint)?;
    let packed = PackedModel::from_model(gpu, &model, &meta)?;
    packed.save(out)?;
    let packed_bytes = packed.layers.iter().map(|l| l.weight_bytes()).sum();
    let fp32_bytes = packed.layers.iter().map(|l| 4 * l.numel()).sum();
    Ok(ExportReport { model: packed, packed_bytes, fp32_bytes })
}

pub fn size_table(r: &ExportReport) -> String {
    let mut s = format!("{:<18} {:>8} {:>9} {:>10} {:>9}\n", "layer", "kind", "weights", "bytes", "bits/w");
    for l in &r.model.layers {
        let kind = match &l.weights {
            PackedWeightsHost::Ternary { wp, .. } if wp.len() > 1 => "ternary/c",
            PackedWeightsHost::Ternary { .. } => "ternary",
            PackedWeightsHost::Dense { .. } => "f32",
        };
        let bits = 8.0 * l.weight_bytes() as f64 / l.numel() as f64;
        s += &format!("{:<18} {:>8} {:>9} {:>10} {:>9.3}\n", l.name, kind, l.numel(), l.weight_bytes(), bits);
    }
    let weights: usize = r.model.layers.iter().map(|l| l.numel()).sum();
    s += &format!(
        "{:<18} {:>8} {:>9} {:>10} {:>9.3}\ntotal {} bytes vs {} as f32: {:.1}x smaller (batch-norm scale/shift: {} bytes more in both)\n",
        "total",
        "",
        weights,
        r.packed_bytes,
        8.0 * r.packed_bytes as f64 / weights as f64,
        r.packed_bytes,
        r.fp32_bytes,
        r.fp32_bytes as f64 / r.packed_bytes as f64,
        r.model.layers.iter().map(|l| 8 * l.scale.len()).sum::<usize>()
    );
    s
}
