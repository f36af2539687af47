//! `tern profile`: per-kernel GPU times of training or inference steps, with achieved GFLOP/s and
//! GB/s from each kernel's declared cost and their fractions of the adapter's ceilings (measured
//! at the start, see `roofline::ceilings`), the step time split into GPU busy and host phases, and
//! an optional Chrome/Perfetto trace.

use crate::data::Dataset;
use crate::data::augment::Augment;
use crate::data::loader::{Loader, LoaderOptions};
use crate::gpu::profiler::TimingSource;
use crate::gpu::{Gpu, Profiler};
use crate::nn::{Arch, Mode, Model, ModelSpec};
use crate::ops::optim::StepParams;
use crate::packed::PackedModel;
use crate::quant::QuantKind;
use crate::trace::{Ceilings, Trace};
use crate::train::{Session, TrainConfig};
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileMode {
    /// forward + backward + optimizer, with real data loading
    Train,
    /// the training graph in eval mode
    Infer,
    /// the packed inference kernels
    Packed,
    /// the packed inference kernels with ternary activations as bit-planes (STTN's units; a
    /// fresh model gets ternary activations)
    Bitplane,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ProfileConfig {
    /// Profile this checkpoint (or packed model, for --mode packed and bitplane) instead of a fresh model
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub arch: Arch,
    #[arg(long, value_enum, default_value = "ttq")]
    pub quant: QuantKind,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Profiled steps (after two warm-up steps; training then times as many without timestamps)
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, value_enum, default_value = "train")]
    pub mode: ProfileMode,
    /// Write a Chrome trace-event JSON file (Perfetto, chrome://tracing)
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Input channels of a fresh model (1: the embedded Fashion-MNIST data; else synthetic)
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Input size of a fresh model
    #[arg(long, default_value_t = 28)]
    pub size: usize,
    /// Force a weaker timing source than the adapter's best (default: the best)
    #[arg(long, value_enum)]
    pub timing: Option<TimingSource>,
}

/// Random images of the model's input shape (for models the embedded data does not fit).
fn synthetic(spec: &ModelSpec, n: usize) -> Dataset {
    let len = n * spec.in_channels * spec.height * spec.width;
    Dataset {
        channels: spec.in_channels,
        height: spec.height,
        width: spec.width,
        classes: (0..spec.classes).map(|i| i.to_string()).collect(),
        pixels: (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(),
        labels: (0..n).map(|i| (i % spec.classes) as u32).collect(),
    }
}

/// The adapter's ceilings, measured once per adapter and process (briefly: `roofline::ceilings`).
fn ceilings(gpu: &Gpu) -> Result<Ceilings> {
    static CACHE: std::sync::Mutex<Vec<(String, Ceilings)>> = std::sync::Mutex::new(Vec::new());
    let adapter = gpu.describe();
    if let Some((_, c)) = CACHE.lock().unwrap().iter().find(|(a, _)| *a == adapter) {
        return Ok(c.clone());
    }
    let c = crate::roofline::ceilings(gpu)?;
    CACHE.lock().unwrap().push((adapter, c.clone()));
    Ok(c)
}

pub fn profile(gpu: &Gpu, cfg: &ProfileConfig) -> Result<Trace> {
    if cfg.steps == 0 || cfg.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let packed = matches!(cfg.mode, ProfileMode::Packed | ProfileMode::Bitplane);
    let model = match &cfg.model {
        Some(path) if !packed => crate::infer::load_model(gpu, path)?.0,
        _ => {
            let spec = ModelSpec {
                arch: cfg.arch,
                in_channels: cfg.channels,
                height: cfg.size,
                width: cfg.size,
                classes: 10,
                quant: cfg.quant,
                threshold: crate::quant::DEFAULT_THRESHOLD,
                quantize_ends: false,
                activation: match cfg.mode {
                    ProfileMode::Bitplane => crate::nn::Activation::Ternary,
                    _ => Default::default(),
                },
            };
            Model::new(gpu, spec, 0)?
        }
    };
    let spec = model.spec.clone();
    // Two warm-up steps, the profiled ones and, in training, as many unprofiled.
    let batches = 2 + cfg.steps * if cfg.mode == ProfileMode::Train { 2 } else { 1 };
    let data = Arc::new(if (spec.in_channels, spec.height, spec.width, spec.classes) == (1, 28, 28, 10) {
        crate::data::embedded::fashion_mnist()?.0
    } else {
        synthetic(&spec, cfg.batch_size * batches)
    });
    let (mean, std) = (vec![0.5; spec.in_channels], vec![0.25; spec.in_channels]);
    let mut loader = Loader::new(
        data.clone(),
        (0..data.len()).collect(),
        LoaderOptions {
            batch: cfg.batch_size,
            drop_last: true,
            augment: Augment::eval(&mean, &std),
            random: None,
            workers: 2,
            prefetch: 4,
        },
    );
    if loader.batches() < batches {
        bail!("the data has {} batches of {}; profile fewer --steps", loader.batches(), cfg.batch_size);
    }
    let mut trace = Trace::default();
    trace.ceilings = Some(ceilings(gpu)?);
    let source;
    match cfg.mode {
        ProfileMode::Train => {
            let train_cfg = TrainConfig { batch_size: cfg.batch_size, ..TrainConfig::default() };
            let session = Session::new(gpu, model, &train_cfg, 1)?;
            let count = session.dispatch_count();
            let profiler = Profiler::with_source(gpu, count, cfg.timing);
            source = profiler.describe();
            let params = StepParams { lr: 0.01, bias1: 1.0, bias2: 1.0 };
            for _ in 0..2 {
                session.step(gpu, &loader.next().unwrap()?, params, None)?;
            }
            gpu.wait()?;
            for _ in 0..cfg.steps {
                let t = trace.now();
                let batch = loader.next().unwrap()?;
                trace.host_span("data loading", t);
                session.step(gpu, &batch, params, Some((&profiler, &mut trace)))?;
            }
            gpu.wait()?;
            let start = std::time::Instant::now();
            for _ in 0..cfg.steps {
                session.step(gpu, &loader.next().unwrap()?, params, None)?;
            }
            gpu.wait()?;
            trace.unprofiled_ms = Some(start.elapsed().as_secs_f64() * 1e3 / cfg.steps as f64);
        }
        ProfileMode::Infer | ProfileMode::Packed | ProfileMode::Bitplane => {
            let (input, logits, program) = if packed {
                let packed = match &cfg.model {
                    Some(path) => PackedModel::load(path)?,
                    None => {
                        let c = spec.in_channels;
                        let meta = crate::checkpoint::Meta {
                            spec: spec.clone(),
                            mean: vec![0.0; c],
                            std: vec![1.0; c],
                            classes: vec![],
                        };
                        PackedModel::from_model(gpu, &model, &meta)?
                    }
                };
                let g = packed.graph_with(gpu, cfg.batch_size, cfg.mode == ProfileMode::Bitplane)?;
                (g.input, g.logits, g.forward)
            } else {
                let g = model.graph(gpu, cfg.batch_size, Mode::Eval)?;
                (g.input, g.logits, g.forward)
            };
            let profiler = Profiler::with_source(gpu, program.dispatches.len(), cfg.timing);
            source = profiler.describe();
            for _ in 0..2 {
                gpu.write(&input, &loader.next().unwrap()?.images)?;
                gpu.run(&[&program])?;
            }
            for _ in 0..cfg.steps {
                let t = trace.now();
                let batch = loader.next().unwrap()?;
                trace.host_span("data loading", t);
                let t = trace.now();
                gpu.write(&input, &batch.images)?;
                trace.host_span("upload", t);
                trace.add(profiler.submit(gpu, &[&program], "inference")?);
                let t = trace.now();
                gpu.read(&logits)?;
                trace.host_span("readback", t);
            }
        }
    }
    // The trace file first: it is kept even when stdout is gone before the table is shown.
    if let Some(path) = &cfg.trace {
        trace.write(path)?;
    }
    outln!(
        "{} — kernels: {}; ternary layers: {}",
        gpu.describe(),
        gpu.describe_family(),
        describe_ternary(gpu)
    )?;
    out!("{}", trace.table(source))?;
    if let Some(path) = &cfg.trace {
        outln!("trace: {} ({} GPU events)", path.display(), trace.kernels.len())?;
    }
    Ok(trace)
}

/// What ternary layers' forward convolutions and input gradients read (`--ternary-kernels`).
fn describe_ternary(gpu: &Gpu) -> String {
    let choice = gpu.ternary_kernels();
    let reads = if gpu.trains_on_masks() { "bit masks" } else { "dense f32 weights" };
    format!("{reads} ({})", crate::gpu::Choice::name(choice))
}
