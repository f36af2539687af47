//! The packed inference program: packed_conv.wgsl and packed_linear.wgsl kernels for each layer,
//! with batch norm, residual and ReLU fused, and ternary activations as floats or bit-planes.

use super::{PackedLayer, PackedModel, PackedWeightsHost};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::nn::ModelSpec;
use crate::nn::layers::Layer;
use crate::ops::{
    self, bitplane::interleaved, conv2d::Conv2dGeom, packed_conv::Epilogue, packed_conv::PackedWeights,
};
use anyhow::{Context, Result, bail};

impl PackedModel {
    /// The inference program for `batch` images (ternary activations as floats).
    pub fn graph(&self, gpu: &Gpu, batch: usize) -> Result<PackedGraph> {
        self.graph_with(gpu, batch, false)
    }

    /// As `graph`; with `bitplanes`, ternary activations feeding ternary weights are packed into
    /// bit-planes and convolved with popcounts.
    pub fn graph_with(&self, gpu: &Gpu, batch: usize, bitplanes: bool) -> Result<PackedGraph> {
        let spec = &self.meta.spec;
        let input = gpu.tensor("input", &[batch, spec.in_channels, spec.height, spec.width])?;
        let mut b = PackedBuilder {
            gpu,
            model: self,
            forward: Program::default(),
            bitplanes,
            batch,
            interleaved: false,
            planes: None,
        };
        let arch_layers = ModelSpec { quant: crate::quant::QuantKind::Fp, ..spec.clone() }.layers()?;
        let mut x = input.clone();
        let mut i = 0;
        while i < arch_layers.len() {
            if !matches!(arch_layers[i], Layer::TernaryUnit(_) | Layer::GlobalAvgPool(_)) {
                x = b.nchw(x)?;
            }
            match &arch_layers[i] {
                Layer::Conv(c) => {
                    // conv → bn [→ relu], fused
                    let relu = matches!(arch_layers.get(i + 2), Some(Layer::Relu(_)));
                    i += if relu { 3 } else { 2 };
                    x = match arch_layers.get(i) {
                        Some(Layer::TernaryUnit(u)) if b.on_bitplanes(&u.conv.name)? => {
                            b.conv_interleaved(&c.name, c.stride, c.pad, x, relu)?
                        }
                        _ => b.conv(&c.name, c.stride, c.pad, &x, relu, None)?,
                    };
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
                    let y = gpu.tensor(&format!("{name}.out"), &[batch, x.shape()[b.channel_axis()]])?;
                    b.forward.push(match b.interleaved {
                        true => ops::bitplane::avg_pool(gpu, name, &x, batch, &y)?,
                        false => ops::pool::avg_forward(gpu, name, &x, &y)?,
                    });
                    b.interleaved = false;
                    x = y;
                }
                Layer::Linear(l) => x = b.linear(&l.name, &x)?,
                Layer::TernaryUnit(u) => {
                    let next = match arch_layers.get(i + 1) {
                        Some(Layer::TernaryUnit(n)) => Some(n.conv.name.as_str()),
                        _ => None,
                    };
                    x = b.ternary_unit(&u.conv.name, u.stride, x, next)?;
                }
                Layer::BatchNorm(_) | Layer::Relu(_) => {
                    bail!("packed inference: unsupported layer order in {}", spec.arch.name())
                }
            }
            i += 1;
        }
        Ok(PackedGraph { batch, input, logits: x, forward: b.forward })
    }
}

struct PackedBuilder<'a> {
    gpu: &'a Gpu,
    model: &'a PackedModel,
    forward: Program,
    bitplanes: bool,
    batch: usize,
    /// The current activations are `ops::bitplane::interleaved` (between bit-plane units).
    interleaved: bool,
    /// The next unit's activation planes (+1, −1), packed by the unit before it.
    planes: Option<(Tensor, Tensor)>,
}

/// A packed layer's tensors on the GPU.
struct Uploaded {
    pos: Tensor,
    neg: Tensor,
    /// The weight planes as `super::weight_quads` (uploaded with the planes).
    quads: Option<Tensor>,
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

    /// The weights as the bit-plane kernels read them (uploaded with the planes, ternary).
    fn planes(&self) -> Result<ops::bitplane::WeightPlanes<'_>> {
        let quads = self.quads.as_ref().context("weights uploaded without their planes")?;
        Ok(ops::bitplane::WeightPlanes { pos: &self.pos, neg: &self.neg, quads, wp: &self.wp, wn: &self.wn })
    }

    /// An STTN unit's epilogue: its folded batch norm, plus the shortcut of its input `x`.
    fn unit_epilogue<'t>(&'t self, x: &'t Tensor, stride: usize) -> Epilogue<'t> {
        Epilogue {
            scale: &self.scale,
            shift: &self.shift,
            relu: false,
            residual: Some((x, stride)),
            accumulate: false,
        }
    }
}

impl<'a> PackedBuilder<'a> {
    /// Where the current activations' channels are: [n, c, h, w] or interleaved [c, h, w, n4].
    fn channel_axis(&self) -> usize {
        if self.interleaved { 0 } else { 1 }
    }

    /// `x` as [n, c, h, w], deinterleaved if the bit-plane units left it interleaved.
    fn nchw(&mut self, x: Tensor) -> Result<Tensor> {
        if !self.interleaved {
            return Ok(x);
        }
        let [c, h, w, _] = x.shape().try_into()?;
        let y = self.gpu.tensor(&format!("{}.nchw", x.name()), &[self.batch, c, h, w])?;
        self.forward.push(ops::bitplane::deinterleave(self.gpu, x.name(), &x, &y)?);
        self.interleaved = false;
        Ok(y)
    }

    /// `x` interleaved, for the bit-plane units.
    fn interleave(&mut self, x: Tensor) -> Result<Tensor> {
        if self.interleaved {
            return Ok(x);
        }
        let s: [usize; 4] = x.shape().try_into()?;
        let y = self.gpu.tensor(&format!("{}.interleaved", x.name()), &interleaved(s))?;
        self.forward.push(ops::bitplane::interleave(self.gpu, x.name(), &x, &y)?);
        self.interleaved = true;
        Ok(y)
    }

    fn layer(&self, name: &str) -> Result<&'a PackedLayer> {
        let layers = &self.model.layers;
        layers.iter().find(|l| l.name == name).with_context(|| format!("packed model has no layer '{name}'"))
    }

    fn upload(&self, name: &str) -> Result<(Uploaded, &'a PackedLayer)> {
        self.upload_as(name, false)
    }

    /// A layer's tensors; with `planes`, a ternary convolution's masks as the popcount kernel's
    /// weight planes (`super::weight_planes`) instead of the packed kernels' tap-major masks.
    fn upload_as(&self, name: &str, planes: bool) -> Result<(Uploaded, &'a PackedLayer)> {
        let g = self.gpu;
        let l = self.layer(name)?;
        let one = |n: &str| g.tensor_from(&format!("{name}.{n}"), &[1], &[0.0]);
        let up = match &l.weights {
            PackedWeightsHost::Ternary { pos, neg, wp, wn } => {
                let wp_t = g.tensor_from(&format!("{name}.wp"), &[wp.len()], wp)?;
                // One tensor when Wn = Wp: the popcount kernel then counts both at once.
                let wn_t = match wp == wn {
                    true => wp_t.clone(),
                    false => g.tensor_from(&format!("{name}.wn"), &[wn.len()], wn)?,
                };
                let conv = match planes {
                    true => Some(
                        <[usize; 4]>::try_from(&l.shape[..])
                            .with_context(|| format!("layer '{name}' is not a convolution"))?,
                    ),
                    false => None,
                };
                let (pos, neg, quads) = match conv {
                    Some(shape) => {
                        let [pos, neg] = [pos, neg].map(|mask| super::weight_planes(mask, shape));
                        let quads = super::weight_quads(&pos, &neg, shape);
                        let [pos, neg, quads] = [("pos_planes", pos), ("neg_planes", neg), ("quads", quads)]
                            .map(|(which, words)| {
                                g.tensor_u32(&format!("{name}.{which}"), &[words.len()], &words)
                            });
                        (pos?, neg?, Some(quads?))
                    }
                    None => (
                        g.tensor_u32(&format!("{name}.pos"), &[pos.len()], pos)?,
                        g.tensor_u32(&format!("{name}.neg"), &[neg.len()], neg)?,
                        None,
                    ),
                };
                Uploaded {
                    pos,
                    neg,
                    quads,
                    wp: wp_t,
                    wn: wn_t,
                    weight: None,
                    scale: g.tensor_from(&format!("{name}.scale"), &[l.scale.len()], &l.scale)?,
                    shift: g.tensor_from(&format!("{name}.shift"), &[l.shift.len()], &l.shift)?,
                }
            }
            PackedWeightsHost::Dense { weight } => Uploaded {
                pos: g.tensor_of(&format!("{name}.pos"), &[1], DType::U32)?,
                neg: g.tensor_of(&format!("{name}.neg"), &[1], DType::U32)?,
                quads: None,
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
        let e = Epilogue { scale: &up.scale, shift: &up.shift, relu, residual, accumulate: false };
        self.forward.push(ops::packed_conv::forward(self.gpu, name, &g, x, &up.weights(), &e, &y)?);
        Ok(y)
    }

    /// Whether unit `name` runs on bit-planes (ternary weights, `bitplanes` on).
    fn on_bitplanes(&self, name: &str) -> Result<bool> {
        Ok(self.bitplanes && matches!(self.layer(name)?.weights, PackedWeightsHost::Ternary { .. }))
    }

    /// `conv` (no residual) with its output interleaved for the bit-plane unit after it: written
    /// so by the convolution where it can (`ops::packed_conv::writes_interleaved`).
    fn conv_interleaved(
        &mut self,
        name: &str,
        stride: usize,
        pad: usize,
        x: Tensor,
        relu: bool,
    ) -> Result<Tensor> {
        let g = Conv2dGeom::new(x.shape(), &self.layer(name)?.shape, stride, pad);
        if !ops::packed_conv::writes_interleaved(self.gpu, &g) {
            let y = self.conv(name, stride, pad, &x, relu, None)?;
            return self.interleave(y);
        }
        let (up, _) = self.upload(name)?;
        let y = self.gpu.tensor(&format!("{name}.out"), &interleaved(g.output_shape()))?;
        let e = Epilogue { scale: &up.scale, shift: &up.shift, relu, residual: None, accumulate: false };
        let conv = ops::packed_conv::forward_interleaved(self.gpu, name, &g, &x, &up.weights(), &e, &y)?;
        self.forward.push(conv);
        self.interleaved = true;
        Ok(y)
    }

    /// An STTN unit: ternary(BN(x)) → conv → folded BN, + shortcut(x); no ReLU. On bit-planes
    /// its input and output are interleaved (images innermost), so consecutive units pass them
    /// on as they are, and where the kernel can (`ops::bitplane::packs_next`) a unit packs the
    /// activations of the `next` (a unit's name) as it writes its output.
    fn ternary_unit(&mut self, name: &str, stride: usize, x: Tensor, next: Option<&str>) -> Result<Tensor> {
        let (up, l) = self.upload_as(name, self.bitplanes)?;
        let g = self.gpu;
        if !self.bitplanes || up.weight.is_some() {
            return self.float_unit(l, stride, x, &up);
        }
        let x = self.interleave(x)?;
        let geom =
            Conv2dGeom::new(&[self.batch, l.shape[1], x.shape()[1], x.shape()[2]], &l.shape, stride, 1);
        let (pos, neg) = match self.planes.take() {
            Some(planes) => planes,
            None => self.pack(l, &geom, &x)?,
        };
        let y = g.tensor(&format!("{name}.out"), &interleaved(geom.output_shape()))?;
        let e = up.unit_epilogue(&x, stride);
        let next = match next {
            Some(n) if ops::bitplane::packs_next(g, &geom, &e) => self.next_planes(self.layer(n)?, &geom)?,
            _ => None,
        };
        let planes = next.as_ref().map(|([s, t], [pos, neg])| ops::bitplane::NextPlanes {
            act_scale: s,
            act_shift: t,
            pos,
            neg,
        });
        let conv =
            ops::bitplane::forward(g, name, &geom, &x, (&pos, &neg), &up.planes()?, &e, &y, planes.as_ref())?;
        self.forward.push(conv);
        self.planes = next.map(|(_, [pos, neg])| (pos, neg));
        Ok(y)
    }

    /// Layer `l`'s activation planes for convolution `geom`, packed from `x` (interleaved).
    fn pack(&mut self, l: &PackedLayer, geom: &Conv2dGeom, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (g, name) = (self.gpu, &l.name);
        let [act_scale, act_shift] = self.act_terms(l)?;
        let planes = ops::bitplane::activation_planes(geom);
        let pos = g.tensor_of(&format!("{name}.act_pos"), &planes, DType::U32)?;
        let neg = g.tensor_of(&format!("{name}.act_neg"), &planes, DType::U32)?;
        let b = self.batch;
        self.forward
            .push(ops::bitplane::pack_activations(g, name, x, b, &act_scale, &act_shift, 1, &pos, &neg)?);
        Ok((pos, neg))
    }

    /// Unit `next`'s activation terms and planes, for the unit before it (convolution `geom`)
    /// to pack; none where `next` runs with dense weights (as floats).
    fn next_planes(
        &self,
        next: &PackedLayer,
        geom: &Conv2dGeom,
    ) -> Result<Option<([Tensor; 2], [Tensor; 2])>> {
        if !matches!(next.weights, PackedWeightsHost::Ternary { .. }) {
            return Ok(None);
        }
        let planes = ops::bitplane::next_activation_planes(geom);
        let [pos, neg] = ["act_pos", "act_neg"]
            .map(|w| self.gpu.tensor_of(&format!("{}.{w}", next.name), &planes, DType::U32));
        Ok(Some((self.act_terms(next)?, [pos?, neg?])))
    }

    /// A unit's activation terms on the GPU: ternary(x·act_scale + act_shift).
    fn act_terms(&self, l: &PackedLayer) -> Result<[Tensor; 2]> {
        let (scale, shift) =
            l.act.as_ref().with_context(|| format!("layer '{}' has no activation scale", l.name))?;
        let g = self.gpu;
        Ok([
            g.tensor_from(&format!("{}.act_scale", l.name), &[scale.len()], scale)?,
            g.tensor_from(&format!("{}.act_shift", l.name), &[shift.len()], shift)?,
        ])
    }

    /// An STTN unit with its ternary activations as floats.
    fn float_unit(&mut self, l: &PackedLayer, stride: usize, x: Tensor, up: &Uploaded) -> Result<Tensor> {
        let [act_scale, act_shift] = self.act_terms(l)?;
        let x = self.nchw(x)?;
        let (g, name) = (self.gpu, &l.name);
        let geom = Conv2dGeom::new(x.shape(), &l.shape, stride, 1);
        let y = g.tensor(&format!("{name}.out"), &geom.output_shape())?;
        let e = up.unit_epilogue(&x, stride);
        let a = g.tensor(&format!("{name}.act"), x.shape())?;
        self.forward.push(ops::packed_conv::ternary_affine(g, name, &x, &act_scale, &act_shift, &a)?);
        self.forward.push(ops::packed_conv::forward(g, name, &geom, &a, &up.weights(), &e, &y)?);
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
