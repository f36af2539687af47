//! conv2d: forward, grad_input and grad_weight (shaders/conv2d.wgsl).

use super::{expect_shape, f32_bytes};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Grid, Program, Result, Tensor, shaders};

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
        Params { shape: self.shape(), splits: splits as u32 }
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
}

fn blocks(v: usize) -> u64 {
    v.div_ceil(4) as u64
}

pub fn forward(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/forward");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    expect_shape(&label, w, &g.weight_shape())?;
    expect_shape(&label, y, &g.output_shape())?;
    let k = gpu.kernel(&shaders::CONV2D, "forward")?;
    let threads = blocks(g.cout) * blocks(g.n * g.oh() * g.ow());
    let cost = Cost { flops: g.flops(), bytes: f32_bytes(x.numel() + w.numel() + y.numel()) };
    Dispatch::new(gpu, &k, label, &g.params(1), &[("x", x), ("w", w), ("y", y)], Grid::Threads(threads), cost)
}

pub fn grad_input(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/grad_input");
    g.validate(&label)?;
    expect_shape(&label, dy, &g.output_shape())?;
    expect_shape(&label, w, &g.weight_shape())?;
    expect_shape(&label, dx, &g.input_shape())?;
    let k = gpu.kernel(&shaders::CONV2D, "grad_input")?;
    let threads = blocks(g.cin) * blocks(g.n * g.h * g.w);
    let cost = Cost { flops: g.flops(), bytes: f32_bytes(dy.numel() + w.numel() + dx.numel()) };
    Dispatch::new(
        gpu,
        &k,
        label,
        &g.params(1),
        &[("dy", dy), ("w", w), ("dx", dx)],
        Grid::Threads(threads),
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
    let label = format!("{label}/grad_weight");
    g.validate(&label)?;
    expect_shape(&label, x, &g.input_shape())?;
    expect_shape(&label, dy, &g.output_shape())?;
    expect_shape(&label, dw, &g.weight_shape())?;
    let positions = g.n * g.oh() * g.ow();
    let base = blocks(g.cout) * blocks(g.cin * g.kh * g.kw);
    let splits = (gpu.parallelism().div_ceil(base) as usize).clamp(1, positions.div_ceil(64).max(1));
    let k = gpu.kernel(&shaders::CONV2D, "grad_weight")?;
    let cost = Cost { flops: g.flops(), bytes: f32_bytes(x.numel() + dy.numel() + dw.numel() * splits) };
    let mut program = Program::default();
    if splits == 1 {
        program.push(Dispatch::new(
            gpu,
            &k,
            label,
            &g.params(1),
            &[("x", x), ("dy", dy), ("dw_partial", dw)],
            Grid::Threads(base),
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
        Grid::Threads(base * splits as u64),
        cost,
    )?);
    program.push(super::reduce::sum_splits(gpu, &label, &partial, dw)?);
    Ok(program)
}
