//! ReLU, the ternary activation and elementwise addition (shaders/activation.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
}

fn launch(gpu: &Gpu, label: String, entry: &str, tensors: &[(&str, &Tensor)]) -> Result<Dispatch> {
    let shape = tensors[0].1.shape().to_vec();
    for (_, t) in &tensors[1..] {
        expect_shape(&label, t, &shape)?;
    }
    let len = tensors[0].1.numel();
    let k = gpu.kernel(&shaders::ACTIVATION, entry)?;
    let cost = Cost::new(len as u64, f32_bytes(len * tensors.len()));
    let params = Params { len: u32_of(&label, "len", len)? };
    Dispatch::new(gpu, &k, label, &params, tensors, Grid::Threads(len as u64), cost)
}

pub fn relu_forward(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, format!("{label}/relu_forward"), "relu_forward", &[("x", x), ("y", y)])
}

pub fn relu_backward(gpu: &Gpu, label: &str, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, format!("{label}/relu_backward"), "relu_backward", &[("x", x), ("dy", dy), ("dx", dx)])
}

/// +1 above 0.5, −1 below −0.5, else 0.
pub fn ternary_forward(gpu: &Gpu, label: &str, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, format!("{label}/ternary_forward"), "ternary_forward", &[("x", x), ("y", y)])
}

/// Straight-through: dy where |x| ≤ 1.
pub fn ternary_backward(gpu: &Gpu, label: &str, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, format!("{label}/ternary_backward"), "ternary_backward", &[("x", x), ("dy", dy), ("dx", dx)])
}

pub fn add(gpu: &Gpu, label: &str, a: &Tensor, b: &Tensor, sum: &Tensor) -> Result<Dispatch> {
    launch(gpu, format!("{label}/add"), "add", &[("a", a), ("b", b), ("sum", sum)])
}
