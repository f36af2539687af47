//! Pooling (shaders/pool.wgsl): max_forward, max_backward (k×k windows, no padding) and the global
//! average pool avg_forward, avg_backward.

use super::{Case, Cases, TOL, values};
use crate::gpu::Gpu;
use crate::ops::pool::{self as op, max_out};
use anyhow::Result;

/// A max pool of input [n, c, h, w] (the average pool reads only the input shape).
#[derive(Clone, Copy)]
pub struct Pool {
    pub input: [usize; 4],
    pub k: usize,
    pub stride: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}×{} /{}", self.input, self.k, self.k, self.stride)
    }
}

impl Pool {
    pub fn output(&self) -> [usize; 4] {
        let [n, c, h, w] = self.input;
        [n, c, max_out(h, self.k, self.stride), max_out(w, self.k, self.stride)]
    }
}

/// Odd sizes that drop a row or column, overlapping (3/2) and disjoint windows.
pub const AWKWARD: &[Pool] = &[
    Pool { input: [2, 3, 4, 4], k: 2, stride: 2 },
    Pool { input: [1, 2, 7, 5], k: 2, stride: 2 },
    Pool { input: [2, 2, 7, 7], k: 3, stride: 2 },
    Pool { input: [1, 1, 6, 6], k: 3, stride: 3 },
    Pool { input: [3, 5, 7, 6], k: 2, stride: 2 },
];

/// The small CNN's 2×2 max pools, batch 2.
pub const MODEL: &[Pool] =
    &[Pool { input: [2, 8, 28, 28], k: 2, stride: 2 }, Pool { input: [2, 16, 14, 14], k: 2, stride: 2 }];

/// (y, flat arg-max per output, first wins on ties as in PyTorch).
pub fn max_forward(x: &[f64], p: &Pool) -> (Vec<f64>, Vec<usize>) {
    let ([n, c, h, w], [_, _, oh, ow], (k, s)) = (p.input, p.output(), (p.k, p.stride));
    let mut y = vec![0.0; n * c * oh * ow];
    let mut arg = vec![0; y.len()];
    for nc in 0..n * c {
        for r in 0..oh {
            for col in 0..ow {
                let mut best = nc * h * w + r * s * w + col * s;
                for i in 0..k {
                    for j in 0..k {
                        let at = nc * h * w + (r * s + i) * w + col * s + j;
                        if x[at] > x[best] {
                            best = at;
                        }
                    }
                }
                let o = (nc * oh + r) * ow + col;
                (y[o], arg[o]) = (x[best], best);
            }
        }
    }
    (y, arg)
}

pub fn max_backward(x: &[f64], dy: &[f64], p: &Pool) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    for (o, a) in max_forward(x, p).1.iter().enumerate() {
        dx[*a] += dy[o];
    }
    dx
}

/// Mean of each of the `nc` planes of `hw` values.
pub fn avg_forward(x: &[f64], nc: usize, hw: usize) -> Vec<f64> {
    (0..nc).map(|i| x[i * hw..(i + 1) * hw].iter().sum::<f64>() / hw as f64).collect()
}

pub fn avg_backward(dy: &[f64], hw: usize) -> Vec<f64> {
    dy.iter().flat_map(|g| std::iter::repeat_n(g / hw as f64, hw)).collect()
}

pub fn cases(gpu: &Gpu, shapes: &[Pool]) -> Result<Vec<Case>> {
    Cases::each(gpu, "pool", shapes, |c, s, p| {
        let ([n, ch, h, w], out) = (p.input, p.output());
        // Ties are resolved like PyTorch: include repeated values.
        let x: Vec<f64> =
            values(n * ch * h * w, 70 + s as u64).iter().map(|v| (v * 4.0).round() / 4.0).collect();
        let (dy, dy_avg) = (values(out.iter().product(), 71), values(n * ch, 81));
        let (xt, dyt, dyat) = (
            c.upload("x", &p.input, &x)?,
            c.upload("dy", &out, &dy)?,
            c.upload("dy_avg", &[n, ch], &dy_avg)?,
        );
        let (y, dx, ya, dxa) = (
            c.zeros("y", &out)?,
            c.zeros("dx", &p.input)?,
            c.zeros("y_avg", &[n, ch])?,
            c.zeros("dx_avg", &p.input)?,
        );
        c.run([
            op::max_forward(gpu, "pool", &xt, &y, p.k, p.stride)?,
            op::max_backward(gpu, "pool", &xt, &dyt, &dx, p.k, p.stride)?,
            op::avg_forward(gpu, "gap", &xt, &ya)?,
            op::avg_backward(gpu, "gap", &dyat, &dxa)?,
        ])?;
        c.expect("max_forward", &y, &max_forward(&x, p).0, 0.0)?;
        c.expect("max_backward", &dx, &max_backward(&x, &dy, p), 1e-6)?;
        c.expect("avg_forward", &ya, &avg_forward(&x, n * ch, h * w), TOL)?;
        c.expect("avg_backward", &dxa, &avg_backward(&dy_avg, h * w), TOL)?;
        Ok(())
    })
}

/// PyTorch's max_pool2d 2×2/2 on an odd-sized input and adaptive_avg_pool2d(1), with gradients.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "pool", &["maxpool", "avgpool"], |c, case| {
        let (x, dy) = (c.golden_input("x")?, c.golden_input("dy")?);
        let (y, dx) = (c.zeros("y", dy.shape())?, c.zeros("dx", x.shape())?);
        c.run(if case == "maxpool" {
            [op::max_forward(gpu, case, &x, &y, 2, 2)?, op::max_backward(gpu, case, &x, &dy, &dx, 2, 2)?]
        } else {
            [op::avg_forward(gpu, case, &x, &y)?, op::avg_backward(gpu, case, &dy, &dx)?]
        })?;
        c.expect_golden(&[("y", &y), ("dx", &dx)], TOL)?;
        Ok(())
    })
}
