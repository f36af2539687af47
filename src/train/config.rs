//! `TrainConfig`: every setting of a training run, parsed from the command line and stored in
//! checkpoints so that `--resume` continues with the same ones; and the learning-rate schedule.

use crate::data::DatasetKind;
use crate::nn::Arch;
use crate::quant::QuantKind;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

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
    /// Output directory (default `runs/<arch>-<quant>`)
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

impl Default for TrainConfig {
    /// `tern train`'s defaults, read from the flags' declarations so the two cannot differ.
    fn default() -> TrainConfig {
        TrainConfig::parse(&[])
    }
}

impl TrainConfig {
    /// The settings `tern train` would take from these command-line words.
    fn parse(words: &[&str]) -> TrainConfig {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: TrainConfig,
        }
        Wrapper::parse_from(std::iter::once("tern").chain(words.iter().copied())).config
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| format!("runs/{}-{}", self.arch.name(), self.quant.name()).into())
    }

    /// The quantizer in force during `epoch` (0-based).
    pub fn quant_at(&self, epoch: usize) -> QuantKind {
        if epoch < self.fp_epochs { QuantKind::Fp } else { self.quant }
    }

    /// Learning rate at `step` of `epoch`, with `steps` steps per epoch: one schedule over the
    /// whole run, so the quantized phase continues where the warm-up left the rate instead of
    /// restarting it at full strength on weights that were just ternarized.
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

    /// Every setting in its range; the error names the flag and the value.
    pub(crate) fn validate(&self) -> Result<()> {
        for (flag, v) in
            [("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--log-every", self.log_every)]
        {
            if v == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be positive and finite, got {}", self.lr);
        }
        if !(self.threshold.is_finite() && (0.0..1.0).contains(&self.threshold)) {
            bail!("--threshold must be in [0, 1), got {}", self.threshold);
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be finite and not negative, got {}", self.weight_decay);
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            bail!("--warmup-epochs must be finite and not negative, got {}", self.warmup_epochs);
        }
        let max = crate::checkpoint::MAX_IMAGE_SIZE;
        if !(4..=max).contains(&self.image_size) {
            bail!("--image-size must be between 4 and {max}, got {}", self.image_size);
        }
        if !matches!(self.channels, 1 | 3) {
            bail!("--channels must be 1 or 3, got {}", self.channels);
        }
        if !(1..=256).contains(&self.workers) {
            bail!("--workers must be between 1 and 256, got {}", self.workers);
        }
        Ok(())
    }
}

/// Settings a resumed run may change: the schedule and optimizer's numbers, the length of the
/// run, logging, loader threads, and where the data now lives. Everything else defines the run.
const CHANGEABLE_ON_RESUME: [&str; 10] = [
    "epochs",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "log_every",
    "workers",
    "profile",
    "data",
];

/// `tern train`'s settings and the flags given on the command line (their clap ids, which are
/// the field names), so that `--resume` can apply or refuse them.
#[derive(Clone, Debug)]
pub struct TrainArgs {
    pub config: TrainConfig,
    pub given: Vec<String>,
}

impl clap::FromArgMatches for TrainArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let config = TrainConfig::from_arg_matches(m)?;
        Ok(TrainArgs { config, given: given(m) })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.config.update_from_arg_matches(m)?;
        self.given = given(m);
        Ok(())
    }
}

fn given(m: &clap::ArgMatches) -> Vec<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

impl clap::Args for TrainArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        TrainConfig::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        TrainConfig::augment_args_for_update(cmd)
    }
}

/// The configuration a resumed run continues with: `stored`, with each flag in `given` (taken
/// from `cli`) applied when it may change, and refused with a message when it would make another
/// run. Returns the configuration and the changes, as "--flag new (was old)".
pub(crate) fn resumed(
    stored: &TrainConfig,
    cli: &TrainConfig,
    given: &[String],
    completed: usize,
    dir: &Path,
) -> Result<(TrainConfig, Vec<String>)> {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Number(n) if n.is_f64() => format!("{}", n.as_f64().unwrap_or(f64::NAN) as f32),
        v => v.to_string(),
    };
    let mut cli = cli.clone();
    cli.data = cli.data.as_deref().map(absolute);
    let (mut cfg, new) = (serde_json::to_value(stored)?, serde_json::to_value(&cli)?);
    let mut changes = Vec::new();
    for id in given {
        let flag = format!("--{}", id.replace('_', "-"));
        if id == "out" {
            let same = |a: &Path, b: &Path| absolute(a) == absolute(b);
            if !cli.out.as_deref().is_some_and(|o| same(o, dir)) {
                bail!("{flag}: --resume {} continues in {0}; leave out --out", dir.display());
            }
            continue;
        }
        let (Some(old), Some(new)) = (cfg.get(id).cloned(), new.get(id)) else { continue };
        if old == *new {
            continue;
        }
        if !CHANGEABLE_ON_RESUME.contains(&id.as_str()) {
            bail!(
                "{flag} {} would change the run in {} (its {flag} is {}): resume without it, or start a new run with another --out",
                show(new),
                dir.display(),
                show(&old)
            );
        }
        changes.push(format!("{flag} {} (was {})", show(new), show(&old)));
        cfg[id] = new.clone();
    }
    let cfg: TrainConfig = serde_json::from_value(cfg)?;
    cfg.validate()?;
    if cfg.epochs < completed {
        bail!("--epochs {}: {} already has {completed} epochs complete", cfg.epochs, dir.display());
    }
    Ok((cfg, changes))
}

/// `path` made absolute (canonical when it exists), so a stored path works from any directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_schedules() {
        let cosine = TrainConfig::parse(&["--epochs", "4", "--lr", "0.2"]);
        assert_eq!(cosine.lr_at(0, 0, 10), 0.2);
        assert!((cosine.lr_at(2, 0, 10) - 0.1).abs() < 1e-6);
        assert!(cosine.lr_at(3, 9, 10) < 0.001);
        let step = TrainConfig::parse(&["--epochs", "4", "--lr", "0.2", "--schedule", "step"]);
        let got = [step.lr_at(1, 9, 10), step.lr_at(2, 0, 10), step.lr_at(3, 0, 10)];
        for (g, w) in got.iter().zip([0.2, 0.02, 0.002]) {
            assert!((g - w).abs() < 1e-7, "step schedule {got:?}");
        }
        let warm = TrainConfig::parse(&[
            "--epochs",
            "4",
            "--lr",
            "0.2",
            "--schedule",
            "constant",
            "--warmup-epochs",
            "1",
        ]);
        assert!((warm.lr_at(0, 4, 10) - 0.1).abs() < 1e-6);
        assert_eq!(warm.lr_at(2, 0, 10), 0.2);
    }
}
