//! Quantizers: how a layer's latent full-precision weights become the weights its convolution or
//! linear kernel uses, and how the gradient flows back. A quantizer is data (its extra trainable
//! parameters) plus kernels (its shader file), behind the one `Quantizer` trait.

pub mod pack;
pub mod sttn;
pub mod ttn;
pub mod ttq;
pub mod twn;

use crate::gpu::{Gpu, Program, Result, Tensor, Var};
use crate::params::{Init, ParamSpec};

/// The threshold factor t of TTQ's paper (Δ = t·max|w|), the default seed of every quantizer
/// that has one (`--threshold`).
pub const DEFAULT_THRESHOLD: f32 = 0.05;

/// `--quant`: which method ternarizes the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantKind {
    /// Full precision (no quantization).
    Fp,
    /// Trained Ternary Quantization (Zhu et al. 2017).
    Ttq,
    /// Ternary Weight Networks (Li & Liu 2016), the baseline.
    Twn,
    /// Trained threshold, truncated-Gaussian scale (He & Fan 2018).
    Ttn,
    /// Soft Threshold Ternary Networks: two binary kernels whose sum is ternary (Xu et al. 2020).
    Sttn,
}

impl QuantKind {
    pub fn name(self) -> &'static str {
        match self {
            QuantKind::Fp => "fp",
            QuantKind::Ttq => "ttq",
            QuantKind::Twn => "twn",
            QuantKind::Ttn => "ttn",
            QuantKind::Sttn => "sttn",
        }
    }

    pub fn quantizer(self, threshold: f32) -> Box<dyn Quantizer> {
        match self {
            QuantKind::Fp => Box::new(FullPrecision),
            QuantKind::Ttq => Box::new(ttq::Ttq { threshold }),
            QuantKind::Twn => Box::new(twn::Twn),
            QuantKind::Ttn => Box::new(ttn::Ttn { threshold }),
            QuantKind::Sttn => Box::new(sttn::Sttn { threshold }),
        }
    }
}

/// What a quantizer adds to a layer's graph.
pub struct Quantized {
    /// The weights the layer's kernel reads.
    pub wq: Tensor,
    /// Runs before the layer's forward kernel.
    pub forward: Program,
    /// Where the layer's grad_weight kernel writes ∂L/∂wq (training only).
    pub gq: Option<Tensor>,
    /// Runs after grad_weight: turns ∂L/∂wq into the latent and scale gradients.
    pub backward: Program,
    /// Runs after the optimizer step (STTN clamps its latent weights).
    pub after_update: Program,
}

/// Ternary weights on the host, for export and reports: `weight = codes[i] · (Wp or Wn)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    /// −1, 0 or +1 per weight.
    pub codes: Vec<i8>,
    pub wp: f32,
    pub wn: f32,
}

impl Ternary {
    pub fn sparsity(&self) -> f64 {
        self.codes.iter().filter(|c| **c == 0).count() as f64 / self.codes.len().max(1) as f64
    }

    pub fn values(&self) -> Vec<f32> {
        self.codes
            .iter()
            .map(|&c| {
                if c > 0 {
                    self.wp
                } else if c < 0 {
                    -self.wn
                } else {
                    0.0
                }
            })
            .collect()
    }
}

pub trait Quantizer: Send + Sync {
    fn kind(&self) -> QuantKind;

    /// Trainable parameters besides the latent weights (TTQ's "wp", "wn", STTN's "weight2").
    fn extra_params(&self, layer: &str, weight_shape: &[usize]) -> Vec<ParamSpec>;

    /// Record the quantizer's kernels for one layer. `extra` follows `extra_params` order.
    fn build(&self, gpu: &Gpu, layer: &str, latent: &Var, extra: &[Var]) -> Result<Quantized>;

    /// Whether each output channel has its own scales (else one Wp/Wn per layer).
    fn per_channel_scales(&self) -> bool {
        false
    }

    /// The same ternarization on the host (None for full precision).
    fn ternarize(&self, latent: &[f32], extra: &[Vec<f32>]) -> Option<Ternary>;

    /// Prepare a layer that starts from full-precision weights (`--init`, or the switch after
    /// the full-precision warm-up).
    fn init_from_full_precision(&self, _latent: &mut [f32], _extra: &mut [Vec<f32>]) {}
}

/// No quantization: the kernel reads the latent weights and writes their gradient directly.
pub struct FullPrecision;

impl Quantizer for FullPrecision {
    fn kind(&self) -> QuantKind {
        QuantKind::Fp
    }

    fn extra_params(&self, _layer: &str, _weight_shape: &[usize]) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn build(&self, _gpu: &Gpu, _layer: &str, latent: &Var, _extra: &[Var]) -> Result<Quantized> {
        Ok(Quantized {
            wq: latent.value.clone(),
            forward: Program::default(),
            gq: latent.grad.clone(),
            backward: Program::default(),
            after_update: Program::default(),
        })
    }

    fn ternarize(&self, _latent: &[f32], _extra: &[Vec<f32>]) -> Option<Ternary> {
        None
    }
}

/// A scalar trainable parameter without weight decay.
pub(crate) fn scalar(layer: &str, suffix: &str, init: f32) -> ParamSpec {
    ParamSpec::new(format!("{layer}.{suffix}"), &[1], Init::Const(init), false)
}
