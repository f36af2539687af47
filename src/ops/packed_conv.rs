//! Inference convolution from bit-packed ternary or f32 weights with fused folded batch norm,
//! residual and ReLU (shaders/packed_conv.wgsl).

use super::conv2d::Conv2dGeom;
use super::{expect_shape, f32_bytes};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Grid, Result, Tensor, shaders};

/// The weights of a packed layer on the GPU.
pub enum PackedWeights<'a> {
    Ternary { pos: &'a Tensor, neg: &'a Tensor, wp: &'a Tensor, wn: &'a Tensor },
    Dense { weight: &'a Tensor },
}

/// What follows the accumulation: v·scale + shift (+ residual) (ReLU).
pub struct Epilogue<'a> {
    pub scale: &'a Tensor,
    pub shift: &'a Tensor,
    pub relu: bool,
    /// Residual input and its subsampling stride (option-A shortcut when channels differ).
    pub residual: Option<(&'a Tensor, usize)>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    per_channel: u32,
    relu: u32,
    residual: u32,
    res_c: u32,
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    res_pad_c: u32,
}

pub fn forward(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    weights: &PackedWeights,
    e: &Epilogue,
    y: &Tensor,
) -> Result<Dispatch> {
    let (entry, per_channel) = match weights {
        PackedWeights::Ternary { wp, .. } => ("ternary", wp.numel() > 1),
        PackedWeights::Dense { .. } => ("dense", false),
    };
    let label = format!("{label}/packed_{entry}");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    expect_shape(&label, y, &g.output_shape())?;
    expect_shape(&label, e.scale, &[g.cout])?;
    expect_shape(&label, e.shift, &[g.cout])?;
    let u = |v: usize| v as u32;
    let (res, res_stride) = e.residual.unwrap_or((x, 1));
    let rs = res.shape();
    if e.residual.is_some() && (rs[0] != g.n || rs[1] > g.cout || !(g.cout - rs[1]).is_multiple_of(2)) {
        let what = format!("residual {:?} cannot be added to output {:?}", rs, g.output_shape());
        return Err(GpuError::Invalid { label, what });
    }
    let p = Params {
        n: u(g.n),
        cin: u(g.cin),
        h: u(g.h),
        w: u(g.w),
        cout: u(g.cout),
        oh: u(g.oh()),
        ow: u(g.ow()),
        kh: u(g.kh),
        kw: u(g.kw),
        stride: u(g.stride),
        pad: u(g.pad),
        per_channel: per_channel as u32,
        relu: e.relu as u32,
        residual: e.residual.is_some() as u32,
        res_c: u(rs[1]),
        res_h: u(rs[2]),
        res_w: u(rs[3]),
        res_stride: u(res_stride),
        res_pad_c: u(g.cout.saturating_sub(rs[1]) / 2),
    };
    let mut tensors = vec![("x", x), ("scale", e.scale), ("shift", e.shift), ("res", res), ("y", y)];
    let weight_bytes = match weights {
        PackedWeights::Ternary { pos, neg, wp, wn } => {
            let words = (g.cout * g.cin * g.kh * g.kw).div_ceil(32);
            expect_shape(&label, pos, &[words])?;
            expect_shape(&label, neg, &[words])?;
            for s in [wp, wn] {
                if s.numel() != 1 && s.numel() != g.cout {
                    return Err(GpuError::Invalid {
                        label,
                        what: format!("scale '{}' must have 1 or {} values", s.name(), g.cout),
                    });
                }
            }
            tensors.extend([("pos", *pos), ("neg", *neg), ("wp", *wp), ("wn", *wn)]);
            8 * words as u64
        }
        PackedWeights::Dense { weight } => {
            expect_shape(&label, weight, &g.weight_shape())?;
            tensors.push(("weight", *weight));
            4 * weight.numel() as u64
        }
    };
    let k = gpu.kernel(&shaders::PACKED_CONV, entry)?;
    let threads = (g.n * g.oh() * g.ow()).div_ceil(4) as u64 * g.cout.div_ceil(4) as u64;
    let cost = Cost { flops: g.flops(), bytes: f32_bytes(x.numel() + y.numel()) + weight_bytes };
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(threads), cost)
}
