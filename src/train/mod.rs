//! `tern train`: the training flow. Data on loader threads; each step writes one batch, records
//! forward, backward and optimizer kernels into one command buffer and submits; the loss and
//! accuracy counters are read back every `--log-every` steps. Checkpoints, metrics.jsonl and
//! curves.png are written at the end of every epoch.

mod config;
mod init;
mod outdir;
mod run;
mod session;
mod steps;
mod stop;

pub use config::{Augment, Optimizer, Schedule, TrainArgs, TrainConfig};
pub use outdir::LOCK;
pub(crate) use run::run;
pub(crate) use session::Session;

use crate::checkpoint::Checkpoint;
use crate::gpu::Gpu;
use crate::infer::Evaluation;
use crate::quant::QuantKind;
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// One epoch's numbers, appended to OUT/metrics.jsonl.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub quant: QuantKind,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    /// The ternary layers at the end of the epoch (none while full precision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerTrace>,
}

/// A ternary layer's scales and sparsity after an epoch: the curves of TTQ's figure 2.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerTrace {
    pub name: String,
    pub wp: f32,
    pub wn: f32,
    pub sparsity: f64,
}

impl LayerTrace {
    fn of(layers: &[crate::nn::models::LayerStats]) -> Vec<LayerTrace> {
        let trace = |l: &crate::nn::models::LayerStats| {
            Some(LayerTrace { name: l.name.clone(), wp: l.wp?, wn: l.wn?, sparsity: l.sparsity? })
        };
        layers.iter().filter_map(trace).collect()
    }
}

/// Progress saved in checkpoints; with the config it lets --resume continue exactly.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    pub step: u64,
    pub best_accuracy: f64,
    pub history: Vec<EpochMetrics>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The run's id, the same in every checkpoint the run writes, so that files of another run
    /// in its directory are told apart (none in checkpoints of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

impl TrainState {
    /// Whether `other`, the state of another checkpoint file, is of this run at or before this
    /// state's epoch: the run ids agree (where both have one) and so does the history.
    pub fn owns(&self, other: &TrainState) -> bool {
        let same_run = match (&self.run, &other.run) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        same_run && other.epoch <= self.epoch && self.history.get(..other.epoch) == Some(&other.history[..])
    }

    /// The epoch (from 1) whose checkpoint is best.safetensors: the first with the highest test
    /// accuracy, as training chooses it.
    pub fn best_epoch(&self) -> Option<usize> {
        let mut best: Option<&EpochMetrics> = None;
        for m in &self.history {
            if best.is_none_or(|b| m.test_accuracy > b.test_accuracy) {
                best = Some(m);
            }
        }
        best.map(|m| m.epoch)
    }

    /// The training state of a checkpoint to resume, checked as a whole against itself and the
    /// model metadata; errors name `path`.
    fn from_checkpoint(ckpt: &Checkpoint, path: &Path) -> Result<TrainState> {
        let p = path.display();
        let text = ckpt.training.as_deref().with_context(|| format!("{p}: no training state to resume"))?;
        let st: TrainState = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{p}: malformed \"training\" metadata ({e})"))?;
        let c = &st.config;
        c.validate().map_err(|e| anyhow::anyhow!("{p}: the stored configuration is invalid: {e}"))?;
        if st.epoch == 0 || st.epoch > c.epochs {
            bail!("{p}: the training state is at epoch {} of {}", st.epoch, c.epochs);
        }
        if st.history.len() != st.epoch || st.history.iter().enumerate().any(|(i, m)| m.epoch != i + 1) {
            bail!("{p}: the training history does not list epochs 1 to {}", st.epoch);
        }
        let finite = |m: &EpochMetrics| {
            [m.train_loss, m.test_loss, m.images_per_second, m.seconds].iter().all(|v| v.is_finite())
                && [m.train_accuracy, m.test_accuracy].iter().all(|v| (0.0..=1.0).contains(v))
                && m.lr.is_finite()
                && m.layers
                    .iter()
                    .all(|l| l.wp.is_finite() && l.wn.is_finite() && (0.0..=1.0).contains(&l.sparsity))
        };
        if let Some(m) = st.history.iter().find(|m| !finite(m)) {
            bail!("{p}: the training history of epoch {} holds values out of range", m.epoch);
        }
        let best = st.history.iter().map(|m| m.test_accuracy).fold(f64::NEG_INFINITY, f64::max);
        if st.best_accuracy != best {
            bail!("{p}: the best accuracy {} is not the history's best {best}", st.best_accuracy);
        }
        if let Some(run) = st.run.as_deref().filter(|r| !outdir::valid_run_id(r)) {
            bail!("{p}: the run id {run:?} is malformed");
        }
        if st.mean != ckpt.meta.mean || st.std != ckpt.meta.std {
            bail!("{p}: the training state's normalisation differs from the model's");
        }
        let s = &ckpt.meta.spec;
        let quant = c.quant_at(st.epoch - 1);
        if (s.arch, s.quant, s.threshold, s.quantize_ends, s.activation)
            != (c.arch, quant, c.threshold, c.quantize_ends, c.activation)
        {
            bail!(
                "{p}: the model metadata ({} {}) does not match the training configuration ({} {} after epoch {})",
                s.arch.name(),
                s.quant.name(),
                c.arch.name(),
                quant.name(),
                st.epoch
            );
        }
        Ok(st)
    }
}

/// Where a run reports: lines and a progress bar on the terminal (the CLI), or each epoch's
/// metrics handed to a callback with nothing printed (the library's `Trainer`).
pub enum Progress<'a> {
    Print,
    Callback(&'a mut dyn FnMut(&EpochMetrics)),
}

impl Progress<'_> {
    fn say(&self, line: std::fmt::Arguments) {
        if let Progress::Print = self {
            showln!("{line}");
        }
    }

    fn epoch(&mut self, m: &EpochMetrics, line: std::fmt::Arguments) {
        match self {
            Progress::Print => showln!("{line}"),
            Progress::Callback(f) => f(m),
        }
    }

    fn bar(&self, steps: usize) -> ProgressBar {
        match self {
            Progress::Print => ProgressBar::new(steps as u64),
            Progress::Callback(_) => ProgressBar::hidden(),
        }
    }
}

pub struct Summary {
    pub out: PathBuf,
    pub history: Vec<EpochMetrics>,
    pub layers: Vec<crate::nn::models::LayerStats>,
    pub test: Evaluation,
}

/// Train per `cfg`, or continue the run in `resume` with its own configuration (`cfg` is then
/// ignored). With `stop_after`, return once that many epochs are complete (resume later).
pub fn train(
    gpu: &Gpu,
    cfg: &TrainConfig,
    resume: Option<&Path>,
    stop_after: Option<usize>,
) -> Result<Summary> {
    run(gpu, cfg, &[], Start { resume, restart: false, stop_after }, &mut Progress::Print)
}

/// How `tern train` starts: a new run, a new run replacing the one in --out (`restart`), or
/// the run in `resume` continued; and where it stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct Start<'a> {
    pub resume: Option<&'a Path>,
    /// Start over in an --out that holds a run, replacing its outputs.
    pub restart: bool,
    pub stop_after: Option<usize>,
}

/// With --profile, one step in this many is timed.
pub const PROFILE_EVERY: usize = 50;

/// The per-layer report: quantizer, Wp, Wn, sparsity, bits per weight.
pub fn layer_table(layers: &[crate::nn::models::LayerStats]) -> String {
    let mut s = format!(
        "{:<18} {:>5} {:>8} {:>8} {:>8} {:>9} {:>10}\n",
        "layer", "quant", "weights", "Wp", "Wn", "sparsity", "bits/w"
    );
    let opt = |v: Option<f32>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for l in layers {
        s += &format!(
            "{:<18} {:>5} {:>8} {:>8} {:>8} {:>9} {:>10.3}\n",
            l.name,
            l.quant.name(),
            l.weights,
            opt(l.wp),
            opt(l.wn),
            l.sparsity.map_or("-".to_string(), |x| format!("{:.1}%", 100.0 * x)),
            l.bits_per_weight
        );
    }
    s
}
