//! `tern train`: the training flow. Data on loader threads; each step writes one batch, records
//! forward, backward and optimizer kernels into one command buffer and submits; the loss and
//! accuracy counters are read back every `--log-every` steps. Checkpoints, metrics.jsonl and
//! curves.png are written at the end of every epoch.

use crate::checkpoint::{Checkpoint, Meta};
use crate::data::loader::Batch;
use crate::data::loader::{Loader, LoaderOptions, shuffled};
use crate::data::{self, Dataset, DatasetKind, FolderOptions};
use crate::gpu::profiler::TimingSource;
use crate::gpu::{Gpu, Profiler, Program};
use crate::infer::{self, Evaluation};
use crate::nn::params::{HostTensor, Slot};
use crate::nn::{Arch, Graph, Mode, Model, ModelSpec};
use crate::ops::optim::{self, OptimParams, StepParams};
use crate::quant::QuantKind;
use crate::trace::Trace;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    /// TTQ threshold factor t (Δ = t·max|w|)
    #[arg(long, default_value_t = 0.05)]
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

    fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.log_every == 0 {
            bail!("--epochs, --batch-size and --log-every must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..1.0).contains(&self.threshold)) {
            bail!("--lr must be positive and --threshold in [0, 1)");
        }
        Ok(())
    }
}

/// One epoch's numbers, appended to OUT/metrics.jsonl.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
}

pub struct Summary {
    pub out: PathBuf,
    pub history: Vec<EpochMetrics>,
    pub layers: Vec<crate::nn::models::LayerStats>,
    pub test: Evaluation,
}

/// A model with its training and evaluation graphs and optimizer kernel.
pub(crate) struct Session {
    model: Model,
    train: Graph,
    eval: Graph,
    update: Program,
    step_params: wgpu::Buffer,
}

impl Session {
    pub(crate) fn new(gpu: &Gpu, model: Model, cfg: &TrainConfig, eval_batch: usize) -> Result<Session> {
        let mut train = model.graph(gpu, cfg.batch_size, Mode::Train)?;
        let eval = model.graph(gpu, eval_batch, Mode::Eval)?;
        let step_params = gpu.uniform("step", bytemuck::bytes_of(&StepParams::default()));
        let s = &model.store;
        let params = OptimParams {
            len: s.trainable_end as u32,
            decay_end: s.decay_end as u32,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let entry = match cfg.optimizer {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        };
        let trained = s.values.view("params.trained", 0, &[s.trainable_end.max(1)]);
        let optimizer =
            optim::update(gpu, entry, &params, &step_params, &trained, &s.grads, &s.moment1, &s.moment2)?;
        // The optimizer, then the quantizers' after-update kernels (STTN's latent clamp).
        let mut update = Program { dispatches: vec![optimizer] };
        update.extend(std::mem::take(&mut train.after_update));
        Ok(Session { model, train, eval, update, step_params })
    }

    fn programs(&self) -> [&Program; 3] {
        [&self.train.forward, &self.train.backward, &self.update]
    }

    pub(crate) fn dispatch_count(&self) -> usize {
        self.programs().iter().map(|p| p.dispatches.len()).sum()
    }

    /// One training step: the batch and the step's optimizer parameters are written, then
    /// forward, backward and update are recorded into one command buffer and submitted. With a
    /// profiler every dispatch is timed and the host phases go into the trace (this waits for
    /// the GPU, so only sampled steps are profiled).
    pub fn step(
        &self,
        gpu: &Gpu,
        batch: &Batch,
        params: StepParams,
        profile: Option<(&Profiler, &mut Trace)>,
    ) -> Result<()> {
        let g = &self.train;
        let upload = |gpu: &Gpu| -> Result<()> {
            gpu.queue.write_buffer(&self.step_params, 0, bytemuck::bytes_of(&params));
            gpu.write(&g.input, &batch.images)?;
            Ok(gpu.write_u32(&g.labels, &batch.labels)?)
        };
        let Some((profiler, trace)) = profile else {
            upload(gpu)?;
            let mut enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("train step"),
                    timestamp_writes: None,
                });
                self.programs().iter().for_each(|p| p.record(&mut pass));
            }
            gpu.queue.submit([enc.finish()]);
            return Ok(());
        };
        let t = trace.now();
        upload(gpu)?;
        trace.host_span("upload", t);
        if profiler.source == TimingSource::CpuSync {
            let t = trace.now();
            let timings = profiler.run(gpu, &self.programs())?;
            trace.host_span("submit + wait per dispatch (no timestamps)", t);
            trace.gpu(timings, t);
            return Ok(());
        }
        let t = trace.now();
        let mut enc =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
        let timed = profiler.encode(&mut enc, &self.programs(), "train step");
        trace.host_span("encode", t);
        let t = trace.now();
        gpu.queue.submit([enc.finish()]);
        trace.host_span("submit", t);
        let submitted = trace.now();
        let timings = profiler.read(gpu, &self.programs(), timed)?;
        trace.host_span("wait for GPU + timestamp readback", submitted);
        trace.gpu(timings, submitted);
        Ok(())
    }
}

fn spec(cfg: &TrainConfig, data: &Dataset, quant: QuantKind) -> ModelSpec {
    ModelSpec {
        arch: cfg.arch,
        in_channels: data.channels,
        height: data.height,
        width: data.width,
        classes: data.classes.len(),
        quant,
        threshold: cfg.threshold,
        quantize_ends: cfg.quantize_ends,
        activation: cfg.activation,
    }
}

/// A quantized model started from full-precision tensors: same names, plus the quantizer's own
/// parameters, each quantized layer prepared by `init_from_full_precision`.
fn from_full_precision(gpu: &Gpu, spec: ModelSpec, fp: &[HostTensor], origin: &Path) -> Result<Model> {
    let model = Model::new(gpu, spec, 0)?;
    let mut values = model.store.read(gpu, Slot::Values)?;
    for t in values.iter_mut() {
        if let Some(src) = fp.iter().find(|s| s.name == t.name) {
            if src.shape != t.shape {
                bail!(
                    "{}: tensor '{}' has shape {:?}, the model expects {:?}",
                    origin.display(),
                    t.name,
                    src.shape,
                    t.shape
                );
            }
            t.data = src.data.clone();
        } else if !is_quantizer_param(&model, &t.name) {
            bail!("{}: missing tensor '{}' for {}", origin.display(), t.name, model.spec.arch.name());
        }
    }
    for (layer, q) in model.weight_layers() {
        let wname = format!("{layer}.weight");
        let extra_names = model.extra_names(layer, q.as_ref());
        let mut latent = values.iter().find(|t| t.name == wname).context("weight")?.data.clone();
        let mut extra: Vec<Vec<f32>> = extra_names
            .iter()
            .map(|n| values.iter().find(|t| &t.name == n).map(|t| t.data.clone()).unwrap_or_default())
            .collect();
        q.init_from_full_precision(&mut latent, &mut extra);
        for t in values.iter_mut() {
            if t.name == wname {
                t.data = latent.clone();
            } else if let Some(i) = extra_names.iter().position(|n| *n == t.name) {
                t.data = extra[i].clone();
            }
        }
    }
    model.store.write(gpu, Slot::Values, &values)?;
    Ok(model)
}

fn is_quantizer_param(model: &Model, name: &str) -> bool {
    model
        .weight_layers()
        .iter()
        .any(|(layer, q)| model.extra_names(layer, q.as_ref()).iter().any(|n| n == name))
}

/// Train per `cfg`, or continue the run in `resume` (its own config then applies). With
/// `stop_after`, return after that many epochs have completed (resume later).
pub fn train(
    gpu: &Gpu,
    cfg: &TrainConfig,
    resume: Option<&Path>,
    stop_after: Option<usize>,
) -> Result<Summary> {
    // On --resume the run's own config and state come from OUT/last.safetensors.
    let (cfg, mut state, resume_ckpt) = match resume {
        Some(dir) => {
            let path = dir.join("last.safetensors");
            let ckpt =
                Checkpoint::load(&path).with_context(|| format!("cannot resume from {}", dir.display()))?;
            let text = ckpt
                .training
                .clone()
                .with_context(|| format!("{}: no training state to resume", path.display()))?;
            let mut state: TrainState = serde_json::from_str(&text)
                .with_context(|| format!("{}: bad training state", path.display()))?;
            state.config.out = Some(dir.to_path_buf());
            (state.config.clone(), Some(state), Some((ckpt, path)))
        }
        None => (cfg.clone(), None, None),
    };
    cfg.validate()?;
    let splits = data::load(
        cfg.dataset,
        cfg.data.as_deref(),
        FolderOptions { size: cfg.image_size, channels: cfg.channels },
    )?;
    let out = cfg.out_dir();
    if resume.is_none() && out.join("last.safetensors").exists() {
        bail!("{} already holds a run: resume it with --resume {0}, or choose another --out", out.display());
    }
    // Reject an impossible model before anything is written.
    spec(&cfg, &splits.train, cfg.quant).layers()?;
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
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

    // The model: resumed, initialised from a full-precision checkpoint, or from scratch.
    let start_epoch = state.as_ref().map_or(0, |s| s.epoch);
    let model = if let Some((ckpt, path)) = &resume_ckpt {
        let model = Model::new(gpu, ckpt.meta.spec.clone(), cfg.seed)?;
        ckpt.restore(gpu, &model, path)?;
        model
    } else if let Some(init) = &cfg.init {
        let (init_meta, tensors) = crate::import::init_tensors(init)?;
        let s = spec(&cfg, &train_data, cfg.quant_at(0));
        if let Some(m) = init_meta.map(|m| m.spec) {
            if m.quant != QuantKind::Fp {
                bail!(
                    "{}: --init takes a full-precision model; continue a {} run with --resume",
                    init.display(),
                    m.quant.name()
                );
            }
            if m.arch != s.arch || m.classes != s.classes || m.in_channels != s.in_channels {
                bail!(
                    "{}: a {} model with {} input channels and {} classes, but this run trains {} with {} and {}",
                    init.display(),
                    m.arch.name(),
                    m.in_channels,
                    m.classes,
                    s.arch.name(),
                    s.in_channels,
                    s.classes
                );
            }
        }
        from_full_precision(gpu, s, &tensors, init)?
    } else {
        let s = spec(&cfg, &train_data, cfg.quant_at(0));
        let model = Model::new(gpu, s, cfg.seed)?;
        if cfg.quant_at(0) != QuantKind::Fp {
            // TTQ from scratch: the same normalisation as when starting from full precision.
            let fp = model.store.read(gpu, Slot::Values)?;
            from_full_precision(gpu, model.spec.clone(), &fp, Path::new("initialisation"))?
        } else {
            model
        }
    };
    let mut session = Session::new(gpu, model, &cfg, eval_batch)?;
    let mut st = state.take().unwrap_or(TrainState {
        config: cfg.clone(),
        epoch: 0,
        step: 0,
        best_accuracy: -1.0,
        history: Vec::new(),
        mean: mean.clone(),
        std: std.clone(),
    });
    println!(
        "training {} ({} parameters) on {} — {} train / {} test images, {} classes, out {}",
        cfg.arch.name(),
        session.model.store.trainable_count(),
        gpu.describe(),
        train_data.len(),
        test_data.len(),
        train_data.classes.len(),
        out.display()
    );
    let (pad, flip) = cfg.augmentation(splits.flip);
    let augment = data::augment::Augment { pad, flip, mean: mean.clone(), std: std.clone() };
    let steps = train_data.len() / cfg.batch_size;
    if steps == 0 {
        bail!("--batch-size {} is larger than the {} training images", cfg.batch_size, train_data.len());
    }
    let mut last_eval = None;
    let (mut profiler, mut trace) = (None, cfg.profile.then(Trace::default));
    let end_epoch = stop_after.map_or(cfg.epochs, |n| n.clamp(start_epoch, cfg.epochs));
    for epoch in start_epoch..end_epoch {
        let quant = cfg.quant_at(epoch);
        if session.model.spec.quant != quant {
            // End of the full-precision warm-up: continue from its weights with the quantizer.
            println!("switching to {} from the full-precision weights", quant.name());
            let fp = session.model.store.read(gpu, Slot::Values)?;
            let mut s = session.model.spec.clone();
            s.quant = quant;
            let model = from_full_precision(gpu, s, &fp, Path::new("warm-up weights"))?;
            session = Session::new(gpu, model, &cfg, eval_batch)?;
        }
        if cfg.profile {
            profiler = Some(Profiler::new(gpu, session.dispatch_count()));
        }
        let prof = profiler.as_ref().zip(trace.as_mut());
        let t0 = Instant::now();
        let (train_loss, train_acc, lr) =
            run_epoch(gpu, &session, &cfg, &train_data, &augment, epoch, steps, &mut st.step, prof)?;
        let seconds = t0.elapsed().as_secs_f64();
        let eval = infer::evaluate(gpu, &session.eval, &test_data, &mean, &std)?;
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
        };
        println!(
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
        );
        st.epoch = epoch + 1;
        st.history.push(m.clone());
        let best = eval.accuracy > st.best_accuracy;
        if best {
            st.best_accuracy = eval.accuracy;
        }
        let training = Some(serde_json::to_string(&st)?);
        let ckpt = Checkpoint::of(gpu, &session.model, meta(&session.model.spec), true, training)?;
        ckpt.save(&out.join("last.safetensors"))?;
        if best {
            ckpt.save(&out.join("best.safetensors"))?;
        }
        append_jsonl(&out.join("metrics.jsonl"), &m)?;
        crate::plot::curves(&out.join("curves.png"), &st.history)?;
        last_eval = Some(eval);
    }
    let test = match last_eval {
        Some(e) => e,
        None => infer::evaluate(gpu, &session.eval, &test_data, &mean, &std)?,
    };
    let layers = session.model.layer_stats(gpu)?;
    println!("{}", layer_table(&layers));
    if let (Some(trace), Some(p)) = (&trace, &profiler) {
        print!("{}", crate::profile::table(trace, p.describe()));
        trace.write(&out.join("profile.json"))?;
        println!("trace of the sampled steps: {}", out.join("profile.json").display());
    }
    Ok(Summary { out, history: st.history, layers, test })
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
    let bar = ProgressBar::new(steps as u64).with_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
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
    loop {
        let t_load = profile.as_ref().map(|(_, t)| t.now());
        let Some((i, batch)) = loader.next() else { break };
        lr = cfg.lr_at(epoch, i, steps);
        *global_step += 1;
        let t = *global_step as i32;
        let step = StepParams { lr, bias1: 1.0 - 0.9f32.powi(t), bias2: 1.0 - 0.999f32.powi(t) };
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
                bail!(
                    "loss became {} at epoch {} step {}: training stopped, the last good checkpoint is kept",
                    m[0],
                    epoch + 1,
                    i + 1
                );
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
    }
    bar.finish_and_clear();
    Ok((loss_sum / seen.max(1.0), correct / seen.max(1.0), lr))
}

fn append_jsonl(path: &Path, m: &EpochMetrics) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(m)?)?;
    Ok(())
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
