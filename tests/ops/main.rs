//! Every op, one module each, named after its shader (tests/ops/conv2d.rs ↔ src/check/conv2d.rs
//! ↔ src/ops/conv2d.rs ↔ shaders/conv2d.wgsl). Each module holds:
//! - `matches_reference`: every entry point against the f64 reference (`tern::internals::check::<op>`) on
//!   shapes that do not divide the workgroup or register block;
//! - `matches_pytorch`: the same kernels against PyTorch's goldens, where the op has them;
//! - its finite-difference gradient check: the GPU backward against central differences of the
//!   reference *forward* (the reference backward is not used);
//! - its op-specific tests (errors that name the tensor at fault, …).

/// The checks every op module starts with, one test per kernel family so that a failure names
/// the family: `matches_reference_blocked` and `matches_reference_tiled`
/// (`tern::internals::check::<op>::cases` on the op's awkward shapes) and, for ops with PyTorch goldens
/// (`golden`), `matches_pytorch_blocked` and `matches_pytorch_tiled` (`tern::internals::check::<op>::golden`).
/// Ops whose shaders reduce over workgroups (`tree`) are checked once more in the tiled family
/// with the workgroup-memory fallback of the subgroup reductions (`*_tiled_tree`). Each case's
/// name says the path it took (lanes, register-block, tiled, masks, tree or subgroup reductions)
/// and each compared tensor is named in a failure.
macro_rules! op_checks {
    ($op:ident) => {
        op_checks!(@reference $op, matches_reference_blocked, blocked);
        op_checks!(@reference $op, matches_reference_tiled, tiled);
    };
    ($op:ident, golden) => {
        op_checks!($op);
        op_checks!(@golden $op, matches_pytorch_blocked, blocked);
        op_checks!(@golden $op, matches_pytorch_tiled, tiled);
    };
    ($op:ident, tree) => {
        op_checks!($op);
        op_checks!(@reference $op, matches_reference_tiled_tree, tiled_tree);
    };
    ($op:ident, golden, tree) => {
        op_checks!($op, golden);
        op_checks!(@reference $op, matches_reference_tiled_tree, tiled_tree);
        op_checks!(@golden $op, matches_pytorch_tiled_tree, tiled_tree);
    };
    (@reference $op:ident, $test:ident, $family:ident) => {
        #[test]
        fn $test() {
            crate::assert_passed(tern::internals::check::$op::cases(crate::$family(), tern::internals::check::$op::AWKWARD));
        }
    };
    (@golden $op:ident, $test:ident, $family:ident) => {
        #[test]
        fn $test() {
            crate::assert_passed(tern::internals::check::$op::golden(crate::$family()));
        }
    };
}

mod activation;
mod batchnorm;
mod bitplane;
mod block;
mod conv2d;
mod linear;
mod loss;
mod optim;
mod packed_conv;
mod packed_linear;
mod pool;
mod reduce;
mod shortcut;
mod sttn;
mod ternary_masks;
mod ttn;
mod ttq;
mod twn;

use std::sync::OnceLock;
use tern::internals::check::Case;
use tern::internals::gpu::{Dispatch, Family, Gpu, GpuOptions, Reductions, Tensor};

/// The adapter the tests run on, in the blocked family. No adapter is a failure, never a skip:
/// CI installs lavapipe.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        gpu.with_family(Family::Blocked)
    })
}

/// The test device in the blocked family, whatever `--kernels` or `TERN_KERNELS` say.
pub fn blocked() -> &'static Gpu {
    gpu()
}

/// The test device in the tiled family (its reductions by subgroup operations where the adapter
/// has them, as llvmpipe does).
pub fn tiled() -> &'static Gpu {
    static TILED: OnceLock<Gpu> = OnceLock::new();
    TILED.get_or_init(|| gpu().with_family(Family::Tiled))
}

/// The tiled family with the workgroup-memory fallback of its reductions, which adapters
/// without subgroups run.
pub fn tiled_tree() -> &'static Gpu {
    static TREE: OnceLock<Gpu> = OnceLock::new();
    TREE.get_or_init(|| tiled().with_reductions(Reductions::Tree))
}

/// The test device once per kernel family (blocked, tiled) and, where the tiled family reduces
/// with subgroup operations, once more with the fallback of its reductions: what the op-specific
/// tests check in each.
pub fn families() -> [&'static Gpu; 3] {
    [blocked(), tiled(), tiled_tree()]
}

/// Fails listing every failed case (and the error, if the cases could not run).
#[track_caller]
pub fn assert_passed(cases: anyhow::Result<Vec<Case>>) {
    let cases = cases.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!cases.is_empty(), "no cases ran");
    let failed: Vec<String> = cases.iter().filter(|c| !c.passed()).map(|c| c.to_string()).collect();
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n"));
}

pub fn upload(name: &str, shape: &[usize], data: &[f64]) -> Tensor {
    tern::internals::check::upload(gpu(), name, shape, data).unwrap()
}

pub fn zeros(name: &str, shape: &[usize]) -> Tensor {
    tern::internals::check::zeros(gpu(), name, shape).unwrap()
}

pub fn download(t: &Tensor) -> Vec<f64> {
    tern::internals::check::download(gpu(), t).unwrap()
}

pub fn run(dispatches: impl IntoIterator<Item = Dispatch>) {
    tern::internals::check::run(gpu(), dispatches).unwrap()
}

/// Central differences of `f` at up to 48 coordinates of `x`, against the GPU's `analytic`.
#[track_caller]
pub fn fd_check(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
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

/// L = Σ r ⊙ f(x): the loss whose gradient w.r.t. f(x) is r.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Distinct values away from 0, alternating in sign: max pooling and ReLU are differentiable
/// there.
pub fn distinct(len: usize) -> Vec<f64> {
    (0..len).map(|i| ((i * 37 % 101) as f64 / 50.0 - 1.01) * if i % 2 == 0 { 1.0 } else { -1.0 }).collect()
}

#[test]
fn tensor_over_adapter_limit_is_an_error_naming_it() {
    let gpu = gpu();
    let huge = gpu.max_binding_bytes() as usize / 4 + 1;
    let err = gpu.tensor("activations.huge", &[huge]).err().unwrap().to_string();
    assert!(err.contains("activations.huge") && err.contains("max_storage_buffer_binding_size"), "{err}");
}

#[test]
fn a_nan_or_infinity_fails_a_case() {
    let want = [1.0, -2.0, 0.5];
    assert!(tern::internals::check::compare("op", "", &want, &want, 0.0).passed());
    for bad in [f64::NAN, f64::INFINITY] {
        let case = tern::internals::check::compare("op", "", &[1.0, bad, 0.5], &want, 1e-4);
        assert!(!case.passed() && case.at == 1, "{case}");
    }
}

/// Each family gives the same bits from run to run: one program replayed, and the same ops
/// built again (conv2d passes with a split-K weight gradient, packed convolution, linear, and
/// the reductions of batch norm and TTQ, split over workgroups in the tiled family).
#[test]
fn both_families_are_bit_reproducible_run_to_run() {
    use tern::internals::check::{conv2d::geom, packed_conv::codes, values};
    use tern::internals::ops::packed_conv::{Epilogue, PackedWeights};
    let g = geom(4, 17, 12, 10, 33, 3, 2, 1);
    let x = upload("x", &g.input_shape(), &values(g.input_shape().iter().product(), 900));
    let w = upload("w", &g.weight_shape(), &values(g.weight_shape().iter().product(), 901));
    let dy = upload("dy", &g.output_shape(), &values(g.output_shape().iter().product(), 902));
    let codes = codes(g.weight_shape().iter().product(), 903);
    let (pos, neg) =
        tern::internals::quant::pack::pack(&tern::internals::packed::tap_major(&codes, &g.weight_shape()));
    let (pos, neg) = (
        gpu().tensor_u32("pos", &[pos.len()], &pos).unwrap(),
        gpu().tensor_u32("neg", &[neg.len()], &neg).unwrap(),
    );
    let (wp, wn) = (upload("wp", &[1], &[0.7]), upload("wn", &[1], &[1.1]));
    let (scale, shift) = (upload("scale", &[33], &values(33, 904)), upload("shift", &[33], &values(33, 905)));
    let (fx, fw, fb) = (
        upload("fx", &[9, 77], &values(9 * 77, 906)),
        upload("fw", &[13, 77], &values(13 * 77, 907)),
        upload("fb", &[13], &values(13, 908)),
    );
    let bn_shape = [6, 5, 7, 9];
    let bn_x = upload("bn_x", &bn_shape, &values(6 * 5 * 63, 909));
    let bn_dy = upload("bn_dy", &bn_shape, &values(6 * 5 * 63, 910));
    let (gamma, beta) = (upload("gamma", &[5], &values(5, 911)), upload("beta", &[5], &values(5, 912)));
    let bn = tern::internals::check::batchnorm::State::new(gpu(), 5).unwrap();
    let (ttq_w, ttq_g) =
        (upload("ttq_w", &[5000], &values(5000, 913)), upload("gq", &[5000], &values(5000, 914)));
    let outputs = [
        zeros("y", &g.output_shape()),
        zeros("dx", &g.input_shape()),
        zeros("dw", &g.weight_shape()),
        zeros("packed", &g.output_shape()),
        zeros("fy", &[9, 13]),
        zeros("bn_y", &bn_shape),
        zeros("bn_dx", &bn_shape),
        zeros("dgamma", &[5]),
        zeros("dbeta", &[5]),
        zeros("maxabs", &[1]),
        zeros("ttq_wq", &[5000]),
        zeros("ttq_dw", &[5000]),
        zeros("dwp", &[1]),
        zeros("dwn", &[1]),
    ];
    for gpu in families() {
        let build = || {
            let [y, dx, dw, packed, fy, bn_y, bn_dx, dgamma, dbeta, m, wq, ttq_dw, dwp, dwn] = &outputs;
            let mut p = tern::internals::ops::conv2d::grad_weight(gpu, "conv", &g, &x, &dy, dw).unwrap();
            p.push(tern::internals::ops::conv2d::forward(gpu, "conv", &g, &x, &w, y).unwrap());
            p.push(tern::internals::ops::conv2d::grad_input(gpu, "conv", &g, &dy, &w, dx).unwrap());
            let e = Epilogue { scale: &scale, shift: &shift, relu: true, residual: None, accumulate: false };
            let t = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &wp, wn: &wn };
            p.push(
                tern::internals::ops::packed_conv::forward(gpu, "packed", &g, &x, &t, &e, packed).unwrap(),
            );
            p.push(tern::internals::ops::linear::forward(gpu, "fc", &fx, &fw, &fb, fy).unwrap());
            let t = bn.with(&gamma, &beta);
            p.extend_from(
                tern::internals::ops::batchnorm::forward_train(gpu, "bn", &bn_x, bn_y, &t).unwrap(),
            );
            p.extend_from(
                tern::internals::ops::batchnorm::backward(gpu, "bn", &bn_x, &bn_dy, bn_dx, &t, dgamma, dbeta)
                    .unwrap(),
            );
            p.extend_from(tern::internals::ops::reduce::max_abs(gpu, "ttq", &ttq_w, m).unwrap());
            p.push(tern::internals::quant::ttq::quantize(gpu, "ttq", 0.05, &ttq_w, m, &wp, &wn, wq).unwrap());
            let b = tern::internals::quant::ttq::backward(
                gpu, "ttq", 0.05, &ttq_w, m, &wp, &wn, &ttq_g, ttq_dw, dwp, dwn,
            );
            p.extend_from(b.unwrap());
            p
        };
        let bits = || -> Vec<Vec<u32>> {
            outputs.iter().map(|t| gpu.read(t).unwrap().iter().map(|v| v.to_bits()).collect()).collect()
        };
        let family = format!("{} ({})", gpu.family().name(), gpu.reductions().name());
        let program = build();
        gpu.run(&[&program]).unwrap();
        let first = bits();
        for t in &outputs {
            gpu.write(t, &vec![f32::NAN; t.numel()]).unwrap();
        }
        gpu.run(&[&program]).unwrap();
        assert_eq!(bits(), first, "{family} family: a replayed program changed its results");
        gpu.run(&[&build()]).unwrap();
        assert_eq!(bits(), first, "{family} family: rebuilt dispatches changed the results");
    }
}
