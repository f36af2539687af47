//! Deterministic reductions (shaders/reduce.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    splits: u32,
}

/// total[i] = Σ_s partial[s, i], in split order.
pub fn sum_splits(gpu: &Gpu, label: &str, partial: &Tensor, total: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/sum_splits");
    let splits = partial.shape()[0];
    expect_shape(&label, partial, &[splits, total.numel()])?;
    let k = gpu.kernel(&shaders::REDUCE, "sum_splits")?;
    let params = Params { len: u32_of(&label, "len", total.numel())?, splits: splits as u32 };
    let cost = Cost { flops: partial.numel() as u64, bytes: f32_bytes(partial.numel() + total.numel()) };
    Dispatch::new(
        gpu,
        &k,
        label,
        &params,
        &[("partial", partial), ("total", total)],
        Grid::Threads(total.numel() as u64),
        cost,
    )
}

/// result[0] = max |src|, by one workgroup.
pub fn max_abs(gpu: &Gpu, label: &str, src: &Tensor, result: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/max_abs");
    expect_shape(&label, result, &[1])?;
    let k = gpu.kernel(&shaders::REDUCE, "max_abs")?;
    let params = Params { len: u32_of(&label, "len", src.numel())?, splits: 1 };
    let cost = Cost { flops: src.numel() as u64, bytes: f32_bytes(src.numel() + 1) };
    Dispatch::new(gpu, &k, label, &params, &[("src", src), ("result", result)], Grid::Groups(1), cost)
}
