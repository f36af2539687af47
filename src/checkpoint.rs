//! Checkpoints: safetensors files holding every parameter and state tensor by name, optionally the
//! optimizer moments (`optimizer.moment1.<name>`), and JSON metadata (model spec, normalisation,
//! class names, training state). Writes are atomic: temp file, fsync, rename, fsync directory.

use crate::gpu::Gpu;
use crate::nn::{Model, ModelSpec};
use crate::params::{HostTensor, Role, Slot};
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

pub const FORMAT: &str = "tern-checkpoint-1";
/// The `format` of a packed model (`tern export`), named here so a checkpoint load can tell one.
pub const PACKED_FORMAT: &str = "tern-packed-1";
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

/// The largest model input side (pixels) a checkpoint, packed model or run may declare.
pub const MAX_IMAGE_SIZE: usize = 4096;
/// The most classes a model may declare.
pub const MAX_CLASSES: usize = 100_000;

impl Meta {
    /// Check the metadata as a whole (every loader of checkpoints and packed models calls this):
    /// input shape, class count and names, normalisation, threshold, and that the architecture
    /// can be built with them. Errors name `origin`.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let p = origin.display();
        let s = &self.spec;
        if !matches!(s.in_channels, 1 | 3) {
            bail!("{p}: the model takes {} input channels; images are read with 1 or 3", s.in_channels);
        }
        for (what, v) in [("height", s.height), ("width", s.width)] {
            if !(4..=MAX_IMAGE_SIZE).contains(&v) {
                bail!("{p}: input {what} {v} is outside 4..={MAX_IMAGE_SIZE}");
            }
        }
        if !(2..=MAX_CLASSES).contains(&s.classes) {
            bail!("{p}: {} classes; a model has 2 to {MAX_CLASSES}", s.classes);
        }
        if self.classes.len() != s.classes {
            bail!("{p}: {} class names for {} classes", self.classes.len(), s.classes);
        }
        if self.mean.len() != s.in_channels || self.std.len() != s.in_channels {
            bail!(
                "{p}: normalisation mean and std have {} and {} values for {} input channels",
                self.mean.len(),
                self.std.len(),
                s.in_channels
            );
        }
        if let Some(v) = self.mean.iter().find(|v| !v.is_finite()) {
            bail!("{p}: normalisation mean {v} is not finite");
        }
        if let Some(v) = self.std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            bail!("{p}: normalisation std {v} is not positive and finite");
        }
        if !(s.threshold.is_finite() && (0.0..1.0).contains(&s.threshold)) {
            bail!("{p}: threshold {} is outside [0, 1)", s.threshold);
        }
        s.layers().map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        Ok(())
    }
}

/// The "format" metadata of a safetensors file (None: not safetensors, or no such entry).
pub fn format_of(bytes: &[u8]) -> Option<String> {
    let (_, header) = SafeTensors::read_metadata(bytes).ok()?;
    header.metadata().as_ref()?.get("format").cloned()
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

/// The temporary file `write_atomic` writes before renaming it over `path`: `.NAME.tmp` beside it.
pub fn temp_path(path: &Path) -> Result<std::path::PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{}: no file name", path.display()))?;
    Ok(dir.join(format!(".{}.tmp", name.to_string_lossy())))
}

/// Write `bytes` to `path` so that a crash at any moment leaves either the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("{}: write failed", tmp.display()))?;
    f.sync_all().with_context(|| format!("{}: write failed", tmp.display()))?;
    drop(f);
    replace(&tmp, path)
}

/// Rename the synced temporary file `tmp` over `path` and sync the directory.
pub fn replace(tmp: &Path, path: &Path) -> Result<()> {
    let dir = tmp.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    crate::fault::crash_point(&format!("before-rename:{name}"), None);
    std::fs::rename(tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialize tensors plus string metadata into safetensors bytes, the same bytes for the same
/// input: safetensors writes its metadata map in hash order, which changes from process to
/// process, so the header is written here with the metadata keys sorted.
pub fn to_safetensors(
    tensors: &[(String, Vec<usize>, &[u8], Dtype)],
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, s, b, d)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    // Without metadata the layout is deterministic (tensors sorted by dtype, then name).
    let bare = safetensors::serialize(views, None)?;
    let n = u64::from_le_bytes(bare[..8].try_into()?) as usize;
    let header = std::str::from_utf8(&bare[8..8 + n])?.trim_end();
    let tensors_json = header.strip_prefix('{').context("safetensors header is not a JSON object")?;
    let mut new = format!("{{\"__metadata__\":{}", serde_json::to_string(&metadata)?);
    if tensors_json != "}" {
        new.push(',');
    }
    new.push_str(tensors_json);
    // The data that follows stays 8-byte aligned, as safetensors aligns it.
    let len = new.len().next_multiple_of(8);
    let mut bytes = Vec::with_capacity(8 + len + bare.len() - 8 - n);
    bytes.extend((len as u64).to_le_bytes());
    bytes.extend(new.as_bytes());
    bytes.resize(8 + len, b' ');
    bytes.extend(&bare[8 + n..]);
    Ok(bytes)
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
        write_atomic(path, &self.to_bytes()?)
    }

    /// The safetensors file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
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
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("tern".into(), serde_json::to_string(&self.meta)?);
        if let Some(t) = &self.training {
            meta.insert("training".into(), t.clone());
        }
        to_safetensors(&list, meta)
    }

    /// Read and check a checkpoint: its metadata as a whole (`Meta::validate`) and every tensor
    /// F32. Tensor values are checked against a model by `check_complete`.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = crate::files::read(path)?;
        let p = path.display();
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a safetensors file ({e})"))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        let md = header.metadata().clone().unwrap_or_default();
        match md.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(PACKED_FORMAT) => bail!(
                "{p}: a packed model from `tern export`, which only `tern classify` and `tern profile --mode packed` run; give the checkpoint it was exported from"
            ),
            _ => bail!(
                "{p}: not a tern checkpoint (no \"format\": \"{FORMAT}\" metadata; import PyTorch weights with `tern import-torch`)"
            ),
        }
        let meta: Meta =
            serde_json::from_str(md.get("tern").with_context(|| format!("{p}: missing \"tern\" metadata"))?)
                .map_err(|e| anyhow::anyhow!("{p}: malformed \"tern\" metadata ({e})"))?;
        meta.validate(path)?;
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

    /// Copy the tensors into `model`, which must have exactly these names and shapes, and the
    /// optimizer moments, which must be absent or present for every trained tensor.
    pub fn restore(&self, gpu: &Gpu, model: &Model, origin: &Path) -> Result<()> {
        check_complete(&self.tensors, model, origin)?;
        check_moments(&self.moment1, &self.moment2, model, origin)?;
        let p = origin.display();
        model.store.write(gpu, Slot::Values, &self.tensors).with_context(|| format!("{p}"))?;
        if !self.moment1.is_empty() {
            model.store.write(gpu, Slot::Moment1, &self.moment1).with_context(|| format!("{p}"))?;
            model.store.write(gpu, Slot::Moment2, &self.moment2).with_context(|| format!("{p}"))?;
        }
        Ok(())
    }
}

/// Optimizer moments: none at all, or one of each per trained tensor with its shape; finite,
/// the second moment (a running mean of squares) not negative.
fn check_moments(m1: &[HostTensor], m2: &[HostTensor], model: &Model, origin: &Path) -> Result<()> {
    let p = origin.display();
    if m1.is_empty() && m2.is_empty() {
        return Ok(());
    }
    let trained: Vec<_> = model.store.specs.iter().filter(|s| s.role != Role::State).collect();
    for (prefix, set) in [(MOMENT1, m1), (MOMENT2, m2)] {
        let have: HashMap<&str, &HostTensor> = set.iter().map(|t| (t.name.as_str(), t)).collect();
        for s in &trained {
            match have.get(s.name.as_str()) {
                None => bail!("{p}: missing tensor '{prefix}{}' (optimizer state)", s.name),
                Some(t) if t.shape != s.shape => bail!(
                    "{p}: tensor '{prefix}{}' has shape {:?}, {} expects {:?}",
                    s.name,
                    t.shape,
                    model.spec.arch.name(),
                    s.shape
                ),
                Some(t) => {
                    if let Some(v) =
                        t.data.iter().find(|v| !v.is_finite() || (prefix == MOMENT2 && **v < 0.0))
                    {
                        bail!("{p}: tensor '{prefix}{}' holds {v}", s.name);
                    }
                }
            }
        }
        if let Some(t) = set.iter().find(|t| !trained.iter().any(|s| s.name == t.name)) {
            bail!("{p}: unexpected tensor '{prefix}{}': not a trained tensor of this model", t.name);
        }
    }
    Ok(())
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
            Some(t) => {
                if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                    bail!("{p}: tensor '{}' holds the non-finite value {v}", s.name);
                }
                if s.name.ends_with("running_var")
                    && let Some(v) = t.data.iter().find(|v| **v < 0.0)
                {
                    bail!("{p}: tensor '{}' holds the negative variance {v}", s.name);
                }
            }
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
