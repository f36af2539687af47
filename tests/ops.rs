//! Each op on the GPU against the f64 CPU reference, on shapes that do and do not divide the
//! workgroup and register-block sizes.

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::*;
use tern::ops;
use tern::ops::conv2d::Conv2dGeom;

const TOL: f64 = 1e-4;

fn geom(c: &Conv) -> Conv2dGeom {
    Conv2dGeom {
        n: c.n,
        cin: c.cin,
        h: c.h,
        w: c.w,
        cout: c.cout,
        kh: c.k,
        kw: c.k,
        stride: c.stride,
        pad: c.pad,
    }
}

const CONV_SHAPES: &[Conv] = &[
    Conv { n: 1, cin: 1, h: 5, w: 5, cout: 1, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 3, h: 7, w: 9, cout: 5, k: 3, stride: 1, pad: 1 },
    Conv { n: 3, cin: 4, h: 8, w: 8, cout: 8, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 5, h: 9, w: 6, cout: 7, k: 1, stride: 1, pad: 0 },
    Conv { n: 2, cin: 6, h: 11, w: 10, cout: 3, k: 5, stride: 2, pad: 2 },
    Conv { n: 1, cin: 2, h: 6, w: 6, cout: 6, k: 3, stride: 3, pad: 0 },
    Conv { n: 5, cin: 16, h: 16, w: 16, cout: 32, k: 3, stride: 2, pad: 1 },
];

#[test]
fn conv2d_forward_matches_reference() {
    let gpu = gpu();
    for (s, c) in CONV_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x = values(c.n * c.cin * c.h * c.w, 10 + s as u64);
        let w = values(c.cout * c.cin * c.k * c.k, 20 + s as u64);
        let (xt, wt) = (upload("x", &g.input_shape(), &x), upload("w", &g.weight_shape(), &w));
        let yt = zeros("y", &g.output_shape());
        run([ops::conv2d::forward(gpu, "conv", &g, &xt, &wt, &yt).unwrap()]);
        assert_close(&format!("conv2d forward {c:?}"), &download(&yt), &conv2d(c, &x, &w), TOL);
    }
}

#[test]
fn conv2d_grads_match_reference() {
    let gpu = gpu();
    for (s, c) in CONV_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x = values(c.n * c.cin * c.h * c.w, 30 + s as u64);
        let w = values(c.cout * c.cin * c.k * c.k, 40 + s as u64);
        let dy = values(c.n * c.cout * c.oh() * c.ow(), 50 + s as u64);
        let (xt, wt) = (upload("x", &g.input_shape(), &x), upload("w", &g.weight_shape(), &w));
        let dyt = upload("dy", &g.output_shape(), &dy);
        let (dxt, dwt) = (zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
        let gw = ops::conv2d::grad_weight(gpu, "conv", &g, &xt, &dyt, &dwt).unwrap();
        let gi = ops::conv2d::grad_input(gpu, "conv", &g, &dyt, &wt, &dxt).unwrap();
        run(gw.dispatches.into_iter().chain([gi]));
        let (dx, dw) = conv2d_backward(c, &x, &w, &dy);
        assert_close(&format!("conv2d grad_input {c:?}"), &download(&dxt), &dx, TOL);
        assert_close(&format!("conv2d grad_weight {c:?}"), &download(&dwt), &dw, TOL);
    }
}

#[test]
fn conv2d_rejects_mismatched_shapes_by_name() {
    let gpu = gpu();
    let g = geom(&CONV_SHAPES[1]);
    let x = zeros("layer1.conv.x", &[2, 3, 7, 8]);
    let w = zeros("layer1.conv.w", &g.weight_shape());
    let y = zeros("layer1.conv.y", &g.output_shape());
    let err = ops::conv2d::forward(gpu, "layer1.conv", &g, &x, &w, &y).err().unwrap().to_string();
    assert!(err.contains("layer1.conv/forward") && err.contains("layer1.conv.x"), "{err}");
    assert!(err.contains("[2, 3, 7, 9]"), "{err}");
}

#[test]
fn tensor_over_adapter_limit_is_an_error_naming_it() {
    let gpu = gpu();
    let huge = gpu.max_binding_bytes() as usize / 4 + 1;
    let err = gpu.tensor("activations.huge", &[huge]).err().unwrap().to_string();
    assert!(err.contains("activations.huge") && err.contains("max_storage_buffer_binding_size"), "{err}");
}

#[test]
fn batchnorm_train_eval_and_backward_match_reference() {
    let gpu = gpu();
    for (s, &(n, c, h, w)) in [(2, 3, 4, 5), (4, 8, 7, 7), (1, 1, 1, 3), (3, 5, 17, 3)].iter().enumerate() {
        let shape = [n, c, h, w];
        let hw = h * w;
        let x: Vec<f64> = values(n * c * hw, 60 + s as u64).iter().map(|v| v * 2.0 + 0.5).collect();
        let gamma = values(c, 61);
        let beta = values(c, 62);
        let dy = values(n * c * hw, 163 + s as u64);
        let xt = upload("x", &shape, &x);
        let yt = zeros("y", &shape);
        let (gt, bt) = (upload("gamma", &[c], &gamma), upload("beta", &[c], &beta));
        let rm = zeros("running_mean", &[c]);
        let rv = upload("running_var", &[c], &vec![1.0; c]);
        let (mean, invstd) = (zeros("mean", &[c]), zeros("invstd", &[c]));
        let t = ops::batchnorm::BatchNormTensors {
            gamma: &gt,
            beta: &bt,
            running_mean: &rm,
            running_var: &rv,
            mean: &mean,
            invstd: &invstd,
        };
        let (dyt, dxt) = (upload("dy", &shape, &dy), zeros("dx", &shape));
        let (dg, db) = (zeros("dgamma", &[c]), zeros("dbeta", &[c]));
        let fwd = ops::batchnorm::forward_train(gpu, "bn", &xt, &yt, &t).unwrap();
        let bwd = ops::batchnorm::backward(gpu, "bn", &xt, &dyt, &dxt, &t, &dg, &db).unwrap();
        run(fwd.into_iter().chain(bwd));
        let eps = ops::batchnorm::EPS as f64;
        let (y, bmean, bvar) = batchnorm(&x, n, c, hw, &gamma, &beta, eps);
        assert_close("batchnorm forward", &download(&yt), &y, TOL);
        let (dx, dgamma, dbeta) = batchnorm_backward(&x, &dy, n, c, hw, &gamma, eps);
        assert_close("batchnorm dx", &download(&dxt), &dx, TOL);
        assert_close("batchnorm dgamma", &download(&dg), &dgamma, TOL);
        assert_close("batchnorm dbeta", &download(&db), &dbeta, TOL);
        // Running statistics: momentum 0.1 from (0, 1), unbiased variance.
        let m = (n * hw) as f64;
        let want_rm: Vec<f64> = bmean.iter().map(|v| 0.1 * v).collect();
        let want_rv: Vec<f64> = bvar.iter().map(|v| 0.9 + 0.1 * v * m / (m - 1.0).max(1.0)).collect();
        assert_close("running mean", &download(&rm), &want_rm, TOL);
        assert_close("running var", &download(&rv), &want_rv, TOL);
        // Eval mode uses the running statistics.
        let ye = zeros("y_eval", &shape);
        run(ops::batchnorm::forward_eval(gpu, "bn", &xt, &ye, &t).unwrap());
        let want = batchnorm_eval(&x, c, hw, &gamma, &beta, &want_rm, &want_rv, eps);
        assert_close("batchnorm eval", &download(&ye), &want, TOL);
    }
}

#[test]
fn relu_and_add_match_reference() {
    let gpu = gpu();
    for len in [1usize, 255, 256, 257, 70_000] {
        let x = values(len, len as u64);
        let dy = values(len, len as u64 + 1);
        let (xt, dyt) = (upload("x", &[len], &x), upload("dy", &[len], &dy));
        let (yt, dxt, st) = (zeros("y", &[len]), zeros("dx", &[len]), zeros("sum", &[len]));
        run([
            ops::activation::relu_forward(gpu, "relu", &xt, &yt).unwrap(),
            ops::activation::relu_backward(gpu, "relu", &xt, &dyt, &dxt).unwrap(),
            ops::activation::add(gpu, "join", &xt, &dyt, &st).unwrap(),
        ]);
        assert_close("relu", &download(&yt), &relu(&x), 0.0);
        assert_close("relu backward", &download(&dxt), &relu_backward(&x, &dy), 0.0);
        let sum: Vec<f64> = x.iter().zip(&dy).map(|(a, b)| a + b).collect();
        assert_close("add", &download(&st), &sum, 1e-6);
    }
}

#[test]
fn maxpool_matches_reference() {
    let gpu = gpu();
    for &(n, c, h, w, k, s) in
        &[(2, 3, 4, 4, 2, 2), (1, 2, 7, 5, 2, 2), (2, 2, 7, 7, 3, 2), (1, 1, 6, 6, 3, 3)]
    {
        let shape = [n, c, h, w];
        let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
        // Ties are resolved like PyTorch: include repeated values.
        let x: Vec<f64> = values(n * c * h * w, 70).iter().map(|v| (v * 4.0).round() / 4.0).collect();
        let dy = values(n * c * oh * ow, 71);
        let xt = upload("x", &shape, &x);
        let yt = zeros("y", &[n, c, oh, ow]);
        let dyt = upload("dy", &[n, c, oh, ow], &dy);
        let dxt = zeros("dx", &shape);
        run([
            ops::pool::max_forward(gpu, "pool", &xt, &yt, k, s).unwrap(),
            ops::pool::max_backward(gpu, "pool", &xt, &dyt, &dxt, k, s).unwrap(),
        ]);
        assert_close("maxpool", &download(&yt), &maxpool(&x, n, c, h, w, k, s).0, 0.0);
        assert_close("maxpool backward", &download(&dxt), &maxpool_backward(&x, &dy, n, c, h, w, k, s), 1e-6);
    }
}

#[test]
fn avgpool_matches_reference() {
    let gpu = gpu();
    let (n, c, h, w) = (3, 5, 7, 6);
    let x = values(n * c * h * w, 80);
    let dy = values(n * c, 81);
    let (xt, yt) = (upload("x", &[n, c, h, w], &x), zeros("y", &[n, c]));
    let (dyt, dxt) = (upload("dy", &[n, c], &dy), zeros("dx", &[n, c, h, w]));
    run([
        ops::pool::avg_forward(gpu, "gap", &xt, &yt).unwrap(),
        ops::pool::avg_backward(gpu, "gap", &dyt, &dxt).unwrap(),
    ]);
    assert_close("avgpool", &download(&yt), &avgpool(&x, n * c, h * w), TOL);
    assert_close("avgpool backward", &download(&dxt), &avgpool_backward(&dy, h * w), TOL);
}

#[test]
fn shortcut_matches_reference() {
    let gpu = gpu();
    for &(n, cin, h, w, cout, s) in &[(2, 4, 8, 8, 8, 2), (1, 3, 7, 5, 7, 2), (2, 6, 4, 4, 6, 1)] {
        let x = values(n * cin * h * w, 90);
        let out = ops::shortcut::output_shape(&[n, cin, h, w], cout, s);
        let dy = values(out.iter().product(), 91);
        let (xt, yt) = (upload("x", &[n, cin, h, w], &x), zeros("y", &out));
        let (dyt, dxt) = (upload("dy", &out, &dy), zeros("dx", &[n, cin, h, w]));
        run([
            ops::shortcut::forward(gpu, "shortcut", &xt, &yt, s).unwrap(),
            ops::shortcut::backward(gpu, "shortcut", &dyt, &dxt, s).unwrap(),
        ]);
        assert_close("shortcut", &download(&yt), &shortcut(&x, n, cin, h, w, cout, s), 0.0);
        assert_close(
            "shortcut backward",
            &download(&dxt),
            &shortcut_backward(&dy, n, cin, h, w, cout, s),
            0.0,
        );
    }
}

#[test]
fn linear_matches_reference() {
    let gpu = gpu();
    for &(n, fin, fout) in &[(1, 1, 1), (3, 17, 10), (65, 64, 10), (8, 100, 33)] {
        let x = values(n * fin, 100);
        let w = values(fout * fin, 101);
        let b = values(fout, 102);
        let dy = values(n * fout, 103);
        let (xt, wt, bt) =
            (upload("x", &[n, fin], &x), upload("w", &[fout, fin], &w), upload("b", &[fout], &b));
        let (yt, dyt) = (zeros("y", &[n, fout]), upload("dy", &[n, fout], &dy));
        let (dxt, dwt, dbt) = (zeros("dx", &[n, fin]), zeros("dw", &[fout, fin]), zeros("db", &[fout]));
        run([
            ops::linear::forward(gpu, "fc", &xt, &wt, &bt, &yt).unwrap(),
            ops::linear::grad_input(gpu, "fc", &dyt, &wt, &dxt).unwrap(),
            ops::linear::grad_weight(gpu, "fc", &xt, &dyt, &dwt, &dbt).unwrap(),
        ]);
        assert_close("linear", &download(&yt), &linear(&x, &w, &b, n, fin, fout), TOL);
        let (dx, dw, db) = linear_backward(&x, &w, &dy, n, fin, fout);
        assert_close("linear dx", &download(&dxt), &dx, TOL);
        assert_close("linear dw", &download(&dwt), &dw, TOL);
        assert_close("linear db", &download(&dbt), &db, TOL);
    }
}

#[test]
fn cross_entropy_matches_reference_and_counts_correct() {
    let gpu = gpu();
    for &(n, classes) in &[(1, 2), (7, 10), (300, 10), (5, 100)] {
        let logits: Vec<f64> = values(n * classes, 110).iter().map(|v| v * 5.0).collect();
        let labels: Vec<u32> = (0..n).map(|i| ((i * 7 + 3) % classes) as u32).collect();
        let lt = upload("logits", &[n, classes], &logits);
        let labt = gpu.tensor_u32("labels", &[n], &labels).unwrap();
        let dl = zeros("dlogits", &[n, classes]);
        let loss = zeros("loss", &[n]);
        let pred = gpu.tensor_of("pred", &[n], tern::gpu::DType::U32).unwrap();
        let metrics = zeros("metrics", &[4]);
        let fwd = ops::loss::forward(gpu, "loss", &lt, &labt, &dl, &loss, &pred).unwrap();
        let acc = ops::loss::accumulate(gpu, "loss", &loss, &pred, &labt, &metrics).unwrap();
        let program = tern::gpu::Program { dispatches: vec![fwd, acc] };
        run_programs(&[&program, &program]);
        let (mean, per, d, want_pred) = cross_entropy(&logits, &labels, classes);
        assert_close("loss per sample", &download(&loss), &per, TOL);
        assert_close("dlogits", &download(&dl), &d, TOL);
        assert_eq!(gpu.read_u32(&pred).unwrap(), want_pred);
        let correct = want_pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64;
        // Two accumulations of the same batch.
        let m = download(&metrics);
        assert_close("metrics", &m[..3], &[2.0 * mean * n as f64, 2.0 * correct, 2.0 * n as f64], TOL);
    }
}

#[test]
fn max_abs_and_sum_splits_match_reference() {
    let gpu = gpu();
    for len in [1usize, 100, 256, 1000, 40_000] {
        let x = values(len, len as u64 + 5);
        let xt = upload("x", &[len], &x);
        let r = zeros("r", &[1]);
        let partial = upload("partial", &[3, len], &values(3 * len, 7));
        let total = zeros("total", &[len]);
        run([
            ops::reduce::max_abs(gpu, "w", &xt, &r).unwrap(),
            ops::reduce::sum_splits(gpu, "w", &partial, &total).unwrap(),
        ]);
        let want = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close("max_abs", &download(&r), &[want], 1e-7);
        let p = values(3 * len, 7);
        let sums: Vec<f64> = (0..len).map(|i| p[i] + p[len + i] + p[2 * len + i]).collect();
        assert_close("sum_splits", &download(&total), &sums, 1e-5);
    }
}

#[test]
fn sgd_and_adam_match_reference() {
    let gpu = gpu();
    let len = 1000;
    let decay_end = 600;
    let (w, g, v) = (values(len, 120), values(len, 121), values(len, 122));
    let (lr, momentum, wd) = (0.05, 0.9, 5e-4);
    let params = ops::optim::OptimParams {
        len: len as u32,
        decay_end: decay_end as u32,
        momentum: momentum as f32,
        weight_decay: wd as f32,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    for entry in ["sgd", "adam"] {
        let step = ops::optim::StepParams {
            lr: lr as f32,
            bias1: 1.0 - 0.9f32.powi(3),
            bias2: 1.0 - 0.999f32.powi(3),
        };
        let step_buf = gpu.uniform("step", &step);
        let (wt, gt, m1, m2) = (
            upload("param", &[len], &w),
            upload("grad", &[len], &g),
            upload("m1", &[len], &v),
            upload("m2", &[len], &v.iter().map(|x| x * x).collect::<Vec<_>>()),
        );
        run([ops::optim::update(gpu, entry, &params, &step_buf, &wt, &gt, &m1, &m2).unwrap()]);
        let decay = |i: usize| if i < decay_end { wd } else { 0.0 };
        let (want_w, want_m): (Vec<f64>, Vec<f64>) = (0..len)
            .map(|i| {
                if entry == "sgd" {
                    let (w1, v1) = sgd(&w[i..i + 1], &g[i..i + 1], &v[i..i + 1], lr, momentum, decay(i));
                    (w1[0], v1[0])
                } else {
                    let vv = [v[i] * v[i]];
                    let (w1, m1, _) = adamw(&w[i..i + 1], &g[i..i + 1], &v[i..i + 1], &vv, 3, lr, decay(i));
                    (w1[0], m1[0])
                }
            })
            .unzip();
        assert_close(&format!("{entry} param"), &download(&wt), &want_w, TOL);
        assert_close(&format!("{entry} moment1"), &download(&m1), &want_m, TOL);
    }
}

/// packed_conv (ternary bitmasks and dense) with its epilogue against the reference convolution
/// of the same ternary weights, then scale, shift, option-A residual and ReLU.
#[test]
fn packed_conv_matches_reference() {
    use tern::ops::packed_conv::{Epilogue, PackedWeights};
    let gpu = gpu();
    for (s, c) in CONV_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x = values(c.n * c.cin * c.h * c.w, 200 + s as u64);
        let codes: Vec<i8> = values(c.cout * c.cin * c.k * c.k, 300 + s as u64)
            .iter()
            .map(|v| {
                if *v > 0.3 {
                    1
                } else if *v < -0.3 {
                    -1
                } else {
                    0
                }
            })
            .collect();
        let (wp, wn) = (0.75, 1.25);
        let w: Vec<f64> = codes
            .iter()
            .map(|&k| {
                if k > 0 {
                    wp
                } else if k < 0 {
                    -wn
                } else {
                    0.0
                }
            })
            .collect();
        let (scale, shift) = (values(c.cout, 400), values(c.cout, 401));
        let (pos, neg) = tern::quant::pack::pack(&tern::packed::tap_major(&codes, &g.weight_shape()));
        let xt = upload("x", &g.input_shape(), &x);
        let post = gpu.tensor_u32("pos", &[pos.len()], &pos).unwrap();
        let negt = gpu.tensor_u32("neg", &[neg.len()], &neg).unwrap();
        let (wpt, wnt, wt) =
            (upload("wp", &[1], &[wp]), upload("wn", &[1], &[wn]), upload("w", &g.weight_shape(), &w));
        let (st, sht) = (upload("scale", &[c.cout], &scale), upload("shift", &[c.cout], &shift));
        // A residual of cout − 2 channels at the input resolution (option A when stride 2).
        let res_c = c.cout.saturating_sub(2).max(1) - (c.cout.saturating_sub(2).max(1) + c.cout) % 2;
        let (rh, rw) = (c.oh() * c.stride, c.ow() * c.stride);
        let res = values(c.n * res_c * rh * rw, 500);
        let rt = upload("res", &[c.n, res_c, rh, rw], &res);
        let conv = conv2d(c, &x, &w);
        let ohw = c.oh() * c.ow();
        for (relu, residual) in [(false, false), (true, true)] {
            let want: Vec<f64> = conv
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (n, co, rc) = (i / (c.cout * ohw), (i / ohw) % c.cout, i % ohw);
                    let mut out = v * scale[co] + shift[co];
                    let pad = (c.cout - res_c) / 2;
                    if residual && co >= pad && co < pad + res_c {
                        let (r, col) = (rc / c.ow() * c.stride, rc % c.ow() * c.stride);
                        out += res[((n * res_c + co - pad) * rh + r) * rw + col];
                    }
                    if relu { out.max(0.0) } else { out }
                })
                .collect();
            let e = Epilogue { scale: &st, shift: &sht, relu, residual: residual.then_some((&rt, c.stride)) };
            for weights in [
                PackedWeights::Ternary { pos: &post, neg: &negt, wp: &wpt, wn: &wnt },
                PackedWeights::Dense { weight: &wt },
            ] {
                let y = zeros("y", &g.output_shape());
                run([ops::packed_conv::forward(gpu, "packed", &g, &xt, &weights, &e, &y).unwrap()]);
                assert_close(
                    &format!("packed conv {c:?} relu {relu} residual {residual}"),
                    &download(&y),
                    &want,
                    TOL,
                );
            }
        }
    }
}

#[test]
fn ternary_activation_matches_reference() {
    let gpu = gpu();
    let len = 1000;
    let x: Vec<f64> = values(len, 600).iter().map(|v| v * 1.6).collect();
    let dy = values(len, 601);
    let (xt, dyt, yt, dxt) =
        (upload("x", &[len], &x), upload("dy", &[len], &dy), zeros("y", &[len]), zeros("dx", &[len]));
    run([
        ops::activation::ternary_forward(gpu, "act", &xt, &yt).unwrap(),
        ops::activation::ternary_backward(gpu, "act", &xt, &dyt, &dxt).unwrap(),
    ]);
    let y: Vec<f64> = x
        .iter()
        .map(|&v| {
            if v > 0.5 {
                1.0
            } else if v < -0.5 {
                -1.0
            } else {
                0.0
            }
        })
        .collect();
    let dx: Vec<f64> = x.iter().zip(&dy).map(|(&v, &g)| if v.abs() <= 1.0 { g } else { 0.0 }).collect();
    assert_close("ternary activation", &download(&yt), &y, 0.0);
    assert_close("ternary activation backward", &download(&dxt), &dx, 0.0);
}
