//! CPU reference of every op in f64, written for clarity, not speed. The GPU tests compare against
//! it; the finite-difference checks differentiate its forward functions numerically.
//! Layouts match the shaders: NCHW activations, [cout, cin, kh, kw] weights, [out, in] linear.
#![allow(dead_code)]

/// Convolution geometry, same fields as `tern::ops::conv2d::Conv2dGeom`.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv {
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Input coordinate for output row `o` and kernel tap `i`, if inside the image.
    fn at(&self, o: usize, i: usize, size: usize) -> Option<usize> {
        let v = (o * self.stride + i) as isize - self.pad as isize;
        (v >= 0 && (v as usize) < size).then_some(v as usize)
    }
}

pub fn conv2d(g: &Conv, x: &[f64], w: &[f64]) -> Vec<f64> {
    let (oh, ow) = (g.oh(), g.ow());
    let mut y = vec![0.0; g.n * g.cout * oh * ow];
    for n in 0..g.n {
        for co in 0..g.cout {
            for r in 0..oh {
                for c in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..g.cin {
                        for i in 0..g.k {
                            for j in 0..g.k {
                                if let (Some(ir), Some(ic)) = (g.at(r, i, g.h), g.at(c, j, g.w)) {
                                    s += w[((co * g.cin + ci) * g.k + i) * g.k + j]
                                        * x[((n * g.cin + ci) * g.h + ir) * g.w + ic];
                                }
                            }
                        }
                    }
                    y[((n * g.cout + co) * oh + r) * ow + c] = s;
                }
            }
        }
    }
    y
}

/// (dx, dw) for upstream gradient dy.
pub fn conv2d_backward(g: &Conv, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (g.oh(), g.ow());
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..g.n {
        for co in 0..g.cout {
            for r in 0..oh {
                for c in 0..ow {
                    let gy = dy[((n * g.cout + co) * oh + r) * ow + c];
                    for ci in 0..g.cin {
                        for i in 0..g.k {
                            for j in 0..g.k {
                                if let (Some(ir), Some(ic)) = (g.at(r, i, g.h), g.at(c, j, g.w)) {
                                    let xi = ((n * g.cin + ci) * g.h + ir) * g.w + ic;
                                    let wi = ((co * g.cin + ci) * g.k + i) * g.k + j;
                                    dx[xi] += w[wi] * gy;
                                    dw[wi] += x[xi] * gy;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

/// Training-mode batch norm: (y, batch mean, biased var).
pub fn batchnorm(
    x: &[f64],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (n * hw) as f64;
    let idx = |b: usize, ch: usize, s: usize| (b * c + ch) * hw + s;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        for b in 0..n {
            for s in 0..hw {
                mean[ch] += x[idx(b, ch, s)] / m;
            }
        }
        for b in 0..n {
            for s in 0..hw {
                var[ch] += (x[idx(b, ch, s)] - mean[ch]).powi(2) / m;
            }
        }
    }
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for s in 0..hw {
                let i = idx(b, ch, s);
                y[i] = (x[i] - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch];
            }
        }
    }
    (y, mean, var)
}

/// (dx, dgamma, dbeta) of training-mode batch norm.
pub fn batchnorm_backward(
    x: &[f64],
    dy: &[f64],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (_, mean, var) = batchnorm(x, n, c, hw, &vec![1.0; c], &vec![0.0; c], eps);
    let m = (n * hw) as f64;
    let idx = |b: usize, ch: usize, s: usize| (b * c + ch) * hw + s;
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for b in 0..n {
        for ch in 0..c {
            for s in 0..hw {
                let i = idx(b, ch, s);
                let xhat = (x[i] - mean[ch]) / (var[ch] + eps).sqrt();
                dgamma[ch] += dy[i] * xhat;
                dbeta[ch] += dy[i];
            }
        }
    }
    let mut dx = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for s in 0..hw {
                let i = idx(b, ch, s);
                let is = 1.0 / (var[ch] + eps).sqrt();
                let xhat = (x[i] - mean[ch]) * is;
                dx[i] = gamma[ch] * is * (dy[i] - dbeta[ch] / m - xhat * dgamma[ch] / m);
            }
        }
    }
    (dx, dgamma, dbeta)
}

pub fn batchnorm_eval(
    x: &[f64],
    c: usize,
    hw: usize,
    gamma: &[f64],
    beta: &[f64],
    rmean: &[f64],
    rvar: &[f64],
    eps: f64,
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / hw) % c;
            (v - rmean[ch]) / (rvar[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}

pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter().zip(dy).map(|(v, g)| if *v > 0.0 { *g } else { 0.0 }).collect()
}

/// Max pool k×k / stride, no padding: (y, flat arg-max per output, first wins on ties).
pub fn maxpool(
    x: &[f64],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
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
                y[o] = x[best];
                arg[o] = best;
            }
        }
    }
    (y, arg)
}

pub fn maxpool_backward(
    x: &[f64],
    dy: &[f64],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
) -> Vec<f64> {
    let (_, arg) = maxpool(x, n, c, h, w, k, s);
    let mut dx = vec![0.0; x.len()];
    for (o, a) in arg.iter().enumerate() {
        dx[*a] += dy[o];
    }
    dx
}

pub fn avgpool(x: &[f64], nc: usize, hw: usize) -> Vec<f64> {
    (0..nc).map(|i| x[i * hw..(i + 1) * hw].iter().sum::<f64>() / hw as f64).collect()
}

pub fn avgpool_backward(dy: &[f64], hw: usize) -> Vec<f64> {
    dy.iter().flat_map(|g| std::iter::repeat_n(g / hw as f64, hw)).collect()
}

/// Option-A shortcut: [n, cin, h, w] → [n, cout, ⌈h/s⌉, ⌈w/s⌉].
pub fn shortcut(x: &[f64], n: usize, cin: usize, h: usize, w: usize, cout: usize, s: usize) -> Vec<f64> {
    let (oh, ow, pad) = (h.div_ceil(s), w.div_ceil(s), (cout - cin) / 2);
    let mut y = vec![0.0; n * cout * oh * ow];
    for b in 0..n {
        for ci in 0..cin {
            for r in 0..oh {
                for c in 0..ow {
                    y[((b * cout + ci + pad) * oh + r) * ow + c] =
                        x[((b * cin + ci) * h + r * s) * w + c * s];
                }
            }
        }
    }
    y
}

pub fn shortcut_backward(
    dy: &[f64],
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    s: usize,
) -> Vec<f64> {
    let (oh, ow, pad) = (h.div_ceil(s), w.div_ceil(s), (cout - cin) / 2);
    let mut dx = vec![0.0; n * cin * h * w];
    for b in 0..n {
        for ci in 0..cin {
            for r in 0..oh {
                for c in 0..ow {
                    dx[((b * cin + ci) * h + r * s) * w + c * s] =
                        dy[((b * cout + ci + pad) * oh + r) * ow + c];
                }
            }
        }
    }
    dx
}

pub fn linear(x: &[f64], w: &[f64], b: &[f64], n: usize, fin: usize, fout: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for r in 0..n {
        for o in 0..fout {
            y[r * fout + o] = b[o] + (0..fin).map(|k| x[r * fin + k] * w[o * fin + k]).sum::<f64>();
        }
    }
    y
}

/// (dx, dw, db).
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    n: usize,
    fin: usize,
    fout: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; n * fin];
    let mut dw = vec![0.0; fout * fin];
    let mut db = vec![0.0; fout];
    for r in 0..n {
        for o in 0..fout {
            let g = dy[r * fout + o];
            db[o] += g;
            for k in 0..fin {
                dx[r * fin + k] += g * w[o * fin + k];
                dw[o * fin + k] += g * x[r * fin + k];
            }
        }
    }
    (dx, dw, db)
}

/// Mean softmax cross-entropy: (mean loss, per-sample loss, dlogits, arg-max predictions).
pub fn cross_entropy(logits: &[f64], labels: &[u32], classes: usize) -> (f64, Vec<f64>, Vec<f64>, Vec<u32>) {
    let n = labels.len();
    let mut per = vec![0.0; n];
    let mut d = vec![0.0; logits.len()];
    let mut pred = vec![0; n];
    for i in 0..n {
        let row = &logits[i * classes..(i + 1) * classes];
        let top = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        pred[i] = row.iter().position(|v| *v == top).unwrap() as u32;
        let z: f64 = row.iter().map(|v| (v - top).exp()).sum();
        per[i] = z.ln() + top - row[labels[i] as usize];
        for k in 0..classes {
            let prob = (row[k] - top).exp() / z;
            d[i * classes + k] = (prob - if k == labels[i] as usize { 1.0 } else { 0.0 }) / n as f64;
        }
    }
    (per.iter().sum::<f64>() / n as f64, per, d, pred)
}

/// TTQ forward: ternary weights for threshold factor t and scales (wp, wn).
pub fn ttq_quantize(w: &[f64], t: f64, wp: f64, wn: f64) -> Vec<f64> {
    let delta = t * w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    w.iter()
        .map(|&v| {
            if v > delta {
                wp
            } else if v < -delta {
                -wn
            } else {
                0.0
            }
        })
        .collect()
}

/// TTQ backward: (∂L/∂w, ∂L/∂Wp, ∂L/∂Wn) from g = ∂L/∂wq.
pub fn ttq_backward(w: &[f64], g: &[f64], t: f64, wp: f64, wn: f64) -> (Vec<f64>, f64, f64) {
    let delta = t * w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut dwp, mut dwn) = (0.0, 0.0);
    let dw = w
        .iter()
        .zip(g)
        .map(|(&v, &gi)| {
            if v > delta {
                dwp += gi;
                wp * gi
            } else if v < -delta {
                dwn -= gi;
                wn * gi
            } else {
                gi
            }
        })
        .collect();
    (dw, dwp, dwn)
}

/// TWN: Δ = 0.7·mean|w|, α = mean of |w| above Δ; wq = α·sign(w) above Δ.
pub fn twn_quantize(w: &[f64]) -> (Vec<f64>, f64, f64) {
    let delta = 0.7 * w.iter().map(|v| v.abs()).sum::<f64>() / w.len() as f64;
    let above: Vec<f64> = w.iter().map(|v| v.abs()).filter(|a| *a > delta).collect();
    let alpha = if above.is_empty() { 0.0 } else { above.iter().sum::<f64>() / above.len() as f64 };
    (w.iter().map(|&v| if v.abs() > delta { alpha * v.signum() } else { 0.0 }).collect(), delta, alpha)
}

/// PyTorch SGD step (dampening 0): returns (w, v).
pub fn sgd(w: &[f64], g: &[f64], v: &[f64], lr: f64, momentum: f64, wd: f64) -> (Vec<f64>, Vec<f64>) {
    let v: Vec<f64> = (0..w.len()).map(|i| momentum * v[i] + g[i] + wd * w[i]).collect();
    ((0..w.len()).map(|i| w[i] - lr * v[i]).collect(), v)
}

/// AdamW step t (1-based): returns (w, m, v).
pub fn adamw(
    w: &[f64],
    g: &[f64],
    m: &[f64],
    v: &[f64],
    t: i32,
    lr: f64,
    wd: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let m: Vec<f64> = (0..w.len()).map(|i| b1 * m[i] + (1.0 - b1) * g[i]).collect();
    let v: Vec<f64> = (0..w.len()).map(|i| b2 * v[i] + (1.0 - b2) * g[i] * g[i]).collect();
    let w = (0..w.len())
        .map(|i| {
            let wd_w = w[i] * (1.0 - lr * wd);
            wd_w - lr * (m[i] / (1.0 - b1.powi(t))) / ((v[i] / (1.0 - b2.powi(t))).sqrt() + eps)
        })
        .collect();
    (w, m, v)
}

/// Deterministic pseudo-random values in [-1, 1) for test inputs, exactly representable in f32
/// so that GPU and reference start from the same numbers.
pub fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 as f64
        })
        .collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Largest |a − b| / (|b| + scale), with scale = max|b| · 1e-3 so near-zero entries are judged
/// against the tensor's magnitude. Returns (error, index).
pub fn max_rel_err(a: &[f64], b: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-3 + 1e-12;
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs() / (y.abs() + scale), i))
        .fold((0.0, 0), |m, e| if e.0 > m.0 { e } else { m })
}

/// |got − want| ≤ tol · max|want| everywhere: for outputs such as logits whose entries near zero
/// carry the rounding of the whole network.
#[track_caller]
pub fn assert_close_to_scale(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}: |{a} − {b}| at {i} exceeds {tol:.0e} × max|want| = {}",
            tol * scale
        );
    }
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let (err, i) = max_rel_err(got, want);
    assert!(
        err <= tol,
        "{what}: relative error {err:.3e} > {tol:.0e} at {i}: got {} want {}",
        got[i],
        want[i]
    );
}

#[test]
fn reference_conv_backward_matches_finite_differences() {
    let g = Conv { n: 2, cin: 2, h: 5, w: 4, cout: 3, k: 3, stride: 2, pad: 1 };
    let x = values(g.n * g.cin * g.h * g.w, 1);
    let w = values(g.cout * g.cin * 9, 2);
    let r = values(g.n * g.cout * g.oh() * g.ow(), 3);
    let loss = |x: &[f64], w: &[f64]| conv2d(&g, x, w).iter().zip(&r).map(|(a, b)| a * b).sum::<f64>();
    let (dx, dw) = conv2d_backward(&g, &x, &w, &r);
    for (i, want) in dx.iter().enumerate() {
        let mut xp = x.clone();
        xp[i] += 1e-6;
        let fd = (loss(&xp, &w) - loss(&x, &w)) / 1e-6;
        assert!((fd - want).abs() < 1e-5, "dx[{i}]");
    }
    for (i, want) in dw.iter().enumerate() {
        let mut wp = w.clone();
        wp[i] += 1e-6;
        let fd = (loss(&x, &wp) - loss(&x, &w)) / 1e-6;
        assert!((fd - want).abs() < 1e-5, "dw[{i}]");
    }
}

/// TTN forward: α·T with α = μ + σ·φ(a)/(1 − Φ(a)), a = clamp(δ, 0, 3σ)/σ (Φ by a series).
pub fn ttn_quantize(w: &[f64], delta: f64) -> Vec<f64> {
    let n = w.len() as f64;
    let mu = w.iter().sum::<f64>() / n;
    let sigma = (w.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n).sqrt();
    let d = delta.clamp(0.0, 3.0 * sigma);
    let a = d / sigma;
    // Φ(a) = 1/2 + φ(a)·Σ a^(2k+1)/(1·3·…·(2k+1))
    let phi = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (mut term, mut sum) = (a, a);
    for k in 1..200 {
        term *= a * a / (2 * k + 1) as f64;
        sum += term;
    }
    let alpha = mu + sigma * phi / (0.5 - phi * sum);
    w.iter()
        .map(|&v| {
            if v > mu + d {
                alpha
            } else if v < mu - d {
                -alpha
            } else {
                0.0
            }
        })
        .collect()
}
