//! Batch normalisation, alone or fused with the ReLU, residual add and pooling that follow it
//! (shaders/batchnorm.wgsl).

use super::{expect_shape, f32_bytes, u32_of};
use crate::gpu::{Cost, Dispatch, Family, Gpu, GpuError, Grid, Result, Tensor, shaders};

pub const EPS: f32 = 1e-5;
pub const MOMENTUM: f32 = 0.1;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    eps: f32,
    momentum: f32,
    res_c: u32,
    res_h: u32,
    res_w: u32,
    res_pad: u32,
    oh: u32,
    ow: u32,
    splits: u32,
    pad: [u32; 3],
}

/// The tensors of one batch-norm layer. `mean`/`invstd` hold the batch statistics saved by
/// `stats` for the forward and backward kernels.
pub struct BatchNormTensors<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub mean: &'a Tensor,
    pub invstd: &'a Tensor,
}

/// Pooling fused after the batch norm (and ReLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    None,
    /// 2×2 windows, stride 2; rows and columns past the last whole window are dropped.
    Max2,
    /// Global average: [n, c, h, w] → [n, c].
    Avg,
}

/// A residual added to the batch norm's output before the ReLU.
#[derive(Clone, Copy)]
pub enum Residual<'a> {
    None,
    /// The block input itself (same shape).
    Identity(&'a Tensor),
    /// Option A of He et al.: the block input subsampled by 2, channels zero-padded equally on
    /// both sides.
    OptionA(&'a Tensor),
}

/// What follows the batch norm in one fused unit: z = BN(x) [+ residual] [→ ReLU] [→ pool].
#[derive(Clone, Copy)]
pub struct Fused<'a> {
    pub relu: bool,
    pub pool: Pool,
    pub residual: Residual<'a>,
}

impl Fused<'_> {
    /// Batch norm alone.
    pub const PLAIN: Fused<'static> = Fused { relu: false, pool: Pool::None, residual: Residual::None };

    /// batchnorm.wgsl's pipeline constants for this unit: each combination is its own kernel, so
    /// that the driver drops the paths it does not take (llvmpipe would run them under a mask).
    fn modes(&self, accumulate: bool) -> [(&'static str, f64); 4] {
        let pool = match self.pool {
            Pool::None => 0.0,
            Pool::Max2 => 1.0,
            Pool::Avg => 2.0,
        };
        let residual = match self.residual {
            Residual::None => 0.0,
            Residual::Identity(_) => 1.0,
            Residual::OptionA(_) => 2.0,
        };
        let flag = |b: bool| f64::from(u8::from(b));
        [("RELU", flag(self.relu)), ("POOL", pool), ("RESIDUAL", residual), ("ACCUMULATE", flag(accumulate))]
    }

    fn residual_tensor(&self) -> Option<&Tensor> {
        match self.residual {
            Residual::None => None,
            Residual::Identity(t) | Residual::OptionA(t) => Some(t),
        }
    }
}

/// The output shape of the fused unit for input `x`.
pub fn output_shape(x: &[usize], pool: Pool) -> Vec<usize> {
    match pool {
        Pool::None => x.to_vec(),
        Pool::Max2 => vec![x[0], x[1], x[2] / 2, x[3] / 2],
        Pool::Avg => x[..2].to_vec(),
    }
}

fn params(label: &str, x: &Tensor, f: &Fused) -> Result<Params> {
    let s = x.shape();
    let h = s.get(2).copied().unwrap_or(1);
    let w: usize = s.iter().skip(3).product();
    let bad = |what: String| Err(GpuError::Invalid { label: label.into(), what });
    if f.pool != Pool::None && s.len() != 4 {
        return bad(format!("pooling after batch norm needs [n, c, h, w], got {s:?}"));
    }
    if f.pool == Pool::Max2 && (h < 2 || w < 2) {
        return bad(format!("2×2 max pool does not fit input {s:?}"));
    }
    if f.pool == Pool::Avg && f.residual_tensor().is_some() {
        return bad("global average pooling after a residual add is not fused".into());
    }
    let u = |what: &str, v: usize| u32_of(label, what, v);
    let mut p = Params {
        n: u("n", s[0])?,
        c: u("c", s[1])?,
        h: u("h", h)?,
        w: u("w", w)?,
        eps: EPS,
        momentum: MOMENTUM,
        res_c: 0,
        res_h: 0,
        res_w: 0,
        res_pad: 0,
        oh: u("oh", h / 2)?,
        ow: u("ow", w / 2)?,
        splits: 1,
        pad: [0; 3],
    };
    match f.residual {
        Residual::None => {}
        Residual::Identity(r) => {
            expect_shape(label, r, s)?;
        }
        Residual::OptionA(r) => {
            let rs = r.shape();
            let ok = rs.len() == 4
                && s.len() == 4
                && rs[0] == s[0]
                && rs[1] <= s[1]
                && (s[1] - rs[1]).is_multiple_of(2)
                && rs[2].div_ceil(2) == s[2]
                && rs[3].div_ceil(2) == s[3];
            if !ok {
                return bad(format!("option-A shortcut cannot map {rs:?} onto {s:?}"));
            }
            p.res_c = u("res_c", rs[1])?;
            p.res_h = u("res_h", rs[2])?;
            p.res_w = u("res_w", rs[3])?;
            p.res_pad = ((s[1] - rs[1]) / 2) as u32;
        }
    }
    Ok(p)
}

/// Elements per invocation of the elementwise kernels (CHUNK in the shader).
const CHUNK: u64 = 16;

/// Whether the *_vec entries run this unit (the elementwise kernels and, in the blocked family,
/// the reductions): no pooling, each run of CHUNK elements inside one plane and starting on a
/// vec4, rows of whole vec4s, and an option-A residual (if any) of exactly twice the rows and
/// columns, so that its rows are whole vec4s too.
fn vec_runs(p: &Params, pool: Pool) -> bool {
    let option_a = p.res_c != 0;
    pool == Pool::None
        && (p.h as u64 * p.w as u64).is_multiple_of(CHUNK)
        && p.w.is_multiple_of(4)
        && (!option_a || (p.res_h == 2 * p.h && p.res_w == 2 * p.w))
}

/// Invocations of the per-plane kernels: runs of CHUNK elements, pooled rows (max pool), or
/// planes (the average pool's forward).
fn invocations(p: &Params, pool: Pool, forward: bool) -> u64 {
    let planes = p.n as u64 * p.c as u64;
    match pool {
        Pool::Max2 => planes * p.oh as u64,
        Pool::Avg if forward => planes,
        _ => planes * (p.h as u64 * p.w as u64).div_ceil(CHUNK),
    }
}

fn check(label: &str, t: &BatchNormTensors, c: usize) -> Result<()> {
    for v in [t.gamma, t.beta, t.running_mean, t.running_var, t.mean, t.invstd] {
        expect_shape(label, v, &[c])?;
    }
    Ok(())
}

/// The normalising pass of the fused unit (the statistics already in mean/invstd).
fn apply(
    gpu: &Gpu,
    label: &str,
    p: &Params,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
    f: &Fused,
) -> Result<Dispatch> {
    let vec = vec_runs(p, f.pool);
    let (entry, out) = match f.pool {
        Pool::None if vec => ("forward_vec", x.numel()),
        Pool::None => ("forward", x.numel()),
        Pool::Max2 => ("forward_max_pool", y.numel()),
        Pool::Avg => ("forward_avg_pool", y.numel()),
    };
    let threads = invocations(p, f.pool, true);
    // forward_vec loads and stores x, y and the identity residual through vec4 bindings.
    let (x_name, y_name) = if vec { ("x_vec", "y_vec") } else { ("x", "y") };
    let mut tensors = vec![
        (x_name, x),
        (y_name, y),
        ("gamma", t.gamma),
        ("beta", t.beta),
        ("mean", t.mean),
        ("invstd", t.invstd),
    ];
    let res = f.residual_tensor().unwrap_or(x);
    match (f.pool, vec) {
        (_, true) => tensors.push(("res_vec", res)),
        (Pool::None, false) => tensors.push(("res", res)),
        _ => {}
    }
    let reads = x.numel() + f.residual_tensor().map_or(0, |r| r.numel().min(out));
    Dispatch::new(
        gpu,
        &gpu.kernel_with(&shaders::BATCHNORM, entry, &f.modes(false))?,
        format!("{label}/{entry}"),
        p,
        &tensors,
        Grid::Threads(threads),
        Cost::new(4 * x.numel() as u64, f32_bytes(reads + out)),
    )
}

fn shapes(label: &str, x: &Tensor, y: &Tensor, t: &BatchNormTensors, f: &Fused) -> Result<Params> {
    let p = params(label, x, f)?;
    check(label, t, x.shape()[1])?;
    expect_shape(label, y, &output_shape(x.shape(), f.pool))?;
    Ok(p)
}

/// Workgroups of a per-channel reduction a GPU needs to be busy: the tiled family splits each
/// channel's images into ranges until there are about this many.
const REDUCTION_GROUPS: usize = 256;

/// A per-channel reduction over (n, h, w): one workgroup per channel (`entry`, or with `vec`
/// `<entry>_vec`, four elements per load) in the blocked family; in the tiled family,
/// `<entry>_split` over p.splits image ranges per channel into partials, then `merge` adds each
/// channel's splits in order. `tensors` may name more than the entry binds.
#[allow(clippy::too_many_arguments)]
fn reduction(
    gpu: &Gpu,
    label: &str,
    p: &Params,
    (entry, merge): (&str, &str),
    vec: bool,
    modes: &[(&str, f64)],
    tensors: &[(&str, &Tensor)],
    cost: Cost,
) -> Result<Vec<Dispatch>> {
    let (n, c) = (p.n as usize, p.c as usize);
    let splits = match gpu.family() {
        Family::Blocked => 1,
        Family::Tiled => REDUCTION_GROUPS.div_ceil(c).clamp(1, n),
    };
    if splits == 1 {
        let entry = if vec { format!("{entry}_vec") } else { entry.to_string() };
        let k = gpu.kernel_with(&shaders::BATCHNORM, &entry, modes)?;
        let (label, groups) = (format!("{label}/{entry}"), Grid::Groups(c as u64));
        return Ok(vec![Dispatch::new(gpu, &k, label, p, &k.bound(tensors), groups, cost)?]);
    }
    let p = Params { splits: splits as u32, ..*p };
    let partial = gpu.tensor(&format!("{label}.{entry}_partial"), &[c, splits, 3])?;
    let split = format!("{entry}_split");
    let k = gpu.kernel_with(&shaders::BATCHNORM, &split, modes)?;
    let mut t = tensors.to_vec();
    t.push(("partial", &partial));
    let groups = Grid::Groups((c * splits) as u64);
    let first = Dispatch::new(gpu, &k, format!("{label}/{split}"), &p, &k.bound(&t), groups, cost)?;
    let k = gpu.kernel(&shaders::BATCHNORM, merge)?;
    let cost = Cost::new(4 * (c * splits) as u64, f32_bytes(3 * c * splits));
    let second =
        Dispatch::new(gpu, &k, format!("{label}/{merge}"), &p, &k.bound(&t), Grid::Threads(c as u64), cost)?;
    Ok(vec![first, second])
}

/// Training forward of the fused unit: batch statistics in one pass (and the running-statistics
/// update), then the normalising pass with ReLU, residual and pooling. With `conv_stats`, see
/// `train_statistics`.
pub fn fused_forward_train(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
    f: &Fused,
    conv_stats: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    let p = shapes(label, x, y, t, f)?;
    let mut d = train_statistics(gpu, label, x, t, f.pool, conv_stats)?;
    d.push(apply(gpu, label, &p, x, y, t, f)?);
    Ok(d)
}

/// The training forward's statistics alone: batch mean and invstd into `t`, and the running
/// statistics' update, for a unit pooling with `pool`. With `conv_stats`, the partials
/// [c, slots, 3] that the convolution producing x wrote (`conv2d::forward_with_stats`), they
/// come from merging those instead of a pass over x. Where a convolution reads the unit's ReLU
/// output through these statistics (`conv2d::forward_with`), this is all its forward runs.
pub fn train_statistics(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    t: &BatchNormTensors,
    pool: Pool,
    conv_stats: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    let plain = Fused { pool, ..Fused::PLAIN };
    let p = params(label, x, &plain)?;
    check(label, t, x.shape()[1])?;
    let mut tensors = vec![
        ("x", x),
        ("x_vec", x),
        ("mean", t.mean),
        ("invstd", t.invstd),
        ("running_mean", t.running_mean),
        ("running_var", t.running_var),
    ];
    let Some(partial) = conv_stats else {
        let cost = Cost::new(6 * x.numel() as u64, f32_bytes(x.numel()));
        let vec = vec_runs(&p, pool);
        return reduction(gpu, label, &p, ("stats", "stats_merge"), vec, &[], &tensors, cost);
    };
    let c = p.c as usize;
    let slots = partial.shape().get(1).copied().unwrap_or(0);
    expect_shape(label, partial, &[c, slots, 3])?;
    tensors.push(("partial", partial));
    let p = Params { splits: u32_of(label, "slots", slots)?, ..p };
    let k = gpu.kernel(&shaders::BATCHNORM, "stats_merge")?;
    let cost = Cost::new(4 * (c * slots) as u64, f32_bytes(3 * c * slots));
    let grid = Grid::Threads(c as u64);
    Ok(vec![Dispatch::new(gpu, &k, format!("{label}/stats_merge"), &p, &k.bound(&tensors), grid, cost)?])
}

/// Inference forward of the fused unit: the running statistics into mean/invstd, then the
/// normalising pass.
pub fn fused_forward_eval(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
    f: &Fused,
) -> Result<[Dispatch; 2]> {
    let p = shapes(label, x, y, t, f)?;
    let c = x.shape()[1];
    let stats = Dispatch::new(
        gpu,
        &gpu.kernel(&shaders::BATCHNORM, "running_stats")?,
        format!("{label}/running_stats"),
        &p,
        &[
            ("running_mean", t.running_mean),
            ("running_var", t.running_var),
            ("mean", t.mean),
            ("invstd", t.invstd),
        ],
        Grid::Threads(c as u64),
        Cost::new(2 * c as u64, f32_bytes(4 * c)),
    )?;
    Ok([stats, apply(gpu, label, &p, x, y, t, f)?])
}

/// Backward of the fused unit: per-channel sums of g (the gradient at the batch norm's output,
/// recomputed through pooling and ReLU from x) into dbeta and of g·x̂ into dgamma, then dx; with
/// a residual, `dres` receives the shortcut's gradient (the block input's gradient, before the
/// branch adds to it). `y` is the forward output (shapes only). With
/// `accumulate`, dx is added to what the tensor holds (a residual branch's first layer adds to
/// the shortcut's gradient).
pub fn fused_backward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    t: &BatchNormTensors,
    dgamma: &Tensor,
    dbeta: &Tensor,
    f: &Fused,
    dres: Option<&Tensor>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let p = shapes(label, x, y, t, f)?;
    let c = x.shape()[1];
    expect_shape(label, dy, y.shape())?;
    expect_shape(label, dx, x.shape())?;
    expect_shape(label, dgamma, &[c])?;
    expect_shape(label, dbeta, &[c])?;
    let stats = [("gamma", t.gamma), ("beta", t.beta), ("mean", t.mean), ("invstd", t.invstd)];
    let res = f.residual_tensor().unwrap_or(x);
    // The *_vec entries load and store x, dy, dx, the residual and its gradient through vec4
    // bindings.
    let vec = vec_runs(&p, f.pool);
    let mut reduce_t = vec![("x", x), ("dy", dy), ("dgamma", dgamma), ("dbeta", dbeta), ("res", res)];
    reduce_t.extend([("x_vec", x), ("dy_vec", dy), ("res_vec", res)]);
    reduce_t.extend(stats);
    let mut grad_t = if vec {
        vec![("x_vec", x), ("dy_vec", dy), ("dx_vec", dx), ("res_vec", res)]
    } else {
        vec![("x", x), ("dy", dy), ("dx", dx)]
    };
    grad_t.extend([("dgamma", dgamma), ("dbeta", dbeta), ("res", res)]);
    grad_t.extend(stats);
    let entry = match (f.residual_tensor(), dres) {
        (None, _) => "backward",
        (Some(r), Some(d)) => {
            expect_shape(label, d, r.shape())?;
            grad_t.push((if vec { "dres_vec" } else { "dres" }, d));
            "backward_residual"
        }
        (Some(_), None) => {
            let what = "a residual unit's backward needs the residual's gradient tensor".into();
            return Err(GpuError::Invalid { label: label.into(), what });
        }
    };
    let entry = if vec { format!("{entry}_vec") } else { entry.to_string() };
    let reads = x.numel() + dy.numel();
    let cost = Cost::new(8 * x.numel() as u64, f32_bytes(reads));
    let mut d = reduction(
        gpu,
        label,
        &p,
        ("backward_reduce", "backward_merge"),
        vec,
        &f.modes(false),
        &reduce_t,
        cost,
    )?;
    let writes = x.numel() * (1 + usize::from(accumulate)) + dres.map_or(0, |d| d.numel());
    let k = gpu.kernel_with(&shaders::BATCHNORM, &entry, &f.modes(accumulate))?;
    let grad = Dispatch::new(
        gpu,
        &k,
        format!("{label}/{entry}"),
        &p,
        &k.bound(&grad_t),
        Grid::Threads(invocations(&p, f.pool, false)),
        Cost::new(10 * x.numel() as u64, f32_bytes(reads + writes)),
    )?;
    d.push(grad);
    Ok(d)
}

/// Training forward of batch norm alone: batch statistics (and running-statistics update), then
/// normalisation.
pub fn forward_train(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
) -> Result<Vec<Dispatch>> {
    fused_forward_train(gpu, label, x, y, t, &Fused::PLAIN, None)
}

/// Inference forward of batch norm alone: the running statistics into mean/invstd, then
/// normalisation.
pub fn forward_eval(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    y: &Tensor,
    t: &BatchNormTensors,
) -> Result<[Dispatch; 2]> {
    fused_forward_eval(gpu, label, x, y, t, &Fused::PLAIN)
}

/// Backward of batch norm alone: per-channel sums into dgamma/dbeta, then dx.
pub fn backward(
    gpu: &Gpu,
    label: &str,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    t: &BatchNormTensors,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<Vec<Dispatch>> {
    fused_backward(gpu, label, x, x, dy, dx, t, dgamma, dbeta, &Fused::PLAIN, None, false)
}
