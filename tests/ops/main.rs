//! Every op, one module each, named after its shader (tests/ops/conv2d.rs ↔ src/check/conv2d.rs
//! ↔ src/ops/conv2d.rs ↔ shaders/conv2d.wgsl). Each module holds:
//! - `matches_reference`: every entry point against the f64 reference (`tern::check::<op>`) on
//!   shapes that do not divide the workgroup or register block;
//! - `matches_pytorch`: the same kernels against PyTorch's goldens, where the op has them;
//! - its finite-difference gradient check: the GPU backward against central differences of the
//!   reference *forward* (the reference backward is not used);
//! - its op-specific tests (errors that name the tensor at fault, …).

/// The checks every op module starts with: `matches_reference` (`tern::check::<op>::cases` on
/// the op's awkward shapes) and, for ops with PyTorch goldens, `matches_pytorch`
/// (`tern::check::<op>::golden`). Each asserts that every case passed.
macro_rules! op_checks {
    ($op:ident) => {
        #[test]
        fn matches_reference() {
            crate::assert_passed(tern::check::$op::cases(crate::gpu(), tern::check::$op::AWKWARD));
        }
    };
    ($op:ident, golden) => {
        op_checks!($op);

        #[test]
        fn matches_pytorch() {
            crate::assert_passed(tern::check::$op::golden(crate::gpu()));
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
mod ttn;
mod ttq;
mod twn;

use std::sync::OnceLock;
use tern::check::Case;
use tern::gpu::{Dispatch, Gpu, GpuOptions, Tensor};

/// The adapter the tests run on. No adapter is a failure, never a skip: CI installs lavapipe.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("{e}")))
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
    tern::check::upload(gpu(), name, shape, data).unwrap()
}

pub fn zeros(name: &str, shape: &[usize]) -> Tensor {
    tern::check::zeros(gpu(), name, shape).unwrap()
}

pub fn download(t: &Tensor) -> Vec<f64> {
    tern::check::download(gpu(), t).unwrap()
}

pub fn run(dispatches: impl IntoIterator<Item = Dispatch>) {
    tern::check::run(gpu(), dispatches).unwrap()
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
    assert!(tern::check::compare("op", "", &want, &want, 0.0).passed());
    for bad in [f64::NAN, f64::INFINITY] {
        let case = tern::check::compare("op", "", &[1.0, bad, 0.5], &want, 1e-4);
        assert!(!case.passed() && case.at == 1, "{case}");
    }
}
