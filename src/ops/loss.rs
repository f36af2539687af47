//! Softmax cross-entropy with prediction counts (shaders/loss.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Gpu, Grid, Result, Tensor, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    classes: u32,
    /// accumulate_split: ranges of the batch, one workgroup each
    splits: u32,
    pad: u32,
}

/// Per-sample loss, prediction and ∂loss/∂logits (mean over the batch).
pub fn forward(
    gpu: &Gpu,
    label: &str,
    logits: &Tensor,
    labels: &Tensor,
    dlogits: &Tensor,
    loss: &Tensor,
    pred: &Tensor,
) -> Result<Dispatch> {
    let label = format!("{label}/forward");
    let [n, classes] = [logits.shape()[0], logits.shape()[1]];
    expect_shape(&label, labels, &[n])?;
    expect_shape(&label, dlogits, &[n, classes])?;
    expect_shape(&label, loss, &[n])?;
    expect_shape(&label, pred, &[n])?;
    let p = Params {
        n: u32_of(&label, "n", n)?,
        classes: u32_of(&label, "classes", classes)?,
        splits: 0,
        pad: 0,
    };
    let k = gpu.kernel(&shaders::LOSS, "forward")?;
    let tensors =
        [("logits", logits), ("labels", labels), ("dlogits", dlogits), ("loss", loss), ("pred", pred)];
    let cost = Cost::new(6 * logits.numel() as u64, f32_bytes(2 * logits.numel() + 3 * n));
    Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(n as u64), cost)
}

/// metrics += [Σ loss, Σ correct, n, 0]: by one workgroup, or (see `reduce::ranges`) one per
/// range of the batch, then one invocation adding the ranges in order.
pub fn accumulate(
    gpu: &Gpu,
    label: &str,
    loss: &Tensor,
    pred: &Tensor,
    labels: &Tensor,
    metrics: &Tensor,
) -> Result<Vec<Dispatch>> {
    let label = format!("{label}/accumulate");
    let n = loss.numel();
    expect_shape(&label, pred, &[n])?;
    expect_shape(&label, labels, &[n])?;
    expect_shape(&label, metrics, &[4])?;
    let splits = super::reduce::ranges(gpu, n);
    let p = Params { n: u32_of(&label, "n", n)?, classes: 0, splits: splits as u32, pad: 0 };
    let cost = Cost::new(2 * n as u64, f32_bytes(3 * n));
    let tensors = [("loss", loss), ("pred", pred), ("labels", labels), ("metrics", metrics)];
    if splits <= 1 {
        let k = gpu.kernel(&shaders::LOSS, "accumulate")?;
        return Ok(vec![Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Groups(1), cost)?]);
    }
    let partial = gpu.tensor(&format!("{label}.partial"), &[splits, 2])?;
    let split = gpu.kernel(&shaders::LOSS, "accumulate_split")?;
    let all = [&tensors[..], &[("partial", &partial)]].concat();
    let first = Dispatch::new(
        gpu,
        &split,
        format!("{label}_split"),
        &p,
        &split.bound(&all),
        Grid::Groups(splits as u64),
        cost,
    )?;
    let merge = gpu.kernel(&shaders::LOSS, "accumulate_merge")?;
    let cost = Cost::new(2 * splits as u64, f32_bytes(2 * splits + 3));
    let second =
        Dispatch::new(gpu, &merge, format!("{label}_merge"), &p, &merge.bound(&all), Grid::Groups(1), cost)?;
    Ok(vec![first, second])
}
