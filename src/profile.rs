//! `tern profile`: per-kernel GPU times of a training or inference step, with achieved GFLOP/s
//! and GB/s from each kernel's declared cost.

use crate::gpu::profiler::{self, KernelStat, Timing};
use crate::gpu::{Gpu, Profiler};
use crate::nn::{Arch, Mode, Model, ModelSpec};
use crate::quant::QuantKind;
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileMode {
    /// forward + backward + optimizer
    Train,
    /// the training graph in eval mode
    Infer,
    /// the packed inference kernels
    Packed,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ProfileConfig {
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub arch: Arch,
    #[arg(long, value_enum, default_value = "ttq")]
    pub quant: QuantKind,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Profiled steps (after one warm-up step)
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, value_enum, default_value = "train")]
    pub mode: ProfileMode,
    /// Input channels and size of the synthetic batch
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    #[arg(long, default_value_t = 28)]
    pub size: usize,
}

pub fn profile(gpu: &Gpu, cfg: &ProfileConfig) -> Result<Vec<KernelStat>> {
    let spec = ModelSpec {
        arch: cfg.arch,
        in_channels: cfg.channels,
        height: cfg.size,
        width: cfg.size,
        classes: 10,
        quant: cfg.quant,
        threshold: 0.05,
        quantize_ends: false,
    };
    let model = Model::new(gpu, spec, 0)?;
    let mode = if cfg.mode == ProfileMode::Train { Mode::Train } else { Mode::Eval };
    let graph = model.graph(gpu, cfg.batch_size, mode)?;
    let packed_graph = match cfg.mode {
        ProfileMode::Packed => {
            let c = model.spec.in_channels;
            let meta = crate::checkpoint::Meta {
                spec: model.spec.clone(),
                mean: vec![0.0; c],
                std: vec![1.0; c],
                classes: vec![],
            };
            Some(crate::nn::packed::PackedModel::from_model(gpu, &model, &meta)?.graph(gpu, cfg.batch_size)?)
        }
        _ => None,
    };
    let programs = match &packed_graph {
        Some(p) => vec![&p.forward],
        None => vec![&graph.forward, &graph.backward],
    };
    let profiler = Profiler::new(gpu, programs.iter().map(|p| p.dispatches.len()).sum());
    profiler.run(gpu, &programs)?;
    let mut all: Vec<Timing> = Vec::new();
    for _ in 0..cfg.steps {
        all.extend(profiler.run(gpu, &programs)?);
    }
    let stats = profiler::aggregate(&all);
    let step_us: f64 = stats.iter().map(|s| s.total_us).sum::<f64>() / cfg.steps.max(1) as f64;
    println!(
        "{} — {}, batch {}, {} steps ({})",
        gpu.describe(),
        cfg.arch.name(),
        cfg.batch_size,
        cfg.steps,
        profiler.describe()
    );
    println!(
        "{:<28} {:<22} {:>6} {:>10} {:>9} {:>6} {:>8} {:>8}",
        "kernel", "layer", "calls", "total ms", "mean us", "%", "GFLOP/s", "GB/s"
    );
    for s in &stats {
        let secs = s.total_us / 1e6;
        println!(
            "{:<28} {:<22} {:>6} {:>10.3} {:>9.1} {:>6.1} {:>8.2} {:>8.2}",
            s.kernel,
            s.layer,
            s.calls,
            s.total_us / 1e3,
            s.total_us / s.calls as f64,
            100.0 * s.total_us / (step_us * cfg.steps as f64),
            s.flops as f64 / secs / 1e9,
            s.bytes as f64 / secs / 1e9
        );
    }
    println!("GPU time per step: {:.3} ms", step_us / 1e3);
    Ok(stats)
}
