//! Reductions (shaders/reduce.wgsl): max_abs (max |x|, one workgroup) and sum_splits (the sum of
//! split-K partial results, in order). Shapes are lengths; sum_splits sums 3 splits.

use super::{Case, Cases, values};
use crate::gpu::Gpu;
use crate::ops::reduce as op;
use anyhow::Result;

/// Around and far over the workgroup of 256.
pub const AWKWARD: &[usize] = &[1, 100, 256, 1000, 40_000];

/// max|w| over more than 100k weights.
pub const LARGE: &[usize] = &[150_001];

pub fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Column sums of `partial` [splits, len].
pub fn sum_splits(partial: &[f64], len: usize) -> Vec<f64> {
    (0..len).map(|i| partial.iter().skip(i).step_by(len).sum()).collect()
}

pub fn cases(gpu: &Gpu, shapes: &[usize]) -> Result<Vec<Case>> {
    Cases::each(gpu, "reduce", shapes, |c, _, &len| {
        c.reductions_path();
        let (x, partial) = (values(len, len as u64 + 5), values(3 * len, 7));
        let (xt, r) = (c.upload("x", &[len], &x)?, c.zeros("r", &[1])?);
        let (pt, total) = (c.upload("partial", &[3, len], &partial)?, c.zeros("total", &[len])?);
        let mut d = op::max_abs(gpu, "w", &xt, &r)?;
        d.push(op::sum_splits(gpu, "w", &pt, &total)?);
        c.run(d)?;
        c.expect("max_abs", &r, &[max_abs(&x)], 1e-7)?;
        let bound = sum_splits(&super::abs(&partial), len);
        c.expect_bounded("sum_splits", &total, &sum_splits(&partial, len), &bound, 1e-6)?;
        Ok(())
    })
}
