//! Fully connected layer y = x·wᵀ + b (shaders/linear.wgsl: the blocked family;
//! shaders/linear_tiled.wgsl: the tiled family, chosen by `gpu.family()`).

use super::conv2d::tiles;
use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Family, Gpu, Grid, Kernel, Result, Tensor, shaders};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    fin: u32,
    fout: u32,
}

/// Sizes from x [n, fin] and w [fout, fin]; x may carry trailing dims (flattened).
fn params(label: &str, x: &Tensor, w: &Tensor) -> Result<(Params, usize, usize, usize)> {
    let n = x.shape()[0];
    let fin = x.numel() / n.max(1);
    let fout = w.shape()[0];
    expect_shape(label, w, &[fout, fin])?;
    let p = Params {
        n: u32_of(label, "n", n)?,
        fin: u32_of(label, "fin", fin)?,
        fout: u32_of(label, "fout", fout)?,
    };
    Ok((p, n, fin, fout))
}

fn cost(n: usize, fin: usize, fout: usize) -> Cost {
    Cost::new(2 * (n * fin * fout) as u64, f32_bytes(n * fin + fin * fout + n * fout))
}

/// The entry point of `gpu`'s family and its grid: blocked, one invocation per output element;
/// tiled, one workgroup per tile of the `rows` × `cols` GEMM reduced over `depth`.
fn launch(gpu: &Gpu, entry: &str, rows: usize, cols: usize, depth: usize) -> Result<(Arc<Kernel>, Grid)> {
    Ok(match gpu.family() {
        Family::Blocked => (gpu.kernel(&shaders::LINEAR, entry)?, Grid::Threads((rows * cols) as u64)),
        Family::Tiled => {
            let t = gpu.tile(rows, cols, depth);
            let k = gpu.kernel_with(&shaders::LINEAR_TILED, entry, &t.constants())?;
            (k, Grid::Groups(tiles(&t, rows, cols)))
        }
    })
}

pub fn forward(gpu: &Gpu, label: &str, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/forward");
    let (p, n, fin, fout) = params(&label, x, w)?;
    expect_shape(&label, b, &[fout])?;
    expect_shape(&label, y, &[n, fout])?;
    let (k, grid) = launch(gpu, "forward", fout, n, fin)?;
    let tensors = [("x", x), ("w", w), ("b", b), ("y", y)];
    Dispatch::new(gpu, &k, label, &p, &tensors, grid, cost(n, fin, fout))
}

pub fn grad_input(gpu: &Gpu, label: &str, dy: &Tensor, w: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let label = format!("{label}/grad_input");
    let (p, n, fin, fout) = params(&label, dx, w)?;
    expect_shape(&label, dy, &[n, fout])?;
    let (k, grid) = launch(gpu, "grad_input", fin, n, fout)?;
    let tensors = [("dy", dy), ("w", w), ("dx", dx)];
    Dispatch::new(gpu, &k, label, &p, &tensors, grid, cost(n, fin, fout))
}

/// dw = dyᵀ·x and db = Σ_n dy.
pub fn grad_weight(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    db: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/grad_weight");
    let (p, n, fin, fout) = params(&label, x, dw)?;
    expect_shape(&label, dy, &[n, fout])?;
    expect_shape(&label, db, &[fout])?;
    let (k, grid) = launch(gpu, "grad_weight", fout, fin, n)?;
    let tensors = [("x", x), ("dy", dy), ("dw", dw), ("db", db)];
    Dispatch::new(gpu, &k, label, &p, &tensors, grid, cost(n, fin, fout))
}
