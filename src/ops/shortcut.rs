//! Option A shortcut of CIFAR ResNets: strided subsample + zero-padded channels
//! (shaders/shortcut.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Grid, Result, Tensor, shaders};

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
    stride: u32,
    pad_c: u32,
}

/// Output shape for input [n, cin, h, w]: [n, cout, ⌈h/stride⌉, ⌈w/stride⌉].
pub fn output_shape(input: &[usize], cout: usize, stride: usize) -> [usize; 4] {
    [input[0], cout, input[2].div_ceil(stride), input[3].div_ceil(stride)]
}

fn params(label: &str, x: &[usize], cout: usize, stride: usize) -> Result<Params> {
    if cout < x[1] || !(cout - x[1]).is_multiple_of(2) || stride == 0 {
        let what = format!("option-A shortcut cannot map {} to {cout} channels with stride {stride}", x[1]);
        return Err(GpuError::Invalid { label: label.into(), what });
    }
    let o = output_shape(x, cout, stride);
    let u = |v| u32_of(label, "size", v);
    Ok(Params {
        n: u(x[0])?,
        cin: u(x[1])?,
        h: u(x[2])?,
        w: u(x[3])?,
        cout: u(cout)?,
        oh: u(o[2])?,
        ow: u(o[3])?,
        stride: stride as u32,
        pad_c: ((cout - x[1]) / 2) as u32,
    })
}

pub fn forward(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor, stride: usize) -> Result<Dispatch> {
    let label = format!("{label}/forward");
    let p = params(&label, x.shape(), y.shape()[1], stride)?;
    expect_shape(&label, y, &output_shape(x.shape(), y.shape()[1], stride))?;
    let k = gpu.kernel(&shaders::SHORTCUT, "forward")?;
    let cost = Cost::new(0, f32_bytes(2 * y.numel()));
    Dispatch::new(gpu, &k, label, &p, &[("x", x), ("y", y)], Grid::Threads(y.numel() as u64), cost)
}

pub fn backward(gpu: &Gpu, label: &str, dy: &Tensor, dx: &Tensor, stride: usize) -> Result<Dispatch> {
    let label = format!("{label}/backward");
    let p = params(&label, dx.shape(), dy.shape()[1], stride)?;
    expect_shape(&label, dy, &output_shape(dx.shape(), dy.shape()[1], stride))?;
    let k = gpu.kernel(&shaders::SHORTCUT, "backward")?;
    let cost = Cost::new(0, f32_bytes(2 * dx.numel()));
    Dispatch::new(gpu, &k, label, &p, &[("dy", dy), ("dx", dx)], Grid::Threads(dx.numel() as u64), cost)
}
