//! Checkpoints: safetensors files holding every parameter and state tensor by name, optionally the
//! optimizer moments ("optimizer.moment1.<name>"), and JSON metadata (model spec, normalisation,
//! class names, training state). Writes are atomic: temp file, fsync, rename, fsync directory.

use crate::gpu::Gpu;
use crate::nn::{Model, ModelSpec};
use crate::params::{HostTensor, Role, Slot};
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub const FORMAT: &str = "tern-checkpoint-1";
const MOMENT1: &str = "optimizer.moment1.";
const MOMENT2: &str = "optimizer.moment2.";

/// What a model needs besides its tensors to classify raw images.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub spec: ModelSpec,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: Vec<String>,
}

pub struct Checkpoint {
    pub meta: Meta,
    pub tensors: Vec<HostTensor>,
    /// Optimizer moments by parameter name (empty when not saved).
    pub moment1: Vec<HostTensor>,
    pub moment2: Vec<HostTensor>,
    /// Training progress (train::TrainState as JSON), for --resume.
    pub training: Option<String>,
}

/// Write `bytes` to `path` so that a crash at any moment leaves either the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("checkpoint path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("{}: write failed", tmp.display()))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialize f32 tensors plus string metadata into safetensors bytes.
pub fn to_safetensors(
    tensors: &[(String, Vec<usize>, &[u8], Dtype)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, s, b, d)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

impl Checkpoint {
    /// Snapshot a model (and, with `moments`, its optimizer state).
    pub fn of(
        gpu: &Gpu,
        model: &Model,
        meta: Meta,
        moments: bool,
        training: Option<String>,
    ) -> Result<Checkpoint> {
        let tensors = model.store.read(gpu, Slot::Values)?;
        let (moment1, moment2) = if moments {
            (model.store.read(gpu, Slot::Moment1)?, model.store.read(gpu, Slot::Moment2)?)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Checkpoint { meta, tensors, moment1, moment2, training })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut list: Vec<(String, Vec<usize>, &[u8], Dtype)> = Vec::new();
        for (prefix, set) in [("", &self.tensors), (MOMENT1, &self.moment1), (MOMENT2, &self.moment2)] {
            for t in set.iter() {
                list.push((
                    format!("{prefix}{}", t.name),
                    t.shape.clone(),
                    bytemuck::cast_slice(&t.data),
                    Dtype::F32,
                ));
            }
        }
        let mut meta = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("tern".into(), serde_json::to_string(&self.meta)?);
        if let Some(t) = &self.training {
            meta.insert("training".into(), t.clone());
        }
        write_atomic(path, &to_safetensors(&list, meta)?)
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let p = path.display();
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a safetensors file ({e})"))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        let md = header.metadata().clone().unwrap_or_default();
        if md.get("format").map(String::as_str) != Some(FORMAT) {
            bail!(
                "{p}: not a tern checkpoint (no \"format\": \"{FORMAT}\" metadata; import PyTorch weights with `tern import-torch`)"
            );
        }
        let meta: Meta = serde_json::from_str(md.get("tern").context("missing \"tern\" metadata")?)
            .with_context(|| format!("{p}: malformed metadata"))?;
        let (mut tensors, mut moment1, mut moment2) = (Vec::new(), Vec::new(), Vec::new());
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                bail!("{p}: tensor '{name}' is {:?}, expected F32", view.dtype());
            }
            let t = |n: &str| HostTensor {
                name: n.to_string(),
                shape: view.shape().to_vec(),
                data: bytemuck::pod_collect_to_vec(view.data()),
            };
            if let Some(n) = name.strip_prefix(MOMENT1) {
                moment1.push(t(n));
            } else if let Some(n) = name.strip_prefix(MOMENT2) {
                moment2.push(t(n));
            } else {
                tensors.push(t(&name));
            }
        }
        Ok(Checkpoint { meta, tensors, moment1, moment2, training: md.get("training").cloned() })
    }

    /// Copy the tensors into `model`, which must have exactly these names and shapes.
    pub fn restore(&self, gpu: &Gpu, model: &Model, origin: &Path) -> Result<()> {
        check_complete(&self.tensors, model, origin)?;
        model.store.write(gpu, Slot::Values, &self.tensors).with_context(|| origin.display().to_string())?;
        if !self.moment1.is_empty() {
            model.store.write(gpu, Slot::Moment1, &self.moment1)?;
            model.store.write(gpu, Slot::Moment2, &self.moment2)?;
        }
        Ok(())
    }
}

/// Every tensor the model has is present with its shape, and nothing else: name the first that is not.
pub fn check_complete(tensors: &[HostTensor], model: &Model, origin: &Path) -> Result<()> {
    let p = origin.display();
    let have: HashMap<&str, &HostTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for s in &model.store.specs {
        match have.get(s.name.as_str()) {
            None => bail!("{p}: missing tensor '{}' for {}", s.name, model.spec.arch.name()),
            Some(t) if t.shape != s.shape => {
                bail!(
                    "{p}: tensor '{}' has shape {:?}, {} expects {:?}",
                    s.name,
                    t.shape,
                    model.spec.arch.name(),
                    s.shape
                )
            }
            Some(t) if t.data.iter().any(|v| !v.is_finite()) && s.role != Role::State => {
                bail!("{p}: tensor '{}' holds NaN or infinite values", s.name)
            }
            _ => {}
        }
    }
    if let Some(extra) = tensors.iter().find(|t| model.store.spec(&t.name).is_none()) {
        bail!(
            "{p}: unexpected tensor '{}': not part of {} with this quantizer",
            extra.name,
            model.spec.arch.name()
        );
    }
    Ok(())
}
