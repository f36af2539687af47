//! Masks and scales of quantized weights (shaders/ternary_masks.wgsl) in both layouts, exact,
//! and the packed convolution on the transposed masks against conv2d's input gradient: what
//! training on masks (`--ternary-kernels packed`) relies on.

use super::{Case, Cases, conv2d, values};
use crate::gpu::Gpu;
use crate::ops::conv2d::Conv2dGeom;
use crate::ops::packed_conv::{self, Identity};
use crate::ops::ternary_masks::{self as op, Layout, Masks};
use anyhow::Result;

pub const AWKWARD: &[Conv2dGeom] = conv2d::AWKWARD;

/// The layout's weights of `wq` [cout, cin, kh, kw] in bit order, row by row.
pub fn rows(wq: &[f64], shape: &[usize], layout: Layout) -> Vec<Vec<f64>> {
    let (cout, cin, taps) = (shape[0], shape[1], shape[2] * shape[3]);
    let at = |co: usize, ci: usize, t: usize| wq[(co * cin + ci) * taps + t];
    match layout {
        Layout::Forward => (0..cout)
            .map(|co| (0..taps).flat_map(|t| (0..cin).map(move |ci| at(co, ci, t))).collect())
            .collect(),
        Layout::Transposed => (0..cin)
            .map(|ci| (0..taps).flat_map(|t| (0..cout).map(move |co| at(co, ci, taps - 1 - t))).collect())
            .collect(),
    }
}

/// (pos, neg, wp, wn): a weight is in pos when it is its row's largest non-zero value, in neg
/// when it is another non-zero value; wp is that largest value, wn minus the smallest (0, 0 for
/// an all-zero row).
pub fn masks(rows: &[Vec<f64>]) -> (Vec<u32>, Vec<u32>, Vec<f64>, Vec<f64>) {
    let len: usize = rows.iter().map(|r| r.len()).sum();
    let (mut pos, mut neg) = (vec![0u32; len.div_ceil(32)], vec![0u32; len.div_ceil(32)]);
    let (mut wp, mut wn) = (Vec::new(), Vec::new());
    let mut i = 0;
    for row in rows {
        let nz = row.iter().copied().filter(|v| *v != 0.0);
        let hi = nz.clone().fold(f64::MIN, f64::max);
        let lo = nz.fold(f64::MAX, f64::min);
        let any = hi >= lo;
        wp.push(if any { hi } else { 0.0 });
        wn.push(if any { -lo } else { 0.0 });
        for &v in row {
            if v != 0.0 {
                let m = if v == hi { &mut pos } else { &mut neg };
                m[i / 32] |= 1 << (i % 32);
            }
            i += 1;
        }
    }
    (pos, neg, wp, wn)
}

pub fn cases(gpu: &Gpu, shapes: &[Conv2dGeom]) -> Result<Vec<Case>> {
    Cases::each(gpu, "ternary_masks", shapes, |c, s, g| {
        let shape = g.weight_shape();
        let per = shape[1] * shape[2] * shape[3];
        let codes = super::packed_conv::codes(shape.iter().product(), 600 + s as u64);
        // Scales as TTQ's (Wp, Wn > 0), with Wn learned below zero (two positive values), and
        // per output channel as STTN's (forward layout only); channel 0 all zero. Dyadic values:
        // exact in f32.
        let variants = [
            ("ttq", (0.75, 1.25), false),
            ("wn < 0", (0.5, -0.25), false),
            ("per channel", (0.0, 0.0), true),
        ];
        for (what, (wp, wn), per_channel) in variants {
            let scale = |co: usize| {
                if per_channel { ((1 + co) as f64 / 8.0, (1 + co) as f64 / 8.0) } else { (wp, wn) }
            };
            let wq: Vec<f64> = codes
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let (wp, wn) = scale(i / per);
                    if i < per { 0.0 } else { [-wn, 0.0, wp][(k + 1) as usize] }
                })
                .collect();
            let wq_t = c.upload("wq", &shape, &wq)?;
            let layouts: &[Layout] =
                if per_channel { &[Layout::Forward] } else { &[Layout::Forward, Layout::Transposed] };
            for &layout in layouts {
                let m = Masks::new(gpu, "m", &shape, layout)?;
                c.run(op::write(gpu, "m", &wq_t, &m)?)?;
                let (pos, neg, wp, wn) = masks(&rows(&wq, &shape, layout));
                let name = format!("{what} {layout:?}");
                c.expect_u32(&format!("{name} pos"), &m.pos, &pos)?;
                c.expect_u32(&format!("{name} neg"), &m.neg, &neg)?;
                c.expect(&format!("{name} wp"), &m.wp, &wp, 0.0)?;
                c.expect(&format!("{name} wn"), &m.wn, &wn, 0.0)?;
                // The input gradient as the packed convolution of dy on the transposed masks.
                let Some(gt) = op::transposed(g).filter(|_| layout == Layout::Transposed) else { continue };
                let dy = values(g.output_shape().iter().product(), 700 + s as u64);
                let e = Identity::new(gpu, "grad_input", g.cin)?;
                let (dy_t, dx) = (c.upload("dy", &g.output_shape(), &dy)?, c.zeros("dx", &g.input_shape())?);
                c.run([packed_conv::forward(
                    gpu,
                    "grad_input",
                    &gt,
                    &dy_t,
                    &m.weights(),
                    &e.epilogue(false),
                    &dx,
                )?])?;
                let want = conv2d::grad_input(g, &dy, &wq);
                let bound = conv2d::grad_input(g, &super::abs(&dy), &super::abs(&wq));
                c.expect_bounded(&format!("{what} grad_input"), &dx, &want, &bound, super::TOL)?;
            }
        }
        Ok(())
    })
}
