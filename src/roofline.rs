//! The adapter's ceilings, measured: copy bandwidth, multiply-add throughput and the best
//! convolution. `tern bench --suite roofline` prints them in full and `tern profile` measures them
//! briefly to show each kernel's fraction of each; both stand on this module, not on each other.

use crate::gpu::{Cost, Dispatch, Gpu, Grid, Program, shaders};
use crate::ops::conv2d::{self, Conv2dGeom};
use crate::trace::Ceilings;
use anyhow::Result;
use std::time::Instant;

/// (name, cin, cout, input size, stride) of each distinct ResNet-20 convolution.
pub const RESNET20_CONVS: &[(&str, usize, usize, usize, usize)] = &[
    ("conv1 3→16 @32", 3, 16, 32, 1),
    ("layer1 16→16 @32", 16, 16, 32, 1),
    ("layer2.0 16→32 /2", 16, 32, 32, 2),
    ("layer2 32→32 @16", 32, 32, 16, 1),
    ("layer3.0 32→64 /2", 32, 64, 16, 2),
    ("layer3 64→64 @8", 64, 64, 8, 1),
];

/// How long `time_program` runs a program untimed first: a millisecond-long program's first
/// runs are slower (the driver's threads waking), which a median of a few runs does not hide.
const WARM_UP: std::time::Duration = std::time::Duration::from_millis(250);

/// Median seconds per run of `program` over `reps` timed runs after `WARM_UP` (at least one run).
pub fn time_program(gpu: &Gpu, program: &Program, reps: usize) -> Result<f64> {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        gpu.run(&[program])?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        gpu.run(&[program])?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Seconds of the fastest of `reps` runs of `program` after one warm-up: the ceilings are the
/// best the adapter does, so the least disturbed run counts.
pub fn best_seconds(gpu: &Gpu, program: &Program, reps: usize) -> Result<f64> {
    gpu.run(&[program])?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        gpu.run(&[program])?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RooflineParams {
    len: u32,
    iters: u32,
}

/// Copy bandwidth (read + write, GB/s) of `elements` floats: (one per invocation, one vec4 per
/// invocation).
pub fn copy_gbs(gpu: &Gpu, elements: usize, reps: usize) -> Result<(f64, f64)> {
    let src = gpu.tensor("roofline.src", &[elements])?;
    let dst = gpu.tensor("roofline.dst", &[elements])?;
    let p = RooflineParams { len: elements as u32, iters: 0 };
    let bytes = 8 * elements as u64;
    let cost = Cost::new(0, bytes);
    let mut rates = [0.0; 2];
    for (i, (entry, src_name, dst_name, threads)) in
        [("copy", "src", "dst", elements), ("copy4", "src4", "dst4", elements / 4)].into_iter().enumerate()
    {
        let k = gpu.kernel(&shaders::ROOFLINE, entry)?;
        let tensors = [(src_name, &src), (dst_name, &dst)];
        let d = Dispatch::new(
            gpu,
            &k,
            format!("roofline/{entry}"),
            &p,
            &tensors,
            Grid::Threads(threads as u64),
            cost,
        )?;
        rates[i] = bytes as f64 / best_seconds(gpu, &Program { dispatches: vec![d] }, reps)? / 1e9;
    }
    Ok((rates[0], rates[1]))
}

/// Multiply-add throughput (GFLOP/s): `invocations` running `iters` iterations of 48 FMAs.
pub fn fma_gflops(gpu: &Gpu, invocations: usize, iters: u32, reps: usize) -> Result<f64> {
    let flops = invocations as u64 * 96 * iters as u64;
    loop_rate(gpu, "multiply_add", invocations, iters, Cost::new(flops, 4 * invocations as u64), flops, reps)
}

/// AND + popcount throughput (G steps/s, each on a 32-bit word: 32 one-bit products):
/// `invocations` running `iters` iterations of 32 steps.
pub fn popcount_gops(gpu: &Gpu, invocations: usize, iters: u32, reps: usize) -> Result<f64> {
    let steps = invocations as u64 * 32 * iters as u64;
    let cost = Cost { popcounts: steps, ..Cost::new(0, 4 * invocations as u64) };
    loop_rate(gpu, "and_popcount", invocations, iters, cost, steps, reps)
}

/// `work` / 1e9 per second of the register loop `entry` run by `invocations` for `iters`
/// iterations, the best of `reps` runs.
fn loop_rate(
    gpu: &Gpu,
    entry: &str,
    invocations: usize,
    iters: u32,
    cost: Cost,
    work: u64,
    reps: usize,
) -> Result<f64> {
    let dst = gpu.tensor("roofline.dst", &[invocations])?;
    let k = gpu.kernel(&shaders::ROOFLINE, entry)?;
    let p = RooflineParams { len: invocations as u32, iters };
    let grid = Grid::Threads(invocations as u64);
    let d = Dispatch::new(gpu, &k, format!("roofline/{entry}"), &p, &[("dst", &dst)], grid, cost)?;
    Ok(work as f64 / best_seconds(gpu, &Program { dispatches: vec![d] }, reps)? / 1e9)
}

/// The blocked family's best convolution pass (GFLOP/s) over `layers` of `RESNET20_CONVS` at
/// batch `batch`, and its name.
pub fn gemm_gflops(gpu: &Gpu, batch: usize, layers: &[usize], reps: usize) -> Result<(f64, String)> {
    let mut best = (0.0, String::new());
    for &l in layers {
        let (name, cin, cout, size, stride) = RESNET20_CONVS[l];
        let g = Conv2dGeom { n: batch, cin, h: size, w: size, cout, kh: 3, kw: 3, stride, pad: 1 };
        let x = gpu.tensor("x", &g.input_shape())?;
        let w = gpu.tensor("w", &g.weight_shape())?;
        let y = gpu.tensor("y", &g.output_shape())?;
        let dx = gpu.tensor("dx", &g.input_shape())?;
        let dw = gpu.tensor("dw", &g.weight_shape())?;
        let passes = [
            ("forward", Program { dispatches: vec![conv2d::forward(gpu, name, &g, &x, &w, &y)?] }),
            ("grad_input", Program { dispatches: vec![conv2d::grad_input(gpu, name, &g, &y, &w, &dx)?] }),
            ("grad_weight", conv2d::grad_weight(gpu, name, &g, &x, &y, &dw)?),
        ];
        for (pass, program) in passes {
            let rate = g.flops() as f64 / best_seconds(gpu, &program, reps)? / 1e9;
            if rate > best.0 {
                best = (rate, format!("{name} {pass}, batch {batch}"));
            }
        }
    }
    Ok(best)
}

/// The ceilings `tern profile` reports fractions of, measured briefly (a second or two on
/// llvmpipe): copy, multiply-add and AND + popcount at a quarter of the benchmark's size, the
/// convolution on ResNet-20's 64-channel layer.
pub fn ceilings(gpu: &Gpu) -> Result<Ceilings> {
    let (copy, copy4) = copy_gbs(gpu, 1 << 20, 2)?;
    let fma_gflops = fma_gflops(gpu, 1 << 14, 256, 2)?;
    let popcount_gops = popcount_gops(gpu, 1 << 14, 256, 2)?;
    let (gemm_gflops, gemm) = gemm_gflops(gpu, 16, &[5], 2)?;
    Ok(Ceilings { copy_gbs: copy.max(copy4), fma_gflops, popcount_gops, gemm_gflops, gemm })
}
