//! Max pooling and global average pooling (shaders/pool.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
}

/// Output size of a k×k max pool with the given stride (no padding).
pub fn max_out(h: usize, k: usize, stride: usize) -> usize {
    (h.saturating_sub(k)) / stride.max(1) + 1
}

fn params(label: &str, x: &Tensor, k: usize, stride: usize) -> Result<Params> {
    let s = x.shape();
    if k == 0 || stride == 0 || s[2] < k || s[3] < k {
        let what = format!("max pool {k}x{k}/{stride} does not fit input {s:?}");
        return Err(GpuError::Invalid { label: label.into(), what });
    }
    let u = |v| u32_of(label, "size", v);
    Ok(Params {
        n: u(s[0])?,
        c: u(s[1])?,
        h: u(s[2])?,
        w: u(s[3])?,
        oh: u(max_out(s[2], k, stride))?,
        ow: u(max_out(s[3], k, stride))?,
        k: k as u32,
        stride: stride as u32,
    })
}

pub fn max_forward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    k: usize,
    stride: usize,
) -> Result<Dispatch> {
    let label = format!("{label}/max_forward");
    let p = params(&label, x, k, stride)?;
    let s = x.shape();
    expect_shape(&label, y, &[s[0], s[1], p.oh as usize, p.ow as usize])?;
    let kernel = gpu.kernel(&shaders::POOL, "max_forward")?;
    let cost = Cost::new((y.numel() * k * k) as u64, f32_bytes(x.numel() + y.numel()));
    Dispatch::new(gpu, &kernel, label, &p, &[("x", x), ("y", y)], Grid::Threads(y.numel() as u64), cost)
}

pub fn max_backward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    k: usize,
    stride: usize,
) -> Result<Dispatch> {
    let label = format!("{label}/max_backward");
    let p = params(&label, x, k, stride)?;
    let s = x.shape();
    expect_shape(&label, dy, &[s[0], s[1], p.oh as usize, p.ow as usize])?;
    expect_shape(&label, dx, s)?;
    let kernel = gpu.kernel(&shaders::POOL, "max_backward")?;
    let windows = k.div_ceil(stride).pow(2);
    let cost = Cost::new((x.numel() * windows * k * k) as u64, f32_bytes(2 * x.numel() + dy.numel()));
    let tensors = [("x", x), ("dy", dy), ("dx", dx)];
    // Disjoint windows: one invocation per output element (see the shader).
    let threads = if k == stride { dy.numel() } else { x.numel() };
    Dispatch::new(gpu, &kernel, label, &p, &tensors, Grid::Threads(threads as u64), cost)
}

fn avg_params(label: &str, x: &Tensor) -> Result<Params> {
    let s = x.shape();
    let u = |v| u32_of(label, "size", v);
    Ok(Params { n: u(s[0])?, c: u(s[1])?, h: u(s[2])?, w: u(s[3])?, oh: 1, ow: 1, k: 0, stride: 1 })
}

/// Global average pool: [n, c, h, w] → [n, c].
pub fn avg_forward(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/avg_forward");
    let p = avg_params(&label, x)?;
    expect_shape(&label, y, &x.shape()[..2])?;
    let kernel = gpu.kernel(&shaders::POOL, "avg_forward")?;
    let cost = Cost::new(x.numel() as u64, f32_bytes(x.numel() + y.numel()));
    Dispatch::new(gpu, &kernel, label, &p, &[("x", x), ("y", y)], Grid::Threads(y.numel() as u64), cost)
}

pub fn avg_backward(gpu: &Gpu, label: &str, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/avg_backward");
    let p = avg_params(&label, dx)?;
    expect_shape(&label, dy, &dx.shape()[..2])?;
    let kernel = gpu.kernel(&shaders::POOL, "avg_backward")?;
    let cost = Cost::new(dx.numel() as u64, f32_bytes(dx.numel() + dy.numel()));
    Dispatch::new(gpu, &kernel, label, &p, &[("dy", dy), ("dx", dx)], Grid::Threads(dx.numel() as u64), cost)
}
