//! The GPU side of a check: f64 tensors in and out, and `Cases`, which runs an op's kernels and
//! collects one `Case` per compared output.

use super::{Case, Golden, compare};
use crate::gpu::{DType, Dispatch, Gpu, Program, Tensor};
use anyhow::Result;

/// An f32 tensor holding `data` (rounded to f32).
pub fn upload(gpu: &Gpu, name: &str, shape: &[usize], data: &[f64]) -> Result<Tensor> {
    Ok(gpu.tensor_from(name, shape, &super::to_f32(data))?)
}

pub fn zeros(gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
    Ok(gpu.tensor(name, shape)?)
}

/// A tensor's values as f64, f32 or u32 alike.
pub fn download(gpu: &Gpu, t: &Tensor) -> Result<Vec<f64>> {
    Ok(match t.dtype() {
        DType::F32 => super::to_f64(&gpu.read(t)?),
        DType::U32 => gpu.read_u32(t)?.iter().map(|v| *v as f64).collect(),
    })
}

/// Record the dispatches in one submission and wait.
pub fn run(gpu: &Gpu, dispatches: impl IntoIterator<Item = Dispatch>) -> Result<()> {
    Ok(gpu.run(&[&Program { dispatches: dispatches.into_iter().collect() }])?)
}

/// One op's cases as they run: `each` and `goldens` run a closure per shape or golden case,
/// whose `expect` calls read outputs back and compare them with the reference or the golden.
pub struct Cases<'a> {
    pub gpu: &'a Gpu,
    op: &'static str,
    /// The running case: its number, shape, and the kernel path the op says it takes.
    index: usize,
    shape: String,
    path: String,
    list: Vec<Case>,
    golden: Golden,
}

impl<'a> Cases<'a> {
    fn new(gpu: &'a Gpu, op: &'static str) -> Cases<'a> {
        Cases {
            gpu,
            op,
            index: 0,
            shape: String::new(),
            path: String::new(),
            list: Vec::new(),
            golden: Golden::ops(),
        }
    }

    /// Names the path within the kernel family that the running case takes ("lanes",
    /// "register-block", "tiled", "subgroup"), for its name: set by the op at the start of each
    /// case that has one.
    pub fn path(&mut self, path: impl Into<String>) {
        self.path = path.into();
    }

    /// The path of a GEMM-like op with one kernel per family: "register-block" (4×4 blocks per
    /// invocation) or "tiled" (workgroup-memory tiles).
    pub fn family_path(&mut self) {
        self.path(match self.gpu.family() {
            crate::gpu::Family::Blocked => "register-block",
            crate::gpu::Family::Tiled => "tiled",
        });
    }

    /// The path of an op that reduces over workgroups (shaders/group.wgsl): its reductions.
    pub fn reductions_path(&mut self) {
        self.path(self.gpu.reductions().path());
    }

    /// Adds a comparison of the running case, named after it and the compared tensor.
    fn push(&mut self, mut case: Case, tensor: &str, dims: &[usize]) {
        // "blocked lanes", "tiled subgroup" ("tiled" once, where the path is the family's own).
        let family = self.gpu.family().name();
        let path = self.path.strip_prefix(family).unwrap_or(&self.path).trim();
        case.kernels = if path.is_empty() { family.into() } else { format!("{family} {path}") };
        case.index = self.index;
        case.tensor = tensor.into();
        case.dims = dims.to_vec();
        self.list.push(case);
    }

    /// Runs `f` on each shape with its index (for seeds); the cases are named after the shape.
    pub fn each<S: std::fmt::Debug>(
        gpu: &'a Gpu,
        op: &'static str,
        shapes: &[S],
        mut f: impl FnMut(&mut Cases<'a>, usize, &S) -> Result<()>,
    ) -> Result<Vec<Case>> {
        let mut c = Cases::new(gpu, op);
        for (i, shape) in shapes.iter().enumerate() {
            (c.index, c.shape) = (i, format!("{shape:?}"));
            f(&mut c, i, shape)?;
        }
        Ok(c.list)
    }

    /// Runs `f` on each golden case ("conv3"), which names the cases and the golden's tensors
    /// (`conv3.x`, `conv3.y`, …).
    pub fn goldens(
        gpu: &'a Gpu,
        op: &'static str,
        cases: &[&str],
        mut f: impl FnMut(&mut Cases<'a>, &str) -> Result<()>,
    ) -> Result<Vec<Case>> {
        let mut c = Cases::new(gpu, op);
        for (i, case) in cases.iter().enumerate() {
            (c.index, c.shape) = (i, case.to_string());
            f(&mut c, case)?;
        }
        Ok(c.list)
    }

    pub fn upload(&self, name: &str, shape: &[usize], data: &[f64]) -> Result<Tensor> {
        upload(self.gpu, name, shape, data)
    }

    pub fn zeros(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        zeros(self.gpu, name, shape)
    }

    pub fn u32s(&self, name: &str, data: &[u32]) -> Result<Tensor> {
        Ok(self.gpu.tensor_u32(name, &[data.len()], data)?)
    }

    pub fn run(&self, dispatches: impl IntoIterator<Item = Dispatch>) -> Result<()> {
        run(self.gpu, dispatches)
    }

    /// Compare `got` (an output of entry point or output `what`) with the reference.
    pub fn expect(&mut self, what: &str, got: &Tensor, want: &[f64], tol: f64) -> Result<()> {
        let values = download(self.gpu, got)?;
        let op = format!("{}/{what}", self.op);
        let case = compare(&op, &self.shape, &tampered(&op, &values), want, tol);
        self.push(case, got.name(), got.shape());
        Ok(())
    }

    /// Compare a sum with the reference, each error relative to `bound`, the sum of its terms'
    /// magnitudes ([`compare_bounded`](super::compare_bounded)).
    pub fn expect_bounded(
        &mut self,
        what: &str,
        got: &Tensor,
        want: &[f64],
        bound: &[f64],
        tol: f64,
    ) -> Result<()> {
        let values = download(self.gpu, got)?;
        let op = format!("{}/{what}", self.op);
        let case = super::compare_bounded(&op, &self.shape, &tampered(&op, &values), want, bound, tol);
        self.push(case, got.name(), got.shape());
        Ok(())
    }

    /// Compare a u32 output exactly.
    pub fn expect_u32(&mut self, what: &str, got: &Tensor, want: &[u32]) -> Result<()> {
        self.expect(what, got, &want.iter().map(|v| *v as f64).collect::<Vec<_>>(), 0.0)
    }

    /// Compare values computed on the host from GPU outputs (named `what`).
    pub fn expect_values(&mut self, what: &str, got: &[f64], want: &[f64], tol: f64) {
        let op = format!("{}/{what}", self.op);
        let case = compare(&op, &self.shape, &tampered(&op, got), want, tol);
        self.push(case, what, &[got.len()]);
    }

    /// The op goldens (tests/golden/ops.safetensors), for tensors named otherwise.
    pub fn golden(&self) -> &Golden {
        &self.golden
    }

    /// The golden case's input `<case>.<name>` on the GPU.
    pub fn golden_input(&self, name: &str) -> Result<Tensor> {
        self.golden.upload(self.gpu, &format!("{}.{name}", self.shape))
    }

    /// The golden case's values `<case>.<name>`.
    pub fn golden_values(&self, name: &str) -> Result<Vec<f64>> {
        self.golden.values(&format!("{}.{name}", self.shape))
    }

    /// Compare each (output, tensor) with the golden case's `<case>.<output>`.
    pub fn expect_golden(&mut self, outputs: &[(&str, &Tensor)], tol: f64) -> Result<()> {
        for (name, t) in outputs {
            let want = self.golden_values(name)?;
            self.expect(name, t, &want, tol)?;
        }
        Ok(())
    }
}

/// `got`, with conv2d/forward's first value negated under the test hook
/// `TERN_FAULT=check-wrong-result` (src/fault.rs), so the failure path of `tern check` is tested.
fn tampered(op: &str, got: &[f64]) -> Vec<f64> {
    let mut got = got.to_vec();
    if op == "conv2d/forward" && !got.is_empty() && crate::fault::armed("check-wrong-result", None) {
        got[0] = -got[0] - 1.0;
    }
    got
}
