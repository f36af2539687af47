//! Element-wise activations (shaders/activation.wgsl): relu_forward, relu_backward, add, and
//! STTN's ternary activation ternary_forward / ternary_backward. Shapes are lengths.

use super::{Case, Cases, TOL, affine, values};
use crate::gpu::Gpu;
use crate::ops::activation as op;
use anyhow::Result;

/// Around the workgroup of 256, and a length that needs a 2-D grid.
pub const AWKWARD: &[usize] = &[1, 255, 256, 257, 1000, 70_000];

pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(v, g)| if *v > 0.0 { *g } else { 0.0 }).collect()
}

pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// +1 above 0.5, −1 below −0.5, else 0.
pub fn ternary(v: f64) -> f64 {
    if v > 0.5 {
        1.0
    } else if v < -0.5 {
        -1.0
    } else {
        0.0
    }
}

pub fn ternary_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| ternary(*v)).collect()
}

/// Straight-through inside [−1, 1].
pub fn ternary_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(v, g)| if v.abs() <= 1.0 { *g } else { 0.0 }).collect()
}

pub fn cases(gpu: &Gpu, shapes: &[usize]) -> Result<Vec<Case>> {
    Cases::each(gpu, "activation", shapes, |c, _, &len| {
        let (x, dy) = (values(len, len as u64), values(len, len as u64 + 1));
        // Beyond ±1, where the ternary straight-through gradient stops.
        let x3 = affine(len, len as u64, 1.6, 0.0);
        let (xt, x3t, dyt) =
            (c.upload("x", &[len], &x)?, c.upload("x3", &[len], &x3)?, c.upload("dy", &[len], &dy)?);
        let out = |name: &str| c.zeros(name, &[len]);
        let (y, dx, sum, y3, dx3) = (out("y")?, out("dx")?, out("sum")?, out("y3")?, out("dx3")?);
        c.run([
            op::relu_forward(gpu, "relu", &xt, &y)?,
            op::relu_backward(gpu, "relu", &xt, &dyt, &dx)?,
            op::add(gpu, "join", &xt, &dyt, &sum)?,
            op::ternary_forward(gpu, "act", &x3t, &y3)?,
            op::ternary_backward(gpu, "act", &x3t, &dyt, &dx3)?,
        ])?;
        c.expect("relu_forward", &y, &relu_forward(&x), 0.0)?;
        c.expect("relu_backward", &dx, &relu_backward(&x, &dy), 0.0)?;
        c.expect("add", &sum, &add(&x, &dy), 1e-6)?;
        c.expect("ternary_forward", &y3, &ternary_forward(&x3), 0.0)?;
        c.expect("ternary_backward", &dx3, &ternary_backward(&x3, &dy), 0.0)?;
        Ok(())
    })
}

/// PyTorch's relu and its gradient.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "activation", &["relu"], |c, _| {
        let (x, dy) = (c.golden_input("x")?, c.golden_input("dy")?);
        let (y, dx) = (c.zeros("y", x.shape())?, c.zeros("dx", x.shape())?);
        c.run([op::relu_forward(gpu, "relu", &x, &y)?, op::relu_backward(gpu, "relu", &x, &dy, &dx)?])?;
        c.expect_golden(&[("y", &y), ("dx", &dx)], TOL)?;
        Ok(())
    })
}
