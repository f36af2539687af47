//! Where a training run's model comes from: a resumed checkpoint, `--init` (this project's
//! full-precision checkpoint or a PyTorch state_dict), or a fresh initialisation; and the switch
//! from full precision to a quantizer.

use super::TrainConfig;
use crate::checkpoint::{Checkpoint, Meta};
use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::nn::Arch;
use crate::nn::{Model, ModelSpec};
use crate::params::{HostTensor, Slot};
use crate::quant::QuantKind;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The model the run trains on `data`, with quantizer `quant` (which changes after the warm-up).
pub(crate) fn spec(cfg: &TrainConfig, data: &Dataset, quant: QuantKind) -> ModelSpec {
    ModelSpec {
        arch: cfg.arch,
        in_channels: data.channels,
        height: data.height,
        width: data.width,
        classes: data.classes.len(),
        quant,
        threshold: cfg.threshold,
        quantize_ends: cfg.quantize_ends,
        activation: cfg.activation,
    }
}

/// Refuse up front an input (channels, height, width) and batch whose activation tensors would
/// exceed the adapter's buffer limits (the widest tensor is the first layer's output).
pub(crate) fn check_fits(gpu: &Gpu, arch: Arch, input: (usize, usize, usize), batch: usize) -> Result<()> {
    let (c, h, w) = input;
    let widest = if arch == Arch::SmallCnn { 8 } else { 16 }.max(c) as u64;
    let bytes = (batch as u64).saturating_mul(widest * h as u64 * w as u64 * 4);
    let l = &gpu.limits;
    let (limit, max) = [
        ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
        ("max_buffer_size", l.max_buffer_size),
    ]
    .into_iter()
    .min_by_key(|(_, m)| *m)
    .unwrap_or(("max_buffer_size", u64::MAX));
    if bytes > max {
        bail!(
            "--batch-size {batch} with {c}x{h}x{w} images needs {:.0} MB for one activation tensor, over this adapter's {limit} of {:.0} MB: use a smaller --image-size or --batch-size",
            bytes as f64 / 1e6,
            max as f64 / 1e6
        );
    }
    Ok(())
}

/// A resumed model and the data it continues on must agree on input shape and classes.
pub(crate) fn check_data(meta: &Meta, data: &Dataset, ckpt: &Path, dir: Option<&Path>) -> Result<()> {
    let s = &meta.spec;
    if (data.channels, data.height, data.width, data.classes.len())
        != (s.in_channels, s.height, s.width, s.classes)
    {
        bail!(
            "{}: the model takes {}x{}x{} images in {} classes, the data in {} has {}x{}x{} in {}",
            ckpt.display(),
            s.in_channels,
            s.height,
            s.width,
            s.classes,
            dir.map_or("the embedded set".into(), |d| d.display().to_string()),
            data.channels,
            data.height,
            data.width,
            data.classes.len()
        );
    }
    Ok(())
}

/// A quantized model started from full-precision tensors: same names, plus the quantizer's own
/// parameters, each quantized layer prepared by `init_from_full_precision`.
pub(crate) fn from_full_precision(
    gpu: &Gpu,
    spec: ModelSpec,
    fp: &[HostTensor],
    origin: &Path,
) -> Result<Model> {
    let model = Model::new(gpu, spec, 0)?;
    let mut values = model.store.read(gpu, Slot::Values)?;
    for t in values.iter_mut() {
        if let Some(src) = fp.iter().find(|s| s.name == t.name) {
            if src.shape != t.shape {
                bail!(
                    "{}: tensor '{}' has shape {:?}, the model expects {:?}",
                    origin.display(),
                    t.name,
                    src.shape,
                    t.shape
                );
            }
            if let Some(v) = src.data.iter().find(|v| !v.is_finite()) {
                bail!("{}: tensor '{}' holds the non-finite value {v}", origin.display(), t.name);
            }
            t.data = src.data.clone();
        } else if !is_quantizer_param(&model, &t.name) {
            bail!("{}: missing tensor '{}' for {}", origin.display(), t.name, model.spec.arch.name());
        }
    }
    for (layer, q) in model.weight_layers() {
        let wname = format!("{layer}.weight");
        let extra_names = model.extra_names(layer, q.as_ref());
        let mut latent = values.iter().find(|t| t.name == wname).context("weight")?.data.clone();
        let mut extra: Vec<Vec<f32>> = extra_names
            .iter()
            .map(|n| values.iter().find(|t| &t.name == n).map(|t| t.data.clone()).unwrap_or_default())
            .collect();
        q.init_from_full_precision(&mut latent, &mut extra);
        for t in values.iter_mut() {
            if t.name == wname {
                t.data = latent.clone();
            } else if let Some(i) = extra_names.iter().position(|n| *n == t.name) {
                t.data = extra[i].clone();
            }
        }
    }
    model.store.write(gpu, Slot::Values, &values)?;
    Ok(model)
}

fn is_quantizer_param(model: &Model, name: &str) -> bool {
    model
        .weight_layers()
        .iter()
        .any(|(layer, q)| model.extra_names(layer, q.as_ref()).iter().any(|n| n == name))
}

/// The model a run starts from: resumed, from `--init`, or fresh (quantized layers normalised as
/// when starting from full precision).
pub(crate) fn initial_model(
    gpu: &Gpu,
    cfg: &TrainConfig,
    data: &Dataset,
    resume: Option<&(Checkpoint, PathBuf)>,
) -> Result<Model> {
    let model = if let Some((ckpt, path)) = resume {
        let model = Model::new(gpu, ckpt.meta.spec.clone(), cfg.seed)?;
        ckpt.restore(gpu, &model, path)?;
        model
    } else if let Some(init) = &cfg.init {
        let (init_meta, tensors) = crate::import::init_tensors(init)?;
        let s = spec(cfg, data, cfg.quant_at(0));
        if let Some(m) = init_meta.map(|m| m.spec) {
            if m.quant != QuantKind::Fp {
                bail!(
                    "{}: --init takes a full-precision model; continue a {} run with --resume",
                    init.display(),
                    m.quant.name()
                );
            }
            if m.arch != s.arch || m.classes != s.classes || m.in_channels != s.in_channels {
                bail!(
                    "{}: a {} model with {} input channels and {} classes, but this run trains {} with {} and {}",
                    init.display(),
                    m.arch.name(),
                    m.in_channels,
                    m.classes,
                    s.arch.name(),
                    s.in_channels,
                    s.classes
                );
            }
        }
        from_full_precision(gpu, s, &tensors, init)?
    } else {
        let s = spec(cfg, data, cfg.quant_at(0));
        let model = Model::new(gpu, s, cfg.seed)?;
        if cfg.quant_at(0) != QuantKind::Fp {
            // TTQ from scratch: the same normalisation as when starting from full precision.
            let fp = model.store.read(gpu, Slot::Values)?;
            from_full_precision(gpu, model.spec.clone(), &fp, Path::new("initialisation"))?
        } else {
            model
        }
    };
    Ok(model)
}
