//! Ternary activations and the popcount convolution (the bit-plane entry points of
//! shaders/packed_conv.wgsl, host side in src/ops/bitplane.rs): ternary_affine (activations as
//! floats), interleave, deinterleave and avg_pool, pack_activations (as bit-planes) and bitplane
//! (their convolution with the weight planes), with per-channel scales as STTN's units use them,
//! and Wn = Wp (the symmetric counts). The float path through the `ternary` entry point is checked
//! on the same activations.

use super::packed_conv::{self, Epilogue, EpilogueInputs, codes, ternary_weights, upload_ternary};
use super::{
    Case, Cases, TOL,
    activation::ternary,
    affine,
    conv2d::{self, geom},
};
use crate::gpu::{DType, Gpu, Tensor};
use crate::ops::bitplane as op;
use crate::ops::conv2d::Conv2dGeom;
use crate::ops::packed_conv::{self as packed, PackedWeights};
use anyhow::Result;

/// conv2d's odd shapes, channel counts over one 32-bit word (33, 70: a partial last word),
/// pixel pairs with a part-filled channel block or image quad, and byte counts of two pixels.
pub const AWKWARD: &[Conv2dGeom] = &[
    conv2d::AWKWARD[0],
    conv2d::AWKWARD[1],
    conv2d::AWKWARD[3],
    conv2d::AWKWARD[4],
    geom(2, 33, 5, 7, 6, 3, 1, 1),
    geom(1, 70, 6, 5, 9, 3, 2, 1),
    geom(3, 40, 4, 6, 24, 3, 1, 1),
    geom(5, 16, 3, 4, 32, 3, 1, 1),
    // Two pixels in one word (at most 16 input channels, rows of pairs): three quads, stride 2
    // on rows of 4 and 6 (a first pair at the padding, a last pair at the edge), 8 channels.
    geom(9, 16, 6, 8, 16, 3, 1, 1),
    geom(8, 16, 8, 8, 32, 3, 2, 1),
    geom(2, 16, 7, 12, 16, 3, 2, 1),
    geom(6, 8, 5, 6, 8, 3, 1, 1),
    // Byte counts of two pixels a word apart (24 channels: not paired), 12 of a block of 16.
    geom(3, 24, 5, 6, 12, 3, 1, 1),
];

/// ResNet-20's convolutions (STTN's units), batch 2.
pub const MODEL: &[Conv2dGeom] = conv2d::MODEL.split_at(3).1;

/// a = ternary(x·scale + shift) per channel of x [n, c, h, w].
pub fn ternary_affine(x: &[f64], input: [usize; 4], scale: &[f64], shift: &[f64]) -> Vec<f64> {
    let hw = input[2] * input[3];
    x.iter()
        .enumerate()
        .map(|(i, v)| ternary(v * scale[(i / hw) % input[1]] + shift[(i / hw) % input[1]]))
        .collect()
}

/// Bit-planes [(h + 2·pad)·(w + 2·pad), ⌈c/32⌉, n rounded up to 4] of activations a [n, c, h, w]
/// with a zero border of `pad` pixels: bit c % 32 of word c / 32 is set in `pos` where a = +1,
/// in `neg` where a = −1.
pub fn pack_activations(a: &[f64], input: [usize; 4], pad: usize) -> (Vec<u32>, Vec<u32>) {
    let ([_, c, h, w], words, n4) = (input, input[1].div_ceil(32), input[0].next_multiple_of(4));
    let pw = w + 2 * pad;
    let len = (h + 2 * pad) * pw * words * n4;
    let (mut pos, mut neg) = (vec![0u32; len], vec![0u32; len]);
    for (i, v) in a.iter().enumerate() {
        let (b, ch, row, col) = (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w);
        let word = (((row + pad) * pw + col + pad) * words + ch / 32) * n4 + b;
        let plane = if *v > 0.0 {
            &mut pos
        } else if *v < 0.0 {
            &mut neg
        } else {
            continue;
        };
        plane[word] |= 1 << (ch % 32);
    }
    (pos, neg)
}

/// The popcount convolution is the convolution of the ternary activations.
pub fn bitplane(g: &Conv2dGeom, a: &[f64], w: &[f64], e: &Epilogue) -> Vec<f64> {
    packed_conv::forward(g, a, w, e)
}

/// v [n, c, h, w] with the images innermost, zeros past n (`ops::bitplane::interleaved`).
pub fn interleave(v: &[f64], [n, c, h, w]: [usize; 4]) -> Vec<f64> {
    let (image, n4) = (c * h * w, n.next_multiple_of(4));
    let mut out = vec![0.0; image * n4];
    for (i, x) in v.iter().enumerate() {
        out[(i % image) * n4 + i / image] = *x;
    }
    out
}

/// Ternary activations of x (seed `seed`) through ternary_affine, and through interleave and
/// pack_activations, checked against the reference; returns them on the host and, on the GPU,
/// [x interleaved, a, act_pos, act_neg].
fn activations(c: &mut Cases, g: &Conv2dGeom, seed: u64) -> Result<(Vec<f64>, [Tensor; 4])> {
    let input = g.input_shape();
    let x = affine(input.iter().product(), seed, 1.5, 0.0);
    let (scale, shift) = (affine(g.cin, seed + 1, 0.5, 1.0), affine(g.cin, seed + 2, 0.3, 0.0));
    let (xt, st, sht) = (
        c.upload("x", &input, &x)?,
        c.upload("act_scale", &[g.cin], &scale)?,
        c.upload("act_shift", &[g.cin], &shift)?,
    );
    let planes = op::activation_planes(g);
    let [pos, neg] = ["act_pos", "act_neg"].map(|name| c.gpu.tensor_of(name, &planes, DType::U32));
    let (at, xi, pos, neg) =
        (c.zeros("a", &input)?, c.zeros("x_interleaved", &op::interleaved(input))?, pos?, neg?);
    let [pooled, pooled_nchw] = ["pooled", "pooled_nchw"].map(|name| c.zeros(name, &[g.n, g.cin]));
    let (pooled, pooled_nchw) = (pooled?, pooled_nchw?);
    // The planes start as ones, so a border left unwritten shows.
    let ones = vec![u32::MAX; planes.iter().product()];
    c.gpu.write_u32(&pos, &ones)?;
    c.gpu.write_u32(&neg, &ones)?;
    c.run([
        packed::ternary_affine(c.gpu, "act", &xt, &st, &sht, &at)?,
        op::interleave(c.gpu, "act", &xt, &xi)?,
        op::pack_activations(c.gpu, "act", &xi, g.n, &st, &sht, g.pad, &pos, &neg)?,
        op::avg_pool(c.gpu, "act", &xi, g.n, &pooled)?,
        crate::ops::pool::avg_forward(c.gpu, "act", &xt, &pooled_nchw)?,
    ])?;
    let a = ternary_affine(&x, input, &scale, &shift);
    let (want_pos, want_neg) = pack_activations(&a, input, g.pad);
    c.expect("ternary_affine", &at, &a, 0.0)?;
    c.expect("interleave", &xi, &interleave(&x, input), 0.0)?;
    // The same sums in the same order as the pool over [n, c, h, w]: the same floats.
    let same_as_nchw = crate::check::to_f64(&c.gpu.read(&pooled_nchw)?);
    c.expect("avg_pool (interleaved)", &pooled, &same_as_nchw, 0.0)?;
    c.expect_u32("pack_activations pos", &pos, &want_pos)?;
    c.expect_u32("pack_activations neg", &neg, &want_neg)?;
    Ok((a, [xi, at, pos, neg]))
}

/// The bit-plane convolution of the interleaved input `xi` with epilogue `ge` (its residual
/// interleaved first), its output deinterleaved back to [n, c, h, w]; with `next`, packing the
/// next unit's activations as it goes.
fn conv(
    c: &mut Cases,
    g: &Conv2dGeom,
    xi: &Tensor,
    planes: [&Tensor; 2],
    weights: &op::WeightPlanes,
    ge: &packed::Epilogue,
    next: Option<&op::NextPlanes>,
) -> Result<Tensor> {
    let (yi, y) =
        (c.zeros("y_interleaved", &op::interleaved(g.output_shape()))?, c.zeros("y", &g.output_shape())?);
    let res = match ge.residual {
        Some((res, _)) => Some(c.zeros("res_interleaved", &op::interleaved(res.shape().try_into()?))?),
        None => None,
    };
    let mut run = vec![];
    if let (Some((res, _)), Some(ri)) = (ge.residual, &res) {
        run.push(op::interleave(c.gpu, "res", res, ri)?);
    }
    let e = packed::Epilogue { residual: res.as_ref().zip(ge.residual).map(|(ri, (_, s))| (ri, s)), ..*ge };
    run.push(op::forward(c.gpu, "packed", g, xi, (planes[0], planes[1]), weights, &e, &yi, next)?);
    run.push(op::deinterleave(c.gpu, "packed", &yi, &y)?);
    c.run(run)?;
    Ok(y)
}

pub fn cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "bitplane", shapes, |c, s, g| {
        let seed = 800 + 10 * s as u64;
        let (a, [xi, at, apos, aneg]) = activations(c, g, seed)?;
        let codes = codes(g.weight_shape().iter().product(), seed + 3);
        let (wp, wn) = (affine(g.cout, seed + 4, 0.25, 0.75), affine(g.cout, seed + 5, 0.25, 0.75));
        let (w, wp_host) = (ternary_weights(&codes, &wp, &wn), wp.clone());
        let [pos, neg, wp, wn] = upload_ternary(c, &codes, &g.weight_shape(), &wp, &wn)?;
        let weights = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &wp, wn: &wn };
        let (mask_pos, mask_neg) =
            crate::quant::pack::pack(&crate::packed::tap_major(&codes, &g.weight_shape()));
        let shape = g.weight_shape();
        let [plane_pos, plane_neg] = [mask_pos, mask_neg].map(|m| crate::packed::weight_planes(&m, shape));
        let quads = c.u32s("quads", &crate::packed::weight_quads(&plane_pos, &plane_neg, shape))?;
        let (plane_pos, plane_neg) = (c.u32s("pos_planes", &plane_pos)?, c.u32s("neg_planes", &plane_neg)?);
        let planes = op::WeightPlanes { pos: &plane_pos, neg: &plane_neg, quads: &quads, wp: &wp, wn: &wn };
        let inputs = EpilogueInputs::new(c, g, seed + 6)?;
        c.path(op::path(gpu, g, &inputs.both()[0].1));
        for (e, ge) in inputs.both().into_iter().chain([inputs.identity()]) {
            let y = conv(c, g, &xi, [&apos, &aneg], &planes, &ge, None)?;
            let y_float = c.zeros("y_float", &g.output_shape())?;
            c.run([packed::forward(gpu, "packed", g, &at, &weights, &ge, &y_float)?])?;
            let (want, bound) = (bitplane(g, &a, &w, &e), packed_conv::bound(g, &a, &w, &e));
            let epilogue = e.describe(g);
            c.expect_bounded(&format!("bitplane {epilogue}"), &y, &want, &bound, TOL)?;
            let float = format!("ternary (float activations) {epilogue}");
            c.expect_bounded(&float, &y_float, &want, &bound, TOL)?;
        }
        // Wn bound to Wp's tensor: the symmetric counts.
        let w = ternary_weights(&codes, &wp_host, &wp_host);
        let symmetric = op::WeightPlanes { wn: &wp, ..planes };
        let [_, option_a] = inputs.both();
        for (e, ge) in [option_a, inputs.identity()] {
            let y = conv(c, g, &xi, [&apos, &aneg], &symmetric, &ge, None)?;
            let (want, bound) = (bitplane(g, &a, &w, &e), packed_conv::bound(g, &a, &w, &e));
            let what = format!("bitplane, Wn = Wp (symmetric counts) {}", e.describe(g));
            c.expect_bounded(&what, &y, &want, &bound, TOL)?;
        }
        let [_, (_, ge)] = inputs.both();
        if op::packs_next(gpu, g, &ge) {
            next_planes(c, g, &xi, [&apos, &aneg], &symmetric, &ge, seed + 7)?;
        }
        Ok(())
    })
}

/// The convolution packing the next unit's activations: the same output, and the planes that
/// pack_activations makes of it (from the GPU's own output, so the thresholds see the same
/// floats). The planes start as the complement of the answer inside and zeros on the border,
/// which the kernel must leave as they are.
fn next_planes(
    c: &mut Cases,
    g: &Conv2dGeom,
    xi: &Tensor,
    planes: [&Tensor; 2],
    weights: &op::WeightPlanes,
    ge: &packed::Epilogue,
    seed: u64,
) -> Result<()> {
    let out = g.output_shape();
    let (scale, shift) = (affine(out[1], seed, 0.5, 1.0), affine(out[1], seed + 1, 0.3, 0.0));
    let (st, sht) = (c.upload("next_scale", &[out[1]], &scale)?, c.upload("next_shift", &[out[1]], &shift)?);
    let shape = op::next_activation_planes(g);
    let [pos, neg] = ["next_pos", "next_neg"].map(|name| c.gpu.tensor_of(name, &shape, DType::U32));
    let (pos, neg) = (pos?, neg?);
    let plain = super::download(c.gpu, &conv(c, g, xi, planes, weights, ge, None)?)?;
    let (want_pos, want_neg) = pack_activations(&ternary_affine(&plain, out, &scale, &shift), out, 1);
    let pw = out[3] + 2;
    let border = |i: usize| {
        let (row, col) = ((i / (shape[1] * shape[2])) / pw, (i / (shape[1] * shape[2])) % pw);
        row == 0 || row == out[2] + 1 || col == 0 || col == pw - 1
    };
    for (t, want) in [(&pos, &want_pos), (&neg, &want_neg)] {
        let start: Vec<u32> = want.iter().enumerate().map(|(i, w)| if border(i) { 0 } else { !w }).collect();
        c.gpu.write_u32(t, &start)?;
    }
    let next = op::NextPlanes { act_scale: &st, act_shift: &sht, pos: &pos, neg: &neg };
    let fused = conv(c, g, xi, planes, weights, ge, Some(&next))?;
    c.expect("bitplane packing the next unit, output", &fused, &plain, 0.0)?;
    c.expect_u32("bitplane packing the next unit, pos", &pos, &want_pos)?;
    c.expect_u32("bitplane packing the next unit, neg", &neg, &want_neg)
}
