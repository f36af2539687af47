//! The profiler: one trace event per dispatch with positive durations, per-kernel totals that
//! match the table, every mode, and `tern train --profile`.

mod common;

use common::*;
use tern::internals::gpu::profiler::aggregate;
use tern::internals::nn::{Arch, Mode, Model, ModelSpec};
use tern::internals::profile::{ProfileConfig, ProfileMode, profile};
use tern::internals::quant::QuantKind;

fn config(mode: ProfileMode, trace: Option<std::path::PathBuf>) -> ProfileConfig {
    ProfileConfig {
        model: None,
        arch: Arch::SmallCnn,
        quant: QuantKind::Ttq,
        batch_size: 16,
        steps: 2,
        mode,
        trace,
        channels: 1,
        size: 28,
        timing: None,
    }
}

/// The small CNN with TTQ on 28×28 grey images: what `config` profiles and `tern train` trains
/// by default.
fn small_cnn_ttq() -> ModelSpec {
    ModelSpec {
        arch: Arch::SmallCnn,
        in_channels: 1,
        height: 28,
        width: 28,
        classes: 10,
        quant: QuantKind::Ttq,
        threshold: tern::internals::quant::DEFAULT_THRESHOLD,
        quantize_ends: false,
        activation: Default::default(),
    }
}

#[test]
fn trace_has_one_event_per_dispatch_consistent_with_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("trace.json");
    let trace = profile(gpu(), &config(ProfileMode::Train, Some(path.clone()))).unwrap();
    // Dispatches of one training step: forward, backward, optimizer.
    let graph = Model::new(gpu(), small_cnn_ttq(), 0).unwrap().graph(gpu(), 16, Mode::Train).unwrap();
    let per_step = graph.forward.dispatches.len() + graph.backward.dispatches.len() + 1;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let gpu_events: Vec<_> = events.iter().filter(|e| e["cat"] == "gpu").collect();
    assert_eq!(gpu_events.len(), 2 * per_step);
    assert_eq!(trace.kernels.len(), 2 * per_step);
    for e in &gpu_events {
        assert_eq!(e["ph"], "X");
        assert!(e["dur"].as_f64().unwrap() > 0.0, "non-positive duration: {e}");
        assert!(e["ts"].as_f64().unwrap() >= 0.0);
        assert!(e["args"]["layer"].as_str().unwrap().contains('/'), "unlabelled dispatch: {e}");
    }
    for phase in ["data loading", "upload", "encode", "submit"] {
        assert!(events.iter().any(|e| e["cat"] == "host" && e["name"] == phase), "no host span '{phase}'");
    }
    // Every (kernel, layer) total of the table equals the sum of its trace events.
    let table = aggregate(&trace.kernels);
    for row in &table {
        let sum: f64 = gpu_events
            .iter()
            .filter(|e| {
                let label = e["args"]["layer"].as_str().unwrap();
                e["name"] == row.kernel.as_str()
                    && label.rsplit_once('/').is_some_and(|(l, _)| l == row.layer)
            })
            .map(|e| e["dur"].as_f64().unwrap())
            .sum();
        assert!(
            (sum - row.total_us).abs() <= 1e-6 * row.total_us.max(1.0),
            "{} {}: {sum} vs {}",
            row.kernel,
            row.layer,
            row.total_us
        );
    }
    let total: f64 = table.iter().map(|r| r.total_us).sum();
    assert!((total - trace.gpu_busy_us()).abs() < 1e-6 * total);
    // As many steps again without timestamps, timed by the wall clock.
    let unprofiled = trace.unprofiled_ms.expect("training times unprofiled steps");
    assert!(unprofiled > 0.0 && unprofiled.is_finite(), "{unprofiled}");
    assert!(table.windows(2).all(|w| w[0].total_us >= w[1].total_us), "table not sorted by total time");
}

#[test]
fn inference_modes_are_profiled() {
    for mode in [ProfileMode::Infer, ProfileMode::Packed] {
        let trace = profile(gpu(), &config(mode, None)).unwrap();
        assert_eq!(trace.steps, 2);
        assert!(!trace.kernels.is_empty());
        let prefix = if mode == ProfileMode::Packed { "packed_conv" } else { "conv2d" };
        assert!(trace.kernels.iter().any(|t| t.kernel.starts_with(prefix)), "{mode:?}");
    }
}

/// The bit-plane mode runs the popcount kernel, counts its AND + popcount steps and shows them
/// as a fraction of that ceiling; kernels without popcounts show none.
#[test]
fn bitplane_mode_reports_the_popcount_ceiling_fraction() {
    let cfg = ProfileConfig {
        arch: Arch::Resnet20,
        quant: QuantKind::Sttn,
        batch_size: 4,
        channels: 3,
        size: 16,
        ..config(ProfileMode::Bitplane, None)
    };
    let trace = profile(gpu(), &cfg).unwrap();
    let ceilings = trace.ceilings.as_ref().unwrap();
    assert!(ceilings.popcount_gops > 0.0, "{ceilings:?}");
    let popc = |t: &&tern::internals::gpu::Timing| t.popcounts > 0;
    // packed_conv/bitplane, or bitplane_lanes/bitplane on adapters with 8-lane subgroups.
    let is_bitplane = |kernel: &str| kernel.ends_with("/bitplane");
    let bitplane: Vec<_> = trace.kernels.iter().filter(|t| is_bitplane(&t.kernel)).collect();
    assert_eq!(bitplane.len(), 2 * 18, "ResNet-20's 18 units, 2 steps");
    assert!(bitplane.iter().all(popc));
    assert!(trace.kernels.iter().filter(popc).all(|t| is_bitplane(&t.kernel)));
    let table = trace.table("test");
    let header = table.lines().find(|l| l.starts_with("kernel")).unwrap();
    assert!(header.ends_with("%popc"), "{header}");
    let whole = table.lines().last().unwrap();
    assert!(whole.starts_with("whole step: ") && whole.ends_with("% of the multiply-add ceiling"), "{whole}");
    for line in table.lines().filter(|l| l.starts_with("packed_conv/") || l.starts_with("bitplane_lanes/")) {
        let last = line.split_whitespace().last().unwrap();
        match is_bitplane(line.split_whitespace().next().unwrap()) {
            true => assert!(last.parse::<f64>().unwrap() > 0.0, "{line}"),
            false => assert_eq!(last, "-", "{line}"),
        }
    }
}

#[test]
fn train_with_profile_writes_a_trace_of_sampled_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 1600, 64);
    let out = tmp.path().join("run");
    let cfg = train_config(&[
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--fp-epochs",
        "0",
        "--batch-size",
        "16",
        "--profile",
    ]);
    tern::internals::train::train(gpu(), &cfg, None, None).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("profile.json")).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    // 1600 images in batches of 16: 100 steps, one in PROFILE_EVERY (50) timed, so 2 steps, each
    // with every dispatch of the training step: forward, backward and the optimizer.
    assert_eq!(tern::internals::train::PROFILE_EVERY, 50);
    let timed = 100 / tern::internals::train::PROFILE_EVERY;
    let loads = events.iter().filter(|e| e["cat"] == "host" && e["name"] == "data loading").count();
    assert_eq!(loads, timed, "timed steps");
    let graph = Model::new(gpu(), small_cnn_ttq(), 0).unwrap().graph(gpu(), 16, Mode::Train).unwrap();
    let per_step = graph.forward.dispatches.len() + graph.backward.dispatches.len() + 1;
    let gpu_events = events.iter().filter(|e| e["cat"] == "gpu").count();
    assert_eq!(gpu_events, timed * per_step, "{timed} steps of {per_step} dispatches");
}

#[test]
fn every_timing_source_gives_one_timing_per_dispatch() {
    use tern::internals::gpu::profiler::TimingSource;
    for source in [TimingSource::InsidePasses, TimingSource::PerPass, TimingSource::CpuSync] {
        for mode in [ProfileMode::Train, ProfileMode::Packed] {
            let cfg = ProfileConfig { timing: Some(source), ..config(mode, None) };
            let trace = profile(gpu(), &cfg).unwrap();
            let per_step = trace.kernels.len() / 2;
            assert!(per_step >= 7 && trace.kernels.len() == 2 * per_step, "{source:?} {mode:?}");
            assert!(trace.kernels.iter().all(|t| t.duration_us > 0.0), "{source:?} {mode:?}");
        }
    }
}
