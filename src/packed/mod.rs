//! The packed inference model: ternary layers as W+/W− bitmasks with their scales, full-precision
//! layers as f32, batch norm folded into per-channel scale and shift. Built from a trained model
//! (`tern export`), saved as safetensors; `graph` builds its inference program.

use crate::checkpoint::{Meta, to_safetensors, write_atomic};
use crate::gpu::Gpu;
use crate::gpu::Var;
use crate::nn::Model;
use crate::nn::layers::Layer;
use crate::ops::batchnorm::EPS;
use crate::params::Slot;
use crate::quant::pack;
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

mod graph;

pub use graph::PackedGraph;

pub use crate::checkpoint::PACKED_FORMAT as FORMAT;

#[derive(Clone, Debug, PartialEq)]
pub enum PackedWeightsHost {
    /// Bit i of the layer's weights: +Wp in `pos`, −Wn in `neg`; scales per layer or per channel.
    Ternary {
        pos: Vec<u32>,
        neg: Vec<u32>,
        wp: Vec<f32>,
        wn: Vec<f32>,
    },
    Dense {
        weight: Vec<f32>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct PackedLayer {
    pub name: String,
    /// [cout, cin, kh, kw] or [out, in]
    pub shape: Vec<usize>,
    pub weights: PackedWeightsHost,
    /// Folded batch norm (convolutions) or 1 (linear).
    pub scale: Vec<f32>,
    /// Folded batch norm (convolutions) or the bias (linear).
    pub shift: Vec<f32>,
    /// STTN units: the batch norm before the ternary activation of this layer's input, folded
    /// (scale, shift per input channel).
    pub act: Option<(Vec<f32>, Vec<f32>)>,
}

impl PackedLayer {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the weights and their scales (not the folded batch norm).
    pub fn weight_bytes(&self) -> usize {
        match &self.weights {
            // A symmetric layer (Wn = Wp) stores its scales once.
            PackedWeightsHost::Ternary { pos, neg, wp, wn } => {
                4 * (pos.len() + neg.len() + wp.len() + if wp == wn { 0 } else { wn.len() })
            }
            PackedWeightsHost::Dense { weight } => 4 * weight.len(),
        }
    }
}

pub struct PackedModel {
    pub meta: Meta,
    pub layers: Vec<PackedLayer>,
}

/// The batch norm that follows a convolution: conv1 → bn1, layer2.0.conv2 → layer2.0.bn2.
fn bn_of(conv: &str) -> String {
    match conv.rfind("conv") {
        Some(i) => format!("{}bn{}", &conv[..i], &conv[i + 4..]),
        None => format!("{conv}.bn"),
    }
}

impl PackedModel {
    /// Pack a model: each layer's quantized weights exactly as its quantizer computes them on the
    /// GPU, split into signs and scales; batch norm folded with the running statistics.
    pub fn from_model(gpu: &Gpu, model: &Model, meta: &Meta) -> Result<PackedModel> {
        let values: HashMap<String, Vec<f32>> =
            model.store.read(gpu, Slot::Values)?.into_iter().map(|t| (t.name, t.data)).collect();
        let get = |n: &str| values.get(n).cloned().with_context(|| format!("model has no tensor '{n}'"));
        let mut layers = Vec::new();
        for layer in model.spec.layers()? {
            for (name, q) in layer.weight_layers() {
                let spec = model.store.spec(&format!("{name}.weight")).context("weight")?;
                let shape = spec.shape.clone();
                let cout = shape[0];
                // Batch norm as y = x·scale + shift with the running statistics.
                let fold = |bn: &str| -> Result<(Vec<f32>, Vec<f32>)> {
                    let (g, b) = (get(&format!("{bn}.weight"))?, get(&format!("{bn}.bias"))?);
                    let (m, v) = (get(&format!("{bn}.running_mean"))?, get(&format!("{bn}.running_var"))?);
                    let scale: Vec<f32> = (0..g.len()).map(|c| g[c] / (v[c] + EPS).sqrt()).collect();
                    let shift = (0..g.len()).map(|c| b[c] - m[c] * scale[c]).collect();
                    Ok((scale, shift))
                };
                let (scale, shift) = match &layer {
                    Layer::Linear(_) => (vec![1.0; cout], get(&format!("{name}.bias"))?),
                    _ => fold(&bn_of(name))?,
                };
                let act = match &layer {
                    Layer::TernaryUnit(u) => Some(fold(&u.bn_in.name)?),
                    _ => None,
                };
                let weights = if q.kind() == crate::quant::QuantKind::Fp {
                    PackedWeightsHost::Dense { weight: get(&format!("{name}.weight"))? }
                } else {
                    let wq = quantized_weights(gpu, model, name, q.as_ref())?;
                    ternary(name, &wq, &shape, q.per_channel_scales())?
                };
                layers.push(PackedLayer { name: name.to_string(), shape, weights, scale, shift, act });
            }
        }
        Ok(PackedModel { meta: meta.clone(), layers })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = Vec::new();
        let f32s = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
        let mut index = Vec::new();
        for l in &self.layers {
            let n = &l.name;
            match &l.weights {
                PackedWeightsHost::Ternary { pos, neg, wp, wn } => {
                    owned.push((
                        format!("{n}.pos"),
                        vec![pos.len()],
                        bytemuck::cast_slice(pos).to_vec(),
                        Dtype::U32,
                    ));
                    owned.push((
                        format!("{n}.neg"),
                        vec![neg.len()],
                        bytemuck::cast_slice(neg).to_vec(),
                        Dtype::U32,
                    ));
                    owned.push((format!("{n}.wp"), vec![wp.len()], f32s(wp), Dtype::F32));
                    if wn != wp {
                        owned.push((format!("{n}.wn"), vec![wn.len()], f32s(wn), Dtype::F32));
                    }
                    index.push(serde_json::json!({"name": n, "kind": "ternary", "shape": l.shape}));
                }
                PackedWeightsHost::Dense { weight } => {
                    owned.push((format!("{n}.weight"), l.shape.clone(), f32s(weight), Dtype::F32));
                    index.push(serde_json::json!({"name": n, "kind": "dense", "shape": l.shape}));
                }
            }
            owned.push((format!("{n}.scale"), vec![l.scale.len()], f32s(&l.scale), Dtype::F32));
            owned.push((format!("{n}.shift"), vec![l.shift.len()], f32s(&l.shift), Dtype::F32));
            if let Some((scale, shift)) = &l.act {
                owned.push((format!("{n}.act_scale"), vec![scale.len()], f32s(scale), Dtype::F32));
                owned.push((format!("{n}.act_shift"), vec![shift.len()], f32s(shift), Dtype::F32));
            }
        }
        let list: Vec<_> =
            owned.iter().map(|(n, s, b, d)| (n.clone(), s.clone(), b.as_slice(), *d)).collect();
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("tern".to_string(), serde_json::to_string(&self.meta)?);
        meta.insert("layers".to_string(), serde_json::to_string(&index)?);
        write_atomic(path, &to_safetensors(&list, meta)?)
    }

    /// Load and check: the metadata as a whole (`Meta::validate`), each layer's tensors with the
    /// kind (ternary or f32), dtype and shape the architecture and quantizer imply, the
    /// `layers` index against them, every value finite, no weight both +Wp and −Wn.
    pub fn load(path: &Path) -> Result<PackedModel> {
        PackedModel::from_bytes(&crate::files::read(path)?, path)
    }

    /// `load` of a file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<PackedModel> {
        let p = path.display();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a safetensors file ({e})"))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        let md = header.metadata().clone().unwrap_or_default();
        if md.get("format").map(String::as_str) != Some(FORMAT) {
            bail!("{p}: not a packed tern model (no \"format\": \"{FORMAT}\" metadata)");
        }
        let meta: Meta =
            serde_json::from_str(md.get("tern").with_context(|| format!("{p}: missing \"tern\" metadata"))?)
                .map_err(|e| anyhow::anyhow!("{p}: malformed \"tern\" metadata ({e})"))?;
        meta.validate(path)?;
        let mut used = std::collections::HashSet::new();
        let mut tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>> {
            let t = st.tensor(name).map_err(|_| anyhow::anyhow!("{p}: missing tensor '{name}'"))?;
            if t.dtype() != dtype || t.shape() != shape {
                bail!(
                    "{p}: tensor '{name}' is {:?} {:?}, the metadata implies {dtype:?} {shape:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            used.insert(name.to_string());
            Ok(t.data().to_vec())
        };
        let f32s = |name: &str, b: Vec<u8>| -> Result<Vec<f32>> {
            let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                bail!("{p}: tensor '{name}' holds the non-finite value {x}");
            }
            Ok(v)
        };
        let mut layers = Vec::new();
        let mut index = Vec::new();
        for layer in meta.spec.layers()? {
            for (name, q) in layer.weight_layers() {
                let shape = weight_shape(&layer, name).context("layer shape")?;
                let (cout, numel) = (shape[0], shape.iter().product::<usize>());
                let words = numel.div_ceil(32);
                let ternary = q.kind() != crate::quant::QuantKind::Fp;
                let kind = if ternary { "ternary" } else { "dense" };
                index.push(serde_json::json!({"name": name, "kind": kind, "shape": shape}));
                let weights = if ternary {
                    let mut scales = |s: &str| -> Result<Vec<f32>> {
                        let n = format!("{name}.{s}");
                        let t = st.tensor(&n).map_err(|_| anyhow::anyhow!("{p}: missing tensor '{n}'"))?;
                        let len = t.shape().iter().product::<usize>();
                        if len != 1 && len != cout {
                            bail!("{p}: tensor '{n}' must hold 1 or {cout} scales");
                        }
                        f32s(&n, tensor(&n, Dtype::F32, &[len])?)
                    };
                    let wp = scales("wp")?;
                    let wn = match st.tensor(&format!("{name}.wn")) {
                        Ok(_) => scales("wn")?,
                        Err(_) => wp.clone(), // no Wn: the layer is symmetric
                    };
                    let pos: Vec<u32> =
                        bytemuck::pod_collect_to_vec(&tensor(&format!("{name}.pos"), Dtype::U32, &[words])?);
                    let neg: Vec<u32> =
                        bytemuck::pod_collect_to_vec(&tensor(&format!("{name}.neg"), Dtype::U32, &[words])?);
                    if let Some(w) = pos.iter().zip(&neg).position(|(a, b)| a & b != 0) {
                        let bit = 32 * w + (pos[w] & neg[w]).trailing_zeros() as usize;
                        bail!("{p}: tensors '{name}.pos' and '{name}.neg' both set weight {bit}");
                    }
                    PackedWeightsHost::Ternary { pos, neg, wp, wn }
                } else {
                    let n = format!("{name}.weight");
                    PackedWeightsHost::Dense { weight: f32s(&n, tensor(&n, Dtype::F32, &shape)?)? }
                };
                let mut vector = |s: &str, len: usize| -> Result<Vec<f32>> {
                    let n = format!("{name}.{s}");
                    f32s(&n, tensor(&n, Dtype::F32, &[len])?)
                };
                let scale = vector("scale", cout)?;
                let shift = vector("shift", cout)?;
                let act = match layer {
                    Layer::TernaryUnit(_) => {
                        Some((vector("act_scale", shape[1])?, vector("act_shift", shape[1])?))
                    }
                    _ => None,
                };
                layers.push(PackedLayer { name: name.to_string(), shape, weights, scale, shift, act });
            }
        }
        if let Some(text) = md.get("layers") {
            let stored: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("{p}: malformed \"layers\" metadata ({e})"))?;
            if stored != serde_json::Value::Array(index) {
                bail!(
                    "{p}: the \"layers\" metadata does not list the layers of {} with {} as this file's tensors do",
                    meta.spec.arch.name(),
                    meta.spec.quant.name()
                );
            }
        }
        if let Some(extra) = st.names().into_iter().find(|n| !used.contains(*n)) {
            bail!("{p}: unexpected tensor '{extra}': not part of {}", meta.spec.arch.name());
        }
        Ok(PackedModel { meta, layers })
    }
}

fn weight_shape(layer: &Layer, name: &str) -> Option<Vec<usize>> {
    layer.params().into_iter().find(|s| s.name == format!("{name}.weight")).map(|s| s.shape)
}

/// Split quantized weights into codes and scales; fails if the layer is not ternary.
fn ternary(name: &str, wq: &[f32], shape: &[usize], per_channel: bool) -> Result<PackedWeightsHost> {
    let cout = shape[0];
    let groups = if per_channel { cout } else { 1 };
    let per = wq.len() / groups;
    let (mut wp, mut wn) = (vec![0.0f32; groups], vec![0.0f32; groups]);
    for g in 0..groups {
        for &v in &wq[g * per..(g + 1) * per] {
            let slot = if v > 0.0 {
                &mut wp[g]
            } else if v < 0.0 {
                &mut wn[g]
            } else {
                continue;
            };
            let mag = v.abs();
            if *slot == 0.0 {
                *slot = mag;
            } else if *slot != mag {
                bail!("layer '{name}' is not ternary: group {g} has weights {} and {mag}", *slot);
            }
        }
    }
    let codes: Vec<i8> = wq.iter().map(|&v| (v > 0.0) as i8 - (v < 0.0) as i8).collect();
    let (pos, neg) = pack::pack(&tap_major(&codes, shape));
    Ok(PackedWeightsHost::Ternary { pos, neg, wp, wn })
}

/// One tap-major bit mask (`pos` or `neg`) of a [cout, cin, kh, kw] layer as the popcount
/// kernels' weight planes [rows / R, kh·kw, ⌈cin/32⌉, R] (R = `ops::bitplane::PLANE_ROWS`):
/// word (co, tap, w) holds input channels 32·w .. 32·w + 31, aligned like the activation
/// planes' words; the R output channels of a group sit side by side (two vec4 loads), and
/// `rows` is cout rounded up to a multiple of R, the rows past cout zero.
pub fn weight_planes(mask: &[u32], shape: [usize; 4]) -> Vec<u32> {
    let [cout, cin, kh, kw] = shape;
    let (kk, words) = (kh * kw, cin.div_ceil(32));
    const R: usize = crate::ops::bitplane::PLANE_ROWS;
    let mut planes = vec![0u32; cout.next_multiple_of(R) * kk * words];
    for co in 0..cout {
        for t in 0..kk {
            for ci in 0..cin {
                let bit = (co * kk + t) * cin + ci;
                if mask[bit / 32] >> (bit % 32) & 1 == 1 {
                    planes[(((co / R) * kk + t) * words + ci / 32) * R + co % R] |= 1 << (ci % 32);
                }
            }
        }
    }
    planes
}

/// A layer's weight planes (`weight_planes` of both masks) as the lanes popcount kernel reads
/// them: [⌈cout/16⌉, kh·kw, ⌈cin/32⌉, R] quads (W+ and W− of row 16·b + l, then of row
/// 16·b + R + l), so that lane l loads its two output channels' words in one vec4; rows past
/// cout are zero.
pub fn weight_quads(pos: &[u32], neg: &[u32], shape: [usize; 4]) -> Vec<u32> {
    let [cout, cin, kh, kw] = shape;
    const R: usize = crate::ops::bitplane::PLANE_ROWS;
    let taps = kh * kw * cin.div_ceil(32);
    let mut quads = vec![0u32; cout.div_ceil(2 * R) * taps * R * 4];
    for group in 0..cout.div_ceil(R) {
        for t in 0..taps {
            for l in 0..R {
                let from = (group * taps + t) * R + l;
                let to = (((group / 2) * taps + t) * R + l) * 4 + 2 * (group % 2);
                quads[to] = pos[from];
                quads[to + 1] = neg[from];
            }
        }
    }
    quads
}

/// Convolution codes from [cout, cin, kh, kw] into the packed order [cout, kh, kw, cin]
/// (linear [out, in] is unchanged).
pub fn tap_major(codes: &[i8], shape: &[usize]) -> Vec<i8> {
    if shape.len() != 4 {
        return codes.to_vec();
    }
    let (cout, cin, kk) = (shape[0], shape[1], shape[2] * shape[3]);
    let mut out = vec![0; codes.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                out[(co * kk + t) * cin + ci] = codes[(co * cin + ci) * kk + t];
            }
        }
    }
    out
}

/// The weights one layer's quantizer computes on the GPU from the current latent weights.
fn quantized_weights(
    gpu: &Gpu,
    model: &Model,
    name: &str,
    q: &dyn crate::quant::Quantizer,
) -> Result<Vec<f32>> {
    let latent = Var { value: model.store.get(&format!("{name}.weight"))?.value, grad: None };
    let extra: Vec<Var> = model
        .extra_names(name, q)
        .iter()
        .map(|n| Ok(Var { value: model.store.get(n)?.value, grad: None }))
        .collect::<Result<_>>()?;
    let built = q.build(gpu, name, &latent, &extra)?;
    gpu.run(&[&built.forward])?;
    Ok(gpu.read(&built.wq)?)
}
