//! Inference fully connected layer (shaders/packed_linear.wgsl): `ternary` (bit-packed weights,
//! scales per layer or per output) and `dense`, y = (x·wᵀ)·scale + shift.

use super::packed_conv::{codes, ternary_weights, upload_ternary};
use super::{Case, Cases, TOL, affine, linear, values};
use crate::gpu::Gpu;
use crate::ops::packed_conv::PackedWeights;
use crate::ops::packed_linear as op;
use anyhow::Result;

/// linear's awkward shapes (n, fin, fout).
pub const AWKWARD: &[(usize, usize, usize)] = linear::AWKWARD;
pub const MODEL: &[(usize, usize, usize)] = linear::MODEL;

/// y = (x·wᵀ)·scale + shift for x [n, fin], w [fout, fin].
pub fn forward(
    x: &[f64],
    w: &[f64],
    n: usize,
    fin: usize,
    fout: usize,
    scale: &[f64],
    shift: &[f64],
) -> Vec<f64> {
    let y = linear::forward(x, w, &vec![0.0; fout], n, fin, fout);
    y.iter().enumerate().map(|(i, v)| v * scale[i % fout] + shift[i % fout]).collect()
}

pub fn cases(gpu: &Gpu, shapes: &[(usize, usize, usize)]) -> Result<Vec<Case>> {
    Cases::each(gpu, "packed_linear", shapes, |c, s, &(n, fin, fout)| {
        c.family_path();
        let seed = 900 + 10 * s as u64;
        let (x, codes, dense) =
            (values(n * fin, seed), codes(fout * fin, seed + 1), values(fout * fin, seed + 2));
        let (scale, shift) = (values(fout, seed + 3), values(fout, seed + 4));
        let per_out = affine(fout, seed + 5, 0.25, 0.75);
        let (xt, wt) = (c.upload("x", &[n, fin], &x)?, c.upload("w", &[fout, fin], &dense)?);
        let (st, sht) = (c.upload("scale", &[fout], &scale)?, c.upload("shift", &[fout], &shift)?);
        for (what, wp, wn) in
            [("ternary", vec![0.75], vec![1.25]), ("ternary per output", per_out.clone(), per_out)]
        {
            let [pos, neg, wpt, wnt] = upload_ternary(c, &codes, &[fout, fin], &wp, &wn)?;
            let y = c.zeros("y", &[n, fout])?;
            let weights = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &wpt, wn: &wnt };
            c.run([op::forward(gpu, "fc", &xt, &weights, &st, &sht, &y)?])?;
            c.expect(
                what,
                &y,
                &forward(&x, &ternary_weights(&codes, &wp, &wn), n, fin, fout, &scale, &shift),
                TOL,
            )?;
        }
        let y = c.zeros("y", &[n, fout])?;
        c.run([op::forward(gpu, "fc", &xt, &PackedWeights::Dense { weight: &wt }, &st, &sht, &y)?])?;
        c.expect("dense", &y, &forward(&x, &dense, n, fin, fout, &scale, &shift), TOL)?;
        Ok(())
    })
}
