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

impl Epilogue<'_> {
    /// The residual's kind, the lanes kernels' RESIDUAL: 0 none, 1 the identity (a tensor of
    /// `y`'s own shape, stride 1, read at y's own index), 2 option A (subsampled, channels
    /// offset).
    pub fn residual_kind(&self, y: &Tensor) -> f64 {
        match self.residual {
            None => 0.0,
            Some((r, 1)) if r.shape() == y.shape() => 1.0,
            Some(_) => 2.0,
        }
    }
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
pub(super) struct Params {
    pub(super) shape: Conv2dShape,
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
    launch(gpu, label, g, x, weights, e, y, false)
}

/// Whether `forward_interleaved` can run convolution `g`: the lanes kernels' 3×3 shapes.
pub fn writes_interleaved(gpu: &Gpu, g: &Conv2dGeom) -> bool {
    super::conv2d::lanes(gpu, g)
}

/// As `forward`, writing `y` as `bitplane::interleaved` (images innermost) for the bit-plane
/// units that follow; where `writes_interleaved` holds, with neither residual nor accumulation.
pub fn forward_interleaved(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    weights: &PackedWeights,
    e: &Epilogue,
    y: &Tensor,
) -> Result<Dispatch> {
    if !writes_interleaved(gpu, g) || e.residual.is_some() || e.accumulate {
        let what = "an interleaved output needs a 3×3 lanes convolution without residual or accumulation";
        return Err(GpuError::Invalid { label: label.into(), what: what.into() });
    }
    launch(gpu, label, g, x, weights, e, y, true)
}

/// The convolution, `y` as [n, cout, oh, ow] or, with `interleaved` (lanes kernels only),
/// `bitplane::interleaved`.
#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    weights: &PackedWeights,
    e: &Epilogue,
    y: &Tensor,
    interleaved: bool,
) -> Result<Dispatch> {
    let entry = match weights {
        PackedWeights::Ternary { .. } => "ternary",
        PackedWeights::Dense { .. } => "dense",
    };
    let label = format!("{label}/packed_{entry}");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    let y_shape = match interleaved {
        true => super::bitplane::interleaved(g.output_shape()),
        false => g.output_shape(),
    };
    expect_shape(&label, y, &y_shape)?;
    let (p, res) = params(&label, g, weights, e, x, false)?;
    let mut tensors = vec![("scale", e.scale), ("shift", e.shift), ("res", res), ("y", y), ("x", x)];
    let weight_bytes = match weights {
        PackedWeights::Ternary { pos, neg, wp, wn } => {
            let words = (g.cout * g.cin * g.kh * g.kw).div_ceil(32);
            ternary_weights(&label, g, weights, words)?;
            tensors.extend([("pos", *pos), ("neg", *neg), ("wp", *wp), ("wn", *wn)]);
            8 * words as u64
        }
        PackedWeights::Dense { weight } => {
            expect_shape(&label, weight, &g.weight_shape())?;
            tensors.push(("weight", *weight));
            4 * weight.numel() as u64
        }
    };
    let reads_y = if e.accumulate { y.numel() } else { 0 };
    let cost = Cost::new(g.flops(), f32_bytes(x.numel() + y.numel() + reads_y) + weight_bytes);
    if super::conv2d::lanes(gpu, g) {
        let modes = (entry, interleaved, e.residual_kind(y));
        return launch_lanes(gpu, label, g, modes, &p, &tensors, [x, e.scale, res], cost);
    }
    let positions = g.n * g.oh() * g.ow();
    let (k, grid) = match gpu.family() {
        Family::Blocked => {
            let threads = positions.div_ceil(4) as u64 * g.cout.div_ceil(4) as u64;
            (gpu.kernel(&shaders::PACKED_CONV, entry)?, Grid::Threads(threads))
        }
        Family::Tiled => {
            // The reduction runs over (tap, channel) pairs.
            let t = gpu.tile(g.cout, positions, g.cin * g.kh * g.kw);
            let k = gpu.kernel_with(&shaders::PACKED_CONV_TILED, entry, &t.constants())?;
            (k, Grid::Groups(tiles(&t, g.cout, positions)))
        }
    };
    Dispatch::new(gpu, &k, label, &p, &tensors, grid, cost)
}

/// The uniform of a convolution with epilogue `e` (validated against `g`), and the residual to
/// bind (`x` when there is none). With `interleaved`, the residual is laid out as
/// `bitplane::interleaved` (the bit-plane units').
pub(super) fn params<'a>(
    label: &str,
    g: &Conv2dGeom,
    weights: &PackedWeights,
    e: &Epilogue<'a>,
    x: &'a Tensor,
    interleaved: bool,
) -> Result<(Params, &'a Tensor)> {
    expect_shape(label, e.scale, &[g.cout])?;
    expect_shape(label, e.shift, &[g.cout])?;
    let invalid = |what: String| GpuError::Invalid { label: label.into(), what };
    let (res, res_stride) = e.residual.unwrap_or((x, 1));
    // The residual's [n, c, h, w] (n rounded up to 4 when interleaved).
    let rs = match (interleaved, res.shape()) {
        (true, &[c, h, w, n4]) => [n4, c, h, w],
        (false, &[n, c, h, w]) => [n, c, h, w],
        (_, other) => return Err(invalid(format!("residual {other:?} is not 4-D"))),
    };
    let batch = if interleaved { g.n.next_multiple_of(4) } else { g.n };
    if e.residual.is_some() && (rs[0] != batch || rs[1] > g.cout || !(g.cout - rs[1]).is_multiple_of(2)) {
        return Err(invalid(format!("residual {:?} cannot be added to output {:?}", rs, g.output_shape())));
    }
    let u = |v: usize| v as u32;
    let per_channel = matches!(weights, PackedWeights::Ternary { wp, .. } if wp.numel() > 1);
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
    Ok((p, res))
}

/// Checks ternary `weights`: masks of `words` u32 each, scales per layer or per output channel.
pub(super) fn ternary_weights(
    label: &str,
    g: &Conv2dGeom,
    weights: &PackedWeights,
    words: usize,
) -> Result<()> {
    let PackedWeights::Ternary { pos, neg, wp, wn } = weights else {
        let what = "bit-plane activations need ternary weights".to_string();
        return Err(GpuError::Invalid { label: label.into(), what });
    };
    expect_shape(label, pos, &[words])?;
    expect_shape(label, neg, &[words])?;
    for s in [wp, wn] {
        if s.numel() != 1 && s.numel() != g.cout {
            let what = format!("scale '{}' must have 1 or {} values", s.name(), g.cout);
            return Err(GpuError::Invalid { label: label.into(), what });
        }
    }
    Ok(())
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

/// 3×3 convolutions on adapters with 8-lane subgroups (see `conv2d::lanes`): 16 channels (or 8,
/// `lanes_block`) × 8 columns of two output rows (or one, `lanes_rows`) per invocation, weights
/// decoded once per lane and shared by broadcasts. Every entry point reads every binding: the
/// unused weights are bound to placeholders (`x` for the dense weight, a word and the folded
/// scale for the masks and their scales). `res` is the residual binding (x without one).
#[allow(clippy::too_many_arguments)]
fn launch_lanes(
    gpu: &Gpu,
    label: String,
    g: &Conv2dGeom,
    (entry, interleaved, residual): (&str, bool, f64),
    p: &Params,
    tensors: &[(&str, &Tensor)],
    [x, scale, res]: [&Tensor; 3],
    cost: Cost,
) -> Result<Dispatch> {
    // The epilogue's modes are pipeline constants too (one pipeline per combination).
    let segs_row = g.ow().div_ceil(8) as u32;
    let segs = lanes_segments(g, lanes_rows(g)) as u32;
    let [stride, _] = super::conv2d::lanes_constants(g.stride, g.cout);
    let block = lanes_block(g);
    let constants = [
        stride,
        ("BLOCK_CH", block as f64),
        ("RESIDUAL", residual),
        ("ACCUMULATE", f64::from(p.accumulate)),
        ("RELU", f64::from(p.relu)),
        ("INTERLEAVED", f64::from(u8::from(interleaved))),
        ("ROWS", lanes_rows(g) as f64),
        ("WG_LANES", lanes_wg(gpu, g) as f64),
        // The interleaved mapping puts images, not segments, in neighbouring lanes.
        match interleaved {
            true => super::conv2d::vec_rows(g.w, g.stride),
            false => super::conv2d::vec_rows_shared(g.w, g.stride, g.ow()),
        },
    ];
    // The *_vec entries store y (and load an identity residual) four elements at a time, through
    // y_vec and res_vec, where every segment lies inside its row.
    let vec = !interleaved && g.ow().is_multiple_of(8);
    let entry = if vec { format!("{entry}_vec") } else { entry.to_string() };
    let k = gpu.kernel_with(&shaders::PACKED_CONV_LANES, &entry, &constants)?;
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
    let x_vec = super::conv2d::vec_binding(gpu, x)?;
    let mut all = tensors.to_vec();
    all.push(("x_vec", &x_vec));
    let res_vec = if vec { Some(super::conv2d::vec_binding(gpu, res)?) } else { None };
    if let Some(res_vec) = &res_vec {
        // The *_vec entries bind y only as vec4s.
        all.iter_mut().filter(|(n, _)| *n == "y").for_each(|(n, _)| *n = "y_vec");
        all.push(("res_vec", res_vec));
    }
    if entry.starts_with("dense") {
        all.extend([("pos", &placeholder), ("neg", &placeholder), ("wp", scale), ("wn", scale)]);
    } else {
        all.push(("weight", x));
    }
    let grid = Grid::Groups(groups as u64 * g.cout.div_ceil(block) as u64);
    Dispatch::new(gpu, &k, label, &lp, &all, grid, cost)
}

/// The output channels per invocation of packed_conv_lanes.wgsl for convolution `g`: 16, or 8
/// where the layer has at most 8.
pub fn lanes_block(g: &Conv2dGeom) -> usize {
    if g.cout <= 8 { 8 } else { 16 }
}

/// Invocations per workgroup of packed_conv_lanes.wgsl (WG_LANES): 64, or 8 (one subgroup) where
/// the launch has fewer segments × channel blocks than a quarter of the invocations that fill
/// the device (small batches): a CPU driver runs each workgroup on one thread, so a few large
/// workgroups would leave cores idle.
pub fn lanes_wg(gpu: &Gpu, g: &Conv2dGeom) -> usize {
    let segments = lanes_segments(g, lanes_rows(g));
    if ((segments * g.cout.div_ceil(lanes_block(g))) as u64) * 4 < gpu.parallelism() { 8 } else { 64 }
}

/// Output rows per invocation of packed_conv_lanes.wgsl (ROWS): 4 where that still leaves 4
/// workgroups of 64 invocations (`conv2d::lanes_block_rows`), else 2, or 1 where 2-row segments
/// would not fill a subgroup's 8 lanes (one image's last layers): each lane then does half the
/// work and all 8 take part.
pub fn lanes_rows(g: &Conv2dGeom) -> usize {
    match super::conv2d::lanes_block_rows([g.n, g.oh(), g.ow()], g.cout) {
        4 => 4,
        _ if lanes_segments(g, 2) < 8 => 1,
        _ => 2,
    }
}

/// Segments of packed_conv_lanes.wgsl (8 columns of `rows` output rows) in convolution `g`.
fn lanes_segments(g: &Conv2dGeom, rows: usize) -> usize {
    g.n * g.oh().div_ceil(rows) * g.ow().div_ceil(8)
}

/// Params for the activation kernels: only the input dimensions [n, c, h, w] matter.
pub(super) fn act_params(label: &str, s: &[usize]) -> Result<Params> {
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

pub(super) fn shape4(label: &str, t: &Tensor) -> Result<[usize; 4]> {
    t.shape().try_into().map_err(|_| GpuError::Invalid {
        label: label.into(),
        what: format!("'{}' {:?} is not [n, c, h, w]", t.name(), t.shape()),
    })
}
