//! `tern bench`: the adapter's roofline (copy bandwidth, multiply-add throughput, the best
//! convolution), GFLOP/s of conv2d forward, grad_input and grad_weight on the ResNet-20 layer
//! shapes (CIFAR 32×32), inference and profiler costs, on the current adapter; the conv and
//! infer suites run both kernel families side by side. A benchmark, never a test.

use crate::gpu::{Gpu, Program};
use crate::ops::conv2d::{self, Conv2dGeom};
use crate::roofline::{RESNET20_CONVS, copy_gbs, fma_gflops, gemm_gflops, popcount_gops, time_program};
use anyhow::Result;
use std::time::Instant;

/// `--suite`: which benchmarks `tern bench` runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// ceilings: copy GB/s, multiply-add GFLOP/s, the best convolution's GFLOP/s
    Roofline,
    /// conv2d GFLOP/s on ResNet-20 shapes
    Conv,
    /// packed ternary vs fp32 inference, images/s
    Infer,
    /// cost of profiling a training step
    Profiler,
    /// ternary activations: bit-plane popcount vs float-activation packed kernels
    Bitplane,
    All,
}

/// The benchmarks of `suite`, in order: roofline, conv, infer, bitplane, profiler.
pub fn run(gpu: &Gpu, suite: Suite, batch: usize, reps: usize, arch: crate::nn::Arch) -> Result<()> {
    check_reps(reps)?;
    if batch == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let wants = |s: Suite| suite == s || suite == Suite::All;
    if wants(Suite::Roofline) {
        roofline_bench(gpu, reps)?;
    }
    if wants(Suite::Conv) {
        conv_bench(gpu, batch, reps)?;
    }
    if wants(Suite::Infer) {
        infer_bench(gpu, arch, 3, 32, reps)?;
    }
    if wants(Suite::Bitplane) {
        bitplane_bench(gpu, arch, reps)?;
    }
    if wants(Suite::Profiler) {
        profiler_bench(gpu, 100)?;
    }
    Ok(())
}

/// `--reps` must time at least one run (checked once for every suite).
fn check_reps(reps: usize) -> Result<()> {
    if reps == 0 {
        anyhow::bail!("--reps must be at least 1");
    }
    Ok(())
}

/// `tern bench --suite roofline`: the ceilings in full.
fn roofline_bench(gpu: &Gpu, reps: usize) -> Result<()> {
    outln!("roofline on {} — best of {reps} runs (wall clock incl. submit)", gpu.describe())?;
    let (copy, copy4) = copy_gbs(gpu, 1 << 22, reps)?;
    outln!(
        "copy (16 MiB, read + write)     {copy:>8.2} GB/s one float per invocation, {copy4:.2} GB/s one vec4"
    )?;
    let fma = fma_gflops(gpu, 1 << 14, 2048, reps)?;
    outln!("multiply-add (register chains)  {fma:>8.2} GFLOP/s")?;
    let popc = popcount_gops(gpu, 1 << 14, 2048, reps)?;
    outln!(
        "AND + popcount (32-bit words)   {popc:>8.2} G steps/s = {:.0} G one-bit products/s",
        32.0 * popc
    )?;
    let layers: Vec<usize> = (0..RESNET20_CONVS.len()).collect();
    let (gemm, which) = gemm_gflops(gpu, 32, &layers, reps)?;
    outln!("best convolution (blocked)      {gemm:>8.2} GFLOP/s ({which})")?;
    Ok(())
}

/// GFLOP/s of both kernel families side by side on every ResNet-20 convolution shape.
fn conv_bench(gpu: &Gpu, batch: usize, reps: usize) -> Result<()> {
    if batch == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    use crate::gpu::Family;
    outln!(
        "conv2d on {} — batch {batch}, GFLOP/s, median of {reps} runs (wall clock incl. submit); \
         this adapter's default family: {}",
        gpu.describe(),
        gpu.family().name()
    )?;
    let families = [Family::Blocked, Family::Tiled].map(|f| gpu.with_family(f));
    outln!("{:<22} {:>19} {:>19} {:>19}", "", "forward", "grad_input", "grad_weight")?;
    outln!("{:<22}{}", "layer", format!(" {:>9} {:>9}", "blocked", "tiled").repeat(3))?;
    for &(name, cin, cout, size, stride) in RESNET20_CONVS {
        let g = Conv2dGeom { n: batch, cin, h: size, w: size, cout, kh: 3, kw: 3, stride, pad: 1 };
        let x = gpu.tensor("x", &g.input_shape())?;
        let w = gpu.tensor("w", &g.weight_shape())?;
        let y = gpu.tensor("y", &g.output_shape())?;
        let dx = gpu.tensor("dx", &g.input_shape())?;
        let dw = gpu.tensor("dw", &g.weight_shape())?;
        let gflops = |secs: f64| g.flops() as f64 / secs / 1e9;
        // [pass][family]
        let mut rates = [[0.0; 2]; 3];
        for (f, gpu) in families.iter().enumerate() {
            let fwd = Program { dispatches: vec![conv2d::forward(gpu, name, &g, &x, &w, &y)?] };
            let gi = Program { dispatches: vec![conv2d::grad_input(gpu, name, &g, &y, &w, &dx)?] };
            let gw = conv2d::grad_weight(gpu, name, &g, &x, &y, &dw)?;
            for (pass, program) in [fwd, gi, gw].iter().enumerate() {
                rates[pass][f] = gflops(time_program(gpu, program, reps)?);
            }
        }
        let cells: String = rates.iter().map(|[b, t]| format!(" {b:>9.2} {t:>9.2}")).collect();
        outln!("{name:<22}{cells}")?;
    }
    Ok(())
}

/// Images per second of one forward pass over `batch` images (median of `reps`).
fn images_per_second(gpu: &Gpu, program: &Program, batch: usize, reps: usize) -> Result<f64> {
    Ok(batch as f64 / time_program(gpu, program, reps)?)
}

/// Inference throughput on the adapter's kernel family (`--kernels` picks another): the fp32 path
/// (training graph in eval mode: convolution, batch norm and ReLU kernels), the same fp32 weights
/// through the fused packed kernels, and packed ternary weights, at batch 1, 32 and 128. Wall
/// clock around each run, no timestamps.
fn infer_bench(gpu: &Gpu, arch: crate::nn::Arch, channels: usize, size: usize, reps: usize) -> Result<()> {
    use crate::checkpoint::Meta;
    use crate::nn::{Mode, Model, ModelSpec};
    use crate::packed::PackedModel;
    use crate::quant::QuantKind;
    let spec = |quant| ModelSpec {
        arch,
        in_channels: channels,
        height: size,
        width: size,
        classes: 10,
        quant,
        threshold: crate::quant::DEFAULT_THRESHOLD,
        quantize_ends: false,
        activation: Default::default(),
    };
    let meta = |s: &ModelSpec| Meta {
        spec: s.clone(),
        mean: vec![0.0; channels],
        std: vec![1.0; channels],
        classes: vec![],
    };
    let fp = Model::new(gpu, spec(QuantKind::Fp), 0)?;
    let ttq = Model::new(gpu, spec(QuantKind::Ttq), 0)?;
    let packed_dense = PackedModel::from_model(gpu, &fp, &meta(&fp.spec))?;
    let packed_ternary = PackedModel::from_model(gpu, &ttq, &meta(&ttq.spec))?;
    outln!(
        "inference, {} {channels}x{size}x{size} on {}, {} kernels — images/s, median of {reps} runs (wall clock incl. submit)",
        arch.name(),
        gpu.describe(),
        gpu.family().name()
    )?;
    outln!(
        "{:>6} {:>14} {:>14} {:>16} {:>12}",
        "batch",
        "fp32 graph",
        "fp32 fused",
        "ternary packed",
        "ternary/fp32"
    )?;
    for batch in [1, 32, 128] {
        let graph = fp.graph(gpu, batch, Mode::Eval)?;
        let a = images_per_second(gpu, &graph.forward, batch, reps)?;
        let b = images_per_second(gpu, &packed_dense.graph(gpu, batch)?.forward, batch, reps)?;
        let c = images_per_second(gpu, &packed_ternary.graph(gpu, batch)?.forward, batch, reps)?;
        outln!("{batch:>6} {a:>14.1} {b:>14.1} {c:>16.1} {:>11.2}x", c / a)?;
    }
    Ok(())
}

/// Cost of profiling a training step (small CNN, batch 64, embedded data): mean wall time per
/// step without profiling, with every step timed, and with one step in `PROFILE_EVERY` timed as
/// `tern train --profile` does; then the fixed cost of one small dispatch.
pub fn profiler_bench(gpu: &Gpu, steps: usize) -> Result<()> {
    use crate::data::augment::Augment;
    use crate::data::loader::{Loader, LoaderOptions};
    use crate::nn::{Model, ModelSpec};
    use crate::ops::optim::StepParams;
    use crate::train::{PROFILE_EVERY, Session, TrainConfig};
    use std::sync::Arc;
    let cfg = TrainConfig::default();
    let data = Arc::new(crate::data::embedded::fashion_mnist()?.0);
    let spec = ModelSpec {
        arch: cfg.arch,
        in_channels: 1,
        height: 28,
        width: 28,
        classes: 10,
        quant: cfg.quant,
        threshold: cfg.threshold,
        quantize_ends: false,
        activation: Default::default(),
    };
    let session = Session::new(gpu, Model::new(gpu, spec, 0)?, &cfg, 1)?;
    let profiler = crate::gpu::Profiler::new(gpu, session.dispatch_count());
    let params = StepParams { lr: 0.01, bias1: 1.0, bias2: 1.0 };
    let opts = || LoaderOptions {
        batch: cfg.batch_size,
        drop_last: true,
        augment: Augment::eval(&[0.286], &[0.353]),
        random: None,
        workers: 2,
        prefetch: 4,
    };
    // Every `every` steps profiled (0: none); mean seconds per step, synchronised at the end.
    let run = |every: usize| -> Result<f64> {
        let mut loader = Loader::new(data.clone(), (0..data.len()).collect(), opts());
        session.step(gpu, &loader.next().unwrap()?, params, None)?;
        gpu.wait()?;
        let mut trace = crate::trace::Trace::default();
        let t = Instant::now();
        for i in 0..steps {
            let batch = loader.next().unwrap()?;
            let profiled = every > 0 && i % every == 0;
            session.step(gpu, &batch, params, profiled.then_some((&profiler, &mut trace)))?;
        }
        gpu.wait()?;
        Ok(t.elapsed().as_secs_f64() / steps as f64)
    };
    outln!(
        "profiler overhead, small-cnn batch 64 training step on {} ({}); median of 3 interleaved rounds",
        gpu.describe(),
        profiler.describe()
    )?;
    let configs = [
        (0, "no profiling".to_string()),
        (1, "every step timed".to_string()),
        (PROFILE_EVERY, format!("1 step in {PROFILE_EVERY} (train --profile)")),
    ];
    run(0)?; // warm-up: the first round pays for loader start-up and staging buffers
    let mut times = vec![Vec::new(); configs.len()];
    for _ in 0..3 {
        for (i, (every, _)) in configs.iter().enumerate() {
            times[i].push(run(*every)?);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    for ((_, name), t) in configs.iter().zip(&medians) {
        outln!("{name:<34} {:>10.2} ms/step  {:+.1}%", t * 1e3, 100.0 * (t / medians[0] - 1.0))?;
    }
    // What a dispatch costs whatever it does (profiled or not): many one-workgroup reductions of
    // a small tensor in one program, per dispatch.
    const DISPATCHES: usize = 200;
    let (src, max) = (gpu.tensor("bench.small", &[4096])?, gpu.tensor("bench.max", &[1])?);
    let mut program = Program::default();
    for _ in 0..DISPATCHES {
        program.extend_from(crate::ops::reduce::max_abs(gpu, "bench", &src, &max)?);
    }
    let per = time_program(gpu, &program, 5)? / DISPATCHES as f64;
    outln!(
        "{:<34} {:>10.1} us per dispatch ({DISPATCHES} in one program: max|x| of 4096 values)",
        "a small dispatch",
        per * 1e6
    )?;
    Ok(())
}

/// STTN's ResNet with ternary activations, packed: activations as floats through the `ternary`
/// kernel vs bit-planes through the popcount `bitplane` kernel, images/s at batch 1, 4, 32 and 128.
fn bitplane_bench(gpu: &Gpu, arch: crate::nn::Arch, reps: usize) -> Result<()> {
    use crate::checkpoint::Meta;
    use crate::nn::{Activation, Model, ModelSpec};
    use crate::packed::PackedModel;
    use crate::quant::QuantKind;
    let spec = ModelSpec {
        arch,
        in_channels: 3,
        height: 32,
        width: 32,
        classes: 10,
        quant: QuantKind::Sttn,
        threshold: crate::quant::DEFAULT_THRESHOLD,
        quantize_ends: false,
        activation: Activation::Ternary,
    };
    let model = Model::new(gpu, spec.clone(), 0)?;
    let meta = Meta { spec, mean: vec![0.0; 3], std: vec![1.0; 3], classes: vec![] };
    let packed = PackedModel::from_model(gpu, &model, &meta)?;
    outln!(
        "ternary activations, {} STTN 3x32x32 on {} — images/s, median of {reps} runs",
        arch.name(),
        gpu.describe()
    )?;
    outln!("{:>6} {:>18} {:>18} {:>10}", "batch", "float activations", "bit-planes", "ratio")?;
    for batch in [1, 4, 32, 128] {
        let float = images_per_second(gpu, &packed.graph_with(gpu, batch, false)?.forward, batch, reps)?;
        let bits = images_per_second(gpu, &packed.graph_with(gpu, batch, true)?.forward, batch, reps)?;
        outln!("{batch:>6} {float:>18.1} {bits:>18.1} {:>9.2}x", bits / float)?;
    }
    Ok(())
}
