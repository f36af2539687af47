//! A convolution and the batch norms around it, folded (conv2d_lanes.wgsl):
//! - `stats_cases`: batch-norm statistics written by the convolution before it
//!   (forward_vec_stats, merged by batchnorm.wgsl's stats_merge), against the f64 statistics of
//!   the convolution's own output: the batch mean and invstd the backward uses, the running
//!   statistics and the normalised output. Where the lanes kernels do not run the convolution,
//!   the batch norm's own statistics pass runs instead, and the case says so.
//! - `relu_cases`: a convolution reading a batch norm's ReLU output from the batch norm's
//!   input (SOURCE_BN), forward and weight gradient, against the f64 convolution of that
//!   output. Lanes kernels only: elsewhere there are no cases.

use super::batchnorm::{State, forward, forward_eval, running_stats};
use super::conv2d::{self as conv_ref, geom};
use super::{Case, Cases, TOL, affine, download, values};
use crate::gpu::{Gpu, Program};
use crate::ops::batchnorm::{self as bn, EPS, Fused};
use crate::ops::conv2d::{self, Conv2dGeom};
use anyhow::Result;

/// ResNet-20's stride-1 layer and stem, a stride-2 layer, and awkward cases: an odd number of
/// rows (a block's second row missing), 24 and 5 output channels (partial channel blocks), lane
/// groups with idle lanes (segments not a multiple of 8).
pub const SHAPES: &[Conv2dGeom] = &[
    geom(2, 16, 32, 32, 16, 3, 1, 1),
    geom(2, 3, 32, 32, 16, 3, 1, 1),
    geom(2, 16, 32, 32, 32, 3, 2, 1),
    geom(3, 5, 7, 8, 24, 3, 1, 1),
    geom(1, 4, 5, 16, 5, 3, 1, 1),
    geom(8, 16, 30, 32, 16, 3, 1, 1),
];

pub fn stats_cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "batchnorm conv stats", shapes, |c, s, g| {
        let out = g.output_shape();
        let ch = g.cout;
        let x = c.upload(
            "x",
            &g.input_shape(),
            &affine(g.input_shape().iter().product(), 70 + s as u64, 1.0, 0.3),
        )?;
        let w =
            c.upload("w", &g.weight_shape(), &values(g.weight_shape().iter().product(), 71 + s as u64))?;
        let (gamma, beta) = (values(ch, 72), values(ch, 73));
        let (gt, bt) = (c.upload("gamma", &[ch], &gamma)?, c.upload("beta", &[ch], &beta)?);
        let (y, z) = (c.zeros("y", &out)?, c.zeros("z", &out)?);
        let state = State::new(gpu, ch)?;
        let t = state.with(&gt, &bt);
        let mut p = Program::default();
        let partial = match conv2d::forward_with_stats(gpu, "conv", g, &x, &w, &y, None)? {
            Some((d, partial)) => {
                c.path("lanes conv epilogue");
                p.push(d);
                Some(partial)
            }
            None => {
                c.reductions_path();
                p.push(conv2d::forward(gpu, "conv", g, &x, &w, &y)?);
                None
            }
        };
        p.extend_from(bn::fused_forward_train(gpu, "bn", &y, &z, &t, &Fused::PLAIN, partial.as_ref())?);
        c.run(p.dispatches)?;
        // The statistics of what the convolution stored, in f64.
        let (want_z, mean, var) = forward(&download(gpu, &y)?, out, &gamma, &beta);
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
        let (rm, rv) = running_stats(&mean, &var, out);
        c.expect("mean", &state.mean, &mean, TOL)?;
        c.expect("invstd", &state.invstd, &invstd, TOL)?;
        c.expect("running_mean", &state.running_mean, &rm, TOL)?;
        c.expect("running_var", &state.running_var, &rv, TOL)?;
        c.expect("z", &z, &want_z, TOL)?;
        Ok(())
    })
}

pub fn relu_cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "conv2d bn relu", shapes, |c, s, g| {
        if !conv2d::lanes(gpu, g) {
            return Ok(());
        }
        c.path("lanes");
        let (shape, cin, seed) = (g.input_shape(), g.cin, 80 + 10 * s as u64);
        let x = affine(shape.iter().product(), seed, 1.0, 0.2);
        let w = values(g.weight_shape().iter().product(), seed + 1);
        let dy = values(g.output_shape().iter().product(), seed + 2);
        // Batch statistics as the training forward saved them, and the layer's affine.
        let (gamma, beta) = (affine(cin, seed + 3, 0.5, 1.0), values(cin, seed + 4));
        let mean = values(cin, seed + 5);
        let var: Vec<f64> = affine(cin, seed + 6, 0.3, 1.0).iter().map(|v| v * v).collect();
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + EPS as f64).sqrt()).collect();
        let (xt, wt, dyt) = (
            c.upload("x", &shape, &x)?,
            c.upload("w", &g.weight_shape(), &w)?,
            c.upload("dy", &g.output_shape(), &dy)?,
        );
        let state = State::new(gpu, cin)?;
        gpu.write(&state.mean, &super::to_f32(&mean))?;
        gpu.write(&state.invstd, &super::to_f32(&invstd))?;
        let (gt, bt) = (c.upload("gamma", &[cin], &gamma)?, c.upload("beta", &[cin], &beta)?);
        let t = state.with(&gt, &bt);
        let (y, dw) = (c.zeros("y", &g.output_shape())?, c.zeros("dw", &g.weight_shape())?);
        let mut p = conv2d::grad_weight_with(gpu, "conv", g, &xt, &dyt, &dw, Some(&t))?;
        p.push(conv2d::forward_with(gpu, "conv", g, &xt, &wt, &y, Some(&t))?);
        c.run(p.dispatches)?;
        let a: Vec<f64> =
            forward_eval(&x, shape, &gamma, &beta, &mean, &var).iter().map(|v| v.max(0.0)).collect();
        // Each output's error scales with the magnitudes of its terms, and each activation's
        // with those of its affine's: |x·scale| + |β| + |mean·scale|.
        let hw = shape[2] * shape[3];
        let terms: Vec<f64> = (0..x.len())
            .map(|i| {
                let ch = (i / hw) % cin;
                let scale = invstd[ch] * gamma[ch];
                (x[i] * scale).abs() + beta[ch].abs() + (mean[ch] * scale).abs()
            })
            .collect();
        let (aw, ady) = (super::abs(&w), super::abs(&dy));
        c.expect_bounded("y", &y, &conv_ref::forward(g, &a, &w), &conv_ref::forward(g, &terms, &aw), TOL)?;
        c.expect_bounded(
            "dw",
            &dw,
            &conv_ref::grad_weight(g, &a, &dy),
            &conv_ref::grad_weight(g, &terms, &ady),
            TOL,
        )?;
        Ok(())
    })
}
