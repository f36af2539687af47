//! GPU kernels against PyTorch goldens (tests/golden/make_golden.py → ops.safetensors):
//! every forward output and every gradient, relative tolerance 1e-4.

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::assert_close;
use tern::gpu::Var;
use tern::gpu::{DType, Program};
use tern::nn::layers::{BasicBlock, Layer};
use tern::nn::{Builder, Mode};
use tern::ops;
use tern::params::{HostTensor, ParamStore, Role, Slot};
use tern::quant::{QuantKind, Quantizer};

const TOL: f64 = 1e-4;

fn golden() -> Golden {
    Golden::load("ops.safetensors")
}

#[test]
fn conv2d_matches_pytorch() {
    let (gpu, g) = (gpu(), golden());
    for i in 0.. {
        let case = format!("conv{i}");
        if !g.has(&format!("{case}.x")) {
            assert!(i >= 6, "expected six conv cases");
            break;
        }
        let v = g.usizes(&format!("{case}.geom"));
        let geom = ops::conv2d::Conv2dGeom {
            n: v[0],
            cin: v[1],
            h: v[2],
            w: v[3],
            cout: v[4],
            kh: v[5],
            kw: v[5],
            stride: v[6],
            pad: v[7],
        };
        let t = |n: &str| g.upload(&format!("{case}.{n}"));
        let (x, w, dy) = (t("x"), t("w"), t("dy"));
        let (y, dx, dw) = (zeros("y", &geom.output_shape()), zeros("dx", x.shape()), zeros("dw", w.shape()));
        let mut p = ops::conv2d::grad_weight(gpu, &case, &geom, &x, &dy, &dw).unwrap();
        p.push(ops::conv2d::forward(gpu, &case, &geom, &x, &w, &y).unwrap());
        p.push(ops::conv2d::grad_input(gpu, &case, &geom, &dy, &w, &dx).unwrap());
        run_programs(&[&p]);
        for (name, t) in [("y", &y), ("dx", &dx), ("dw", &dw)] {
            assert_close(&format!("{case}.{name}"), &download(t), &g.values(&format!("{case}.{name}")), TOL);
        }
    }
}

#[test]
fn batchnorm_matches_pytorch() {
    let (gpu, g) = (gpu(), golden());
    for i in 0..3 {
        let case = format!("bn{i}");
        let t = |n: &str| g.upload(&format!("{case}.{n}"));
        let (x, gamma, beta, dy) = (t("x"), t("gamma"), t("beta"), t("dy"));
        let c = gamma.numel();
        let rm = zeros("running_mean", &[c]);
        let rv = upload("running_var", &[c], &vec![1.0; c]);
        let (mean, invstd, dg, db) =
            (zeros("mean", &[c]), zeros("invstd", &[c]), zeros("dg", &[c]), zeros("db", &[c]));
        let bt = ops::batchnorm::BatchNormTensors {
            gamma: &gamma,
            beta: &beta,
            running_mean: &rm,
            running_var: &rv,
            mean: &mean,
            invstd: &invstd,
        };
        let (y, dx, ye) = (zeros("y", x.shape()), zeros("dx", x.shape()), zeros("y_eval", x.shape()));
        let mut p = Program::default();
        p.extend_from(ops::batchnorm::forward_train(gpu, &case, &x, &y, &bt).unwrap());
        p.extend_from(ops::batchnorm::backward(gpu, &case, &x, &dy, &dx, &bt, &dg, &db).unwrap());
        p.extend_from(ops::batchnorm::forward_eval(gpu, &case, &x, &ye, &bt).unwrap());
        run_programs(&[&p]);
        let checks = [
            ("y", &y),
            ("dx", &dx),
            ("dgamma", &dg),
            ("dbeta", &db),
            ("running_mean", &rm),
            ("running_var", &rv),
            ("y_eval", &ye),
        ];
        for (name, t) in checks {
            assert_close(&format!("{case}.{name}"), &download(t), &g.values(&format!("{case}.{name}")), TOL);
        }
    }
}

#[test]
fn pooling_relu_linear_loss_and_sgd_match_pytorch() {
    let (gpu, g) = (gpu(), golden());
    let t = |n: &str| g.upload(n);
    // max pool 2×2 / 2 on an odd-sized input
    let (x, dy) = (t("maxpool.x"), t("maxpool.dy"));
    let (y, dx) = (zeros("y", dy.shape()), zeros("dx", x.shape()));
    run([
        ops::pool::max_forward(gpu, "maxpool", &x, &y, 2, 2).unwrap(),
        ops::pool::max_backward(gpu, "maxpool", &x, &dy, &dx, 2, 2).unwrap(),
    ]);
    assert_close("maxpool.y", &download(&y), &g.values("maxpool.y"), TOL);
    assert_close("maxpool.dx", &download(&dx), &g.values("maxpool.dx"), TOL);
    // global average pool
    let (x, dy) = (t("avgpool.x"), t("avgpool.dy"));
    let (y, dx) = (zeros("y", dy.shape()), zeros("dx", x.shape()));
    run([
        ops::pool::avg_forward(gpu, "avgpool", &x, &y).unwrap(),
        ops::pool::avg_backward(gpu, "avgpool", &dy, &dx).unwrap(),
    ]);
    assert_close("avgpool.y", &download(&y), &g.values("avgpool.y"), TOL);
    assert_close("avgpool.dx", &download(&dx), &g.values("avgpool.dx"), TOL);
    // relu
    let (x, dy) = (t("relu.x"), t("relu.dy"));
    let (y, dx) = (zeros("y", x.shape()), zeros("dx", x.shape()));
    run([
        ops::activation::relu_forward(gpu, "relu", &x, &y).unwrap(),
        ops::activation::relu_backward(gpu, "relu", &x, &dy, &dx).unwrap(),
    ]);
    assert_close("relu.y", &download(&y), &g.values("relu.y"), TOL);
    assert_close("relu.dx", &download(&dx), &g.values("relu.dx"), TOL);
    // linear
    let (x, w, b, dy) = (t("linear.x"), t("linear.w"), t("linear.b"), t("linear.dy"));
    let (y, dx, dw, db) =
        (zeros("y", dy.shape()), zeros("dx", x.shape()), zeros("dw", w.shape()), zeros("db", b.shape()));
    run([
        ops::linear::forward(gpu, "linear", &x, &w, &b, &y).unwrap(),
        ops::linear::grad_input(gpu, "linear", &dy, &w, &dx).unwrap(),
        ops::linear::grad_weight(gpu, "linear", &x, &dy, &dw, &db).unwrap(),
    ]);
    for (name, t) in [("y", &y), ("dx", &dx), ("dw", &dw), ("db", &db)] {
        assert_close(&format!("linear.{name}"), &download(t), &g.values(&format!("linear.{name}")), TOL);
    }
    // cross-entropy
    let logits = t("xent.logits");
    let labels: Vec<u32> = g.values("xent.labels").iter().map(|v| *v as u32).collect();
    let n = labels.len();
    let lt = gpu.tensor_u32("labels", &[n], &labels).unwrap();
    let (dl, loss, metrics) = (zeros("dlogits", logits.shape()), zeros("loss", &[n]), zeros("metrics", &[4]));
    let pred = gpu.tensor_of("pred", &[n], DType::U32).unwrap();
    run([
        ops::loss::forward(gpu, "xent", &logits, &lt, &dl, &loss, &pred).unwrap(),
        ops::loss::accumulate(gpu, "xent", &loss, &pred, &lt, &metrics).unwrap(),
    ]);
    assert_close("xent.loss", &[download(&metrics)[0] / n as f64], &g.values("xent.loss"), TOL);
    assert_close("xent.dlogits", &download(&dl), &g.values("xent.dlogits"), TOL);
    // SGD: two steps
    let (w, m1, m2) = (t("sgd.w0"), zeros("m1", &[50]), zeros("m2", &[50]));
    let step = gpu.uniform("step", &ops::optim::StepParams { lr: 0.1, bias1: 1.0, bias2: 1.0 });
    let params = ops::optim::OptimParams {
        len: 50,
        decay_end: 50,
        momentum: 0.9,
        weight_decay: 5e-4,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    for gname in ["sgd.g0", "sgd.g1"] {
        let grad = t(gname);
        run([ops::optim::update(gpu, "sgd", &params, &step, &w, &grad, &m1, &m2).unwrap()]);
    }
    assert_close("sgd.w", &download(&w), &g.values("sgd.w"), TOL);
    assert_close("sgd.v", &download(&m1), &g.values("sgd.v"), TOL);
}

#[test]
fn ttq_forward_and_all_three_gradients_match_pytorch() {
    let (gpu, g) = (gpu(), golden());
    for i in 0..3 {
        let case = format!("ttq{i}");
        let t = |n: &str| g.upload(&format!("{case}.{n}"));
        let threshold = g.values(&format!("{case}.geom"))[0] as f32;
        let (w, wp, wn, gq) = (t("w"), t("wp"), t("wn"), t("g"));
        let (maxabs, wq, dw) = (zeros("maxabs", &[1]), zeros("wq", w.shape()), zeros("dw", w.shape()));
        let (dwp, dwn) = (zeros("dwp", &[1]), zeros("dwn", &[1]));
        run([
            ops::reduce::max_abs(gpu, &case, &w, &maxabs).unwrap(),
            tern::quant::ttq::quantize(gpu, &case, threshold, &w, &maxabs, &wp, &wn, &wq).unwrap(),
            tern::quant::ttq::backward(gpu, &case, threshold, &w, &maxabs, &wp, &wn, &gq, &dw, &dwp, &dwn)
                .unwrap(),
        ]);
        for (name, t) in [("wq", &wq), ("dw", &dw), ("dwp", &dwp), ("dwn", &dwn)] {
            assert_close(&format!("{case}.{name}"), &download(t), &g.values(&format!("{case}.{name}")), TOL);
        }
    }
}

/// Build `layer` (a block or unit named `case`) on a store holding the golden's trainable values
/// (running statistics start at (0, 1), as in PyTorch), run forward and backward with the
/// golden's dy, and compare the output, dx, every gradient and the updated running statistics.
fn check_layer(g: &Golden, case: &str, layer: &Layer) {
    let gpu = gpu();
    let store = ParamStore::new(gpu, layer.params(), 0).unwrap();
    let host: Vec<HostTensor> = store
        .specs
        .iter()
        .filter(|s| s.role != Role::State)
        .map(|s| {
            let (shape, data) = g.get(&s.name);
            HostTensor { name: s.name.clone(), shape, data: data.iter().map(|x| *x as f32).collect() }
        })
        .collect();
    store.write(gpu, Slot::Values, &host).unwrap();
    let mut b = Builder::new(gpu, &store, Mode::Train);
    let shape = g.get(&format!("{case}.x")).0;
    let x = Var { value: g.upload(&format!("{case}.x")), grad: Some(zeros("dx", &shape)) };
    let y = layer.build(&mut b, &x).unwrap();
    let (forward, backward, _) = b.finish();
    let dy: Vec<f32> = g.values(&format!("{case}.dy")).iter().map(|v| *v as f32).collect();
    gpu.write(y.grad.as_ref().unwrap(), &dy).unwrap();
    run_programs(&[&forward, &backward]);
    assert_close(&format!("{case}.y"), &download(&y.value), &g.values(&format!("{case}.y")), TOL);
    assert_close(
        &format!("{case}.dx"),
        &download(x.grad.as_ref().unwrap()),
        &g.values(&format!("{case}.dx")),
        TOL,
    );
    for s in store.specs.iter() {
        let p = store.get(&s.name).unwrap();
        let (t, golden_name) = match &p.grad {
            Some(grad) => (grad.clone(), format!("{}.grad", s.name)),
            None => (p.value.clone(), s.name.clone()),
        };
        assert_close(&s.name, &download(&t), &g.values(&golden_name), TOL);
    }
}

/// A whole CIFAR ResNet basic block (identity and option-A shortcut, FP and TTQ) built by the
/// same code as the models, forward and backward, against PyTorch.
#[test]
fn resnet_block_forward_and_backward_match_pytorch() {
    let g = golden();
    for case in ["block_fp", "block_ttq", "block_down_ttq"] {
        let v = g.usizes(&format!("{case}.geom"));
        let (cin, cout, stride, ttq) = (v[0], v[1], v[2], v[3] == 1);
        let kind = if ttq { QuantKind::Ttq } else { QuantKind::Fp };
        let quant: std::sync::Arc<dyn Quantizer> = kind.quantizer(0.05).into();
        check_layer(&g, case, &Layer::Block(BasicBlock::new(case, cin, cout, stride, &quant)));
    }
}

#[test]
fn ttn_forward_and_gradients_match_pytorch() {
    let (gpu, g) = (gpu(), golden());
    for i in 0..3 {
        let case = format!("ttn{i}");
        let t = |n: &str| g.upload(&format!("{case}.{n}"));
        let (w, delta, gq) = (t("w"), t("delta"), t("g"));
        let (fit, wq, dw, ddelta) =
            (zeros("fit", &[8]), zeros("wq", w.shape()), zeros("dw", w.shape()), zeros("dd", &[1]));
        run([
            tern::quant::ttn::stats(gpu, &case, &w, &delta, &fit).unwrap(),
            tern::quant::ttn::quantize(gpu, &case, &w, &fit, &wq).unwrap(),
            tern::quant::ttn::backward(gpu, &case, &w, &fit, &gq, &dw, &ddelta).unwrap(),
        ]);
        for (name, t) in [("wq", &wq), ("dw", &dw), ("ddelta", &ddelta)] {
            assert_close(&format!("{case}.{name}"), &download(t), &g.values(&format!("{case}.{name}")), TOL);
        }
    }
}

#[test]
fn sttn_forward_and_gradients_match_pytorch() {
    let (gpu, g) = (gpu(), golden());
    for i in 0..2 {
        let case = format!("sttn{i}");
        let t = |n: &str| g.upload(&format!("{case}.{n}"));
        let (w1, w2, gq) = (t("w1"), t("w2"), t("g"));
        let cout = w1.shape()[0];
        let (alpha, wq, dw1, dw2) = (
            zeros("alpha", &[cout]),
            zeros("wq", w1.shape()),
            zeros("dw1", w1.shape()),
            zeros("dw2", w1.shape()),
        );
        run([
            tern::quant::sttn::scale(gpu, &case, &w1, &w2, &alpha).unwrap(),
            tern::quant::sttn::quantize(gpu, &case, &w1, &w2, &alpha, &wq).unwrap(),
            tern::quant::sttn::backward(gpu, &case, &w1, &w2, &alpha, &gq, &dw1, &dw2).unwrap(),
        ]);
        for (name, t) in [("wq", &wq), ("dw1", &dw1), ("dw2", &dw2)] {
            assert_close(&format!("{case}.{name}"), &download(t), &g.values(&format!("{case}.{name}")), TOL);
        }
        run([tern::quant::sttn::clamp_latent(gpu, &case, &w1, &w2).unwrap()]);
        let clamped: Vec<f64> = g.values(&format!("{case}.w1")).iter().map(|v| v.clamp(-1.0, 1.0)).collect();
        assert_close(&format!("{case} clamp"), &download(&w1), &clamped, 0.0);
    }
}

/// A unit of STTN's ResNet (BN → ternary activation → conv with STTN weights → BN, + identity or
/// option-A shortcut), built by the models' code, forward and backward against PyTorch.
#[test]
fn sttn_ternary_unit_forward_and_backward_match_pytorch() {
    let g = golden();
    for case in ["unit_sttn", "unit_down_sttn"] {
        let v = g.usizes(&format!("{case}.geom"));
        let (cin, cout, stride) = (v[0], v[1], v[2]);
        let quant: std::sync::Arc<dyn Quantizer> = QuantKind::Sttn.quantizer(0.05).into();
        check_layer(
            &g,
            case,
            &Layer::TernaryUnit(tern::nn::layers::TernaryUnit::new(case, 1, cin, cout, stride, &quant)),
        );
    }
}
