//! Deterministic reductions (shaders/reduce.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Family, Gpu, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    splits: u32,
}

/// `total[i] = Σ_s partial[s, i]`, in split order.
pub fn sum_splits(gpu: &Gpu, label: &str, partial: &Tensor, total: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/sum_splits");
    let splits = partial.shape()[0];
    expect_shape(&label, partial, &[splits, total.numel()])?;
    let params = Params { len: u32_of(&label, "len", total.numel())?, splits: splits as u32 };
    let cost = Cost::new(partial.numel() as u64, f32_bytes(partial.numel() + total.numel()));
    // Four elements per invocation where the rows split into vec4s.
    let (entry, names, threads) = match total.numel().is_multiple_of(4) {
        true => ("sum_splits_vec", ["partial_vec", "total_vec"], total.numel() / 4),
        false => ("sum_splits", ["partial", "total"], total.numel()),
    };
    let k = gpu.kernel(&shaders::REDUCE, entry)?;
    let tensors = [(names[0], partial), (names[1], total)];
    Dispatch::new(gpu, &k, label, &params, &tensors, Grid::Threads(threads as u64), cost)
}

/// Values per workgroup below which a per-layer reduction runs as one workgroup in the tiled
/// family too.
const RANGE: usize = 4096;

/// How many contiguous ranges a per-layer reduction over `len` values (max|w|, the quantizers'
/// statistics and scale gradients) is split into, one workgroup each, before a second kernel
/// combines them in order: 1 in the blocked family (a CPU driver runs one workgroup per core
/// anyway), in the tiled family one per `RANGE` values, at most 256.
pub fn ranges(gpu: &Gpu, len: usize) -> usize {
    match gpu.family() {
        Family::Blocked => 1,
        Family::Tiled => len.div_ceil(RANGE).clamp(1, 256),
    }
}

/// `result[0] = max |src|`: by one workgroup, or (see `ranges`) one per range, then one over
/// their maxima.
pub fn max_abs(gpu: &Gpu, label: &str, src: &Tensor, result: &Tensor) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/max_abs");
    expect_shape(&label, result, &[1])?;
    let len = u32_of(&label, "len", src.numel())?;
    let cost = Cost::new(src.numel() as u64, f32_bytes(src.numel() + 1));
    let splits = ranges(gpu, src.numel());
    let k = gpu.kernel(&shaders::REDUCE, "max_abs")?;
    if splits <= 1 {
        let params = Params { len, splits: 1 };
        // Four values per load where src splits into vec4s (the maximum is the same).
        let (k, src_name) = match src.numel().is_multiple_of(4) {
            true => (gpu.kernel(&shaders::REDUCE, "max_abs_vec")?, "src_vec"),
            false => (k, "src"),
        };
        let tensors = [(src_name, src), ("result", result)];
        return Ok(vec![Dispatch::new(gpu, &k, label, &params, &tensors, Grid::Groups(1), cost)?]);
    }
    let maxima = gpu.tensor(&format!("{label}.maxima"), &[splits])?;
    let split = gpu.kernel(&shaders::REDUCE, "max_abs_split")?;
    let params = Params { len, splits: splits as u32 };
    let tensors = [("src", src), ("maxima", &maxima)];
    let first = Dispatch::new(
        gpu,
        &split,
        format!("{label}_split"),
        &params,
        &tensors,
        Grid::Groups(splits as u64),
        cost,
    )?;
    let params = Params { len: splits as u32, splits: 1 };
    let cost = Cost::new(splits as u64, f32_bytes(splits + 1));
    let tensors = [("src", &maxima), ("result", result)];
    let second = Dispatch::new(gpu, &k, label, &params, &tensors, Grid::Groups(1), cost)?;
    Ok(vec![first, second])
}
