//! Finite-difference gradient checks: every GPU backward kernel against central differences of
//! the f64 reference *forward* (the reference backward is not used), for L = Σ r ⊙ f(x).

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::*;
use tern::ops;

/// Central differences of `f` at up to 48 coordinates of `x`, against `analytic`.
#[track_caller]
fn check(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    let eps = 1e-5;
    let scale = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    let stride = (x.len() / 48).max(1);
    for i in (0..x.len()).step_by(stride) {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (f(&plus) - f(&minus)) / (2.0 * eps);
        let err = (fd - analytic[i]).abs() / (fd.abs() + 1e-2 * scale);
        assert!(err < 2e-3, "{what}[{i}]: finite difference {fd}, GPU {}", analytic[i]);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn conv2d_gradients() {
    let gpu = gpu();
    let c = Conv { n: 2, cin: 3, h: 7, w: 6, cout: 5, k: 3, stride: 2, pad: 1 };
    let g = ops::conv2d::Conv2dGeom { n: 2, cin: 3, h: 7, w: 6, cout: 5, kh: 3, kw: 3, stride: 2, pad: 1 };
    let (x, w) = (values(2 * 3 * 42, 1), values(5 * 3 * 9, 2));
    let r = values(2 * 5 * c.oh() * c.ow(), 3);
    let (xt, wt, rt) = (
        upload("x", &g.input_shape(), &x),
        upload("w", &g.weight_shape(), &w),
        upload("dy", &g.output_shape(), &r),
    );
    let (dx, dw) = (zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
    let mut p = ops::conv2d::grad_weight(gpu, "conv", &g, &xt, &rt, &dw).unwrap();
    p.push(ops::conv2d::grad_input(gpu, "conv", &g, &rt, &wt, &dx).unwrap());
    run_programs(&[&p]);
    check("conv dx", &x, &download(&dx), |x| dot(&conv2d(&c, x, &w), &r));
    check("conv dw", &w, &download(&dw), |w| dot(&conv2d(&c, &x, w), &r));
}

#[test]
fn batchnorm_gradients() {
    let gpu = gpu();
    let (n, c, hw) = (3, 4, 10);
    let x: Vec<f64> = values(n * c * hw, 4).iter().map(|v| 1.5 * v + 0.3).collect();
    let (gamma, beta, r) = (values(c, 5), values(c, 6), values(n * c * hw, 7));
    let shape = [n, c, 2, 5];
    let (xt, yt, rt) = (upload("x", &shape, &x), zeros("y", &shape), upload("dy", &shape, &r));
    let (gt, bt) = (upload("gamma", &[c], &gamma), upload("beta", &[c], &beta));
    let (rm, rv, mean, invstd) =
        (zeros("rm", &[c]), zeros("rv", &[c]), zeros("mean", &[c]), zeros("invstd", &[c]));
    let (dx, dg, db) = (zeros("dx", &shape), zeros("dg", &[c]), zeros("db", &[c]));
    let t = ops::batchnorm::BatchNormTensors {
        gamma: &gt,
        beta: &bt,
        running_mean: &rm,
        running_var: &rv,
        mean: &mean,
        invstd: &invstd,
    };
    let fwd = ops::batchnorm::forward_train(gpu, "bn", &xt, &yt, &t).unwrap();
    let bwd = ops::batchnorm::backward(gpu, "bn", &xt, &rt, &dx, &t, &dg, &db).unwrap();
    run(fwd.into_iter().chain(bwd));
    let loss = |x: &[f64], g: &[f64], b: &[f64]| dot(&batchnorm(x, n, c, hw, g, b, 1e-5).0, &r);
    check("bn dx", &x, &download(&dx), |v| loss(v, &gamma, &beta));
    check("bn dgamma", &gamma, &download(&dg), |v| loss(&x, v, &beta));
    check("bn dbeta", &beta, &download(&db), |v| loss(&x, &gamma, v));
}

#[test]
fn linear_and_cross_entropy_gradients() {
    let gpu = gpu();
    let (n, fin, fout) = (4, 9, 6);
    let (x, w, b) = (values(n * fin, 8), values(fout * fin, 9), values(fout, 10));
    let labels: Vec<u32> = vec![0, 5, 2, 3];
    let xt = upload("x", &[n, fin], &x);
    let (wt, bt) = (upload("w", &[fout, fin], &w), upload("b", &[fout], &b));
    let logits = zeros("logits", &[n, fout]);
    let lt = gpu.tensor_u32("labels", &[n], &labels).unwrap();
    let (dl, loss) = (zeros("dlogits", &[n, fout]), zeros("loss", &[n]));
    let pred = gpu.tensor_of("pred", &[n], tern::gpu::DType::U32).unwrap();
    let (dx, dw, db) = (zeros("dx", &[n, fin]), zeros("dw", &[fout, fin]), zeros("db", &[fout]));
    run([
        ops::linear::forward(gpu, "fc", &xt, &wt, &bt, &logits).unwrap(),
        ops::loss::forward(gpu, "loss", &logits, &lt, &dl, &loss, &pred).unwrap(),
        ops::linear::grad_input(gpu, "fc", &dl, &wt, &dx).unwrap(),
        ops::linear::grad_weight(gpu, "fc", &xt, &dl, &dw, &db).unwrap(),
    ]);
    let f = |x: &[f64], w: &[f64], b: &[f64]| cross_entropy(&linear(x, w, b, n, fin, fout), &labels, fout).0;
    check("linear+xent dx", &x, &download(&dx), |v| f(v, &w, &b));
    check("linear+xent dw", &w, &download(&dw), |v| f(&x, v, &b));
    check("linear+xent db", &b, &download(&db), |v| f(&x, &w, v));
}

#[test]
fn pooling_shortcut_and_relu_gradients() {
    let gpu = gpu();
    let (n, c, h, w) = (2, 3, 6, 5);
    let shape = [n, c, h, w];
    // Distinct values, away from 0: max pooling and ReLU are differentiable there.
    let x: Vec<f64> = (0..n * c * h * w)
        .map(|i| ((i * 37 % 101) as f64 / 50.0 - 1.01) * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let xt = upload("x", &shape, &x);
    // max pool 2×2 / 2
    let (oh, ow) = (3, 2);
    let r = values(n * c * oh * ow, 11);
    let (rt, dx) = (upload("dy", &[n, c, oh, ow], &r), zeros("dx", &shape));
    run([ops::pool::max_backward(gpu, "pool", &xt, &rt, &dx, 2, 2).unwrap()]);
    check("maxpool dx", &x, &download(&dx), |v| dot(&maxpool(v, n, c, h, w, 2, 2).0, &r));
    // global average pool
    let r = values(n * c, 12);
    let (rt, dx) = (upload("dy", &[n, c], &r), zeros("dx", &shape));
    run([ops::pool::avg_backward(gpu, "gap", &rt, &dx).unwrap()]);
    check("avgpool dx", &x, &download(&dx), |v| dot(&avgpool(v, n * c, h * w), &r));
    // option-A shortcut 3 → 7 channels, stride 2
    let out = ops::shortcut::output_shape(&shape, 7, 2);
    let r = values(out.iter().product(), 13);
    let (rt, dx) = (upload("dy", &out, &r), zeros("dx", &shape));
    run([ops::shortcut::backward(gpu, "sc", &rt, &dx, 2).unwrap()]);
    check("shortcut dx", &x, &download(&dx), |v| dot(&shortcut(v, n, c, h, w, 7, 2), &r));
    // relu
    let r = values(x.len(), 14);
    let (rt, dx) = (upload("dy", &shape, &r), zeros("dx", &shape));
    run([ops::activation::relu_backward(gpu, "relu", &xt, &rt, &dx).unwrap()]);
    check("relu dx", &x, &download(&dx), |v| dot(&relu(v), &r));
}

/// Wp and Wn are true parameters of the TTQ forward, so their gradients must match finite
/// differences (the latent-weight gradient is TTQ's defined estimator, checked by the goldens).
#[test]
fn ttq_scale_gradients() {
    let gpu = gpu();
    let (w, g) = (values(300, 15), values(300, 16));
    let (wp, wn) = (0.7, 1.2);
    let wt = upload("w", &[300], &w);
    let (wpt, wnt, gt) = (upload("wp", &[1], &[wp]), upload("wn", &[1], &[wn]), upload("gq", &[300], &g));
    let (m, wq, dw, dwp, dwn) =
        (zeros("m", &[1]), zeros("wq", &[300]), zeros("dw", &[300]), zeros("dwp", &[1]), zeros("dwn", &[1]));
    run([
        ops::reduce::max_abs(gpu, "ttq", &wt, &m).unwrap(),
        tern::quant::ttq::quantize(gpu, "ttq", 0.05, &wt, &m, &wpt, &wnt, &wq).unwrap(),
        tern::quant::ttq::backward(gpu, "ttq", 0.05, &wt, &m, &wpt, &wnt, &gt, &dw, &dwp, &dwn).unwrap(),
    ]);
    check("ttq dWp", &[wp], &download(&dwp), |v| dot(&ttq_quantize(&w, 0.05, v[0], wn), &g));
    check("ttq dWn", &[wn], &download(&dwn), |v| dot(&ttq_quantize(&w, 0.05, wp, v[0]), &g));
}

/// δ is a true parameter of the TTN forward (through α): its gradient must match finite
/// differences; so must the α path of the weight gradient, dw − g.
#[test]
fn ttn_threshold_gradient() {
    let gpu = gpu();
    let (w, g) = (values(400, 17).iter().map(|v| v + 0.05).collect::<Vec<_>>(), values(400, 18));
    for delta in [0.1, 0.45] {
        let (wt, dt, gt) =
            (upload("w", &[400], &w), upload("delta", &[1], &[delta]), upload("gq", &[400], &g));
        let (fit, wq, dw, dd) =
            (zeros("fit", &[8]), zeros("wq", &[400]), zeros("dw", &[400]), zeros("dd", &[1]));
        run([
            tern::quant::ttn::stats(gpu, "ttn", &wt, &dt, &fit).unwrap(),
            tern::quant::ttn::quantize(gpu, "ttn", &wt, &fit, &wq).unwrap(),
            tern::quant::ttn::backward(gpu, "ttn", &wt, &fit, &gt, &dw, &dd).unwrap(),
        ]);
        check("ttn dδ", &[delta], &download(&dd), |v| dot(&ttn_quantize(&w, v[0]), &g));
        assert_close("ttn wq", &download(&wq), &ttn_quantize(&w, delta), 1e-5);
        // With T held fixed, L = α(w)·Σ g·T: the rest of dw is the α path.
        let t: Vec<f64> = ttn_quantize(&w, delta)
            .iter()
            .map(|&v| (v > 0.0) as i8 as f64 - (v < 0.0) as i8 as f64)
            .collect();
        let alpha_path: Vec<f64> = download(&dw).iter().zip(&g).map(|(d, gi)| d - gi).collect();
        let alpha_of = |w: &[f64]| ttn_quantize(w, delta).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        check("ttn dw (α path)", &w, &alpha_path, |v| alpha_of(v) * dot(&t, &g));
    }
}

/// STTN: with the binary signs held fixed, the rest of ∂L/∂W1 is the true derivative through the
/// per-channel scale α = (‖W1‖₁ + ‖W2‖₁)/(2n).
#[test]
fn sttn_scale_gradient() {
    let gpu = gpu();
    let (cout, n) = (3, 20);
    let (w1, w2, g) = (values(cout * n, 19), values(cout * n, 20), values(cout * n, 21));
    let sgn = |v: f64| if v >= 0.0 { 1.0 } else { -1.0 };
    let b: Vec<f64> = w1.iter().zip(&w2).map(|(a, c)| sgn(*a) + sgn(*c)).collect();
    let loss = |w1: &[f64]| -> f64 {
        (0..cout * n)
            .map(|i| {
                let c = i / n;
                let alpha: f64 =
                    (c * n..(c + 1) * n).map(|j| w1[j].abs() + w2[j].abs()).sum::<f64>() / (2 * n) as f64;
                g[i] * alpha * b[i]
            })
            .sum()
    };
    let (t1, t2, tg) =
        (upload("w1", &[cout, n], &w1), upload("w2", &[cout, n], &w2), upload("gq", &[cout, n], &g));
    let (alpha, wq, d1, d2) = (
        zeros("alpha", &[cout]),
        zeros("wq", &[cout, n]),
        zeros("dw1", &[cout, n]),
        zeros("dw2", &[cout, n]),
    );
    run([
        tern::quant::sttn::scale(gpu, "sttn", &t1, &t2, &alpha).unwrap(),
        tern::quant::sttn::quantize(gpu, "sttn", &t1, &t2, &alpha, &wq).unwrap(),
        tern::quant::sttn::backward(gpu, "sttn", &t1, &t2, &alpha, &tg, &d1, &d2).unwrap(),
    ]);
    let a = download(&alpha);
    let through_alpha: Vec<f64> =
        download(&d1).iter().enumerate().map(|(i, d)| d - g[i] * a[i / n]).collect();
    check("sttn dW1 (α path)", &w1, &through_alpha, loss);
}
