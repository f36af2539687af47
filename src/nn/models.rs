//! Architectures (the small default CNN and the CIFAR ResNets) and `Model`: the layers, the
//! parameter store, and the graphs built from them for a batch size.

use super::graph::{Builder, Mode};
use super::layers::{BasicBlock, BatchNorm, Conv, Layer, Linear, TernaryUnit};
use crate::gpu::{DType, Gpu, Program, Tensor, Var};
use crate::ops;
use crate::params::ParamStore;
use crate::quant::{QuantKind, Quantizer};
use anyhow::{Result, bail};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 3 convolutions (8/16/32 channels) with max pooling, global pool, linear: the fast default.
    SmallCnn,
    Resnet20,
    Resnet32,
    Resnet44,
    Resnet56,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::SmallCnn => "small-cnn",
            Arch::Resnet20 => "resnet20",
            Arch::Resnet32 => "resnet32",
            Arch::Resnet44 => "resnet44",
            Arch::Resnet56 => "resnet56",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        <Arch as clap::ValueEnum>::from_str(s, true).ok()
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    /// STTN's ternary activations in its ResNet layout (BN → ternary activation → conv → BN
    /// + shortcut, two units per block); ResNets only.
    Ternary,
}

/// Everything that defines a model's graph; stored in checkpoint metadata.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub quant: QuantKind,
    /// TTQ's t in Δ = t·max|w|.
    pub threshold: f32,
    /// Ternarize the first convolution and the last linear layer too.
    pub quantize_ends: bool,
    #[serde(default)]
    pub activation: Activation,
}

impl ModelSpec {
    fn quantizers(&self) -> (Arc<dyn Quantizer>, Arc<dyn Quantizer>) {
        let hidden: Arc<dyn Quantizer> = self.quant.quantizer(self.threshold).into();
        let ends =
            if self.quantize_ends { hidden.clone() } else { QuantKind::Fp.quantizer(self.threshold).into() };
        (hidden, ends)
    }

    pub fn layers(&self) -> Result<Vec<Layer>> {
        if self.in_channels == 0 || self.classes < 2 || self.height < 4 || self.width < 4 {
            bail!(
                "unsupported model input {}x{}x{} with {} classes",
                self.in_channels,
                self.height,
                self.width,
                self.classes
            );
        }
        let (hidden, ends) = self.quantizers();
        let conv = |name: &str, cin, cout, q: &Arc<dyn Quantizer>| {
            Layer::Conv(Conv { name: name.into(), cin, cout, k: 3, stride: 1, pad: 1, quant: q.clone() })
        };
        let bn = |name: &str, c| Layer::BatchNorm(BatchNorm { name: name.into(), c });
        let relu = |name: &str| Layer::Relu(name.into());
        let linear = |fin| {
            Layer::Linear(Linear { name: "linear".into(), fin, fout: self.classes, quant: ends.clone() })
        };
        let mut layers = Vec::new();
        match self.arch {
            Arch::SmallCnn if self.activation == Activation::Ternary => {
                bail!("--activation ternary is STTN's ResNet layout: use it with a ResNet architecture")
            }
            Arch::SmallCnn => {
                let widths = [8, 16, 32];
                let mut cin = self.in_channels;
                for (i, &w) in widths.iter().enumerate() {
                    let q = if i == 0 { &ends } else { &hidden };
                    layers.push(conv(&format!("conv{}", i + 1), cin, w, q));
                    layers.push(bn(&format!("bn{}", i + 1), w));
                    layers.push(relu(&format!("relu{}", i + 1)));
                    if i + 1 < widths.len() {
                        layers.push(Layer::MaxPool { name: format!("pool{}", i + 1), k: 2, stride: 2 });
                    }
                    cin = w;
                }
                layers.push(Layer::GlobalAvgPool("avgpool".into()));
                layers.push(linear(cin));
            }
            Arch::Resnet20 | Arch::Resnet32 | Arch::Resnet44 | Arch::Resnet56 => {
                let depth = self.arch.name()[6..].parse::<usize>()?;
                let n = (depth - 2) / 6;
                let ternary = self.activation == Activation::Ternary;
                layers.push(conv("conv1", self.in_channels, 16, &ends));
                layers.push(bn("bn1", 16));
                if !ternary {
                    layers.push(relu("relu1"));
                }
                let mut cin = 16;
                for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
                    for i in 0..n {
                        let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                        let name = format!("layer{}.{i}", stage + 1);
                        if ternary {
                            layers.push(Layer::TernaryUnit(TernaryUnit::new(
                                &name, 1, cin, cout, stride, &hidden,
                            )));
                            layers
                                .push(Layer::TernaryUnit(TernaryUnit::new(&name, 2, cout, cout, 1, &hidden)));
                        } else {
                            layers.push(Layer::Block(BasicBlock::new(&name, cin, cout, stride, &hidden)));
                        }
                        cin = cout;
                    }
                }
                layers.push(Layer::GlobalAvgPool("avgpool".into()));
                layers.push(linear(64));
            }
        }
        Ok(layers)
    }
}

pub struct Model {
    pub spec: ModelSpec,
    pub layers: Vec<Layer>,
    pub store: ParamStore,
}

/// One model's kernels for one batch size: fill `input` and `labels`, replay the programs.
pub struct Graph {
    pub batch: usize,
    pub input: Tensor,
    pub labels: Tensor,
    pub logits: Tensor,
    pub pred: Tensor,
    /// Per-sample loss.
    pub loss: Tensor,
    /// [Σ loss, Σ correct, Σ samples, 0], accumulated on the GPU until the host resets it.
    pub metrics: Tensor,
    pub forward: Program,
    /// Empty in eval mode.
    pub backward: Program,
    /// After each optimizer step (empty in eval mode and for most quantizers).
    pub after_update: Program,
}

impl Model {
    pub fn new(gpu: &Gpu, spec: ModelSpec, seed: u64) -> Result<Model> {
        let layers = spec.layers()?;
        let specs = layers.iter().flat_map(|l| l.params()).collect();
        let store = ParamStore::new(gpu, specs, seed)?;
        Ok(Model { spec, layers, store })
    }

    /// Names of a weight layer's quantizer parameters (TTQ's scales, STTN's second kernel).
    pub fn extra_names(&self, layer: &str, q: &dyn Quantizer) -> Vec<String> {
        let shape = self.store.spec(&format!("{layer}.weight")).map(|s| s.shape.clone()).unwrap_or_default();
        q.extra_params(layer, &shape).into_iter().map(|s| s.name).collect()
    }

    /// Every weight layer with its quantizer, in model order.
    pub fn weight_layers(&self) -> Vec<(&str, &Arc<dyn Quantizer>)> {
        self.layers.iter().flat_map(|l| l.weight_layers()).collect()
    }

    pub fn graph(&self, gpu: &Gpu, batch: usize, mode: Mode) -> Result<Graph> {
        let s = &self.spec;
        let mut b = Builder::new(gpu, &self.store, mode);
        let input = b.tensor("input", &[batch, s.in_channels, s.height, s.width])?;
        let x = Var { value: input.clone(), grad: None };
        let x = super::layers::build_all(&self.layers, &mut b, &x)?;
        let labels = gpu.tensor_of("labels", &[batch], DType::U32)?;
        let pred = gpu.tensor_of("pred", &[batch], DType::U32)?;
        let loss = b.tensor("loss", &[batch])?;
        let metrics = b.tensor("metrics", &[4])?;
        let dlogits = match &x.grad {
            Some(g) => g.clone(),
            None => b.tensor("dlogits", x.value.shape())?,
        };
        b.forward.push(ops::loss::forward(gpu, "loss", &x.value, &labels, &dlogits, &loss, &pred)?);
        b.forward.extend_from(ops::loss::accumulate(gpu, "loss", &loss, &pred, &labels, &metrics)?);
        let (forward, backward, after_update) = b.finish();
        Ok(Graph {
            batch,
            input,
            labels,
            logits: x.value,
            pred,
            loss,
            metrics,
            forward,
            backward,
            after_update,
        })
    }
}

/// A weight layer as stored: ternary layers with their scales and sparsity.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerStats {
    pub name: String,
    pub quant: QuantKind,
    pub weights: usize,
    pub wp: Option<f32>,
    pub wn: Option<f32>,
    /// Fraction of zero weights (ternary layers).
    pub sparsity: Option<f64>,
    /// Storage cost as exported: 32 for f32; 2-bit codes (masks padded to 32 bits) plus scales.
    pub bits_per_weight: f64,
}

impl Model {
    /// Ternarize every weight layer on the host (one readback) and describe it.
    pub fn layer_stats(&self, gpu: &Gpu) -> Result<Vec<LayerStats>> {
        let tensors = self.store.read(gpu, crate::params::Slot::Values)?;
        let find = |n: &str| tensors.iter().find(|t| t.name == n).map(|t| t.data.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for (name, q) in self.weight_layers() {
            let w = find(&format!("{name}.weight"));
            let extra: Vec<Vec<f32>> = self.extra_names(name, q.as_ref()).iter().map(|n| find(n)).collect();
            let n = w.len();
            // As exported: two bit masks, plus the scales (per layer or per output channel, once
            // when Wn = Wp).
            let cout = self.store.spec(&format!("{name}.weight")).map_or(1, |s| s.shape[0]);
            let groups = if q.per_channel_scales() { cout } else { 1 };
            let stats = match q.ternarize(&w, &extra) {
                Some(t) => {
                    let scale_bits = 32 * groups * if t.wp == t.wn { 1 } else { 2 };
                    LayerStats {
                        name: name.into(),
                        quant: q.kind(),
                        weights: n,
                        wp: Some(t.wp),
                        wn: Some(t.wn),
                        sparsity: Some(t.sparsity()),
                        bits_per_weight: (64 * n.div_ceil(32) + scale_bits) as f64 / n as f64,
                    }
                }
                None => LayerStats {
                    name: name.into(),
                    quant: q.kind(),
                    weights: n,
                    wp: None,
                    wn: None,
                    sparsity: None,
                    bits_per_weight: 32.0,
                },
            };
            out.push(stats);
        }
        Ok(out)
    }
}
