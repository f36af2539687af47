//! Inference convolution (shaders/packed_conv.wgsl): `ternary` (bit-packed weights) and `dense`
//! (f32 weights), each with the fused epilogue. The reference is conv2d's of the same weights,
//! then v·scale + shift, the residual (option A: subsampled, channels offset) and ReLU. The
//! bit-plane entry points of the same shader are checked by `bitplane`.

use super::{Case, Cases, conv2d, values};
use crate::gpu::{Gpu, Tensor};
use crate::ops::conv2d::Conv2dGeom;
use crate::ops::packed_conv::{self as op, PackedWeights};
use crate::packed::tap_major;
use crate::quant::pack::pack;
use anyhow::Result;

/// conv2d's awkward shapes, and batches of 8 whose segments fill the device, so that
/// packed_conv_lanes.wgsl runs workgroups of 64 (`ops::packed_conv::lanes_wg`) as well as the
/// small batches' single subgroups, and small grids' single rows (`lanes_rows`) as well as pairs.
pub const AWKWARD: &[Conv2dGeom] = &[
    conv2d::AWKWARD[0],
    conv2d::AWKWARD[1],
    conv2d::AWKWARD[2],
    conv2d::AWKWARD[3],
    conv2d::AWKWARD[4],
    conv2d::AWKWARD[5],
    conv2d::AWKWARD[6],
    conv2d::AWKWARD[7],
    conv2d::AWKWARD[8],
    conv2d::AWKWARD[9],
    conv2d::AWKWARD[10],
    conv2d::AWKWARD[11],
    conv2d::AWKWARD[12],
    conv2d::AWKWARD[13],
    conv2d::AWKWARD[14],
    conv2d::AWKWARD[15],
    conv2d::AWKWARD[16],
    conv2d::AWKWARD[17],
    conv2d::AWKWARD[18],
    conv2d::AWKWARD[19],
    conv2d::AWKWARD[20],
    conv2d::AWKWARD[21],
    conv2d::AWKWARD[22],
    conv2d::geom(8, 16, 32, 32, 32, 3, 1, 1),
    conv2d::geom(8, 24, 32, 32, 40, 3, 2, 1),
    conv2d::geom(8, 4, 32, 32, 8, 3, 1, 1),
];

pub const MODEL: &[Conv2dGeom] = conv2d::MODEL;

/// The epilogue on the host: v·scale + shift (+ residual) (ReLU).
pub struct Epilogue<'a> {
    pub scale: &'a [f64],
    pub shift: &'a [f64],
    pub relu: bool,
    /// Residual [n, res_c, res_h, res_w] and its stride: output (row, col) adds the residual at
    /// (row·stride, col·stride), channel co at co − (cout − res_c)/2, zero outside.
    pub residual: Option<(&'a [f64], [usize; 4], usize)>,
}

impl Epilogue<'_> {
    /// "relu true residual identity" (none, option A or the identity: the output's own shape).
    pub fn describe(&self, g: &Conv2dGeom) -> String {
        let residual = match self.residual {
            Some((_, shape, 1)) if shape == g.output_shape() => "identity",
            Some(_) => "option A",
            None => "none",
        };
        format!("relu {} residual {residual}", self.relu)
    }
}

/// Ternary weights: +wp, 0 or −wn for codes +1, 0, −1; scales per layer (`[1]`) or per output
/// channel (`[cout]`) of `codes.len() / cout` weights each.
pub fn ternary_weights(codes: &[i8], wp: &[f64], wn: &[f64]) -> Vec<f64> {
    let per = codes.len() / wp.len();
    codes.iter().enumerate().map(|(i, &k)| [-wn[i / per], 0.0, wp[i / per]][(k + 1) as usize]).collect()
}

pub fn epilogue(g: &Conv2dGeom, conv: &[f64], e: &Epilogue) -> Vec<f64> {
    let (oh, ow) = (g.oh(), g.ow());
    conv.iter()
        .enumerate()
        .map(|(i, v)| {
            let (n, co, r, c) = (i / (g.cout * oh * ow), (i / (oh * ow)) % g.cout, (i / ow) % oh, i % ow);
            let mut out = v * e.scale[co] + e.shift[co];
            if let Some((res, [_, res_c, rh, rw], s)) = e.residual {
                let (pad, rr, rc) = ((g.cout - res_c) / 2, r * s, c * s);
                if co >= pad && co < pad + res_c && rr < rh && rc < rw {
                    out += res[((n * res_c + co - pad) * rh + rr) * rw + rc];
                }
            }
            if e.relu { out.max(0.0) } else { out }
        })
        .collect()
}

/// The convolution of x by w, then the epilogue.
pub fn forward(g: &Conv2dGeom, x: &[f64], w: &[f64], e: &Epilogue) -> Vec<f64> {
    epilogue(g, &conv2d::forward(g, x, w), e)
}

/// Each output's error bound: the convolution of |x| by |w| through the epilogue with |scale|,
/// |shift| and |residual|, without ReLU.
pub fn bound(g: &Conv2dGeom, x: &[f64], w: &[f64], e: &Epilogue) -> Vec<f64> {
    let (scale, shift) = (super::abs(e.scale), super::abs(e.shift));
    let res = e.residual.map(|(r, shape, s)| (super::abs(r), shape, s));
    let residual = res.as_ref().map(|(r, shape, s)| (&r[..], *shape, *s));
    forward(
        g,
        &super::abs(x),
        &super::abs(w),
        &Epilogue { scale: &scale, shift: &shift, relu: false, residual },
    )
}

/// Codes in {−1, 0, +1}, about a third each.
pub fn codes(len: usize, seed: u64) -> Vec<i8> {
    values(len, seed).iter().map(|v| (*v > 0.3) as i8 - (*v < -0.3) as i8).collect()
}

/// The tensors of ternary weights [cout, …]: (pos, neg) bitmasks in the packed order, wp, wn.
pub fn upload_ternary(
    c: &Cases,
    codes: &[i8],
    shape: &[usize],
    wp: &[f64],
    wn: &[f64],
) -> Result<[Tensor; 4]> {
    let (pos, neg) = pack(&tap_major(codes, shape));
    Ok([
        c.u32s("pos", &pos)?,
        c.u32s("neg", &neg)?,
        c.upload("wp", &[wp.len()], wp)?,
        c.upload("wn", &[wn.len()], wn)?,
    ])
}

/// A case's epilogue inputs on the host and the GPU: scale and shift (seeds `seed`, `seed + 1`),
/// a residual (seed `seed + 100`) of cout − 2 channels (rounded to the parity of cout, at least
/// one) at the input resolution, so option A applies when the stride is 2, and one of the
/// output's own shape (seed `seed + 200`), added as it is.
pub struct EpilogueInputs {
    scale: Vec<f64>,
    shift: Vec<f64>,
    res: Vec<f64>,
    res_shape: [usize; 4],
    stride: usize,
    identity: Vec<f64>,
    identity_shape: [usize; 4],
    tensors: [Tensor; 4],
}

impl EpilogueInputs {
    pub fn new(c: &Cases, g: &Conv2dGeom, seed: u64) -> Result<EpilogueInputs> {
        let ch = g.cout.saturating_sub(2).max(1);
        let res_shape = [g.n, ch - (ch + g.cout) % 2, g.oh() * g.stride, g.ow() * g.stride];
        let (scale, shift) = (values(g.cout, seed), values(g.cout, seed + 1));
        let res = values(res_shape.iter().product(), seed + 100);
        let identity_shape = g.output_shape();
        let identity = values(identity_shape.iter().product(), seed + 200);
        let tensors = [
            c.upload("scale", &[g.cout], &scale)?,
            c.upload("shift", &[g.cout], &shift)?,
            c.upload("res", &res_shape, &res)?,
            c.upload("res_identity", &identity_shape, &identity)?,
        ];
        Ok(EpilogueInputs {
            scale,
            shift,
            res,
            res_shape,
            stride: g.stride,
            identity,
            identity_shape,
            tensors,
        })
    }

    /// The epilogues of the cases, on the host and the GPU: none, and everything (residual and
    /// ReLU).
    pub fn both(&self) -> [(Epilogue<'_>, op::Epilogue<'_>); 2] {
        let [scale, shift, res, _] = &self.tensors;
        [false, true].map(|all| {
            let residual = all.then_some((&self.res[..], self.res_shape, self.stride));
            let host = Epilogue { scale: &self.scale, shift: &self.shift, relu: all, residual };
            (
                host,
                op::Epilogue {
                    scale,
                    shift,
                    relu: all,
                    residual: all.then_some((res, self.stride)),
                    accumulate: false,
                },
            )
        })
    }

    /// The epilogue with the identity residual (the output's own shape) and ReLU.
    pub fn identity(&self) -> (Epilogue<'_>, op::Epilogue<'_>) {
        let [scale, shift, _, res] = &self.tensors;
        let residual = Some((&self.identity[..], self.identity_shape, 1));
        (
            Epilogue { scale: &self.scale, shift: &self.shift, relu: true, residual },
            op::Epilogue { scale, shift, relu: true, residual: Some((res, 1)), accumulate: false },
        )
    }
}

pub fn cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "packed_conv", shapes, |c, s, g| {
        c.path(match crate::ops::conv2d::path(gpu, g) {
            "lanes" => {
                use crate::ops::packed_conv::{lanes_block, lanes_rows, lanes_wg};
                let (block, rows, wg) = (lanes_block(g), lanes_rows(g), lanes_wg(gpu, g));
                let plural = if rows == 1 { "" } else { "s" };
                format!("lanes, blocks of {block}, {rows} row{plural}, workgroups of {wg}")
            }
            other => other.to_string(),
        });
        let x = values(g.input_shape().iter().product(), 200 + s as u64);
        let (codes, wp, wn) = (codes(g.weight_shape().iter().product(), 300 + s as u64), [0.75], [1.25]);
        let w = ternary_weights(&codes, &wp, &wn);
        let (xt, wt) = (c.upload("x", &g.input_shape(), &x)?, c.upload("w", &g.weight_shape(), &w)?);
        let [pos, neg, wp, wn] = upload_ternary(c, &codes, &g.weight_shape(), &wp, &wn)?;
        let inputs = EpilogueInputs::new(c, g, 400)?;
        for (e, ge) in inputs.both().into_iter().chain([inputs.identity()]) {
            let (want, bound) = (forward(g, &x, &w, &e), bound(g, &x, &w, &e));
            let epilogue = e.describe(g);
            for (entry, weights) in [
                ("ternary", PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &wp, wn: &wn }),
                ("dense", PackedWeights::Dense { weight: &wt }),
            ] {
                let y = c.zeros("y", &g.output_shape())?;
                c.run([op::forward(gpu, "packed", g, &xt, &weights, &ge, &y)?])?;
                c.expect_bounded(&format!("{entry} {epilogue}"), &y, &want, &bound, super::TOL)?;
                if ge.residual.is_none() && op::writes_interleaved(gpu, g) {
                    // For bit-plane units next: the same floats, images innermost.
                    let yi =
                        c.zeros("y_interleaved", &crate::ops::bitplane::interleaved(g.output_shape()))?;
                    c.run([op::forward_interleaved(gpu, "packed", g, &xt, &weights, &ge, &yi)?])?;
                    let same = super::bitplane::interleave(&super::to_f64(&gpu.read(&y)?), g.output_shape());
                    c.expect(&format!("{entry} {epilogue}, output interleaved"), &yi, &same, 0.0)?;
                }
            }
        }
        // Accumulating into y (training's input gradients): y's old values are added.
        let [(e, mut ge), _] = inputs.both();
        ge.accumulate = true;
        let old = values(g.output_shape().iter().product(), 500 + s as u64);
        let y = c.upload("y", &g.output_shape(), &old)?;
        let t = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &wp, wn: &wn };
        c.run([op::forward(gpu, "packed", g, &xt, &t, &ge, &y)?])?;
        let want: Vec<f64> = forward(g, &x, &w, &e).iter().zip(&old).map(|(v, o)| v + o).collect();
        let bound: Vec<f64> = bound(g, &x, &w, &e).iter().zip(&old).map(|(b, o)| b + o.abs()).collect();
        c.expect_bounded("ternary accumulate", &y, &want, &bound, super::TOL)?;
        Ok(())
    })
}
