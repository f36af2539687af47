//! conv2d: forward, grad_input and grad_weight (shaders/conv2d.wgsl: the blocked family;
//! shaders/conv2d_tiled.wgsl: the tiled family, chosen by `gpu.family()`).

use super::batchnorm::BatchNormTensors;
use super::{expect_shape, f32_bytes};
use crate::gpu::{Cost, Dispatch, Family, Gpu, GpuError, Grid, Program, Result, Tensor, Tile, shaders};

/// Shape of one convolution: input [n, cin, h, w], weights [cout, cin, kh, kw].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

/// "[2, 16, 32, 32] → 32, 3×3 /2 pad 1": input, output channels, kernel, stride, padding.
impl std::fmt::Debug for Conv2dGeom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Conv2dGeom { n, cin, h, w, cout, kh, kw, stride, pad } = self;
        write!(f, "[{n}, {cin}, {h}, {w}] → {cout}, {kh}×{kw} /{stride} pad {pad}")
    }
}

impl Conv2dGeom {
    /// The convolution of an input [n, cin, h, w] by weights [cout, cin, kh, kw].
    pub fn new(input: &[usize], weight: &[usize], stride: usize, pad: usize) -> Conv2dGeom {
        let (n, cin, h, w) = (input[0], input[1], input[2], input[3]);
        Conv2dGeom { n, cin, h, w, cout: weight[0], kh: weight[2], kw: weight[3], stride, pad }
    }

    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad).saturating_sub(self.kh) / self.stride.max(1) + 1
    }

    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad).saturating_sub(self.kw) / self.stride.max(1) + 1
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.cin, self.h, self.w]
    }

    pub fn weight_shape(&self) -> [usize; 4] {
        [self.cout, self.cin, self.kh, self.kw]
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.cout, self.oh(), self.ow()]
    }

    /// Multiply-adds × 2 of one pass (forward, grad_input and grad_weight cost the same).
    pub fn flops(&self) -> u64 {
        2 * (self.n * self.cout * self.oh() * self.ow() * self.cin * self.kh * self.kw) as u64
    }

    pub fn validate(&self, label: &str) -> Result<()> {
        let bad = |what: String| Err(GpuError::Invalid { label: label.into(), what });
        if self.stride == 0 || self.kh == 0 || self.kw == 0 || self.cin == 0 || self.cout == 0 || self.n == 0
        {
            return bad(format!("degenerate convolution {self:?}"));
        }
        if self.h + 2 * self.pad < self.kh || self.w + 2 * self.pad < self.kw {
            return bad(format!(
                "kernel {}x{} is larger than the padded input {}x{}",
                self.kh,
                self.kw,
                self.h + 2 * self.pad,
                self.w + 2 * self.pad
            ));
        }
        Ok(())
    }

    /// The convolution's dimensions as the shaders' uniforms begin (conv2d.wgsl's and
    /// packed_conv.wgsl's parameter structs start with these 11 fields).
    pub(crate) fn shape(&self) -> Conv2dShape {
        let u = |v: usize| v as u32;
        Conv2dShape {
            n: u(self.n),
            cin: u(self.cin),
            h: u(self.h),
            w: u(self.w),
            cout: u(self.cout),
            oh: u(self.oh()),
            ow: u(self.ow()),
            kh: u(self.kh),
            kw: u(self.kw),
            stride: u(self.stride),
            pad: u(self.pad),
        }
    }

    fn params(&self, splits: usize) -> Params {
        Params { shape: self.shape(), splits: splits as u32, accumulate: 0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Conv2dShape {
    pub n: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    shape: Conv2dShape,
    splits: u32,
    accumulate: u32,
}

fn blocks(v: usize) -> u64 {
    v.div_ceil(4) as u64
}

/// Workgroups of the tiled family covering `rows` × `cols` outputs with tile `t`.
pub(crate) fn tiles(t: &Tile, rows: usize, cols: usize) -> u64 {
    rows.div_ceil(t.m as usize) as u64 * cols.div_ceil(t.n as usize) as u64
}

pub fn forward(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    forward_into(gpu, label, g, x, w, y, None, None)
}

/// The forward convolution reading the ReLU output of batch norm `bn_relu` of x, computed on
/// load (`forward_with_stats`); forward itself without it.
pub fn forward_with(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    bn_relu: Option<&BatchNormTensors>,
) -> Result<Dispatch> {
    forward_into(gpu, label, g, x, w, y, None, bn_relu)
}

/// The forward convolution that also writes the batch-norm statistics of y, for a batch norm
/// that follows it (`batchnorm::fused_forward_train`'s `conv_stats`): per output channel, the
/// (count, mean, M2) of each group of 8 lanes' segments into a tensor [cout, slots, 3]. None
/// where the lanes kernels do not run this convolution with vec4 stores (then the batch norm
/// computes its statistics itself). With `bn_relu` (lanes kernels only: `lanes`), x is that
/// batch norm's input and the convolution reads its ReLU output instead, computed on load.
#[allow(clippy::too_many_arguments)]
pub fn forward_with_stats(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    bn_relu: Option<&BatchNormTensors>,
) -> Result<Option<(Dispatch, Tensor)>> {
    if !lanes(gpu, g) || vec_stores("forward", g.ow()).0 != "forward_vec" {
        return Ok(None);
    }
    let segments = LanesParams::forward(g, 1, forward_rows(g)).0.segs as usize;
    let partial = gpu.tensor(&format!("{label}.stats_partial"), &[g.cout, segments.div_ceil(8), 3])?;
    Ok(Some((forward_into(gpu, label, g, x, w, y, Some(&partial), bn_relu)?, partial)))
}

/// forward, writing y's batch-norm partials into `stats` and reading x through `bn_relu`
/// (lanes kernels; with `stats`, vec4 stores only).
#[allow(clippy::too_many_arguments)]
fn forward_into(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    stats: Option<&Tensor>,
    bn_relu: Option<&BatchNormTensors>,
) -> Result<Dispatch> {
    let label = format!("{label}/forward");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    expect_shape(&label, w, &g.weight_shape())?;
    expect_shape(&label, y, &g.output_shape())?;
    let extra = stats.map_or(0, Tensor::numel);
    let cost = Cost::new(g.flops(), f32_bytes(x.numel() + w.numel() + y.numel() + extra));
    if lanes(gpu, g) {
        let [stride, block] = lanes_constants(g.stride, g.cout);
        let rows = forward_rows(g);
        let constants = [
            stride,
            block,
            vec_rows_shared(g.w, g.stride, g.ow()),
            source_bn(bn_relu),
            ("ROWS", rows as f64),
        ];
        let (entry, dst) = match stats {
            Some(_) => ("forward_vec_stats", "dst_vec"),
            None => vec_stores("forward", g.ow()),
        };
        let k = gpu.kernel_with(&shaders::CONV2D_LANES, entry, &constants)?;
        let (p, groups) = LanesParams::forward(g, k.invocations_per_group(), rows);
        let x_vec = vec_binding(gpu, x)?;
        let w_vec = weight_vec(&label, w)?;
        let mut tensors = vec![("src", x), (dst, y), ("src_vec", &x_vec), ("w_vec", &w_vec)];
        tensors.extend(stats.map(|t| ("stats_partial", t)));
        tensors.extend(bn_bindings(bn_relu, w));
        return Dispatch::new(gpu, &k, label, &p, &k.bound(&tensors), Grid::Groups(groups), cost);
    }
    refuse_bn_relu(&label, bn_relu)?;
    let tensors = [("x", x), ("w", w), ("y", y)];
    let positions = g.n * g.oh() * g.ow();
    let (k, grid) = match gpu.family() {
        Family::Blocked => {
            let k = gpu.kernel(&shaders::CONV2D, "forward")?;
            (k, Grid::Threads(blocks(g.cout) * blocks(positions)))
        }
        Family::Tiled => {
            let t = gpu.tile(g.cout, positions, g.cin * g.kh * g.kw);
            let k = gpu.kernel_with(&shaders::CONV2D_TILED, "forward", &t.constants())?;
            (k, Grid::Groups(tiles(&t, g.cout, positions)))
        }
    };
    Dispatch::new(gpu, &k, label, &g.params(1), &tensors, grid, cost)
}

pub fn grad_input(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    grad_input_into(gpu, label, g, dy, w, dx, false)
}

/// grad_input that, with `accumulate`, adds to what dx holds (the first convolution of a
/// residual branch adds its input gradient to the shortcut's).
pub fn grad_input_into(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let label = format!("{label}/grad_input");
    g.validate(&label)?;
    expect_shape(&label, dy, &g.output_shape())?;
    expect_shape(&label, w, &g.weight_shape())?;
    expect_shape(&label, dx, &g.input_shape())?;
    let dx_bytes = dx.numel() * (1 + usize::from(accumulate));
    let cost = Cost::new(g.flops(), f32_bytes(dy.numel() + w.numel() + dx_bytes));
    if lanes(gpu, g) {
        let (entry, dst) = match g.stride {
            1 => vec_stores("grad_input", g.w),
            _ => ("grad_input_s2", "dst"),
        };
        let [stride, block] = lanes_constants(1, g.cin);
        let accumulate = ("ACCUMULATE", f64::from(u8::from(accumulate)));
        let rows = match g.stride {
            1 => lanes_block_rows([g.n, g.h, g.w], g.cin),
            _ => class_block_rows(g),
        };
        // grad_input_s2's lanes hold segments of dy's width (its class columns).
        let lanes_width = if g.stride == 1 { g.w } else { g.ow() };
        let vec_rows = vec_rows_shared(g.ow(), 1, lanes_width);
        let constants = [stride, block, accumulate, vec_rows, ("ROWS", rows as f64)];
        let k = gpu.kernel_with(&shaders::CONV2D_LANES, entry, &constants)?;
        let (p, groups) = LanesParams::grad_input(g, k.invocations_per_group(), rows);
        let dy_vec = vec_binding(gpu, dy)?;
        let w_vec = weight_vec(&label, w)?;
        let mut tensors = vec![("src", dy), (dst, dx), ("src_vec", &dy_vec), ("w_vec", &w_vec)];
        // grad_input_s2 reads no source through a batch norm and binds none.
        tensors.extend(bn_bindings(None, w));
        return Dispatch::new(gpu, &k, label, &p, &k.bound(&tensors), Grid::Groups(groups), cost);
    }
    let tensors = [("dy", dy), ("w", w), ("dx", dx)];
    let (k, grid) = match gpu.family() {
        Family::Blocked => {
            let k = gpu.kernel(&shaders::CONV2D, "grad_input")?;
            (k, Grid::Threads(blocks(g.cin) * blocks(g.n * g.h * g.w)))
        }
        Family::Tiled => {
            // One grid per stride parity class, each sized for the largest class.
            let s = g.stride;
            let class = g.n * g.h.div_ceil(s) * g.w.div_ceil(s);
            let t = gpu.tile(g.cin, class, g.cout * g.kh.div_ceil(s) * g.kw.div_ceil(s));
            let k = gpu.kernel_with(&shaders::CONV2D_TILED, "grad_input", &t.constants())?;
            (k, Grid::Groups((s * s) as u64 * tiles(&t, g.cin, class)))
        }
    };
    Dispatch::new(
        gpu,
        &k,
        label,
        &Params { accumulate: u32::from(accumulate), ..g.params(1) },
        &tensors,
        grid,
        cost,
    )
}

/// dw = Σ over the batch and output positions. The sum is split into chunks so that enough
/// invocations run; with more than one chunk the partial sums go to a scratch tensor and
/// reduce.wgsl/sum_splits adds them in order.
pub fn grad_weight(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
) -> Result<Program> {
    grad_weight_with(gpu, label, g, x, dy, dw, None)
}

/// grad_weight of a convolution that reads the ReLU output of batch norm `bn_relu` of x
/// (`forward_with_stats`; lanes kernels only).
pub fn grad_weight_with(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    bn_relu: Option<&BatchNormTensors>,
) -> Result<Program> {
    let label = format!("{label}/grad_weight");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    expect_shape(&label, dy, &g.output_shape())?;
    expect_shape(&label, dw, &g.weight_shape())?;
    if lanes(gpu, g) {
        return grad_weight_lanes(gpu, label, g, x, dy, dw, bn_relu);
    }
    refuse_bn_relu(&label, bn_relu)?;
    let positions = g.n * g.oh() * g.ow();
    let k_total = g.cin * g.kh * g.kw;
    // One split's launch: `units` invocations (blocked) or workgroups (tiled); a split reduces
    // at least `min_chunk` positions.
    let (k, units, groups, min_chunk) = match gpu.family() {
        Family::Blocked => {
            let k = gpu.kernel(&shaders::CONV2D, "grad_weight")?;
            (k, blocks(g.cout) * blocks(k_total), false, 64)
        }
        Family::Tiled => {
            let t = gpu.tile(g.cout, k_total, positions);
            let k = gpu.kernel_with(&shaders::CONV2D_TILED, "grad_weight", &t.constants())?;
            (k, tiles(&t, g.cout, k_total), true, 4 * t.k as usize)
        }
    };
    let grid = |splits: usize| {
        let n = units * splits as u64;
        if groups { Grid::Groups(n) } else { Grid::Threads(n) }
    };
    let threads = if groups { units * k.invocations_per_group() as u64 } else { units };
    let splits =
        (gpu.parallelism().div_ceil(threads) as usize).clamp(1, positions.div_ceil(min_chunk).max(1));
    let cost = Cost::new(g.flops(), f32_bytes(x.numel() + dy.numel() + dw.numel() * splits));
    let mut program = Program::default();
    if splits == 1 {
        program.push(Dispatch::new(
            gpu,
            &k,
            label,
            &g.params(1),
            &[("x", x), ("dy", dy), ("dw_partial", dw)],
            grid(1),
            cost,
        )?);
        return Ok(program);
    }
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits, dw.numel()])?;
    program.push(Dispatch::new(
        gpu,
        &k,
        label.clone(),
        &g.params(splits),
        &[("x", x), ("dy", dy), ("dw_partial", &partial)],
        grid(splits),
        cost,
    )?);
    program.push(super::reduce::sum_splits(gpu, &label, &partial, dw)?);
    Ok(program)
}

/// grad_weight through conv2d_lanes.wgsl: one subgroup per (chunk of segments, 8 input
/// channels, 16 or 32 output channels); chunks summed in order by reduce.wgsl/sum_splits.
fn grad_weight_lanes(
    gpu: &Gpu,
    label: String,
    g: &Conv2dGeom,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    bn_relu: Option<&BatchNormTensors>,
) -> Result<Program> {
    let weight_block = if g.cout >= 32 { 32 } else { 16 };
    let [stride, block] = lanes_constants(g.stride, g.cout);
    let constants =
        [stride, block, ("WEIGHT_BLOCK", weight_block as f64), vec_rows(g.w, g.stride), source_bn(bn_relu)];
    let k = gpu.kernel_with(&shaders::CONV2D_LANES, "grad_weight", &constants)?;
    let segments = (g.n * g.oh() * g.ow().div_ceil(8)) as u64;
    // Enough workgroups to keep the device busy, each summing at least 32 segments. Counted in
    // blocks of 16 output channels whatever WEIGHT_BLOCK is, so that the chunks, and with them
    // the sums' rounding, do not depend on it.
    let wanted = (gpu.parallelism() / 32).div_ceil((g.cin.div_ceil(8) * g.cout.div_ceil(16)) as u64);
    let splits = wanted.clamp(1, segments.div_ceil(32).max(1));
    let blocks = (g.cin.div_ceil(8) * g.cout.div_ceil(weight_block)) as u64;
    let mut p = LanesParams::grad_weight(g);
    p.splits = splits as u32;
    let cost = Cost::new(g.flops(), f32_bytes(x.numel() + dy.numel() + dw.numel() * splits as usize));
    let groups = Grid::Groups(splits * blocks);
    let mut program = Program::default();
    let (x_vec, dy_vec) = (vec_binding(gpu, x)?, vec_binding(gpu, dy)?);
    if splits == 1 {
        let mut tensors =
            vec![("src", x), ("dy", dy), ("dw_partial", dw), ("src_vec", &x_vec), ("dy_vec", &dy_vec)];
        tensors.extend(bn_bindings(bn_relu, dy));
        program.push(Dispatch::new(gpu, &k, label, &p, &tensors, groups, cost)?);
        return Ok(program);
    }
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits as usize, dw.numel()])?;
    let mut tensors =
        vec![("src", x), ("dy", dy), ("dw_partial", &partial), ("src_vec", &x_vec), ("dy_vec", &dy_vec)];
    tensors.extend(bn_bindings(bn_relu, dy));
    program.push(Dispatch::new(gpu, &k, label.clone(), &p, &tensors, groups, cost)?);
    program.push(super::reduce::sum_splits(gpu, &label, &partial, dw)?);
    Ok(program)
}

/// Whether conv2d_lanes.wgsl runs this convolution: 3×3 kernels with padding 1 and stride 1 or
/// 2, where the adapter has the lanes kernels (`Gpu::lanes_kernels`).
pub fn lanes(gpu: &Gpu, g: &Conv2dGeom) -> bool {
    gpu.lanes_kernels() && (g.kh, g.kw, g.pad) == (3, 3, 1) && (g.stride == 1 || g.stride == 2)
}

/// Which kernels run this convolution: "lanes" (conv2d_lanes.wgsl), "register-block"
/// (conv2d.wgsl, the blocked family otherwise) or "tiled" (conv2d_tiled.wgsl); what `tern check`
/// and the op tests name a case by.
pub fn path(gpu: &Gpu, g: &Conv2dGeom) -> &'static str {
    match gpu.family() {
        _ if lanes(gpu, g) => "lanes",
        Family::Blocked => "register-block",
        Family::Tiled => "tiled",
    }
}

/// lanes.wgsl's VEC_ROWS for a source `width` read at `stride`: 1 where every segment's source
/// columns start on a vec4 and lie inside the row (the width a multiple of 8·stride), so the
/// kernels load them four at a time.
pub fn vec_rows(width: usize, stride: usize) -> (&'static str, f64) {
    ("VEC_ROWS", f64::from(u8::from(width.is_multiple_of(8 * stride))))
}

/// vec_rows for kernels whose lanes hold consecutive 8-column segments of output rows
/// `out_width` wide (forward, the stride-1 input gradient, packed inference): 2 where it is 1
/// and each row's segments lie in one subgroup of 8 lanes, so that a segment's neighbouring
/// columns come from the lanes beside it.
pub fn vec_rows_shared(width: usize, stride: usize, out_width: usize) -> (&'static str, f64) {
    match vec_rows(width, stride) {
        (name, v) if v == 1.0 && 8 % out_width.div_ceil(8) == 0 => (name, 2.0),
        other => other,
    }
}

/// Output rows per invocation of conv2d_lanes.wgsl's forward and stride-1 input gradient (ROWS)
/// for a destination [n, rows, cols] of `channels`: 4 where that still leaves at least 4
/// workgroups of 64 invocations (each source row then feeds 3 output rows and each weight 4),
/// else 2.
pub fn lanes_block_rows([n, rows, cols]: [usize; 3], channels: usize) -> usize {
    let invocations = n * rows.div_ceil(4) * cols.div_ceil(8) * channels.div_ceil(16);
    if rows >= 4 && invocations >= 4 * 64 { 4 } else { 2 }
}

/// The forward convolution's ROWS: the grid that forward_with_stats sizes its statistics for
/// is the one forward_into launches.
fn forward_rows(g: &Conv2dGeom) -> usize {
    lanes_block_rows([g.n, g.oh(), g.ow()], g.cout)
}

/// Class rows per invocation of conv2d_lanes.wgsl's stride-2 input gradient (ROWS): 2 where that
/// still leaves at least 4 workgroups of 64 invocations (the second row's terms reuse the
/// first's weights), else 1.
pub fn class_block_rows(g: &Conv2dGeom) -> usize {
    let class_rows = g.h.div_ceil(2);
    let invocations = g.n * class_rows.div_ceil(2) * g.w.div_ceil(2).div_ceil(8) * 2 * g.cin.div_ceil(16);
    if class_rows >= 2 && invocations >= 4 * 64 { 2 } else { 1 }
}

/// The lanes entry point (`entry`, or `<entry>_vec`) and the name its destination binds for a
/// destination `width` wide: the *_vec entries store four elements at a time through dst_vec,
/// where every 8-column segment lies inside its row (the width a multiple of 8).
fn vec_stores(entry: &'static str, width: usize) -> (&'static str, &'static str) {
    match (width.is_multiple_of(8), entry) {
        (true, "forward") => ("forward_vec", "dst_vec"),
        (true, "grad_input") => ("grad_input_vec", "dst_vec"),
        _ => (entry, "dst"),
    }
}

/// conv2d_lanes.wgsl's SOURCE_BN: whether the source is read through a batch norm and ReLU.
fn source_bn(bn_relu: Option<&BatchNormTensors>) -> (&'static str, f64) {
    ("SOURCE_BN", f64::from(u8::from(bn_relu.is_some())))
}

/// conv2d_lanes.wgsl's batch-norm bindings: `bn_relu`'s statistics and affine, or `placeholder`
/// in their place (the kernels bind them whether SOURCE_BN reads them or not).
fn bn_bindings<'a>(
    bn_relu: Option<&BatchNormTensors<'a>>,
    placeholder: &'a Tensor,
) -> [(&'static str, &'a Tensor); 4] {
    match bn_relu {
        Some(t) => [("bn_mean", t.mean), ("bn_invstd", t.invstd), ("bn_gamma", t.gamma), ("bn_beta", t.beta)],
        None => [
            ("bn_mean", placeholder),
            ("bn_invstd", placeholder),
            ("bn_gamma", placeholder),
            ("bn_beta", placeholder),
        ],
    }
}

/// Only the lanes kernels read their source through a batch norm.
fn refuse_bn_relu(label: &str, bn_relu: Option<&BatchNormTensors>) -> Result<()> {
    match bn_relu {
        Some(_) => Err(GpuError::Invalid {
            label: label.into(),
            what: "only the lanes kernels read a convolution's input through a batch norm".into(),
        }),
        None => Ok(()),
    }
}

/// What the lanes kernels' vec4 binding of `t` (read only with VEC_ROWS = 1) binds: `t`, or a
/// placeholder where `t` holds less than one vec4, the least such a binding may hold.
pub(crate) fn vec_binding(gpu: &Gpu, t: &Tensor) -> Result<Tensor> {
    match t.numel() >= 4 {
        true => Ok(t.clone()),
        false => gpu.tensor(&format!("{}.vec_unused", t.name()), &[4]),
    }
}

/// The weights as conv2d_lanes.wgsl's w_vec: whole vec4s covering every weight.
fn weight_vec(label: &str, w: &Tensor) -> Result<Tensor> {
    let what =
        format!("weights '{}' cannot be read as whole vec4s (a view at the end of its buffer)", w.name());
    w.vec4_cover().ok_or_else(|| GpuError::Invalid { label: label.into(), what })
}

/// lanes.wgsl's STRIDE and BLOCK_CH (8 channels per block where `channels`, the output
/// channels of the launch, are at most 8): pipeline constants, so that the driver compiles each
/// case apart (llvmpipe would run both sides of a branch on a uniform).
pub fn lanes_constants(stride: usize, channels: usize) -> [(&'static str, f64); 2] {
    [("STRIDE", stride as f64), ("BLOCK_CH", if channels <= 8 { 8.0 } else { 16.0 })]
}

/// conv2d_lanes.wgsl's uniform: source and destination planes, the weight indexing and the
/// grid (see the shader's header).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LanesParams {
    n: u32,
    src_c: u32,
    src_h: u32,
    src_w: u32,
    dst_c: u32,
    dst_h: u32,
    dst_w: u32,
    w_ch: u32,
    w_in: u32,
    w_flip: u32,
    segs_row: u32,
    segs: u32,
    groups: u32,
    splits: u32,
}

impl LanesParams {
    /// `rows` × `cols` destination positions per image in segments of 8 columns, `wg` segments
    /// per workgroup.
    fn grid(mut self, rows: usize, cols: usize, wg: u32) -> LanesParams {
        self.segs_row = cols.div_ceil(8) as u32;
        self.segs = (self.n as usize * rows) as u32 * self.segs_row;
        self.groups = self.segs.div_ceil(wg);
        self
    }

    /// Source and destination planes [channels, rows, columns]; weight indexing, grid and
    /// flags zero.
    fn planes(g: &Conv2dGeom, src: [usize; 3], dst: [usize; 3]) -> LanesParams {
        let u = |v: usize| v as u32;
        LanesParams {
            n: u(g.n),
            src_c: u(src[0]),
            src_h: u(src[1]),
            src_w: u(src[2]),
            dst_c: u(dst[0]),
            dst_h: u(dst[1]),
            dst_w: u(dst[2]),
            splits: 1,
            ..bytemuck::Zeroable::zeroed()
        }
    }

    /// `rows` output rows per invocation (ROWS).
    fn forward(g: &Conv2dGeom, wg: u32, rows: usize) -> (LanesParams, u64) {
        let planes = Self::planes(g, [g.cin, g.h, g.w], [g.cout, g.oh(), g.ow()]);
        let p = LanesParams { w_ch: (g.cin * 9) as u32, w_in: 9, ..planes }.grid(
            g.oh().div_ceil(rows),
            g.ow(),
            wg,
        );
        (p, p.groups as u64 * g.cout.div_ceil(16) as u64)
    }

    /// Stride 1: the forward kernel over dy with the kernel flipped and transposed, `rows`
    /// output rows per invocation; stride 2: one of two row parities per workgroup, each ⌈h/2⌉ ×
    /// ⌈w/2⌉ positions of both column parities.
    fn grad_input(g: &Conv2dGeom, wg: u32, rows: usize) -> (LanesParams, u64) {
        let flip = g.stride == 1;
        let p = LanesParams {
            w_ch: 9,
            w_in: (g.cin * 9) as u32,
            w_flip: u32::from(flip),
            ..Self::planes(g, [g.cout, g.oh(), g.ow()], [g.cin, g.h, g.w])
        };
        let (p, classes) = if flip {
            (p.grid(g.h.div_ceil(rows), g.w, wg), 1)
        } else {
            (p.grid(g.h.div_ceil(2).div_ceil(rows), g.w.div_ceil(2), wg), 2)
        };
        (p, p.groups as u64 * classes * g.cin.div_ceil(16) as u64)
    }

    fn grad_weight(g: &Conv2dGeom) -> LanesParams {
        Self::planes(g, [g.cin, g.h, g.w], [g.cout, g.oh(), g.ow()]).grid(g.oh(), g.ow(), 1)
    }
}
