//! The packed inference model: ternary layers as W+/W− bitmasks with their scales, full-precision
//! layers as f32, batch norm folded into per-channel scale and shift. Built from a trained model
//! (`tern export`), saved as safetensors, and run by packed_conv.wgsl / packed_linear.wgsl.

use super::layers::Layer;
use super::params::Slot;
use super::{Model, ModelSpec};
use crate::checkpoint::{Meta, to_safetensors, write_atomic};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::ops::{
    self, batchnorm::EPS, conv2d::Conv2dGeom, packed_conv::Epilogue, packed_conv::PackedWeights,
};
use crate::quant::{ParamRef, pack};
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "tern-packed-1";

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
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("tern".to_string(), serde_json::to_string(&self.meta)?);
        meta.insert("layers".to_string(), serde_json::to_string(&index)?);
        write_atomic(path, &to_safetensors(&list, meta)?)
    }

    /// Load and check every tensor against the architecture in the metadata.
    pub fn load(path: &Path) -> Result<PackedModel> {
        let p = path.display();
        let bytes = std::fs::read(path).with_context(|| format!("{p}: cannot read"))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a safetensors file ({e})"))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
        let md = header.metadata().clone().unwrap_or_default();
        if md.get("format").map(String::as_str) != Some(FORMAT) {
            bail!("{p}: not a packed tern model (no \"format\": \"{FORMAT}\" metadata)");
        }
        let meta: Meta = serde_json::from_str(md.get("tern").context("missing \"tern\" metadata")?)
            .with_context(|| format!("{p}: malformed metadata"))?;
        let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>> {
            let t = st.tensor(name).map_err(|_| anyhow::anyhow!("{p}: missing tensor '{name}'"))?;
            if t.dtype() != dtype || t.shape() != shape {
                bail!(
                    "{p}: tensor '{name}' is {:?} {:?}, the metadata implies {dtype:?} {shape:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            Ok(t.data().to_vec())
        };
        let f32s = |b: Vec<u8>| -> Vec<f32> { bytemuck::pod_collect_to_vec(&b) };
        let model = ModelSpec { quant: crate::quant::QuantKind::Fp, ..meta.spec.clone() };
        let mut layers = Vec::new();
        for layer in model.layers()? {
            for (name, _) in layer.weight_layers() {
                let shape = weight_shape(&layer, name).context("layer shape")?;
                let (cout, numel) = (shape[0], shape.iter().product::<usize>());
                let words = numel.div_ceil(32);
                let weights = if st.tensor(&format!("{name}.pos")).is_ok() {
                    let scales = |s: &str| -> Result<Vec<f32>> {
                        let t = st
                            .tensor(&format!("{name}.{s}"))
                            .map_err(|_| anyhow::anyhow!("{p}: missing tensor '{name}.{s}'"))?;
                        let len = t.shape().iter().product::<usize>();
                        if len != 1 && len != cout {
                            bail!("{p}: tensor '{name}.{s}' must hold 1 or {cout} scales");
                        }
                        Ok(f32s(tensor(&format!("{name}.{s}"), Dtype::F32, &[len])?))
                    };
                    PackedWeightsHost::Ternary {
                        pos: bytemuck::pod_collect_to_vec(&tensor(
                            &format!("{name}.pos"),
                            Dtype::U32,
                            &[words],
                        )?),
                        neg: bytemuck::pod_collect_to_vec(&tensor(
                            &format!("{name}.neg"),
                            Dtype::U32,
                            &[words],
                        )?),
                        wn: match st.tensor(&format!("{name}.wn")) {
                            Ok(_) => scales("wn")?,
                            Err(_) => scales("wp")?, // no Wn: the layer is symmetric
                        },
                        wp: scales("wp")?,
                    }
                } else {
                    PackedWeightsHost::Dense {
                        weight: f32s(tensor(&format!("{name}.weight"), Dtype::F32, &shape)?),
                    }
                };
                let scale = f32s(tensor(&format!("{name}.scale"), Dtype::F32, &[cout])?);
                let shift = f32s(tensor(&format!("{name}.shift"), Dtype::F32, &[cout])?);
                let act = match layer {
                    Layer::TernaryUnit(_) => {
                        let cin = shape[1];
                        let s = f32s(tensor(&format!("{name}.act_scale"), Dtype::F32, &[cin])?);
                        Some((s, f32s(tensor(&format!("{name}.act_shift"), Dtype::F32, &[cin])?)))
                    }
                    _ => None,
                };
                layers.push(PackedLayer { name: name.to_string(), shape, weights, scale, shift, act });
            }
        }
        Ok(PackedModel { meta, layers })
    }

    /// The inference program for `batch` images (ternary activations as floats).
    pub fn graph(&self, gpu: &Gpu, batch: usize) -> Result<PackedGraph> {
        self.graph_with(gpu, batch, false)
    }

    /// As `graph`; with `bitplanes`, ternary activations feeding ternary weights are packed into
    /// bit-planes and convolved with popcounts.
    pub fn graph_with(&self, gpu: &Gpu, batch: usize, bitplanes: bool) -> Result<PackedGraph> {
        let spec = &self.meta.spec;
        let input = gpu.tensor("input", &[batch, spec.in_channels, spec.height, spec.width])?;
        let mut b = PackedBuilder { gpu, model: self, forward: Program::default(), bitplanes };
        let arch_layers = ModelSpec { quant: crate::quant::QuantKind::Fp, ..spec.clone() }.layers()?;
        let mut x = input.clone();
        let mut i = 0;
        while i < arch_layers.len() {
            match &arch_layers[i] {
                Layer::Conv(c) => {
                    // conv → bn [→ relu], fused
                    let relu = matches!(arch_layers.get(i + 2), Some(Layer::Relu(_)));
                    x = b.conv(&c.name, c.stride, c.pad, &x, relu, None)?;
                    i += if relu { 3 } else { 2 };
                    continue;
                }
                Layer::Block(blk) => {
                    let h = b.conv(&blk.conv1.name, blk.conv1.stride, 1, &x, true, None)?;
                    x = b.conv(&blk.conv2.name, 1, 1, &h, true, Some((&x, blk.stride)))?;
                }
                Layer::MaxPool { name, k, stride } => {
                    let s = x.shape();
                    let out = ops::pool::max_out;
                    let y = gpu.tensor(
                        &format!("{name}.out"),
                        &[s[0], s[1], out(s[2], *k, *stride), out(s[3], *k, *stride)],
                    )?;
                    b.forward.push(ops::pool::max_forward(gpu, name, &x, &y, *k, *stride)?);
                    x = y;
                }
                Layer::GlobalAvgPool(name) => {
                    let y = gpu.tensor(&format!("{name}.out"), &x.shape()[..2])?;
                    b.forward.push(ops::pool::avg_forward(gpu, name, &x, &y)?);
                    x = y;
                }
                Layer::Linear(l) => x = b.linear(&l.name, &x)?,
                Layer::TernaryUnit(u) => x = b.ternary_unit(&u.conv.name, u.stride, &x)?,
                Layer::BatchNorm(_) | Layer::Relu(_) => {
                    bail!("packed inference: unsupported layer order in {}", spec.arch.name())
                }
            }
            i += 1;
        }
        Ok(PackedGraph { batch, input, logits: x, forward: b.forward })
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
    let latent = ParamRef { value: model.store.get(&format!("{name}.weight"))?.value, grad: None };
    let extra: Vec<ParamRef> = model
        .extra_names(name, q)
        .iter()
        .map(|n| Ok(ParamRef { value: model.store.get(n)?.value, grad: None }))
        .collect::<Result<_>>()?;
    let built = q.build(gpu, name, &latent, &extra)?;
    gpu.run(&[&built.forward])?;
    Ok(gpu.read(&built.wq)?)
}

struct PackedBuilder<'a> {
    gpu: &'a Gpu,
    model: &'a PackedModel,
    forward: Program,
    bitplanes: bool,
}

/// A packed layer's tensors on the GPU.
struct Uploaded {
    pos: Tensor,
    neg: Tensor,
    wp: Tensor,
    wn: Tensor,
    weight: Option<Tensor>,
    scale: Tensor,
    shift: Tensor,
}

impl Uploaded {
    fn weights(&self) -> PackedWeights<'_> {
        match &self.weight {
            Some(weight) => PackedWeights::Dense { weight },
            None => PackedWeights::Ternary { pos: &self.pos, neg: &self.neg, wp: &self.wp, wn: &self.wn },
        }
    }
}

impl PackedBuilder<'_> {
    fn upload(&self, name: &str) -> Result<(Uploaded, &PackedLayer)> {
        let g = self.gpu;
        let l = self
            .model
            .layers
            .iter()
            .find(|l| l.name == name)
            .with_context(|| format!("packed model has no layer '{name}'"))?;
        let one = |n: &str| g.tensor_from(&format!("{name}.{n}"), &[1], &[0.0]);
        let up = match &l.weights {
            PackedWeightsHost::Ternary { pos, neg, wp, wn } => Uploaded {
                pos: g.tensor_u32(&format!("{name}.pos"), &[pos.len()], pos)?,
                neg: g.tensor_u32(&format!("{name}.neg"), &[neg.len()], neg)?,
                wp: g.tensor_from(&format!("{name}.wp"), &[wp.len()], wp)?,
                wn: g.tensor_from(&format!("{name}.wn"), &[wn.len()], wn)?,
                weight: None,
                scale: g.tensor_from(&format!("{name}.scale"), &[l.scale.len()], &l.scale)?,
                shift: g.tensor_from(&format!("{name}.shift"), &[l.shift.len()], &l.shift)?,
            },
            PackedWeightsHost::Dense { weight } => Uploaded {
                pos: g.tensor_of(&format!("{name}.pos"), &[1], DType::U32)?,
                neg: g.tensor_of(&format!("{name}.neg"), &[1], DType::U32)?,
                wp: one("wp")?,
                wn: one("wn")?,
                weight: Some(g.tensor_from(&format!("{name}.weight"), &l.shape, weight)?),
                scale: g.tensor_from(&format!("{name}.scale"), &[l.scale.len()], &l.scale)?,
                shift: g.tensor_from(&format!("{name}.shift"), &[l.shift.len()], &l.shift)?,
            },
        };
        Ok((up, l))
    }

    fn conv(
        &mut self,
        name: &str,
        stride: usize,
        pad: usize,
        x: &Tensor,
        relu: bool,
        residual: Option<(&Tensor, usize)>,
    ) -> Result<Tensor> {
        let (up, l) = self.upload(name)?;
        let s = x.shape();
        let g = Conv2dGeom::new(s, &l.shape, stride, pad);
        let y = self.gpu.tensor(&format!("{name}.out"), &g.output_shape())?;
        let e = Epilogue { scale: &up.scale, shift: &up.shift, relu, residual };
        self.forward.push(ops::packed_conv::forward(self.gpu, name, &g, x, &up.weights(), &e, &y)?);
        Ok(y)
    }

    /// An STTN unit: ternary(BN(x)) → conv → folded BN, + shortcut(x); no ReLU.
    fn ternary_unit(&mut self, name: &str, stride: usize, x: &Tensor) -> Result<Tensor> {
        let (up, l) = self.upload(name)?;
        let g = self.gpu;
        let (act_scale, act_shift) =
            l.act.as_ref().with_context(|| format!("layer '{name}' has no activation scale"))?;
        let act_scale = g.tensor_from(&format!("{name}.act_scale"), &[act_scale.len()], act_scale)?;
        let act_shift = g.tensor_from(&format!("{name}.act_shift"), &[act_shift.len()], act_shift)?;
        let s = x.shape();
        let geom = Conv2dGeom::new(s, &l.shape, stride, 1);
        let y = g.tensor(&format!("{name}.out"), &geom.output_shape())?;
        let e = Epilogue { scale: &up.scale, shift: &up.shift, relu: false, residual: Some((x, stride)) };
        if self.bitplanes && up.weight.is_none() {
            let words = [s[0], s[2] * s[3], s[1].div_ceil(32)];
            let pos = g.tensor_of(&format!("{name}.act_pos"), &words, DType::U32)?;
            let neg = g.tensor_of(&format!("{name}.act_neg"), &words, DType::U32)?;
            self.forward
                .push(ops::packed_conv::pack_activations(g, name, x, &act_scale, &act_shift, &pos, &neg)?);
            self.forward.push(ops::packed_conv::forward_bitplanes(
                g,
                name,
                &geom,
                x,
                (&pos, &neg),
                &up.weights(),
                &e,
                &y,
            )?);
        } else {
            let a = g.tensor(&format!("{name}.act"), s)?;
            self.forward.push(ops::packed_conv::ternary_affine(g, name, x, &act_scale, &act_shift, &a)?);
            self.forward.push(ops::packed_conv::forward(g, name, &geom, &a, &up.weights(), &e, &y)?);
        }
        Ok(y)
    }

    fn linear(&mut self, name: &str, x: &Tensor) -> Result<Tensor> {
        let (up, l) = self.upload(name)?;
        let y = self.gpu.tensor(&format!("{name}.out"), &[x.shape()[0], l.shape[0]])?;
        self.forward.push(ops::packed_linear::forward(
            self.gpu,
            name,
            x,
            &up.weights(),
            &up.scale,
            &up.shift,
            &y,
        )?);
        Ok(y)
    }
}

pub struct PackedGraph {
    pub batch: usize,
    pub input: Tensor,
    pub logits: Tensor,
    pub forward: Program,
}
