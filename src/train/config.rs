//! `TrainConfig`: every setting of a training run, parsed from the command line and stored in
//! checkpoints so that `--resume` continues with the same ones; and the learning-rate schedule.

use crate::data::DatasetKind;
use crate::nn::Arch;
use crate::quant::QuantKind;
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    /// On for CIFAR-10 and image folders, off for MNIST and Fashion-MNIST.
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay to zero over the run.
    Cosine,
    /// ×0.1 at 50 % and 75 % of the run.
    Step,
    Constant,
}

/// Everything that defines a training run (stored in checkpoints for --resume).
#[derive(Clone, Debug, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Architecture
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub arch: Arch,
    /// Quantizer of the hidden layers
    #[arg(long, value_enum, default_value = "ttq")]
    pub quant: QuantKind,
    /// Threshold factor t: TTQ's Δ = t·max|w|; TTN's initial δ = t·max|w|; STTN's initial soft
    /// threshold (the two binary kernels start at w/max|w| ± t); unused by twn and fp
    #[arg(long, default_value_t = crate::quant::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Ternarize the first convolution and the last linear layer too
    #[arg(long)]
    pub quantize_ends: bool,
    /// ternary: STTN's ternary activations and ResNet unit layout (ResNets only)
    #[arg(long, value_enum, default_value = "relu")]
    #[serde(default)]
    pub activation: crate::nn::Activation,
    #[arg(long, value_enum, default_value = "embedded")]
    pub dataset: DatasetKind,
    /// Dataset directory (all datasets but the embedded one)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Image size for --dataset folder (square)
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Image channels for --dataset folder (1 or 3)
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
    /// Total epochs
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    /// Full-precision warm-up epochs before the quantizer takes over (TTQ's fine-tune recipe)
    #[arg(long, default_value_t = 4)]
    pub fp_epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: Optimizer,
    /// Peak learning rate
    #[arg(long, default_value_t = 0.3)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay of convolution and linear weights
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f32,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Schedule,
    /// Linear learning-rate warm-up at the start, in epochs
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f32,
    /// Random crop after 4-pixel zero padding and horizontal flips (never for digits)
    #[arg(long, value_enum, default_value = "auto")]
    pub augment: Augment,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (default runs/<arch>-<quant>)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start from a full-precision checkpoint (this project's, or imported from PyTorch)
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Steps between reads of the loss/accuracy counters
    #[arg(long, default_value_t = 25)]
    pub log_every: usize,
    /// Loader threads
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Time every kernel of one step in 50; print the profile and write OUT/profile.json
    #[arg(long)]
    pub profile: bool,
}

impl TrainConfig {
    /// The command line's defaults (the default run).
    pub fn defaults() -> TrainConfig {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: TrainConfig,
        }
        Wrapper::parse_from(["tern"]).config
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| format!("runs/{}-{}", self.arch.name(), self.quant.name()).into())
    }

    /// The quantizer in force during `epoch` (0-based).
    pub fn quant_at(&self, epoch: usize) -> QuantKind {
        if epoch < self.fp_epochs { QuantKind::Fp } else { self.quant }
    }

    /// Learning rate at `step` of `epoch`, with `steps` steps per epoch: one schedule over the
    /// whole run, so the quantized phase continues where the warm-up left the rate (this beat a
    /// restart per phase in our PyTorch runs of the default recipe).
    pub fn lr_at(&self, epoch: usize, step: usize, steps: usize) -> f32 {
        let t = (epoch * steps + step) as f32;
        let total = (self.epochs * steps).max(1) as f32;
        let warm = self.warmup_epochs * steps as f32;
        if t < warm {
            return self.lr * (t + 1.0) / warm;
        }
        let frac = t / total;
        match self.schedule {
            Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f32::consts::PI * frac).cos()),
            Schedule::Step => {
                self.lr
                    * if frac >= 0.75 {
                        0.01
                    } else if frac >= 0.5 {
                        0.1
                    } else {
                        1.0
                    }
            }
            Schedule::Constant => self.lr,
        }
    }

    /// (crop padding, flips) for `--augment`: auto turns augmentation on for CIFAR-10 and image
    /// folders (the TTQ recipe) and off for the 28×28 idx datasets, where short runs do better
    /// without it.
    pub fn augmentation(&self, flip_ok: bool) -> (usize, bool) {
        let on = match self.augment {
            Augment::On => true,
            Augment::Off => false,
            Augment::Auto => matches!(self.dataset, DatasetKind::Cifar10 | DatasetKind::Folder),
        };
        if on { (4, flip_ok) } else { (0, false) }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.log_every == 0 {
            bail!("--epochs, --batch-size and --log-every must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..1.0).contains(&self.threshold)) {
            bail!("--lr must be positive and --threshold in [0, 1)");
        }
        Ok(())
    }
}
