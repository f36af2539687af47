//! Inference convolution from bit-packed ternary or f32 weights with fused folded batch norm,
//! residual and ReLU (shaders/packed_conv.wgsl: the blocked family and the element-wise
//! activation kernels; shaders/packed_conv_tiled.wgsl: the tiled family's convolutions, chosen by
//! `gpu.family()`).

use super::conv2d::{Conv2dGeom, Conv2dShape, tiles};
use super::{expect_shape, f32_bytes};
use crate::gpu::{Cost, Dispatch, Family, Gpu, GpuError, Grid, Result, Tensor, shaders};

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
    /// Add the result to what `y` holds (before the ReLU): training's input gradients.
    pub accumulate: bool,
}

/// The epilogue reduced to the identity (scale 1, shift 0) for `channels` outputs: training on
/// masks, where batch norm is a layer of its own.
pub struct Identity {
    scale: Tensor,
    shift: Tensor,
}

impl Identity {
    pub fn new(gpu: &Gpu, label: &str, channels: usize) -> Result<Identity> {
        Ok(Identity {
            scale: gpu.tensor_from(&format!("{label}.ones"), &[channels], &vec![1.0; channels])?,
            shift: gpu.tensor_from(&format!("{label}.zeros"), &[channels], &vec![0.0; channels])?,
        })
    }

    pub fn epilogue(&self, accumulate: bool) -> Epilogue<'_> {
        Epilogue { scale: &self.scale, shift: &self.shift, relu: false, residual: None, accumulate }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    shape: Conv2dShape,
    per_channel: u32,
    relu: u32,
    residual: u32,
    res_c: u32,
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    res_pad_c: u32,
    words: u32,
    accumulate: u32,
    pad: [u32; 3],
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
    launch(gpu, label, g, x, None, weights, e, y)
}

/// Output channels per workgroup of the blocked `bitplane` kernel; weight planes have their rows
/// padded to a multiple of it (`packed::weight_planes`).
pub const PLANE_ROWS: usize = 8;

/// The activation planes' shape for convolution `g`: [(h + 2·pad)·(w + 2·pad), ⌈cin/32⌉, n
/// rounded up to 4], images innermost; the border (the convolution's zero padding) and the
/// images past n are written as zeros by `pack_activations`.
pub fn activation_planes(g: &Conv2dGeom) -> [usize; 3] {
    [(g.h + 2 * g.pad) * (g.w + 2 * g.pad), g.cin.div_ceil(32), g.n.next_multiple_of(4)]
}

/// A tensor's shape with the images innermost: [n, c, h, w] → [c, h, w, n rounded up to 4], the
/// layout of the bit-plane units' inputs, residuals and outputs (one vec4 per 4 images).
pub fn interleaved(nchw: [usize; 4]) -> [usize; 4] {
    let [n, c, h, w] = nchw;
    [c, h, w, n.next_multiple_of(4)]
}

/// The convolution of ternary activations given as bit-planes (from `pack_activations` of `x`,
/// which is still bound, for shapes, the residual default and the dispatch's bookkeeping), with
/// `weights`' masks as weight planes (`packed::weight_planes`). `x`, `y` and the residual are
/// `interleaved`.
pub fn forward_bitplanes(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    planes: (&Tensor, &Tensor),
    weights: &PackedWeights,
    e: &Epilogue,
    y: &Tensor,
) -> Result<Dispatch> {
    launch(gpu, label, g, x, Some(planes), weights, e, y)
}

fn launch(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    planes: Option<(&Tensor, &Tensor)>,
    weights: &PackedWeights,
    e: &Epilogue,
    y: &Tensor,
) -> Result<Dispatch> {
    let (entry, per_channel) = match (weights, planes) {
        (PackedWeights::Ternary { wp, .. }, None) => ("ternary", wp.numel() > 1),
        (PackedWeights::Ternary { wp, .. }, Some(_)) => ("bitplane", wp.numel() > 1),
        (PackedWeights::Dense { .. }, None) => ("dense", false),
        (PackedWeights::Dense { .. }, Some(_)) => {
            let what = "bit-plane activations need ternary weights".to_string();
            return Err(GpuError::Invalid { label: label.into(), what });
        }
    };
    let label = format!("{label}/packed_{entry}");
    g.validate(&label)?;
    let layout = |nchw: [usize; 4]| if planes.is_some() { interleaved(nchw).to_vec() } else { nchw.to_vec() };
    expect_shape(&label, x, &layout(g.input_shape()))?;
    expect_shape(&label, y, &layout(g.output_shape()))?;
    expect_shape(&label, e.scale, &[g.cout])?;
    expect_shape(&label, e.shift, &[g.cout])?;
    let u = |v: usize| v as u32;
    let (res, res_stride) = e.residual.unwrap_or((x, 1));
    // The residual's [n, c, h, w] (n rounded up to 4 when interleaved).
    let rs = match (planes, res.shape()) {
        (Some(_), &[c, h, w, n4]) => [n4, c, h, w],
        (None, &[n, c, h, w]) => [n, c, h, w],
        (_, other) => {
            let what = format!("residual {other:?} is not 4-D");
            return Err(GpuError::Invalid { label, what });
        }
    };
    let batch = if planes.is_some() { g.n.next_multiple_of(4) } else { g.n };
    if e.residual.is_some() && (rs[0] != batch || rs[1] > g.cout || !(g.cout - rs[1]).is_multiple_of(2)) {
        let what = format!("residual {:?} cannot be added to output {:?}", rs, g.output_shape());
        return Err(GpuError::Invalid { label, what });
    }
    let p = Params {
        shape: g.shape(),
        per_channel: per_channel as u32,
        relu: e.relu as u32,
        residual: e.residual.is_some() as u32,
        res_c: u(rs[1]),
        res_h: u(rs[2]),
        res_w: u(rs[3]),
        res_stride: u(res_stride),
        res_pad_c: u(g.cout.saturating_sub(rs[1]) / 2),
        words: u(g.cin.div_ceil(32)),
        accumulate: e.accumulate as u32,
        pad: [0; 3],
    };
    let mut tensors = vec![("scale", e.scale), ("shift", e.shift), ("res", res), ("y", y)];
    match planes {
        Some((pos, neg)) => {
            expect_shape(&label, pos, &activation_planes(g))?;
            expect_shape(&label, neg, &activation_planes(g))?;
            if g.cin * g.kh * g.kw >= 1 << 15 {
                let what = format!("{} products per output exceed the 16-bit counts", g.cin * g.kh * g.kw);
                return Err(GpuError::Invalid { label, what });
            }
            // The blocked family's kernel reads and writes the interleaved tensors as vec4 (4
            // images), the tiled family's as f32: each binds the names it declares.
            tensors.extend([("act_pos", pos), ("act_neg", neg), ("res4", res), ("y4", y)]);
        }
        None => tensors.push(("x", x)),
    }
    let weight_bytes = match weights {
        PackedWeights::Ternary { pos, neg, wp, wn } => {
            let words = match planes {
                Some(_) => g.cout.next_multiple_of(PLANE_ROWS) * g.kh * g.kw * g.cin.div_ceil(32),
                None => (g.cout * g.cin * g.kh * g.kw).div_ceil(32),
            };
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
            let masks = if planes.is_some() { ["weight_pos", "weight_neg"] } else { ["pos", "neg"] };
            tensors.extend([(masks[0], *pos), (masks[1], *neg), ("wp", *wp), ("wn", *wn)]);
            8 * words as u64
        }
        PackedWeights::Dense { weight } => {
            expect_shape(&label, weight, &g.weight_shape())?;
            tensors.push(("weight", *weight));
            4 * weight.numel() as u64
        }
    };
    let reads_y = if e.accumulate { y.numel() } else { 0 };
    // Wn bound to Wp's tensor: the blocked kernel's symmetric counts (half the popcounts).
    let symmetric = gpu.family() == Family::Blocked
        && planes.is_some()
        && matches!(weights, PackedWeights::Ternary { wp, wn, .. } if wp.overlaps(wn));
    let mut cost = Cost::new(g.flops(), f32_bytes(x.numel() + y.numel() + reads_y) + weight_bytes);
    let positions = g.n * g.oh() * g.ow();
    if planes.is_some() {
        // 4 AND + popcount steps per (output, tap, word), 2 for the symmetric counts; the
        // activations are 2 planes of words.
        let words = g.cin.div_ceil(32);
        let steps = if symmetric { 2 } else { 4 };
        cost.popcounts = steps * (positions * g.cout * g.kh * g.kw * words) as u64;
        cost.bytes = 8 * (activation_planes(g).iter().product::<usize>()) as u64
            + f32_bytes(y.numel() + reads_y)
            + weight_bytes;
    }
    if planes.is_none() && super::conv2d::lanes(gpu, g) {
        return launch_lanes(gpu, label, g, entry, &p, &tensors, [x, e.scale], cost);
    }
    let (k, grid) = match gpu.family() {
        Family::Blocked if planes.is_some() => {
            let k = gpu.kernel_with(&shaders::PACKED_CONV, entry, &[("SYMMETRIC", f64::from(symmetric))])?;
            let items = g.oh() * g.ow() * g.n.div_ceil(4);
            let groups = items.div_ceil(k.invocations_per_group() as usize) * g.cout.div_ceil(PLANE_ROWS);
            (k, Grid::Groups(groups as u64))
        }
        Family::Blocked => {
            let threads = positions.div_ceil(4) as u64 * g.cout.div_ceil(4) as u64;
            (gpu.kernel(&shaders::PACKED_CONV, entry)?, Grid::Threads(threads))
        }
        Family::Tiled => {
            // The reduction: (tap, channel), or (tap, 32-channel word) pairs, two per TILE_K, for
            // bit-planes.
            let depth = match planes {
                None => g.cin * g.kh * g.kw,
                Some(_) => 2 * g.kh * g.kw * g.cin.div_ceil(32),
            };
            let t = gpu.tile(g.cout, positions, depth);
            let k = gpu.kernel_with(&shaders::PACKED_CONV_TILED, entry, &t.constants())?;
            (k, Grid::Groups(tiles(&t, g.cout, positions)))
        }
    };
    let tensors = if planes.is_some() { k.bound(&tensors) } else { tensors };
    Dispatch::new(gpu, &k, label, &p, &tensors, grid, cost)
}

/// packed_conv_lanes.wgsl's uniform: packed_conv's, with the grid of segments.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LanesParams {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    per_channel: u32,
    res_c: u32,
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    res_pad_c: u32,
    segs_row: u32,
    segs: u32,
    groups: u32,
}

/// 3×3 convolutions on adapters with 8-lane subgroups (see `conv2d::lanes`): 16 channels × 8
/// columns of two output rows per invocation, weights decoded once per lane and shared by
/// broadcasts. Both entry points read every binding: the unused weights are bound to
/// placeholders (`x` for the dense weight, a word and the folded scale for the masks and their
/// scales).
#[allow(clippy::too_many_arguments)]
fn launch_lanes(
    gpu: &Gpu,
    label: String,
    g: &Conv2dGeom,
    entry: &str,
    p: &Params,
    tensors: &[(&str, &Tensor)],
    [x, scale]: [&Tensor; 2],
    cost: Cost,
) -> Result<Dispatch> {
    // The epilogue's modes are pipeline constants too (one pipeline per combination).
    let [stride, block] = super::conv2d::lanes_constants(g.stride, g.cout);
    let constants = [
        stride,
        block,
        ("RESIDUAL", f64::from(p.residual)),
        ("ACCUMULATE", f64::from(p.accumulate)),
        ("RELU", f64::from(p.relu)),
    ];
    let k = gpu.kernel_with(&shaders::PACKED_CONV_LANES, entry, &constants)?;
    let segs_row = g.ow().div_ceil(8) as u32;
    let segs = (g.n * g.oh().div_ceil(2)) as u32 * segs_row;
    let groups = segs.div_ceil(k.invocations_per_group());
    let s = &p.shape;
    let lp = LanesParams {
        n: s.n,
        cin: s.cin,
        h: s.h,
        w: s.w,
        cout: s.cout,
        oh: s.oh,
        ow: s.ow,
        per_channel: p.per_channel,
        res_c: p.res_c,
        res_h: p.res_h,
        res_w: p.res_w,
        res_stride: p.res_stride,
        res_pad_c: p.res_pad_c,
        segs_row,
        segs,
        groups,
    };
    let placeholder = gpu.tensor_of(&format!("{label}.unused"), &[1], crate::gpu::DType::U32)?;
    let mut all = tensors.to_vec();
    if entry == "dense" {
        all.extend([("pos", &placeholder), ("neg", &placeholder), ("wp", scale), ("wn", scale)]);
    } else {
        all.push(("weight", x));
    }
    let grid = Grid::Groups(groups as u64 * g.cout.div_ceil(16) as u64);
    Dispatch::new(gpu, &k, label, &lp, &all, grid, cost)
}

/// Params for the activation kernels: only the input dimensions [n, c, h, w] matter.
fn act_params(label: &str, s: &[usize]) -> Result<Params> {
    let u = |v: usize| crate::ops::u32_of(label, "size", v);
    let mut p: Params = bytemuck::Zeroable::zeroed();
    let d = &mut p.shape;
    (d.n, d.cin, d.h, d.w, p.words) = (u(s[0])?, u(s[1])?, u(s[2])?, u(s[3])?, u(s[1].div_ceil(32))?);
    Ok(p)
}

/// y = ternary(x·act_scale + act_shift) as floats (+1, 0, −1).
pub fn ternary_affine(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    act_scale: &Tensor,
    act_shift: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/ternary_affine");
    let p = act_params(&label, &shape4(&label, x)?)?;
    expect_shape(&label, act_scale, &[x.shape()[1]])?;
    expect_shape(&label, act_shift, &[x.shape()[1]])?;
    expect_shape(&label, y, x.shape())?;
    let k = gpu.kernel(&shaders::PACKED_CONV, "ternary_affine")?;
    let cost = Cost::new(3 * x.numel() as u64, f32_bytes(2 * x.numel()));
    let tensors = [("x", x), ("act_scale", act_scale), ("act_shift", act_shift), ("y", y)];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(x.numel() as u64), cost)
}

/// The same activations as bit-planes (bit c % 32 of word c / 32) for a convolution with zero
/// padding `pad`, laid out as `activation_planes` says, from `x` `interleaved` (`batch` images,
/// the planes' images past it zero).
#[allow(clippy::too_many_arguments)]
pub fn pack_activations(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    batch: usize,
    act_scale: &Tensor,
    act_shift: &Tensor,
    pad: usize,
    act_pos: &Tensor,
    act_neg: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/pack_activations");
    let &[c, h, w, n4] = x.shape() else {
        return Err(GpuError::Invalid { label, what: format!("input {:?} is not 4-D", x.shape()) });
    };
    let mut p = act_params(&label, &[batch, c, h, w])?;
    p.shape.pad = crate::ops::u32_of(&label, "pad", pad)?;
    expect_shape(&label, x, &interleaved([batch, c, h, w]))?;
    let words = [(h + 2 * pad) * (w + 2 * pad), c.div_ceil(32), n4];
    expect_shape(&label, act_scale, &[c])?;
    expect_shape(&label, act_shift, &[c])?;
    expect_shape(&label, act_pos, &words)?;
    expect_shape(&label, act_neg, &words)?;
    let k = gpu.kernel(&shaders::PACKED_CONV, "pack_activations")?;
    let cost = Cost::new(3 * x.numel() as u64, f32_bytes(x.numel()) + 8 * act_pos.numel() as u64);
    let tensors = [
        ("x4", x),
        ("act_scale", act_scale),
        ("act_shift", act_shift),
        ("act_pos", act_pos),
        ("act_neg", act_neg),
    ];
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(act_pos.numel() as u64 / 4), cost)
}

/// `y` = `x` [n, c, h, w] `interleaved` (images innermost, zeros past n).
pub fn interleave(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    relayout(gpu, label, "interleave", (x, "x"), (y, "y4"), x)
}

/// `y` [n, c, h, w] from `x` `interleaved`.
pub fn deinterleave(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    relayout(gpu, label, "deinterleave", (x, "x4"), (y, "y"), y)
}

/// `entry` copying `src` to `dst` between [n, c, h, w] (`nchw`, one of the two) and its
/// `interleaved` layout, one invocation per 4 images.
fn relayout(
    gpu: &Gpu,
    label: &str,
    entry: &str,
    (src, src_binding): (&Tensor, &str),
    (dst, dst_binding): (&Tensor, &str),
    nchw: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/{entry}");
    let s = shape4(&label, nchw)?;
    let other = if std::ptr::eq(nchw, src) { dst } else { src };
    expect_shape(&label, other, &interleaved(s))?;
    let k = gpu.kernel(&shaders::PACKED_CONV, entry)?;
    let cost = Cost::new(0, f32_bytes(src.numel() + dst.numel()));
    let p = act_params(&label, &s)?;
    let threads = Grid::Threads(other.numel() as u64 / 4);
    Dispatch::new(gpu, &k, label, &p, &[(src_binding, src), (dst_binding, dst)], threads, cost)
}

fn shape4(label: &str, t: &Tensor) -> Result<[usize; 4]> {
    t.shape().try_into().map_err(|_| GpuError::Invalid {
        label: label.into(),
        what: format!("'{}' {:?} is not [n, c, h, w]", t.name(), t.shape()),
    })
}
