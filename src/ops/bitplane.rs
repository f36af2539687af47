//! Ternary activations on bit-planes (STTN's units at inference): the activations packed into
//! 32-channel words, convolved with the weights' planes by AND + popcount, the units' float tensors
//! interleaved (images innermost) between them. The kernels are entry points of
//! shaders/packed_conv.wgsl (`pack_activations`, `bitplane`, `interleave`, `deinterleave`,
//! `avg_pool`; they share its parameters and epilogue), `bitplane` of shaders/bitplane_lanes.wgsl
//! (the 3×3 convolutions on adapters with 8-lane subgroups) and of shaders/packed_conv_tiled.wgsl
//! for the tiled family.

use super::conv2d::{Conv2dGeom, tiles};
use super::packed_conv::{Epilogue, PackedWeights, act_params, params, shape4, ternary_weights};
use super::{expect_shape, f32_bytes};
use crate::gpu::{Cost, DType, Dispatch, Family, Gpu, GpuError, Grid, Result, Tensor, shaders};

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

/// The next unit's activations, ternary(y·act_scale + act_shift), which the convolution packs
/// into `pos` and `neg` (`activation_planes` of a padding-1 convolution of its output) as it
/// writes y: no `pack_activations` between the two units. Only where `packs_next` says.
pub struct NextPlanes<'a> {
    pub act_scale: &'a Tensor,
    pub act_shift: &'a Tensor,
    pub pos: &'a Tensor,
    pub neg: &'a Tensor,
}

/// The next unit's activation planes for convolution `g` (`NextPlanes`): `activation_planes` of
/// a padding-1 convolution of its output.
pub fn next_activation_planes(g: &Conv2dGeom) -> [usize; 3] {
    let [n, c, h, w] = g.output_shape();
    activation_planes(&Conv2dGeom::new(&[n, c, h, w], &[c, c, 3, 3], 1, 1))
}

/// Whether `forward` can pack the next unit's activations (`NextPlanes`) for convolution `g`
/// with epilogue `e`: on the lanes kernel, for 16 output channels or a multiple of 32 (an
/// invocation convolves the one or two 16-channel blocks of a word).
pub fn packs_next(gpu: &Gpu, g: &Conv2dGeom, e: &Epilogue) -> bool {
    lanes(gpu, g, e) && (g.cout == 2 * PLANE_ROWS || g.cout.is_multiple_of(4 * PLANE_ROWS))
}

/// A ternary layer's weights as the bit-plane kernels read them: the masks as weight planes
/// (`packed::weight_planes`, for the register-block and tiled kernels) and as quads
/// (`packed::weight_quads`, for the lanes kernel), and the scales Wp and Wn.
pub struct WeightPlanes<'a> {
    pub pos: &'a Tensor,
    pub neg: &'a Tensor,
    pub quads: &'a Tensor,
    pub wp: &'a Tensor,
    pub wn: &'a Tensor,
}

impl WeightPlanes<'_> {
    /// The planes as `PackedWeights` (what the checks on the masks and scales take).
    pub fn packed(&self) -> PackedWeights<'_> {
        PackedWeights::Ternary { pos: self.pos, neg: self.neg, wp: self.wp, wn: self.wn }
    }
}

/// The convolution of ternary activations given as bit-planes (from `pack_activations` of `x`,
/// which is still bound, for shapes, the residual default and the dispatch's bookkeeping), with
/// `weights` (`WeightPlanes`). `x`, `y` and the residual are `interleaved`. With Wn bound to
/// Wp's tensor the blocked kernel counts both at once (half the popcounts). With `next`, it also
/// packs the next unit's activations.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    (act_pos, act_neg): (&Tensor, &Tensor),
    weights: &WeightPlanes,
    e: &Epilogue,
    y: &Tensor,
    next: Option<&NextPlanes>,
) -> Result<Dispatch> {
    let label = format!("{label}/packed_bitplane");
    g.validate(&label)?;
    expect_shape(&label, x, &interleaved(g.input_shape()))?;
    expect_shape(&label, y, &interleaved(g.output_shape()))?;
    expect_shape(&label, act_pos, &activation_planes(g))?;
    expect_shape(&label, act_neg, &activation_planes(g))?;
    if let Some(next) = next {
        if !packs_next(gpu, g, e) {
            let what = "this kernel cannot pack the next unit's activations (see packs_next)".into();
            return Err(GpuError::Invalid { label, what });
        }
        let planes = next_activation_planes(g);
        expect_shape(&label, next.act_scale, &[g.cout])?;
        expect_shape(&label, next.act_shift, &[g.cout])?;
        expect_shape(&label, next.pos, &planes)?;
        expect_shape(&label, next.neg, &planes)?;
    }
    if g.cin * g.kh * g.kw >= 1 << 15 {
        let what = format!("{} products per output exceed the 16-bit counts", g.cin * g.kh * g.kw);
        return Err(GpuError::Invalid { label, what });
    }
    let (p, res) = params(&label, g, &weights.packed(), e, x, true)?;
    let words = g.cin.div_ceil(32);
    let weight_words = g.cout.next_multiple_of(PLANE_ROWS) * g.kh * g.kw * words;
    ternary_weights(&label, g, &weights.packed(), weight_words)?;
    let quad_words = g.cout.div_ceil(2 * PLANE_ROWS) * g.kh * g.kw * words * PLANE_ROWS * 4;
    expect_shape(&label, weights.quads, &[quad_words])?;
    let WeightPlanes { pos, neg, quads, wp, wn } = *weights;
    let lanes = gpu.family() == Family::Blocked && lanes(gpu, g, e);
    // The lanes kernel binds the next unit's tensors whether or not it packs them: without
    // `next`, placeholders it never reads or writes.
    let unused = match (lanes, next) {
        (true, None) => {
            let [pos, neg] =
                ["pos", "neg"].map(|w| gpu.tensor_of(&format!("{label}.unused_{w}"), &[4], DType::U32));
            Some([pos?, neg?])
        }
        _ => None,
    };
    // The blocked kernel reads and writes the interleaved tensors as vec4 (4 images), the tiled
    // one as f32: each binds the names it declares.
    let mut tensors = vec![
        ("scale", e.scale),
        ("shift", e.shift),
        ("res", res),
        ("y", y),
        ("res4", res),
        ("y4", y),
        ("act_pos", act_pos),
        ("act_neg", act_neg),
        ("weight_pos", pos),
        ("weight_neg", neg),
        ("weight_quads", quads),
        ("wp", wp),
        ("wn", wn),
    ];
    let next_tensors = match (next, &unused) {
        (Some(n), _) => Some([n.act_scale, n.act_shift, n.pos, n.neg]),
        (None, Some([pos, neg])) => Some([e.scale, e.shift, pos, neg]),
        (None, None) => None,
    };
    if let Some(t) = next_tensors {
        tensors.extend(["next_scale", "next_shift", "next_pos", "next_neg"].into_iter().zip(t));
    }
    let symmetric = gpu.family() == Family::Blocked && wp.overlaps(wn);
    // The lanes kernel's pixels per invocation, whether it counts pairs of them in one word, and
    // whether it sums per-byte counts otherwise.
    let (pixels, pairs, bytes) = match lanes {
        true => (lanes_pixels(g, symmetric), lanes_pairs(g, symmetric), lanes_bytes(g, symmetric)),
        false => (1, false, false),
    };
    let reads_y = if e.accumulate { y.numel() } else { 0 };
    let positions = g.n * g.oh() * g.ow();
    let planes: usize = activation_planes(g).iter().product();
    // The planes read, and with `next` those written.
    let planes_bytes = 8 * (planes + next.map_or(0, |n| n.pos.numel())) as u64;
    let cost = Cost {
        // 4 AND + popcount steps per (output, tap, word), 2 for the symmetric counts, each
        // step for two pixels where the lanes kernel pairs them.
        popcounts: if symmetric { 2 } else { 4 } * (positions * g.cout * g.kh * g.kw * words) as u64
            / if pairs { 2 } else { 1 },
        ..Cost::new(g.flops(), planes_bytes + f32_bytes(y.numel() + reads_y) + 8 * weight_words as u64)
    };
    let (k, grid) = match gpu.family() {
        Family::Blocked => {
            let counts = ("SYMMETRIC", f64::from(symmetric));
            let (k, block) = if lanes {
                let block = if g.cout > PLANE_ROWS { 2 * PLANE_ROWS } else { PLANE_ROWS };
                // With `next`, an invocation convolves the one or two blocks of a 32-channel word.
                let passes = next.map_or(1, |_| (g.cout / block).min(2));
                let constants = [
                    counts,
                    ("RESIDUAL", e.residual_kind(y)),
                    ("RELU", f64::from(e.relu)),
                    ("BLOCK_CH", block as f64),
                    ("NEXT", next.map_or(0.0, |_| passes as f64)),
                    ("PIXELS", pixels as f64),
                    ("PAIRS", if pairs { g.stride as f64 } else { 0.0 }),
                    ("BYTES", f64::from(bytes)),
                ];
                (gpu.kernel_with(&shaders::BITPLANE_LANES, "bitplane", &constants)?, passes * block)
            } else {
                (gpu.kernel_with(&shaders::PACKED_CONV, "bitplane", &[counts])?, PLANE_ROWS)
            };
            let items = g.oh() * g.ow() / pixels * g.n.div_ceil(4);
            let groups = items.div_ceil(k.invocations_per_group() as usize) * g.cout.div_ceil(block);
            (k, Grid::Groups(groups as u64))
        }
        Family::Tiled => {
            // The reduction runs over (tap, 32-channel word) pairs, two per TILE_K.
            let t = gpu.tile(g.cout, positions, 2 * g.kh * g.kw * words);
            let k = gpu.kernel_with(&shaders::PACKED_CONV_TILED, "bitplane", &t.constants())?;
            (k, Grid::Groups(tiles(&t, g.cout, positions)))
        }
    };
    Dispatch::new(gpu, &k, label, &p, &k.bound(&tensors), grid, cost)
}

/// Whether convolution `g` with epilogue `e` runs through shaders/bitplane_lanes.wgsl (weight
/// words and per-channel terms shared by subgroup broadcasts): the 3×3 convolutions of
/// `conv2d::lanes`, at inference (no accumulation).
pub fn lanes(gpu: &Gpu, g: &Conv2dGeom, e: &Epilogue) -> bool {
    super::conv2d::lanes(gpu, g) && !e.accumulate
}

/// Output pixels per invocation of the lanes kernel (with `symmetric` counts): neighbours in a
/// row, which share all of their weight words and, at stride 1, most of their windows'
/// activation words. Four where pairs of them are counted in one word (`lanes_pairs`) and the
/// row splits into fours; two where it splits into pairs and the stride is 1 or they are
/// counted in one word; else one.
pub fn lanes_pixels(g: &Conv2dGeom, symmetric: bool) -> usize {
    let pairs = lanes_pairs(g, symmetric);
    match g.ow() {
        ow if pairs && ow.is_multiple_of(4) => 4,
        ow if ow.is_multiple_of(2) && (g.stride == 1 || pairs) => 2,
        _ => 1,
    }
}

/// Whether the lanes kernel counts its two pixels in one word (PAIRS, the stride): where the
/// activation words fill only their low 16 bits (at most 16 input channels), the counts are
/// symmetric (Wn = Wp), the row splits into pairs and the stride is 1 or 2. Its per-byte counts
/// hold at most 15 taps.
pub fn lanes_pairs(g: &Conv2dGeom, symmetric: bool) -> bool {
    symmetric && g.cin <= 16 && g.ow().is_multiple_of(2) && g.stride <= 2 && g.kh * g.kw <= 15
}

/// Whether the lanes kernel, not counting pairs of pixels in one word (`lanes_pairs`), sums
/// per-byte counts (BYTES): symmetric counts of at most 15 (tap, word) pairs per output, so that
/// each byte stays under 256.
pub fn lanes_bytes(g: &Conv2dGeom, symmetric: bool) -> bool {
    symmetric && !lanes_pairs(g, symmetric) && g.kh * g.kw * g.cin.div_ceil(32) <= 15
}

/// Which kernel runs bit-plane convolution `g` with epilogue `e`, as `tern check` names it.
pub fn path(gpu: &Gpu, g: &Conv2dGeom, e: &Epilogue) -> String {
    match gpu.family() {
        Family::Blocked if lanes(gpu, g, e) && lanes_pairs(g, true) => {
            format!("lanes, {} pixel(s), in one word where Wn = Wp", lanes_pixels(g, true))
        }
        Family::Blocked if lanes(gpu, g, e) && lanes_bytes(g, true) => {
            format!("lanes, {} pixel(s), byte counts where Wn = Wp", lanes_pixels(g, true))
        }
        Family::Blocked if lanes(gpu, g, e) => format!("lanes, {} pixel(s)", lanes_pixels(g, false)),
        Family::Blocked => "register-block".into(),
        Family::Tiled => "tiled".into(),
    }
}

/// The activations ternary(x·act_scale + act_shift) as bit-planes (bit c % 32 of word c / 32)
/// for a convolution with zero padding `pad`, laid out as `activation_planes` says, from `x`
/// `interleaved` (`batch` images, the planes' images past it zero).
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

/// `y` [n, c]: the global average pool of `x` `interleaved` (`batch` images), each image's
/// sum in the order of `pool::avg_forward`, so the same result without deinterleaving.
pub fn avg_pool(gpu: &Gpu, label: &str, x: &Tensor, batch: usize, y: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/avg_pool");
    let &[c, h, w, _] = x.shape() else {
        return Err(GpuError::Invalid { label, what: format!("input {:?} is not 4-D", x.shape()) });
    };
    expect_shape(&label, x, &interleaved([batch, c, h, w]))?;
    expect_shape(&label, y, &[batch, c])?;
    let k = gpu.kernel(&shaders::PACKED_CONV, "avg_pool")?;
    let cost = Cost::new(x.numel() as u64, f32_bytes(x.numel() + y.numel()));
    let p = act_params(&label, &[batch, c, h, w])?;
    // One invocation per output: at small batches a quad's dead images would cost reads.
    let threads = Grid::Threads(y.numel() as u64);
    Dispatch::new(gpu, &k, label, &p, &[("x", x), ("y", y)], threads, cost)
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
