//! Inference fully connected layer from bit-packed ternary or f32 weights
//! (shaders/packed_linear.wgsl: the blocked family; shaders/packed_linear_tiled.wgsl: the tiled
//! family, chosen by `gpu.family()`).

use super::conv2d::tiles;
use super::packed_conv::PackedWeights;
use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Family, Gpu, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    fin: u32,
    fout: u32,
    per_channel: u32,
}

/// y = (x·wᵀ)·scale + shift for x [n, fin] (trailing dims flattened).
pub fn forward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    weights: &PackedWeights,
    scale: &Tensor,
    shift: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let (entry, per_channel) = match weights {
        PackedWeights::Ternary { wp, .. } => ("ternary", wp.numel() > 1),
        PackedWeights::Dense { .. } => ("dense", false),
    };
    let label = format!("{label}/packed_{entry}");
    let n = x.shape()[0];
    let fin = x.numel() / n.max(1);
    let fout = scale.numel();
    expect_shape(&label, shift, &[fout])?;
    expect_shape(&label, y, &[n, fout])?;
    let mut tensors = vec![("x", x), ("scale", scale), ("shift", shift), ("y", y)];
    match weights {
        PackedWeights::Ternary { pos, neg, wp, wn } => {
            expect_shape(&label, pos, &[(fin * fout).div_ceil(32)])?;
            expect_shape(&label, neg, &[(fin * fout).div_ceil(32)])?;
            tensors.extend([("pos", *pos), ("neg", *neg), ("wp", *wp), ("wn", *wn)]);
        }
        PackedWeights::Dense { weight } => {
            expect_shape(&label, weight, &[fout, fin])?;
            tensors.push(("weight", *weight));
        }
    }
    let p = Params {
        n: u32_of(&label, "n", n)?,
        fin: u32_of(&label, "fin", fin)?,
        fout: u32_of(&label, "fout", fout)?,
        per_channel: per_channel as u32,
    };
    let cost = Cost::new(2 * (n * fin * fout) as u64, f32_bytes(n * fin + n * fout + fin * fout / 16));
    let (k, groups) = match gpu.family() {
        Family::Blocked => {
            let k = gpu.kernel(&shaders::PACKED_LINEAR, entry)?;
            let groups = n.div_ceil(k.invocations_per_group() as usize) * fout;
            (k, groups as u64)
        }
        Family::Tiled => {
            let t = gpu.tile(fout, n, fin);
            (gpu.kernel_with(&shaders::PACKED_LINEAR_TILED, entry, &t.constants())?, tiles(&t, fout, n))
        }
    };
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(groups), cost)
}
