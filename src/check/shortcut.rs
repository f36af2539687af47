//! The option-A shortcut of CIFAR ResNets (shaders/shortcut.wgsl): forward (strided subsample,
//! channels zero-padded equally on both sides) and backward. PyTorch's goldens of it are part of
//! the `block` check.

use super::{Case, Cases, values};
use crate::gpu::Gpu;
use crate::ops::shortcut::{self as op, output_shape};
use anyhow::Result;

/// Input [n, cin, h, w] to cout channels with a stride.
#[derive(Clone, Copy)]
pub struct Shortcut {
    pub input: [usize; 4],
    pub cout: usize,
    pub stride: usize,
}

impl std::fmt::Debug for Shortcut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} → {} /{}", self.input, self.cout, self.stride)
    }
}

/// Odd sizes with stride 2 (⌈h/2⌉ rows), 3 → 7 channels, and the identity.
pub const AWKWARD: &[Shortcut] = &[
    Shortcut { input: [2, 4, 8, 8], cout: 8, stride: 2 },
    Shortcut { input: [1, 3, 7, 5], cout: 7, stride: 2 },
    Shortcut { input: [2, 6, 4, 4], cout: 6, stride: 1 },
];

/// ResNet-20's two option-A shortcuts, batch 2.
pub const MODEL: &[Shortcut] = &[
    Shortcut { input: [2, 16, 32, 32], cout: 32, stride: 2 },
    Shortcut { input: [2, 32, 16, 16], cout: 64, stride: 2 },
];

/// Calls f(x index, y index) for every value the shortcut copies.
fn copies(s: &Shortcut, mut f: impl FnMut(usize, usize)) {
    let ([n, cin, h, w], [_, cout, oh, ow]) = (s.input, output_shape(&s.input, s.cout, s.stride));
    let pad = (cout - cin) / 2;
    for b in 0..n {
        for ci in 0..cin {
            for r in 0..oh {
                for c in 0..ow {
                    f(
                        ((b * cin + ci) * h + r * s.stride) * w + c * s.stride,
                        ((b * cout + ci + pad) * oh + r) * ow + c,
                    );
                }
            }
        }
    }
}

pub fn forward(x: &[f64], s: &Shortcut) -> Vec<f64> {
    let mut y = vec![0.0; output_shape(&s.input, s.cout, s.stride).iter().product()];
    copies(s, |xi, yi| y[yi] = x[xi]);
    y
}

pub fn backward(dy: &[f64], s: &Shortcut) -> Vec<f64> {
    let mut dx = vec![0.0; s.input.iter().product()];
    copies(s, |xi, yi| dx[xi] = dy[yi]);
    dx
}

pub fn cases(gpu: &Gpu, shapes: &[Shortcut]) -> Result<Vec<Case>> {
    Cases::each(gpu, "shortcut", shapes, |c, _, s| {
        let out = output_shape(&s.input, s.cout, s.stride);
        let (x, dy) = (values(s.input.iter().product(), 90), values(out.iter().product(), 91));
        let (xt, yt) = (c.upload("x", &s.input, &x)?, c.zeros("y", &out)?);
        let (dyt, dxt) = (c.upload("dy", &out, &dy)?, c.zeros("dx", &s.input)?);
        c.run([
            op::forward(gpu, "shortcut", &xt, &yt, s.stride)?,
            op::backward(gpu, "shortcut", &dyt, &dxt, s.stride)?,
        ])?;
        c.expect("forward", &yt, &forward(&x, s), 0.0)?;
        c.expect("backward", &dxt, &backward(&dy, s), 0.0)?;
        Ok(())
    })
}
