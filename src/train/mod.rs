//! `tern train`: the training flow. Data on loader threads; each step writes one batch, records
//! forward, backward and optimizer kernels into one command buffer and submits; the loss and
//! accuracy counters are read back every `--log-every` steps. Checkpoints, metrics.jsonl and
//! curves.png are written at the end of every epoch.

mod config;
mod init;
mod outdir;
mod session;

pub use config::{Augment, Optimizer, Schedule, TrainArgs, TrainConfig};
pub use outdir::LOCK;
use outdir::OutDir;
pub(crate) use session::Session;

use crate::checkpoint::{Checkpoint, Meta};
use crate::data::loader::{Loader, LoaderOptions, shuffled};
use crate::data::{self, Dataset, FolderOptions};
use crate::gpu::{Gpu, Profiler};
use crate::infer::{self, Evaluation};
use crate::nn::ModelSpec;
use crate::ops::optim::StepParams;
use crate::params::Slot;
use crate::quant::QuantKind;
use crate::trace::Trace;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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

/// A run as `start` says, with the configuration `cli` (on resume, the run's own changed by the
/// flags named in `given`), reporting through `progress`.
pub(crate) fn run(
    gpu: &Gpu,
    cli: &TrainConfig,
    given: &[String],
    start: Start,
    progress: &mut Progress,
) -> Result<Summary> {
    let Start { resume, restart, stop_after } = start;
    if stop_after == Some(0) {
        bail!("--stop-after must be at least 1 (the epochs to complete before stopping)");
    }
    // On --resume the run's own config and state come from OUT/last.safetensors (or, when that
    // is lost, best.safetensors), read under the directory's lock.
    let mut dir = None;
    let (mut cfg, mut state, resume_ckpt) = match resume {
        Some(d) => {
            let locked = OutDir::open(d, false)?;
            let (path, ckpt) = resume_from(&locked)?;
            let mut state = TrainState::from_checkpoint(&ckpt, &path)?;
            if path.ends_with(outdir::BEST) {
                errln!(
                    "note: {} is missing: resuming from {} (epoch {} of {}); the epochs after it are trained again",
                    locked.file(outdir::LAST).display(),
                    path.display(),
                    state.epoch,
                    state.config.epochs
                );
            }
            if given.iter().any(|g| g == "data") && state.config.dataset == data::DatasetKind::Embedded {
                bail!(
                    "--data: the run in {} trains on the embedded dataset, which reads no directory; resume without --data",
                    d.display()
                );
            }
            let (cfg, changes) = config::resumed(&state.config, cli, given, state.epoch, d)?;
            if !changes.is_empty() {
                progress.say(format_args!("resuming {} with {}", d.display(), changes.join(", ")));
            }
            state.config = TrainConfig { out: Some(d.to_path_buf()), ..cfg.clone() };
            dir = Some(locked);
            (state.config.clone(), Some(state), Some((ckpt, path)))
        }
        None => {
            data::check_data_flag(cli.dataset, cli.data.as_deref())?;
            (cli.clone(), None, None)
        }
    };
    cfg.validate()?;
    // Stored paths work from any working directory.
    cfg.data = cfg.data.as_deref().map(config::absolute);
    cfg.init = cfg.init.as_deref().map(config::absolute);
    if let Some(s) = state.as_mut() {
        s.config = cfg.clone();
    }
    let out = cfg.out_dir();
    if let (None, false, Some(held)) = (&dir, restart, outdir::Held::of(&out)) {
        bail!("{}", held.refusal(&out));
    }
    if cfg.dataset == data::DatasetKind::Folder {
        // The size is known before any image is decoded.
        init::check_fits(gpu, cfg.arch, (cfg.channels, cfg.image_size, cfg.image_size), cfg.batch_size)?;
    }
    let splits = data::load(
        cfg.dataset,
        cfg.data.as_deref(),
        FolderOptions { size: cfg.image_size, channels: cfg.channels },
    )?;
    // Reject an impossible model, batch or device limit before anything is written.
    let spec = init::spec(&cfg, &splits.train, cfg.quant_at(0));
    spec.layers()?;
    let steps = splits.train.len() / cfg.batch_size;
    if steps == 0 {
        let run = resume_ckpt.as_ref().map_or(String::new(), |(_, p)| format!("{}: the run's ", p.display()));
        bail!(
            "{run}--batch-size {} is larger than the {} training images",
            cfg.batch_size,
            splits.train.len()
        );
    }
    init::check_fits(gpu, cfg.arch, (spec.in_channels, spec.height, spec.width), cfg.batch_size)?;
    if let (Some((ckpt, path)), Some(st)) = (&resume_ckpt, &state) {
        init::check_data(&ckpt.meta, &splits.train, path, cfg.data.as_deref())?;
        if st.step != (st.epoch * steps) as u64 {
            bail!(
                "{}: the run took {} steps in {} epochs, but the {} training images of {} make {steps} per epoch: is this its data?",
                path.display(),
                st.step,
                st.epoch,
                splits.train.len(),
                cfg.data.as_deref().map_or("the embedded set".into(), |d| d.display().to_string())
            );
        }
    }
    let mut dir = match dir {
        Some(d) => d,
        None => {
            let d = OutDir::open(&out, true)?;
            if let (false, Some(held)) = (restart, d.held) {
                bail!("{}", held.refusal(&out));
            }
            d
        }
    };
    let (mean, std) = match &state {
        Some(s) => (s.mean.clone(), s.std.clone()),
        None => (splits.mean.clone(), splits.std.clone()),
    };
    let train_data = Arc::new(splits.train);
    let test_data = Arc::new(splits.test);
    let meta = |spec: &ModelSpec| Meta {
        spec: spec.clone(),
        mean: mean.clone(),
        std: std.clone(),
        classes: train_data.classes.clone(),
    };
    let eval_batch = 256.min(test_data.len());

    let start_epoch = state.as_ref().map_or(0, |s| s.epoch);
    let model = init::initial_model(gpu, &cfg, &train_data, resume_ckpt.as_ref())?;
    let mut session = Session::new(gpu, model, &cfg, eval_batch)?;
    let mut st = state.unwrap_or(TrainState {
        config: cfg.clone(),
        epoch: 0,
        step: 0,
        best_accuracy: -1.0,
        history: Vec::new(),
        mean: mean.clone(),
        std: std.clone(),
        run: None,
    });
    // Checkpoints of older versions carry no run id: the run takes one from now on.
    let run_id = st.run.get_or_insert_with(outdir::new_run_id).clone();
    dir.claim(&run_id)?;
    if let Some((_, path)) = &resume_ckpt {
        let restored = dir.repair(&st, &crate::files::read(path)?)?;
        if !restored.is_empty() {
            progress.say(format_args!("restored from {}: {}", path.display(), restored.join(", ")));
        }
    }
    progress.say(format_args!(
        "training {} ({} parameters) on {} — {} train / {} test images, {} classes, out {}",
        cfg.arch.name(),
        session.model.store.trainable_count(),
        gpu.describe(),
        train_data.len(),
        test_data.len(),
        train_data.classes.len(),
        out.display()
    ));
    let (pad, flip) = cfg.augmentation(splits.flip);
    let augment = data::augment::Augment { pad, flip, mean: mean.clone(), std: std.clone() };
    let mut last_eval = None;
    let (mut profiler, mut trace) = (None, cfg.profile.then(Trace::default));
    let end_epoch = stop_after.map_or(cfg.epochs, |n| n.min(cfg.epochs)).max(start_epoch);
    if start_epoch == cfg.epochs {
        progress.say(format_args!("{}: all {} epochs are complete", out.display(), cfg.epochs));
    }
    for epoch in start_epoch..end_epoch {
        crate::interrupt::set_hint(resume_hint(&out, st.epoch));
        let stopped = |e: anyhow::Error, st: &TrainState| stop_error(e, &out, st, epoch, cfg.epochs);
        let quant = cfg.quant_at(epoch);
        if session.model.spec.quant != quant {
            // End of the full-precision warm-up: continue from its weights with the quantizer.
            progress.say(format_args!("switching to {} from the full-precision weights", quant.name()));
            let fp = session.model.store.read(gpu, Slot::Values)?;
            let mut s = session.model.spec.clone();
            s.quant = quant;
            let model = init::from_full_precision(gpu, s, &fp, Path::new("warm-up weights"))?;
            session = Session::new(gpu, model, &cfg, eval_batch)?;
        }
        if cfg.profile {
            profiler = Some(Profiler::new(gpu, session.dispatch_count()));
        }
        let prof = profiler.as_ref().zip(trace.as_mut());
        let t0 = Instant::now();
        let mut step = st.step;
        let (train_loss, train_acc, lr) =
            run_epoch(gpu, &session, &cfg, &train_data, &augment, epoch, steps, &mut step, prof, progress)
                .map_err(|e| stopped(e, &st))?;
        let seconds = t0.elapsed().as_secs_f64();
        let eval =
            infer::evaluate(gpu, &session.eval, &test_data, &mean, &std).map_err(|e| stopped(e, &st))?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            quant,
            lr,
            train_loss,
            train_accuracy: train_acc,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            images_per_second: (steps * cfg.batch_size) as f64 / seconds,
            seconds,
            layers: LayerTrace::of(&session.model.layer_stats(gpu).map_err(|e| stopped(e, &st))?),
        };
        progress.epoch(
            &m,
            format_args!(
            "epoch {:>3}/{} [{}] loss {:.4} acc {:5.2}% | test loss {:.4} acc {:5.2}% | {:.0} img/s, {:.1} s",
            m.epoch,
            cfg.epochs,
            quant.name(),
            m.train_loss,
            100.0 * m.train_accuracy,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.images_per_second,
            seconds
        ),
        );
        st.step = step;
        st.epoch = epoch + 1;
        st.history.push(m.clone());
        let best = eval.accuracy > st.best_accuracy;
        if best {
            st.best_accuracy = eval.accuracy;
        }
        let training = Some(serde_json::to_string(&st)?);
        let ckpt = Checkpoint::of(gpu, &session.model, meta(&session.model.spec), true, training)?;
        dir.commit_epoch(&ckpt, &st, best)?;
        last_eval = Some(eval);
        if let Some(signal) = crate::interrupt::pending()
            && st.epoch < end_epoch
        {
            let e = crate::interrupt::Interrupted::new(signal, format!("after epoch {}", st.epoch)).into();
            return Err(stop_error(e, &out, &st, epoch + 1, cfg.epochs));
        }
    }
    let test = match last_eval {
        Some(e) => e,
        None => infer::evaluate(gpu, &session.eval, &test_data, &mean, &std)?,
    };
    let layers = session.model.layer_stats(gpu)?;
    progress.say(format_args!("{}", layer_table(&layers)));
    if let (Some(trace), Some(p)) = (&trace, &profiler) {
        progress.say(format_args!("{}", trace.table(p.describe()).trim_end()));
        dir.check_ours(outdir::PROFILE, st.epoch)?;
        trace.write(&out.join(outdir::PROFILE))?;
        progress.say(format_args!("trace of the sampled steps: {}", out.join(outdir::PROFILE).display()));
    }
    Ok(Summary { out, history: st.history, layers, test })
}

/// The checkpoint a resumed run continues from: `last.safetensors`, or `best.safetensors` when
/// that is lost (a run is deterministic, so the epochs after the best are trained again as they
/// were); errors name the way out when neither can continue it.
fn resume_from(dir: &OutDir) -> Result<(PathBuf, Checkpoint)> {
    let d = dir.path.display();
    let last = dir.file(outdir::LAST);
    if last.exists() {
        return Ok((last.clone(), Checkpoint::load(&last)?));
    }
    let best = dir.file(outdir::BEST);
    if best.exists() {
        let restart = format!(
            "start it over with `tern train --restart --out {d}` and its flags, or choose another --out"
        );
        let ckpt = Checkpoint::load(&best)
            .map_err(|e| anyhow::anyhow!("{e:#}; {d} has no {}: {restart}", outdir::LAST))?;
        if ckpt.training.is_none() {
            bail!(
                "{}: no training state to resume (and {d} has no {}): {restart}",
                best.display(),
                outdir::LAST
            );
        }
        return Ok((best, ckpt));
    }
    match dir.held {
        Some(_) => bail!(
            "{d}: no {} or {} to resume from: start the run over with `tern train --restart --out {d}` and its flags, or choose another --out",
            outdir::LAST,
            outdir::BEST
        ),
        None => bail!(
            "{d}: no {} to resume from (a run stopped before its first epoch ends leaves none): start it again",
            outdir::LAST
        ),
    }
}

/// How to continue after a stop: what the last checkpoint holds and the command.
fn resume_hint(out: &Path, completed: usize) -> String {
    if completed == 0 {
        "; no epoch was complete, nothing is saved: start the run again".into()
    } else {
        format!(
            "; {} (epoch {completed}) is kept: continue with `tern train --resume {}`",
            out.join(outdir::LAST).display(),
            out.display()
        )
    }
}

/// The loss is no longer finite: the run cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("loss became {loss} at epoch {epoch} step {step}")]
struct Diverged {
    loss: f32,
    epoch: usize,
    step: usize,
}

/// An interruption during `epoch` (0-based) or a diverged loss as the one-line error the user
/// sees, saying what is kept; other errors pass unchanged.
fn stop_error(e: anyhow::Error, out: &Path, st: &TrainState, epoch: usize, epochs: usize) -> anyhow::Error {
    let e = match e.downcast::<Diverged>() {
        Ok(d) if st.epoch == 0 => {
            return anyhow::anyhow!(
                "{d}: training stopped before any epoch was complete, so nothing is saved; start again with a lower --lr"
            );
        }
        Ok(d) => {
            return anyhow::anyhow!(
                "{d}: training stopped; {} (epoch {}) is kept: resume it with a lower learning rate, `tern train --resume {} --lr LR`",
                out.join(outdir::LAST).display(),
                st.epoch,
                out.display()
            );
        }
        Err(e) => e,
    };
    match e.downcast::<crate::interrupt::Interrupted>() {
        Ok(i) => {
            let at = if i.message.starts_with("after epoch") {
                i.message.clone()
            } else {
                format!("in epoch {}/{epochs} ({})", epoch + 1, i.message)
            };
            let message = format!(
                "interrupted by {} {at}{}",
                crate::interrupt::name(i.signal),
                resume_hint(out, st.epoch)
            );
            crate::interrupt::Interrupted::new(i.signal, message).into()
        }
        Err(e) => e,
    }
}

/// With --profile, one step in this many is timed.
pub const PROFILE_EVERY: usize = 50;

/// One pass over the training data. Returns (mean loss, accuracy, last learning rate).
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    gpu: &Gpu,
    s: &Session,
    cfg: &TrainConfig,
    data: &Arc<Dataset>,
    augment: &data::augment::Augment,
    epoch: usize,
    steps: usize,
    global_step: &mut u64,
    profile: Option<(&Profiler, &mut Trace)>,
    progress: &Progress,
) -> Result<(f64, f64, f32)> {
    let loader = Loader::new(
        data.clone(),
        shuffled(data.len(), cfg.seed, epoch as u64),
        LoaderOptions {
            batch: cfg.batch_size,
            drop_last: true,
            augment: augment.clone(),
            random: Some((cfg.seed, epoch as u64)),
            workers: cfg.workers,
            prefetch: 4,
        },
    );
    let bar = progress.bar(steps).with_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    let g = &s.train;
    gpu.write(&g.metrics, &[0.0; 4])?;
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0.0f64);
    let t0 = Instant::now();
    let mut lr = 0.0;
    let mut profile = profile;
    let mut loader = loader.enumerate();
    let mut done = 0;
    loop {
        if let Some(signal) = crate::interrupt::pending() {
            if crate::fault::armed("slow-steps", None) {
                // Test hook: a slow device takes long to stop (the window for a second signal).
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            bar.finish_and_clear();
            let at = format!("after step {done} of {steps}");
            return Err(crate::interrupt::Interrupted::new(signal, at).into());
        }
        let t_load = profile.as_ref().map(|(_, t)| t.now());
        let Some((i, batch)) = loader.next() else { break };
        let batch = batch?;
        if crate::fault::armed("slow-steps", None) {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        lr = cfg.lr_at(epoch, i, steps);
        *global_step += 1;
        let t = *global_step as i32;
        let step = StepParams::at(lr, t);
        let sampled = i % PROFILE_EVERY == PROFILE_EVERY / 2;
        match profile.as_mut() {
            Some((p, trace)) if sampled => {
                trace.host_span("data loading", t_load.unwrap_or(0.0));
                s.step(gpu, &batch, step, Some((p, trace)))?
            }
            _ => s.step(gpu, &batch, step, None)?,
        }
        if (i + 1) % cfg.log_every == 0 || i + 1 == steps {
            let m = gpu.read(&g.metrics)?;
            gpu.write(&g.metrics, &[0.0; 4])?;
            if !m[0].is_finite() {
                return Err(Diverged { loss: m[0], epoch: epoch + 1, step: i + 1 }.into());
            }
            loss_sum += m[0] as f64;
            correct += m[1] as f64;
            seen += m[2] as f64;
            let ips = seen / t0.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} acc {:5.2}% {ips:.0} img/s",
                loss_sum / seen.max(1.0),
                100.0 * correct / seen.max(1.0)
            ));
        }
        bar.set_position(i as u64 + 1);
        done = i + 1;
    }
    bar.finish_and_clear();
    if done != steps {
        bail!("the data loader ended after {done} of {steps} steps of epoch {}", epoch + 1);
    }
    Ok((loss_sum / seen.max(1.0), correct / seen.max(1.0), lr))
}

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
