//! Optimizers over the flat parameter buffer (shaders/optim.wgsl): sgd (PyTorch's SGD with
//! momentum, dampening 0) and adam (AdamW). Shapes are lengths.

use super::{Case, Cases, TOL, values};
use crate::gpu::{Gpu, Tensor};
use crate::ops::optim::{self as op, OptimParams, StepParams};
use anyhow::Result;

/// Lengths around the workgroup of 256; weight decay stops at 3/5 of the buffer.
pub const AWKWARD: &[usize] = &[1, 257, 1000];

/// One step's hyper-parameters: elements before `decay_end` get weight decay; `t` counts steps
/// from 1 (Adam's bias correction).
pub struct Step {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub decay_end: usize,
    pub t: i32,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

impl Step {
    fn decay(&self, i: usize) -> f64 {
        if i < self.decay_end { self.weight_decay } else { 0.0 }
    }
}

/// (w, v) after v ← μ·v + g + λ·w, w ← w − lr·v.
pub fn sgd(w: &[f64], g: &[f64], v: &[f64], s: &Step) -> (Vec<f64>, Vec<f64>) {
    let v: Vec<f64> = (0..w.len()).map(|i| s.momentum * v[i] + g[i] + s.decay(i) * w[i]).collect();
    ((0..w.len()).map(|i| w[i] - s.lr * v[i]).collect(), v)
}

/// (w, m, v) after one AdamW step (decoupled weight decay).
pub fn adam(w: &[f64], g: &[f64], m: &[f64], v: &[f64], s: &Step) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m: Vec<f64> = (0..w.len()).map(|i| BETA1 * m[i] + (1.0 - BETA1) * g[i]).collect();
    let v: Vec<f64> = (0..w.len()).map(|i| BETA2 * v[i] + (1.0 - BETA2) * g[i] * g[i]).collect();
    let (b1, b2) = (1.0 - BETA1.powi(s.t), 1.0 - BETA2.powi(s.t));
    let w = (0..w.len())
        .map(|i| w[i] * (1.0 - s.lr * s.decay(i)) - s.lr * (m[i] / b1) / ((v[i] / b2).sqrt() + ADAM_EPS))
        .collect();
    (w, m, v)
}

/// One `entry` update of (w, m1, m2) in place with the hyper-parameters of `s`.
fn launch(c: &Cases, entry: &str, s: &Step, [w, grad, m1, m2]: [&Tensor; 4]) -> Result<()> {
    let params = OptimParams {
        len: w.numel() as u32,
        decay_end: s.decay_end as u32,
        momentum: s.momentum as f32,
        weight_decay: s.weight_decay as f32,
        beta1: BETA1 as f32,
        beta2: BETA2 as f32,
        eps: ADAM_EPS as f32,
    };
    let (bias1, bias2) = (1.0 - (BETA1 as f32).powi(s.t), 1.0 - (BETA2 as f32).powi(s.t));
    let step = c.gpu.uniform("step", &StepParams { lr: s.lr as f32, bias1, bias2 });
    c.run([op::update(c.gpu, entry, &params, &step, w, grad, m1, m2)?])
}

pub fn cases(gpu: &Gpu, shapes: &[usize]) -> Result<Vec<Case>> {
    Cases::each(gpu, "optim", shapes, |c, _, &len| {
        let s = Step { lr: 0.05, momentum: 0.9, weight_decay: 5e-4, decay_end: len * 3 / 5, t: 3 };
        let (w, g, m) = (values(len, 120), values(len, 121), values(len, 122));
        let v: Vec<f64> = m.iter().map(|x| x * x).collect();
        for entry in ["sgd", "adam"] {
            let [wt, gt, m1, m2] =
                [("param", &w), ("grad", &g), ("m1", &m), ("m2", &v)].map(|(n, d)| c.upload(n, &[len], d));
            let (wt, gt, m1, m2) = (wt?, gt?, m1?, m2?);
            launch(c, entry, &s, [&wt, &gt, &m1, &m2])?;
            let want = if entry == "sgd" {
                let (w, m) = sgd(&w, &g, &m, &s);
                vec![w, m]
            } else {
                let (w, m, v) = adam(&w, &g, &m, &v, &s);
                vec![w, m, v]
            };
            for ((name, t), want) in [("param", &wt), ("moment1", &m1), ("moment2", &m2)].iter().zip(&want) {
                c.expect(&format!("{entry} {name}"), t, want, TOL)?;
            }
        }
        Ok(())
    })
}

/// Two steps of PyTorch's SGD (lr 0.1, momentum 0.9, weight decay 5e-4).
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    Cases::goldens(gpu, "optim", &["sgd"], |c, _| {
        let s = Step { lr: 0.1, momentum: 0.9, weight_decay: 5e-4, decay_end: 50, t: 1 };
        let (w, m1, m2) = (c.golden_input("w0")?, c.zeros("m1", &[50])?, c.zeros("m2", &[50])?);
        for grad in ["g0", "g1"] {
            launch(c, "sgd", &s, [&w, &c.golden_input(grad)?, &m1, &m2])?;
        }
        c.expect_golden(&[("w", &w), ("v", &m1)], TOL)?;
        Ok(())
    })
}
