//! SGD with momentum and AdamW over the flat parameter buffer (shaders/optim.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Result, Tensor, Uniform, shaders};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    pub len: u32,
    /// Elements before this index get weight decay.
    pub decay_end: u32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// Adam's moment decays and ε (Kingma & Ba's defaults, as PyTorch's).
pub const ADAM_BETA1: f32 = 0.9;
pub const ADAM_BETA2: f32 = 0.999;
pub const ADAM_EPS: f32 = 1e-8;

/// Rewritten by the host before each step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    pub lr: f32,
    pub bias1: f32,
    pub bias2: f32,
}

impl StepParams {
    /// Learning rate `lr` at optimizer step `t` (from 1), with Adam's bias corrections.
    pub fn at(lr: f32, t: i32) -> StepParams {
        StepParams { lr, bias1: 1.0 - ADAM_BETA1.powi(t), bias2: 1.0 - ADAM_BETA2.powi(t) }
    }
}

/// One update of every parameter. `entry` is "sgd" or "adam"; `step` is the uniform buffer the
/// host rewrites with `StepParams`.
pub fn update(
    gpu: &Gpu,
    entry: &str,
    p: &OptimParams,
    step: &Uniform<StepParams>,
    param: &Tensor,
    grad: &Tensor,
    moment1: &Tensor,
    moment2: &Tensor,
) -> Result<Dispatch> {
    let label = format!("optimizer/{entry}");
    let len = param.numel();
    for t in [grad, moment1, moment2] {
        expect_shape(&label, t, param.shape())?;
    }
    let p = OptimParams { len: u32_of(&label, "len", len)?, ..*p };
    let k = gpu.kernel(&shaders::OPTIM, entry)?;
    let mut tensors = vec![("param", param), ("grad", grad), ("moment1", moment1)];
    if entry == "adam" {
        tensors.push(("moment2", moment2));
    }
    let cost = Cost::new(10 * len as u64, f32_bytes(len * (2 + 2 * (tensors.len() - 2))));
    Dispatch::with_uniforms(
        gpu,
        &k,
        label,
        &p,
        &tensors,
        &[("step", step.bind())],
        Grid::Threads(len as u64),
        cost,
    )
}
