//! Batch-norm statistics written by the convolution before it (conv2d_lanes.wgsl's
//! forward_vec_stats, merged by batchnorm.wgsl's stats_merge), against the f64 statistics of
//! the convolution's own output: the batch mean and invstd the backward uses, the running
//! statistics and the normalised output. Where the lanes kernels do not run the convolution,
//! the batch norm's own statistics pass runs instead, and the case says so.

use super::batchnorm::{State, forward, running_stats};
use super::conv2d::geom;
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
];

pub fn cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
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
        let partial = match conv2d::forward_with_stats(gpu, "conv", g, &x, &w, &y)? {
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
