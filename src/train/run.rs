//! A training run in four parts: `resume` reads a run's own configuration and state from its
//! directory, `prepare` checks everything and builds the data, model and directory before the
//! first step, `Run::epoch` trains, evaluates and commits one epoch, `Run::finish` reports.

use super::outdir::{self, OutDir};
use super::stop::{resume_from, resume_hint, stop_error};
use super::{
    EpochMetrics, LayerTrace, Progress, Session, Start, Summary, TrainConfig, TrainState, config, init,
    layer_table, steps,
};
use crate::checkpoint::{Checkpoint, Meta};
use crate::data::augment::Augment;
use crate::data::{self, Dataset, FolderOptions};
use crate::gpu::{Gpu, Profiler};
use crate::infer::{self, Evaluation};
use crate::params::Slot;
use crate::trace::Trace;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A run as `start` says, with the configuration `cli` (on resume, the run's own changed by the
/// flags named in `given`), reporting through `progress`.
pub(crate) fn run(
    gpu: &Gpu,
    cli: &TrainConfig,
    given: &[String],
    start: Start,
    progress: &mut Progress,
) -> Result<Summary> {
    let Start { resume: dir, restart, stop_after } = start;
    if stop_after == Some(0) {
        bail!("--stop-after must be at least 1 (the epochs to complete before stopping)");
    }
    let resumed = match dir {
        Some(d) => Some(resume(d, cli, given, progress)?),
        None => {
            data::check_data_flag(cli.dataset, cli.data.as_deref())?;
            None
        }
    };
    let mut run = prepare(gpu, cli, resumed, restart, progress)?;
    let start_epoch = run.st.epoch;
    let end_epoch = stop_after.map_or(run.cfg.epochs, |n| n.min(run.cfg.epochs)).max(start_epoch);
    if start_epoch == run.cfg.epochs {
        progress.say(format_args!("{}: all {} epochs are complete", run.out.display(), run.cfg.epochs));
    }
    let mut last_eval = None;
    for epoch in start_epoch..end_epoch {
        last_eval = Some(run.epoch(gpu, epoch, progress)?);
        if let Some(signal) = crate::interrupt::pending()
            && run.st.epoch < end_epoch
        {
            let e =
                crate::interrupt::Interrupted::new(signal, format!("after epoch {}", run.st.epoch)).into();
            return Err(stop_error(e, &run.out, &run.st, epoch + 1, run.cfg.epochs));
        }
    }
    run.finish(gpu, last_eval, progress)
}

/// What `--resume DIR` continues: the run's configuration (with the flags given applied) and
/// state, from `last.safetensors` (or `best.safetensors` when that is lost), under its lock.
struct Resumed {
    dir: OutDir,
    cfg: TrainConfig,
    state: TrainState,
    ckpt: Checkpoint,
    path: PathBuf,
}

fn resume(d: &Path, cli: &TrainConfig, given: &[String], progress: &Progress) -> Result<Resumed> {
    let dir = OutDir::open(d, false)?;
    let (path, ckpt) = resume_from(&dir)?;
    let mut state = TrainState::from_checkpoint(&ckpt, &path)?;
    if path.ends_with(outdir::BEST) {
        errln!(
            "note: {} is missing: resuming from {} (epoch {} of {}); the epochs after it are trained again",
            dir.file(outdir::LAST).display(),
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
    state.config = TrainConfig { out: Some(d.to_path_buf()), ..cfg };
    Ok(Resumed { dir, cfg: state.config.clone(), state, ckpt, path })
}

/// A run ready for its epochs.
struct Run {
    cfg: TrainConfig,
    dir: OutDir,
    out: PathBuf,
    train_data: Arc<Dataset>,
    test_data: Arc<Dataset>,
    augment: Augment,
    steps: usize,
    eval_batch: usize,
    session: Session,
    st: TrainState,
    profiler: Option<Profiler>,
    trace: Option<Trace>,
}

/// Everything checked before anything is written (flags, data, model, batch, device limits, the
/// directory), then the data, model, session and directory of the run.
fn prepare(
    gpu: &Gpu,
    cli: &TrainConfig,
    resumed: Option<Resumed>,
    restart: bool,
    progress: &Progress,
) -> Result<Run> {
    let (mut cfg, mut state, resume_ckpt, dir) = match resumed {
        Some(r) => (r.cfg, Some(r.state), Some((r.ckpt, r.path)), Some(r.dir)),
        None => (cli.clone(), None, None, None),
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
    let eval_batch = 256.min(test_data.len());
    let model = init::initial_model(gpu, &cfg, &train_data, resume_ckpt.as_ref())?;
    let session = Session::new(gpu, model, &cfg, eval_batch)?;
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
    let augment = Augment { pad, flip, mean, std };
    let trace = cfg.profile.then(Trace::default);
    Ok(Run {
        cfg,
        dir,
        out,
        train_data,
        test_data,
        augment,
        steps,
        eval_batch,
        session,
        st,
        profiler: None,
        trace,
    })
}

impl Run {
    fn meta(&self) -> Meta {
        Meta {
            spec: self.session.model.spec.clone(),
            mean: self.st.mean.clone(),
            std: self.st.std.clone(),
            classes: self.train_data.classes.clone(),
        }
    }

    /// Epoch `epoch` (0-based): the quantizer switch after the warm-up, the steps, the test set,
    /// the line or callback, and the epoch's outputs committed.
    fn epoch(&mut self, gpu: &Gpu, epoch: usize, progress: &mut Progress) -> Result<Evaluation> {
        let (out, epochs) = (self.out.clone(), self.cfg.epochs);
        crate::interrupt::set_hint(resume_hint(&out, self.st.epoch));
        let stopped = |e: anyhow::Error, st: &TrainState| stop_error(e, &out, st, epoch, epochs);
        let quant = self.cfg.quant_at(epoch);
        if self.session.model.spec.quant != quant {
            // End of the full-precision warm-up: continue from its weights with the quantizer.
            progress.say(format_args!("switching to {} from the full-precision weights", quant.name()));
            let fp = self.session.model.store.read(gpu, Slot::Values)?;
            let mut s = self.session.model.spec.clone();
            s.quant = quant;
            let model = init::from_full_precision(gpu, s, &fp, Path::new("warm-up weights"))?;
            self.session = Session::new(gpu, model, &self.cfg, self.eval_batch)?;
        }
        if self.cfg.profile {
            self.profiler = Some(Profiler::new(gpu, self.session.dispatch_count()));
        }
        let prof = self.profiler.as_ref().zip(self.trace.as_mut());
        let t0 = Instant::now();
        let mut step = self.st.step;
        let pass = steps::Pass { epoch, steps: self.steps, data: &self.train_data, augment: &self.augment };
        let (train_loss, train_acc, lr) =
            steps::run_epoch(gpu, &self.session, &self.cfg, pass, &mut step, prof, progress)
                .map_err(|e| stopped(e, &self.st))?;
        let seconds = t0.elapsed().as_secs_f64();
        let (mean, std) = (&self.st.mean, &self.st.std);
        let eval = infer::evaluate(gpu, &self.session.eval, &self.test_data, mean, std)
            .map_err(|e| stopped(e, &self.st))?;
        let layers = self.session.model.layer_stats(gpu).map_err(|e| stopped(e, &self.st))?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            quant,
            lr,
            train_loss,
            train_accuracy: train_acc,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            images_per_second: (self.steps * self.cfg.batch_size) as f64 / seconds,
            seconds,
            layers: LayerTrace::of(&layers),
        };
        progress.epoch(
            &m,
            format_args!(
                "epoch {:>3}/{} [{}] loss {:.4} acc {:5.2}% | test loss {:.4} acc {:5.2}% | {:.0} img/s, {:.1} s",
                m.epoch,
                epochs,
                quant.name(),
                m.train_loss,
                100.0 * m.train_accuracy,
                m.test_loss,
                100.0 * m.test_accuracy,
                m.images_per_second,
                seconds
            ),
        );
        self.st.step = step;
        self.st.epoch = epoch + 1;
        self.st.history.push(m);
        let best = eval.accuracy > self.st.best_accuracy;
        if best {
            self.st.best_accuracy = eval.accuracy;
        }
        let training = Some(serde_json::to_string(&self.st)?);
        let ckpt = Checkpoint::of(gpu, &self.session.model, self.meta(), true, training)?;
        self.dir.commit_epoch(&ckpt, &self.st, best)?;
        Ok(eval)
    }

    /// The final test evaluation (the last epoch's, or a new one when no epoch ran), the layer
    /// report and the profile.
    fn finish(self, gpu: &Gpu, last_eval: Option<Evaluation>, progress: &Progress) -> Result<Summary> {
        let test = match last_eval {
            Some(e) => e,
            None => infer::evaluate(gpu, &self.session.eval, &self.test_data, &self.st.mean, &self.st.std)?,
        };
        let layers = self.session.model.layer_stats(gpu)?;
        progress.say(format_args!("{}", layer_table(&layers)));
        if let (Some(trace), Some(p)) = (&self.trace, &self.profiler) {
            progress.say(format_args!("{}", trace.table(p.describe()).trim_end()));
            self.dir.check_ours(outdir::PROFILE, self.st.epoch)?;
            trace.write(&self.out.join(outdir::PROFILE))?;
            progress.say(format_args!(
                "trace of the sampled steps: {}",
                self.out.join(outdir::PROFILE).display()
            ));
        }
        Ok(Summary { out: self.out, history: self.st.history, layers, test })
    }
}
