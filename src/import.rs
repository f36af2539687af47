//! `tern import-torch`: a PyTorch CIFAR-ResNet state_dict saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), ...)`) → a native checkpoint.
//!
//! Names follow the common CIFAR ResNet code: conv1, bn1, layer{1,2,3}.{i}.conv{1,2}/bn{1,2},
//! linear (fc is accepted too); a DataParallel "module." prefix is stripped and
//! num_batches_tracked is ignored. F32, F16, BF16 and F64 tensors are converted to f32.

use crate::checkpoint::{Checkpoint, Meta, check_complete};
use crate::gpu::Gpu;
use crate::nn::{Arch, Model, ModelSpec};
use crate::params::HostTensor;
use crate::quant::QuantKind;
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The state_dict's tensors under this project's names.
pub fn read_state_dict(path: &Path) -> Result<Vec<HostTensor>> {
    let p = path.display();
    let bytes = crate::files::read(path)?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{p}: not a safetensors file ({e})"))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let name = match name.strip_prefix("fc.") {
            Some(rest) => format!("linear.{rest}"),
            None => name,
        };
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytemuck::pod_collect_to_vec(raw),
            Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(raw).iter().map(|v| *v as f32).collect(),
            Dtype::F16 => raw.chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => raw.chunks(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => bail!("{p}: tensor '{name}' has dtype {other:?}; expected floating point"),
        };
        out.push(HostTensor { name, shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

pub struct ImportOptions {
    pub arch: Arch,
    pub classes: Option<usize>,
    /// Input size (square); CIFAR's 32 by default.
    pub size: usize,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub class_names: Option<Vec<String>>,
}

impl ImportOptions {
    /// The flags' own values, checked before the file is read so that an error names the flag
    /// at fault and not the state_dict.
    fn check(&self) -> Result<()> {
        let max = crate::checkpoint::MAX_IMAGE_SIZE;
        if !(4..=max).contains(&self.size) {
            bail!("--size must be between 4 and {max}, got {}", self.size);
        }
        if let Some(v) = self.mean.iter().flatten().find(|v| !v.is_finite()) {
            bail!("--mean {v} is not finite");
        }
        if let Some(v) = self.std.iter().flatten().find(|v| !(v.is_finite() && **v > 0.0)) {
            bail!("--std {v} is not positive and finite");
        }
        if let Some(c) = self.classes.filter(|c| *c < 2) {
            bail!("--classes {c}: a model has at least 2 classes");
        }
        Ok(())
    }
}

/// A full-precision model spec and its tensors from a state_dict.
pub fn import_torch(gpu: &Gpu, path: &Path, o: &ImportOptions) -> Result<(Model, Checkpoint)> {
    o.check()?;
    let p = path.display();
    let tensors = read_state_dict(path)?;
    let shape = |n: &str| tensors.iter().find(|t| t.name == n).map(|t| t.shape.clone());
    let conv1 = shape("conv1.weight").with_context(|| format!("{p}: missing tensor 'conv1.weight'"))?;
    let linear = shape("linear.weight")
        .with_context(|| format!("{p}: missing tensor 'linear.weight' (or 'fc.weight')"))?;
    let (in_channels, classes) = (conv1[1], linear[0]);
    if let Some(c) = o.classes.filter(|c| *c != classes) {
        bail!("{p}: --classes {c} but linear.weight has {classes} outputs");
    }
    let (mean, std) = match (&o.mean, &o.std) {
        (Some(m), Some(s)) => (m.clone(), s.clone()),
        (None, None) if in_channels == 3 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
        (None, None) => (vec![0.5; in_channels], vec![0.5; in_channels]),
        _ => bail!("--mean and --std go together"),
    };
    if mean.len() != in_channels || std.len() != in_channels {
        bail!("--mean/--std need {in_channels} values each, one per input channel of {p}");
    }
    let class_names = match &o.class_names {
        Some(names) if names.len() != classes => {
            bail!("--class-names: {} names for the {classes} classes of {p}", names.len())
        }
        Some(names) => names.clone(),
        None if classes == 10 && in_channels == 3 => {
            crate::data::cifar::CLASSES.iter().map(|s| s.to_string()).collect()
        }
        None => (0..classes).map(|i| i.to_string()).collect(),
    };
    let spec = ModelSpec {
        arch: o.arch,
        in_channels,
        height: o.size,
        width: o.size,
        classes,
        quant: QuantKind::Fp,
        threshold: crate::quant::DEFAULT_THRESHOLD,
        quantize_ends: false,
        activation: Default::default(),
    };
    let meta = Meta { spec: spec.clone(), mean, std, classes: class_names };
    meta.validate(path)?;
    let model = Model::new(gpu, spec, 0)?;
    check_complete(&tensors, &model, path)?;
    let ckpt = Checkpoint { meta, tensors, moment1: vec![], moment2: vec![], training: None };
    ckpt.restore(gpu, &model, path)?;
    Ok((model, ckpt))
}

/// `tern import-torch`: import `path` and save the checkpoint to `out`, which must not exist.
pub fn import_torch_to(gpu: &Gpu, path: &Path, o: &ImportOptions, out: &Path) -> Result<Model> {
    if out.exists() {
        bail!("{} already exists; choose another --out", out.display());
    }
    let (model, ckpt) = import_torch(gpu, path, o)?;
    ckpt.save(out)?;
    Ok(model)
}

/// Full-precision tensors for `--init`: a native checkpoint, or else a PyTorch state_dict.
pub fn init_tensors(path: &Path) -> Result<(Option<Meta>, Vec<HostTensor>)> {
    let tern_file =
        crate::checkpoint::format_of(&crate::files::read(path)?).is_some_and(|f| f.starts_with("tern-"));
    match Checkpoint::load(path) {
        Ok(c) => Ok((Some(c.meta), c.tensors)),
        Err(native) if tern_file => Err(native),
        Err(native) => match read_state_dict(path) {
            Ok(t) if t.iter().any(|t| t.name == "conv1.weight") => Ok((None, t)),
            _ => Err(native),
        },
    }
}
