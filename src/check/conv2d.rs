//! conv2d (shaders/conv2d.wgsl, conv2d_lanes.wgsl, conv2d_tiled.wgsl): forward, grad_input (also
//! accumulating) and grad_weight.

use super::{Case, Cases, TOL, abs, values};
use crate::gpu::{Gpu, Program};
use crate::ops::conv2d::{self as op, Conv2dGeom};
use anyhow::Result;

/// A square-kernel convolution: input [n, cin, h, w], cout kernels k×k.
#[allow(clippy::too_many_arguments)]
pub const fn geom(
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Conv2dGeom {
    Conv2dGeom { n, cin, h, w, cout, kh: k, kw: k, stride, pad }
}

/// Odd sizes, 1×1 and 5×5 kernels, strides 1 to 3, channel counts off the 4×4 register block
/// and off the tiled family's tiles.
pub const AWKWARD: &[Conv2dGeom] = &[
    geom(1, 1, 5, 5, 1, 3, 1, 1),
    geom(2, 3, 7, 9, 5, 3, 1, 1),
    geom(3, 4, 8, 8, 8, 3, 2, 1),
    geom(2, 5, 9, 6, 7, 1, 1, 0),
    geom(2, 6, 11, 10, 3, 5, 2, 2),
    geom(1, 2, 6, 6, 6, 3, 3, 0),
    geom(5, 16, 16, 16, 32, 3, 2, 1),
    // Off the tiled family's tiles: stride-2 1×1 (parity classes meeting no tap), channel
    // slices with remainders, two row tiles (70 channels), two bit-plane words (40 channels).
    geom(2, 5, 7, 7, 6, 1, 2, 0),
    geom(3, 12, 13, 11, 14, 3, 1, 1),
    geom(2, 67, 9, 7, 70, 1, 1, 0),
    geom(2, 17, 9, 9, 33, 3, 2, 1),
    geom(2, 40, 6, 5, 70, 1, 1, 0),
    // conv2d_lanes.wgsl (3×3, blocked family on 8-lane subgroups): channel blocks of 16 and
    // widths off its 8-column segments; grad_weight's blocks of 32 with a part-filled last one.
    geom(2, 11, 8, 8, 19, 3, 1, 1),
    geom(2, 9, 6, 9, 50, 3, 1, 1),
    geom(2, 9, 7, 10, 33, 3, 2, 1),
    geom(3, 17, 12, 5, 6, 3, 2, 1),
    geom(1, 3, 17, 3, 16, 3, 2, 1),
    // A single pixel: tensors smaller than one vec4 (the lanes kernels' vec4 bindings).
    geom(1, 1, 1, 1, 2, 3, 1, 1),
    // Rows of whole vec4s whose segments straddle subgroups (3 and 6 per row: VEC_ROWS = 1, the
    // edge columns loaded) and rows of 8 segments, one subgroup each (VEC_ROWS = 2).
    geom(2, 5, 5, 24, 18, 3, 1, 1),
    geom(1, 4, 5, 96, 9, 3, 2, 1),
    geom(1, 3, 3, 64, 5, 3, 1, 1),
    // Grids large enough for blocks of 4 output rows (`lanes_block_rows`), the last block part
    // filled: 30 rows, and 13 at stride 2.
    geom(8, 16, 30, 32, 16, 3, 1, 1),
    geom(16, 8, 26, 32, 32, 3, 2, 1),
    // The stride-2 input gradient's blocks of 2 class rows (`class_block_rows`), the last part
    // filled, on rows whose segments straddle subgroups (3 per row) and rows off whole vec4s.
    geom(10, 16, 20, 48, 16, 3, 2, 1),
    geom(10, 16, 19, 44, 16, 3, 2, 1),
];

/// The convolutions of the small CNN (28×28) and ResNet-20 (32×32), batch 2.
pub const MODEL: &[Conv2dGeom] = &[
    geom(2, 1, 28, 28, 8, 3, 1, 1),
    geom(2, 8, 14, 14, 16, 3, 1, 1),
    geom(2, 16, 7, 7, 32, 3, 1, 1),
    geom(2, 3, 32, 32, 16, 3, 1, 1),
    geom(2, 16, 32, 32, 16, 3, 1, 1),
    geom(2, 16, 32, 32, 32, 3, 2, 1),
    geom(2, 32, 16, 16, 32, 3, 1, 1),
    geom(2, 32, 16, 16, 64, 3, 2, 1),
    geom(2, 64, 8, 8, 64, 3, 1, 1),
];

/// Calls f(x index, w index, y index) for every multiply-add of the convolution.
fn taps(g: &Conv2dGeom, mut f: impl FnMut(usize, usize, usize)) {
    let inside = |o: usize, i: usize, size: usize| {
        let v = (o * g.stride + i) as isize - g.pad as isize;
        (v >= 0 && (v as usize) < size).then_some(v as usize)
    };
    let (oh, ow) = (g.oh(), g.ow());
    for n in 0..g.n {
        for co in 0..g.cout {
            for r in 0..oh {
                for c in 0..ow {
                    for ci in 0..g.cin {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let (Some(ir), Some(ic)) = (inside(r, i, g.h), inside(c, j, g.w)) {
                                    f(
                                        ((n * g.cin + ci) * g.h + ir) * g.w + ic,
                                        ((co * g.cin + ci) * g.kh + i) * g.kw + j,
                                        ((n * g.cout + co) * oh + r) * ow + c,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn numel(shape: [usize; 4]) -> usize {
    shape.iter().product()
}

pub fn forward(g: &Conv2dGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; numel(g.output_shape())];
    taps(g, |xi, wi, yi| y[yi] += x[xi] * w[wi]);
    y
}

pub fn grad_input(g: &Conv2dGeom, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; numel(g.input_shape())];
    taps(g, |xi, wi, yi| dx[xi] += w[wi] * dy[yi]);
    dx
}

pub fn grad_weight(g: &Conv2dGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; numel(g.weight_shape())];
    taps(g, |xi, wi, yi| dw[wi] += x[xi] * dy[yi]);
    dw
}

pub fn cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "conv2d", shapes, |c, s, g| {
        c.path(op::path(gpu, g));
        let x = values(numel(g.input_shape()), 10 + s as u64);
        let w = values(numel(g.weight_shape()), 20 + s as u64);
        let dy = values(numel(g.output_shape()), 50 + s as u64);
        let (xt, wt, dyt) = (
            c.upload("x", &g.input_shape(), &x)?,
            c.upload("w", &g.weight_shape(), &w)?,
            c.upload("dy", &g.output_shape(), &dy)?,
        );
        let (yt, dxt, dwt) = (
            c.zeros("y", &g.output_shape())?,
            c.zeros("dx", &g.input_shape())?,
            c.zeros("dw", &g.weight_shape())?,
        );
        // grad_input_into with accumulate adds to what dx holds (a residual branch's join).
        let prior = values(x.len(), 70 + s as u64);
        let acc = c.upload("dx_acc", &g.input_shape(), &prior)?;
        let mut p = launch(gpu, "conv", g, [&xt, &wt, &dyt], [&yt, &dxt, &dwt])?;
        p.push(op::grad_input_into(gpu, "conv", g, &dyt, &wt, &acc, true)?);
        c.run(p.dispatches)?;
        let (ax, aw, ady) = (abs(&x), abs(&w), abs(&dy));
        c.expect_bounded("forward", &yt, &forward(g, &x, &w), &forward(g, &ax, &aw), TOL)?;
        let (dx, dx_bound) = (grad_input(g, &dy, &w), grad_input(g, &ady, &aw));
        c.expect_bounded("grad_input", &dxt, &dx, &dx_bound, TOL)?;
        let sum = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u + v).collect::<Vec<_>>();
        let acc_bound = sum(&dx_bound, &abs(&prior));
        c.expect_bounded("grad_input accumulate", &acc, &sum(&dx, &prior), &acc_bound, TOL)?;
        c.expect_bounded("grad_weight", &dwt, &grad_weight(g, &x, &dy), &grad_weight(g, &ax, &ady), TOL)?;
        Ok(())
    })
}

/// All three entry points: y from (x, w), dx from (dy, w), dw from (x, dy).
fn launch(
    gpu: &Gpu,
    label: &str,
    g: &Conv2dGeom,
    [x, w, dy]: [&crate::gpu::Tensor; 3],
    [y, dx, dw]: [&crate::gpu::Tensor; 3],
) -> Result<Program> {
    let mut p = op::grad_weight(gpu, label, g, x, dy, dw)?;
    p.push(op::forward(gpu, label, g, x, w, y)?);
    p.push(op::grad_input(gpu, label, g, dy, w, dx)?);
    Ok(p)
}

/// PyTorch's conv2d and its two gradients on six geometries (conv0 … conv5).
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "conv2d", &["conv0", "conv1", "conv2", "conv3", "conv4", "conv5"], |c, case| {
        let v: Vec<usize> = c.golden_values("geom")?.iter().map(|v| *v as usize).collect();
        let g = geom(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        c.path(op::path(gpu, &g));
        let (x, w, dy) = (c.golden_input("x")?, c.golden_input("w")?, c.golden_input("dy")?);
        let (y, dx, dw) =
            (c.zeros("y", &g.output_shape())?, c.zeros("dx", x.shape())?, c.zeros("dw", w.shape())?);
        c.run(launch(gpu, case, &g, [&x, &w, &dy], [&y, &dx, &dw])?.dispatches)?;
        c.expect_golden(&[("y", &y), ("dx", &dx), ("dw", &dw)], TOL)?;
        Ok(())
    })
}
