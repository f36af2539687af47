//! The two kernel families: every tiled entry point against the f64 CPU reference on shapes that
//! do not divide the tile sizes, both families bit-reproducible from run to run, the PyTorch
//! goldens and packed-vs-training-graph logits through the tiled family. The tests pick each
//! family explicitly (`Gpu::with_family`), whatever `--kernels`/`TERN_KERNELS` say.

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::*;
use std::sync::OnceLock;
use tern::gpu::{Family, Gpu, Tensor};
use tern::ops;
use tern::ops::conv2d::Conv2dGeom;

const TOL: f64 = 1e-4;
const FAMILIES: [Family; 2] = [Family::Blocked, Family::Tiled];

/// A handle on the test device running `family`.
fn on(family: Family) -> &'static Gpu {
    static HANDLES: [OnceLock<Gpu>; 2] = [OnceLock::new(), OnceLock::new()];
    HANDLES[family as usize].get_or_init(|| gpu().with_family(family))
}

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

/// Shapes that divide neither the 4×4 blocks nor any tile: more than one row tile (70 channels;
/// 1×1 so that sums stay short enough for the tolerance), channel slices with a remainder
/// (cin 12, 17), stride 2 and 3 with odd sizes (parity classes of unequal sizes), a 1×1
/// stride-2 convolution (classes that meet no tap), 5×5 kernels.
const CONV_SHAPES: &[Conv] = &[
    Conv { n: 1, cin: 1, h: 5, w: 5, cout: 1, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 3, h: 7, w: 9, cout: 5, k: 3, stride: 1, pad: 1 },
    Conv { n: 3, cin: 4, h: 8, w: 8, cout: 8, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 5, h: 9, w: 6, cout: 7, k: 1, stride: 1, pad: 0 },
    Conv { n: 2, cin: 6, h: 11, w: 10, cout: 3, k: 5, stride: 2, pad: 2 },
    Conv { n: 1, cin: 2, h: 6, w: 6, cout: 6, k: 3, stride: 3, pad: 0 },
    Conv { n: 2, cin: 5, h: 7, w: 7, cout: 6, k: 1, stride: 2, pad: 0 },
    Conv { n: 3, cin: 12, h: 13, w: 11, cout: 14, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 67, h: 9, w: 7, cout: 70, k: 1, stride: 1, pad: 0 },
    Conv { n: 2, cin: 17, h: 9, w: 9, cout: 33, k: 3, stride: 2, pad: 1 },
    Conv { n: 3, cin: 16, h: 16, w: 16, cout: 32, k: 3, stride: 2, pad: 1 },
];

/// forward, grad_input and grad_weight of `g` on `gpu`: (y, dx, dw).
fn conv_passes(gpu: &Gpu, g: &Conv2dGeom, x: &Tensor, w: &Tensor, dy: &Tensor) -> [Vec<f32>; 3] {
    let (y, dx, dw) =
        (zeros("y", &g.output_shape()), zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
    let mut p = ops::conv2d::grad_weight(gpu, "conv", g, x, dy, &dw).unwrap();
    p.push(ops::conv2d::forward(gpu, "conv", g, x, w, &y).unwrap());
    p.push(ops::conv2d::grad_input(gpu, "conv", g, dy, w, &dx).unwrap());
    run_programs(&[&p]);
    [&y, &dx, &dw].map(|t| gpu.read(t).unwrap())
}

#[test]
fn conv2d_matches_reference_in_both_families() {
    for (s, c) in CONV_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x = values(c.n * c.cin * c.h * c.w, 10 + s as u64);
        let w = values(c.cout * c.cin * c.k * c.k, 20 + s as u64);
        let dy = values(c.n * c.cout * c.oh() * c.ow(), 30 + s as u64);
        let (xt, wt) = (upload("x", &g.input_shape(), &x), upload("w", &g.weight_shape(), &w));
        let dyt = upload("dy", &g.output_shape(), &dy);
        let (y, (dx, dw)) = (conv2d(c, &x, &w), conv2d_backward(c, &x, &w, &dy));
        for f in FAMILIES {
            let [yg, dxg, dwg] = conv_passes(on(f), &g, &xt, &wt, &dyt);
            let f = f.name();
            assert_close(&format!("{f} conv2d forward {c:?}"), &to_f64(&yg), &y, TOL);
            assert_close(&format!("{f} conv2d grad_input {c:?}"), &to_f64(&dxg), &dx, TOL);
            assert_close(&format!("{f} conv2d grad_weight {c:?}"), &to_f64(&dwg), &dw, TOL);
        }
    }
}

/// Codes in {−1, 0, +1}, about 35 % zeros.
fn ternary_codes(len: usize, seed: u64) -> Vec<i8> {
    values(len, seed).iter().map(|&v| (v > 0.35) as i8 - (v < -0.35) as i8).collect()
}

/// Weights of `codes` [cout, …] with per-channel (or, with one value, per-layer) scales.
fn ternary_weights(codes: &[i8], wp: &[f64], wn: &[f64]) -> Vec<f64> {
    let per_row = codes.len() / wp.len().max(1);
    codes
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let r = if wp.len() == 1 { 0 } else { i / per_row };
            match k {
                1 => wp[r],
                -1 => -wn[r],
                _ => 0.0,
            }
        })
        .collect()
}

/// Packed convolutions: 2 bit-plane words (cin 40), channel remainders, two row tiles (cout 70),
/// stride 2 with odd sizes, 5×5 kernels.
const PACKED_SHAPES: &[Conv] = &[
    Conv { n: 2, cin: 3, h: 7, w: 9, cout: 5, k: 3, stride: 1, pad: 1 },
    Conv { n: 3, cin: 4, h: 8, w: 8, cout: 8, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 6, h: 11, w: 10, cout: 3, k: 5, stride: 2, pad: 2 },
    Conv { n: 2, cin: 40, h: 6, w: 5, cout: 70, k: 1, stride: 1, pad: 0 },
    Conv { n: 1, cin: 33, h: 7, w: 7, cout: 10, k: 3, stride: 2, pad: 1 },
];

/// packed_conv's ternary, dense and bit-plane entry points with their epilogue (scale, shift,
/// option-A residual, ReLU), per-layer and per-channel scales, in both families, against the
/// reference convolution of the same ternary weights (bit-planes: of ternary activations).
#[test]
fn packed_conv_matches_reference_in_both_families() {
    use ops::packed_conv::{Epilogue, PackedWeights};
    let gpu = gpu();
    for (s, c) in PACKED_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x: Vec<f64> = values(c.n * c.cin * c.h * c.w, 200 + s as u64).iter().map(|v| 1.6 * v).collect();
        // The bit-plane path sees ternary(x): act_scale 1 and act_shift 0 keep x exact in f32.
        let act: Vec<f64> = x.iter().map(|&v| ((v > 0.5) as i8 - (v < -0.5) as i8) as f64).collect();
        let codes = ternary_codes(c.cout * c.cin * c.k * c.k, 300 + s as u64);
        let (pos, neg) = tern::quant::pack::pack(&tern::packed::tap_major(&codes, &g.weight_shape()));
        let post = gpu.tensor_u32("pos", &[pos.len()], &pos).unwrap();
        let negt = gpu.tensor_u32("neg", &[neg.len()], &neg).unwrap();
        let xt = upload("x", &g.input_shape(), &x);
        let (ones, zero) = (upload("act_scale", &[c.cin], &vec![1.0; c.cin]), zeros("act_shift", &[c.cin]));
        let words = [c.n, c.h * c.w, c.cin.div_ceil(32)];
        let (ap, an) = (zeros("act_pos", &words), zeros("act_neg", &words));
        run([ops::packed_conv::pack_activations(gpu, "act", &xt, &ones, &zero, &ap, &an).unwrap()]);
        let (scale, shift) = (values(c.cout, 400), values(c.cout, 401));
        let (st, sht) = (upload("scale", &[c.cout], &scale), upload("shift", &[c.cout], &shift));
        let res_c = c.cout.saturating_sub(2).max(1) - (c.cout.saturating_sub(2).max(1) + c.cout) % 2;
        let (rh, rw) = (c.oh() * c.stride, c.ow() * c.stride);
        let res = values(c.n * res_c * rh * rw, 500);
        let rt = upload("res", &[c.n, res_c, rh, rw], &res);
        let ohw = c.oh() * c.ow();
        let epilogue = |conv: Vec<f64>, relu: bool, residual: bool| -> Vec<f64> {
            conv.iter()
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
                .collect()
        };
        let per_channel = (values(c.cout, 600).iter().map(|v| 0.75 + 0.2 * v).collect(), values(c.cout, 601));
        let per_channel: (Vec<f64>, Vec<f64>) =
            (per_channel.0, per_channel.1.iter().map(|v| 1.0 + 0.3 * v).collect());
        for (wp, wn) in [(vec![0.75], vec![1.25]), per_channel] {
            let w = ternary_weights(&codes, &wp, &wn);
            let (wpt, wnt) = (upload("wp", &[wp.len()], &wp), upload("wn", &[wn.len()], &wn));
            let wt = upload("w", &g.weight_shape(), &w);
            for (relu, residual) in [(false, false), (true, true)] {
                let e =
                    Epilogue { scale: &st, shift: &sht, relu, residual: residual.then_some((&rt, c.stride)) };
                let ternary = PackedWeights::Ternary { pos: &post, neg: &negt, wp: &wpt, wn: &wnt };
                let want_x = epilogue(conv2d(c, &x, &w), relu, residual);
                let want_act = epilogue(conv2d(c, &act, &w), relu, residual);
                for f in FAMILIES {
                    let gpu = on(f);
                    let what =
                        format!("{} {c:?} scales {} relu {relu} residual {residual}", f.name(), wp.len());
                    let y = zeros("y", &g.output_shape());
                    for (path, weights) in
                        [("ternary", &ternary), ("dense", &PackedWeights::Dense { weight: &wt })]
                    {
                        if path == "dense" && wp.len() > 1 {
                            continue;
                        }
                        run([ops::packed_conv::forward(gpu, "packed", &g, &xt, weights, &e, &y).unwrap()]);
                        assert_close(&format!("packed {path} {what}"), &download(&y), &want_x, TOL);
                    }
                    let d = ops::packed_conv::forward_bitplanes(
                        gpu,
                        "packed",
                        &g,
                        &xt,
                        (&ap, &an),
                        &ternary,
                        &e,
                        &y,
                    );
                    run([d.unwrap()]);
                    assert_close(&format!("packed bitplane {what}"), &download(&y), &want_act, TOL);
                }
            }
        }
    }
}

/// packed_linear (ternary and dense, per-layer and per-output scales) in both families.
#[test]
fn packed_linear_matches_reference_in_both_families() {
    use ops::packed_conv::PackedWeights;
    let gpu = gpu();
    for (s, &(n, fin, fout)) in [(3, 20, 7), (67, 33, 3), (5, 70, 66)].iter().enumerate() {
        let x = values(n * fin, 700 + s as u64);
        let codes = ternary_codes(fout * fin, 710 + s as u64);
        let (pos, neg) = tern::quant::pack::pack(&codes);
        let post = gpu.tensor_u32("pos", &[pos.len()], &pos).unwrap();
        let negt = gpu.tensor_u32("neg", &[neg.len()], &neg).unwrap();
        let (scale, shift) = (values(fout, 720), values(fout, 721));
        let (xt, st, sht) =
            (upload("x", &[n, fin], &x), upload("scale", &[fout], &scale), upload("shift", &[fout], &shift));
        let wps: Vec<f64> = values(fout, 730).iter().map(|v| 0.8 + 0.2 * v).collect();
        for (wp, wn) in [(vec![0.75], vec![1.25]), (wps.clone(), wps.iter().map(|v| 2.0 - v).collect())] {
            let w = ternary_weights(&codes, &wp, &wn);
            let want: Vec<f64> = linear(&x, &w, &vec![0.0; fout], n, fin, fout)
                .iter()
                .enumerate()
                .map(|(i, v)| v * scale[i % fout] + shift[i % fout])
                .collect();
            let (wpt, wnt, wt) = (
                upload("wp", &[wp.len()], &wp),
                upload("wn", &[wn.len()], &wn),
                upload("w", &[fout, fin], &w),
            );
            let ternary = PackedWeights::Ternary { pos: &post, neg: &negt, wp: &wpt, wn: &wnt };
            for f in FAMILIES {
                for weights in [&ternary, &PackedWeights::Dense { weight: &wt }] {
                    let y = zeros("y", &[n, fout]);
                    run([ops::packed_linear::forward(on(f), "fc", &xt, weights, &st, &sht, &y).unwrap()]);
                    assert_close(
                        &format!("{} packed linear {n}x{fin}→{fout}", f.name()),
                        &download(&y),
                        &want,
                        TOL,
                    );
                }
            }
        }
    }
}

#[test]
fn linear_matches_reference_in_both_families() {
    for (s, &(n, fin, fout)) in [(3, 20, 7), (70, 67, 10), (5, 3, 66), (1, 1, 1)].iter().enumerate() {
        let (x, w, b, dy) = (
            values(n * fin, 800 + s as u64),
            values(fout * fin, 810 + s as u64),
            values(fout, 820 + s as u64),
            values(n * fout, 830 + s as u64),
        );
        let (xt, wt, bt, dyt) = (
            upload("x", &[n, fin], &x),
            upload("w", &[fout, fin], &w),
            upload("b", &[fout], &b),
            upload("dy", &[n, fout], &dy),
        );
        let want_y = linear(&x, &w, &b, n, fin, fout);
        let (dx, dw, db) = linear_backward(&x, &w, &dy, n, fin, fout);
        for f in FAMILIES {
            let gpu = on(f);
            let (y, dxt, dwt, dbt) = (
                zeros("y", &[n, fout]),
                zeros("dx", &[n, fin]),
                zeros("dw", &[fout, fin]),
                zeros("db", &[fout]),
            );
            run([
                ops::linear::forward(gpu, "fc", &xt, &wt, &bt, &y).unwrap(),
                ops::linear::grad_input(gpu, "fc", &dyt, &wt, &dxt).unwrap(),
                ops::linear::grad_weight(gpu, "fc", &xt, &dyt, &dwt, &dbt).unwrap(),
            ]);
            let what = format!("{} linear {n}x{fin}→{fout}", f.name());
            assert_close(&format!("{what} y"), &download(&y), &want_y, TOL);
            assert_close(&format!("{what} dx"), &download(&dxt), &dx, TOL);
            assert_close(&format!("{what} dw"), &download(&dwt), &dw, TOL);
            assert_close(&format!("{what} db"), &download(&dbt), &db, TOL);
        }
    }
}

/// Each family gives the same bits from run to run: one program replayed, and the same ops
/// built again (conv2d passes with a split-K weight gradient, packed convolution, linear).
#[test]
fn both_families_are_bit_reproducible_run_to_run() {
    use ops::packed_conv::{Epilogue, PackedWeights};
    let c = Conv { n: 4, cin: 17, h: 12, w: 10, cout: 33, k: 3, stride: 2, pad: 1 };
    let g = geom(&c);
    let x = upload("x", &g.input_shape(), &values(c.n * c.cin * c.h * c.w, 900));
    let w = upload("w", &g.weight_shape(), &values(c.cout * c.cin * 9, 901));
    let dy = upload("dy", &g.output_shape(), &values(c.n * c.cout * c.oh() * c.ow(), 902));
    let codes = ternary_codes(c.cout * c.cin * 9, 903);
    let (pos, neg) = tern::quant::pack::pack(&tern::packed::tap_major(&codes, &g.weight_shape()));
    let (post, negt) = (
        gpu().tensor_u32("pos", &[pos.len()], &pos).unwrap(),
        gpu().tensor_u32("neg", &[neg.len()], &neg).unwrap(),
    );
    let (wp, wn) = (upload("wp", &[1], &[0.7]), upload("wn", &[1], &[1.1]));
    let (scale, shift) =
        (upload("scale", &[c.cout], &values(c.cout, 904)), upload("shift", &[c.cout], &values(c.cout, 905)));
    let (fx, fw, fb) = (
        upload("fx", &[9, 77], &values(9 * 77, 906)),
        upload("fw", &[13, 77], &values(13 * 77, 907)),
        upload("fb", &[13], &values(13, 908)),
    );
    let outputs = [
        zeros("y", &g.output_shape()),
        zeros("dx", &g.input_shape()),
        zeros("dw", &g.weight_shape()),
        zeros("packed", &g.output_shape()),
        zeros("fy", &[9, 13]),
    ];
    for f in FAMILIES {
        let gpu = on(f);
        let build = || {
            let [y, dx, dw, packed, fy] = &outputs;
            let mut p = ops::conv2d::grad_weight(gpu, "conv", &g, &x, &dy, dw).unwrap();
            assert!(f == Family::Blocked || p.dispatches.len() == 2, "the tiled weight gradient splits");
            p.push(ops::conv2d::forward(gpu, "conv", &g, &x, &w, y).unwrap());
            p.push(ops::conv2d::grad_input(gpu, "conv", &g, &dy, &w, dx).unwrap());
            let e = Epilogue { scale: &scale, shift: &shift, relu: true, residual: None };
            let t = PackedWeights::Ternary { pos: &post, neg: &negt, wp: &wp, wn: &wn };
            p.push(ops::packed_conv::forward(gpu, "packed", &g, &x, &t, &e, packed).unwrap());
            p.push(ops::linear::forward(gpu, "fc", &fx, &fw, &fb, fy).unwrap());
            p
        };
        let bits = || -> Vec<Vec<u32>> {
            outputs.iter().map(|t| gpu.read(t).unwrap().iter().map(|v| v.to_bits()).collect()).collect()
        };
        let program = build();
        run_programs(&[&program]);
        let first = bits();
        for t in &outputs {
            gpu.write(t, &vec![f32::NAN; t.numel()]).unwrap();
        }
        run_programs(&[&program]);
        assert_eq!(bits(), first, "{} family: a replayed program changed its results", f.name());
        run_programs(&[&build()]);
        assert_eq!(bits(), first, "{} family: rebuilt dispatches changed the results", f.name());
    }
}

/// The PyTorch goldens of the ops the families implement differently (conv2d, linear, whole
/// ResNet basic blocks with FP and TTQ weights) through the tiled family.
#[test]
fn tiled_family_matches_pytorch_goldens() {
    let (gpu, g) = (on(Family::Tiled), Golden::load("ops.safetensors"));
    for i in 0.. {
        let case = format!("conv{i}");
        if !g.has(&format!("{case}.x")) {
            assert!(i >= 6, "expected six conv cases");
            break;
        }
        let v = g.usizes(&format!("{case}.geom"));
        let geom = Conv2dGeom {
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
        let [y, dx, dw] = conv_passes(gpu, &geom, &t("x"), &t("w"), &t("dy"));
        for (name, got) in [("y", y), ("dx", dx), ("dw", dw)] {
            assert_close(
                &format!("tiled {case}.{name}"),
                &to_f64(&got),
                &g.values(&format!("{case}.{name}")),
                TOL,
            );
        }
    }
    let t = |n: &str| g.upload(n);
    let (x, w, b, dy) = (t("linear.x"), t("linear.w"), t("linear.b"), t("linear.dy"));
    let (y, dx, dw, db) =
        (zeros("y", dy.shape()), zeros("dx", x.shape()), zeros("dw", w.shape()), zeros("db", b.shape()));
    run([
        ops::linear::forward(gpu, "linear", &x, &w, &b, &y).unwrap(),
        ops::linear::grad_input(gpu, "linear", &dy, &w, &dx).unwrap(),
        ops::linear::grad_weight(gpu, "linear", &x, &dy, &dw, &db).unwrap(),
    ]);
    for (name, t) in [("y", &y), ("dx", &dx), ("dw", &dw), ("db", &db)] {
        assert_close(
            &format!("tiled linear.{name}"),
            &download(t),
            &g.values(&format!("linear.{name}")),
            TOL,
        );
    }
    for case in ["block_fp", "block_ttq", "block_down_ttq"] {
        check_block(gpu, &g, case);
    }
}

/// A ResNet basic block built by the models' code on `gpu`, forward and backward with the
/// golden's values and dy, against PyTorch (as tests/golden.rs does for the default family).
fn check_block(gpu: &Gpu, g: &Golden, case: &str) {
    use tern::gpu::Var;
    use tern::nn::layers::{BasicBlock, Layer};
    use tern::nn::{Builder, Mode};
    use tern::params::{HostTensor, ParamStore, Role, Slot};
    use tern::quant::{QuantKind, Quantizer};
    let v = g.usizes(&format!("{case}.geom"));
    let kind = if v[3] == 1 { QuantKind::Ttq } else { QuantKind::Fp };
    let quant: std::sync::Arc<dyn Quantizer> = kind.quantizer(0.05).into();
    let layer = Layer::Block(BasicBlock::new(case, v[0], v[1], v[2], &quant));
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
    assert_close(&format!("tiled {case}.y"), &download(&y.value), &g.values(&format!("{case}.y")), TOL);
    let dx = download(x.grad.as_ref().unwrap());
    assert_close(&format!("tiled {case}.dx"), &dx, &g.values(&format!("{case}.dx")), TOL);
    for s in store.specs.iter() {
        let p = store.get(&s.name).unwrap();
        let (t, golden_name) = match &p.grad {
            Some(grad) => (grad.clone(), format!("{}.grad", s.name)),
            None => (p.value.clone(), s.name.clone()),
        };
        assert_close(&format!("tiled {}", s.name), &download(&t), &g.values(&golden_name), TOL);
    }
}

/// Under the tiled family the packed kernels (float activations and bit-planes) give the
/// training graph's eval-mode logits, and both equal the blocked family's.
#[test]
fn packed_logits_match_the_training_graph_under_the_tiled_family() {
    use tern::checkpoint::Meta;
    use tern::nn::{Activation, Arch, Mode, Model, ModelSpec};
    use tern::packed::PackedModel;
    use tern::quant::QuantKind;
    let gpu = on(Family::Tiled);
    let cases = [
        (Arch::SmallCnn, QuantKind::Ttq, Activation::Relu, 1, 28),
        (Arch::Resnet20, QuantKind::Ttq, Activation::Relu, 3, 16),
        (Arch::Resnet20, QuantKind::Sttn, Activation::Ternary, 3, 16),
    ];
    for (i, &(arch, quant, activation, channels, size)) in cases.iter().enumerate() {
        let spec = ModelSpec {
            arch,
            in_channels: channels,
            height: size,
            width: size,
            classes: 10,
            quant,
            threshold: 0.05,
            quantize_ends: false,
            activation,
        };
        let model = Model::new(gpu, spec.clone(), i as u64).unwrap();
        // Running statistics as after training: momentum updates from random batches.
        let g = model.graph(gpu, 4, Mode::Train).unwrap();
        gpu.write(&g.input, &to_f32(&values(g.input.numel(), 50 + i as u64))).unwrap();
        for _ in 0..10 {
            gpu.run(&[&g.forward]).unwrap();
        }
        let batch = 3;
        let images = to_f32(&values(batch * channels * size * size, 77));
        let meta = Meta { spec, mean: vec![0.0; channels], std: vec![1.0; channels], classes: vec![] };
        let packed = PackedModel::from_model(gpu, &model, &meta).unwrap();
        let what = format!("{} {} {channels}x{size}x{size}", arch.name(), quant.name());
        let mut logits = Vec::new();
        for f in FAMILIES {
            let gpu = on(f);
            let graph = tern::infer::eval_graph(gpu, &model, batch).unwrap();
            let want = to_f64(&tern::infer::logits(gpu, &graph, &images, batch).unwrap());
            for bitplanes in [false, true] {
                let pg = packed.graph_with(gpu, batch, bitplanes).unwrap();
                let got = tern::infer::Runner::Packed(Box::new(pg)).logits(gpu, &images, batch).unwrap();
                let path = format!("{} packed (bit-planes {bitplanes}) {what}", f.name());
                assert_close_to_scale(&path, &to_f64(&got), &want, 1e-4);
            }
            logits.push(want);
        }
        assert_close_to_scale(&format!("tiled vs blocked logits {what}"), &logits[1], &logits[0], 1e-4);
    }
}

fn tern(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tern"));
    cmd.args(args).env_remove("TERN_KERNELS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `--kernels` and `TERN_KERNELS` pick the family `tern devices` reports; auto picks blocked on
/// CPU adapters (llvmpipe) and tiled elsewhere; a bad TERN_KERNELS is a one-line error.
#[test]
fn kernels_flag_and_environment_select_the_family() {
    let (code, auto, err) = tern(&["devices"], &[]);
    assert_eq!(code, 0, "{err}");
    for line in auto.lines() {
        let cpu = line.contains("Cpu,");
        let want = if cpu { "kernels: blocked" } else { "kernels: tiled" };
        assert!(line.ends_with(want), "auto: {line}");
    }
    let (_, tiled, _) = tern(&["--kernels", "tiled", "devices"], &[]);
    assert!(!tiled.is_empty() && tiled.lines().all(|l| l.ends_with("kernels: tiled")), "{tiled}");
    let (_, blocked, _) = tern(&["devices"], &[("TERN_KERNELS", "blocked")]);
    assert!(blocked.lines().all(|l| l.ends_with("kernels: blocked")), "{blocked}");
    let (_, flag_wins, _) = tern(&["devices", "--kernels", "tiled"], &[("TERN_KERNELS", "blocked")]);
    assert!(flag_wins.lines().all(|l| l.ends_with("kernels: tiled")), "{flag_wins}");
    let (code, _, err) = tern(&["devices"], &[("TERN_KERNELS", "fast")]);
    assert_eq!(code, 1);
    assert!(err.contains("TERN_KERNELS: 'fast' is not a kernel family (auto, blocked or tiled)"), "{err}");
    assert_eq!(on(Family::Tiled).family(), Family::Tiled);
}
