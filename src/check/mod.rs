//! The CPU reference of every op and the cases that hold each GPU kernel against it and against
//! PyTorch's goldens; run by tests/ops and by `tern check`.
//!
//! One module per shader file, same name (`conv2d` ↔ shaders/conv2d.wgsl ↔ src/ops/conv2d.rs ↔
//! tests/ops/conv2d.rs), plus `bitplane` (the popcount path of packed_conv.wgsl) and `block` (a
//! whole ResNet basic block and STTN unit built by the models' code). Each holds:
//! - the op's f64 reference, written for clarity, not speed, in the shaders' layouts (NCHW
//!   activations, [cout, cin, kh, kw] weights, [out, in] linear weights);
//! - `AWKWARD`: shapes that do not divide the workgroup size or the 4×4 register block;
//! - `cases(gpu, shapes)`: every entry point of the op on the GPU against the reference;
//! - `golden(gpu)`: the same kernels against PyTorch's outputs (tests/golden/make_golden.py).
//!
//! Tolerances are relative ([`max_rel_err`]): 1e-4 where the GPU sums in f32, 0 where the kernel
//! only moves or selects values.

mod golden;
mod run;

pub mod activation;
pub mod batchnorm;
pub mod bitplane;
pub mod block;
pub mod conv2d;
pub mod conv_bn;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod packed_conv;
pub mod packed_linear;
pub mod pool;
pub mod reduce;
pub mod shortcut;
pub mod sttn;
pub mod ternary_masks;
pub mod ttn;
pub mod ttq;
pub mod twn;

pub use golden::Golden;
pub use run::{Cases, download, run, upload, zeros};

/// The tolerance of every kernel that accumulates in f32.
pub const TOL: f64 = 1e-4;

/// One output tensor of one entry point on one shape, compared with its reference.
#[derive(Clone, Debug)]
pub struct Case {
    /// Op and output: "conv2d/grad_input".
    pub op: String,
    /// The kernel family and the path within it that computed the output: "blocked lanes",
    /// "blocked register-block", "tiled subgroup" (reductions), "blocked register-block masks".
    pub kernels: String,
    /// The case's number in the op's list of shapes or golden cases.
    pub index: usize,
    /// The shape (or golden case) it ran on.
    pub shape: String,
    /// The compared tensor's name and dimensions.
    pub tensor: String,
    pub dims: Vec<usize>,
    pub max_rel_err: f64,
    pub tol: f64,
    /// Where the largest error is (flat index), with the two values there.
    pub at: usize,
    pub got: f64,
    pub want: f64,
}

impl Case {
    pub fn passed(&self) -> bool {
        self.max_rel_err <= self.tol
    }

    /// `at` as an index per dimension of the tensor: "[1, 4, 2, 7]".
    pub fn position(&self) -> String {
        let mut rest = self.at;
        let mut index: Vec<usize> = self
            .dims
            .iter()
            .rev()
            .map(|&d| {
                let i = rest % d.max(1);
                rest /= d.max(1);
                i
            })
            .collect();
        index.reverse();
        if index.is_empty() || rest > 0 {
            return format!("[{}]", self.at);
        }
        format!("{index:?}")
    }
}

/// The table `tern check` prints: one row per case.
pub fn table(cases: &[Case]) -> String {
    let mut s = format!(
        "{:<40} {:<28} {:>4} {:<36} {:>11} {:>6}  result\n",
        "op/output", "kernels", "case", "shape", "max rel err", "tol"
    );
    for c in cases {
        let result = if c.passed() { "pass" } else { "FAIL" };
        s += &format!(
            "{:<40} {:<28} {:>4} {:<36} {:>11.3e} {:>6.0e}  {result}\n",
            c.op, c.kernels, c.index, c.shape, c.max_rel_err, c.tol
        );
    }
    s
}

/// One line: how many cases passed on which adapter, or which failed.
pub fn verdict(cases: &[Case], adapter: &str) -> String {
    let failed: Vec<&Case> = cases.iter().filter(|c| !c.passed()).collect();
    match failed.first() {
        None => format!("PASS: all {} cases within tolerance on {adapter}", cases.len()),
        Some(first) => format!(
            "FAIL: {} of {} cases out of tolerance on {adapter} (first: {first}); do not trust training on it",
            failed.len(),
            cases.len()
        ),
    }
}

/// "conv2d/grad_input blocked lanes case 3 ([2, 11, 8, 8] → 19, 3×3 /1 pad 1): tensor dx differs
/// at [1, 4, 2, 7]: got 0.5, want 0.25 (relative error 5.0e-1, tolerance 1e-4)".
impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kernels = if self.kernels.is_empty() { String::new() } else { format!(" {}", self.kernels) };
        let verdict = if self.passed() { "matches" } else { "differs" };
        write!(
            f,
            "{}{kernels} case {} ({}): tensor {} {verdict} at {}: got {}, want {} (relative error {:.3e}, tolerance {:.0e})",
            self.op,
            self.index,
            self.shape,
            self.tensor,
            self.position(),
            self.got,
            self.want,
            self.max_rel_err,
            self.tol
        )
    }
}

/// `got` against `want` as a case, by [`max_rel_err`]; a length mismatch is an infinite error.
pub fn compare(op: &str, shape: &str, got: &[f64], want: &[f64], tol: f64) -> Case {
    let floor = want.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-3 + 1e-12;
    compare_to(op, shape, got, want, tol, |i| want[i].abs() + floor)
}

/// `got` against `want` for sums: each error relative to `bound`, the sum of the magnitudes of
/// that output's terms (the reference run on absolute values), which scales f32 rounding in any
/// summation order, where the result itself may cancel to near zero.
pub fn compare_bounded(op: &str, shape: &str, got: &[f64], want: &[f64], bound: &[f64], tol: f64) -> Case {
    let floor = bound.iter().fold(0.0f64, |m, v| m.max(*v)) * 1e-6 + 1e-30;
    compare_to(op, shape, got, want, tol, |i| bound.get(i).map_or(floor, |b| b + floor))
}

fn compare_to(
    op: &str,
    shape: &str,
    got: &[f64],
    want: &[f64],
    tol: f64,
    scale: impl Fn(usize) -> f64,
) -> Case {
    let (max_rel_err, at) = if got.len() == want.len() {
        max_err(got, want, scale)
    } else {
        (f64::INFINITY, got.len().min(want.len()))
    };
    let dims = vec![want.len()];
    let value = |v: &[f64]| v.get(at).copied().unwrap_or(f64::NAN);
    let (got, want) = (value(got), value(want));
    Case {
        op: op.into(),
        kernels: String::new(),
        index: 0,
        shape: shape.into(),
        tensor: op.into(),
        dims,
        max_rel_err,
        tol,
        at,
        got,
        want,
    }
}

/// Largest |a − b| / (|b| + scale), with scale = max|b| · 1e-3 so near-zero entries are judged
/// against the tensor's magnitude. Returns (error, index).
pub fn max_rel_err(a: &[f64], b: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let floor = b.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-3 + 1e-12;
    max_err(a, b, |i| b[i].abs() + floor)
}

/// Largest |a − b| / scale(i); a NaN or infinity where the reference is finite is an infinite
/// error. Returns (error, index).
fn max_err(a: &[f64], b: &[f64], scale: impl Fn(usize) -> f64) -> (f64, usize) {
    let err = |i: usize, x: f64, y: f64| {
        let e = (x - y).abs() / scale(i);
        if e.is_nan() || (x.is_infinite() && y.is_finite()) { f64::INFINITY } else { e }
    };
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (&x, &y))| (err(i, x, y), i))
        .fold((0.0, 0), |m, e| if e.0 > m.0 { e } else { m })
}

/// |v| elementwise: a reference run on absolute values gives each output's error bound.
pub fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
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

/// `values(len, seed)`·scale + shift, rounded to f32 as the GPU holds them.
pub fn affine(len: usize, seed: u64, scale: f64, shift: f64) -> Vec<f64> {
    values(len, seed).iter().map(|v| (v * scale + shift) as f32 as f64).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Panics, naming `what`, unless `got` is within `tol` of `want` by [`max_rel_err`] (for tests).
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    let case = compare(what, "", got, want, tol);
    assert!(case.passed(), "{case}");
}

/// |got − want| ≤ tol · max|want| everywhere: for outputs such as logits whose entries near zero
/// carry the rounding of the whole network (for tests).
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

/// What `tern check` runs: every op's cases on its awkward shapes, on the models' shapes and on
/// reductions over more than 100k values, then every PyTorch golden.
pub fn all(gpu: &crate::gpu::Gpu) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    cases.extend(conv2d::cases(gpu, &[conv2d::AWKWARD, conv2d::MODEL].concat())?);
    cases.extend(activation::cases(gpu, activation::AWKWARD)?);
    cases.extend(pool::cases(gpu, &[pool::AWKWARD, pool::MODEL].concat())?);
    cases.extend(linear::cases(gpu, &[linear::AWKWARD, linear::MODEL].concat())?);
    cases.extend(optim::cases(gpu, optim::AWKWARD)?);
    cases.extend(shortcut::cases(gpu, &[shortcut::AWKWARD, shortcut::MODEL].concat())?);
    cases.extend(packed_conv::cases(gpu, &[packed_conv::AWKWARD, packed_conv::MODEL].concat())?);
    cases.extend(packed_linear::cases(gpu, &[packed_linear::AWKWARD, packed_linear::MODEL].concat())?);
    cases.extend(bitplane::cases(gpu, &[bitplane::AWKWARD, bitplane::MODEL].concat())?);
    cases.extend(ternary_masks::cases(gpu, &[ternary_masks::AWKWARD, conv2d::MODEL].concat())?);
    cases.extend(conv_bn::relu_cases(gpu, &[conv2d::AWKWARD, conv_bn::SHAPES].concat())?);
    for golden in
        [conv2d::golden, activation::golden, pool::golden, linear::golden, optim::golden, block::golden]
    {
        cases.extend(golden(gpu)?);
    }
    cases.extend(reductions(gpu)?);
    Ok(cases)
}

/// The cases of the ops whose shaders reduce over workgroups (shaders/group.wgsl): what the
/// workgroup-memory fallback of an adapter with subgroups is checked on.
pub fn reductions(gpu: &crate::gpu::Gpu) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    cases.extend(batchnorm::cases(gpu, &[batchnorm::AWKWARD, batchnorm::MODEL, batchnorm::LARGE].concat())?);
    cases.extend(batchnorm::fused_cases(gpu, batchnorm::UNITS)?);
    cases.extend(conv_bn::stats_cases(gpu, conv_bn::SHAPES)?);
    cases.extend(loss::cases(gpu, &[loss::AWKWARD, loss::MODEL, loss::LARGE].concat())?);
    cases.extend(reduce::cases(gpu, &[reduce::AWKWARD, reduce::LARGE].concat())?);
    cases.extend(ttq::cases(gpu, &[ttq::AWKWARD, ttq::MODEL, ttq::LARGE].concat())?);
    cases.extend(twn::cases(gpu, &[twn::AWKWARD, twn::MODEL, twn::LARGE].concat())?);
    cases.extend(ttn::cases(gpu, &[ttn::AWKWARD, ttn::MODEL, ttn::LARGE].concat())?);
    cases.extend(sttn::cases(gpu, &[sttn::AWKWARD, sttn::MODEL, sttn::LARGE].concat())?);
    for golden in [batchnorm::golden, loss::golden, ttq::golden, ttn::golden, sttn::golden] {
        cases.extend(golden(gpu)?);
    }
    Ok(cases)
}
