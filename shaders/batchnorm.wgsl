// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// batchnorm.wgsl — batch normalisation over (n, h, w) per channel, NCHW, fused with what follows
// it in our models: ReLU, a residual add (identity or option-A shortcut) and 2×2 max pooling or
// global average pooling. Forward and backward of the fused unit
//   z = (x − mean)·invstd·γ + β  [+ shortcut(res)]  [→ ReLU]  [→ pool]
// never store z or its ReLU when a pool follows: the backward kernels recompute them from x.
//
// Bindings (group 0):
//   0  p             uniform  BatchNormParams
//   1  x             storage read        [n, c, h, w]  input (the convolution's output)
//   2  y             storage read_write  output: [n, c, h, w]; max pool [n, c, oh, ow]; average
//                                        pool [n, c]
//   3  gamma         storage read        [c]  scale
//   4  beta          storage read        [c]  shift
//   5  mean          storage read_write  [c]  batch mean (saved for backward)
//   6  invstd        storage read_write  [c]  1 / sqrt(batch var + eps) (saved)
//   7  running_mean  storage read_write  [c]
//   8  running_var   storage read_write  [c]  unbiased, as PyTorch
//   9  dy            storage read        gradient of y (shape of y)
//   10 dx            storage read_write  [n, c, h, w]  gradient of x
//   11 dgamma        storage read_write  [c]  Σ g·x̂ (g: gradient at the batch norm's output z)
//   12 dbeta         storage read_write  [c]  Σ g
//   13 res           storage read        residual input [n, res_c, res_h, res_w] (x when none)
//   14 dres          storage read_write  its gradient (backward_residual; identity: = g;
//                                        option A: g at the subsampled positions of the
//                                        matching channel, else 0)
//   15 partial       storage read_write  [c, p.splits, 3] per-split partials (the split
//                                        reductions, or the slots of conv2d_lanes.wgsl's
//                                        forward_vec_stats)
//   16 x_vec, 17 y_vec, 18 res_vec, 19 dy_vec, 20 dx_vec, 21 dres_vec: x, y, res, dy, dx and dres
//                                        as vec4s (the *_vec entries)
//
// Modes (pipeline constants: the host compiles each combination it runs): RELU; POOL 0 none,
// 1 max 2×2 stride 2 (windows that do not fit are dropped, as PyTorch; their inputs get g = 0),
// 2 global average; RESIDUAL 0 none, 1 identity (res has x's shape), 2 option A (res subsampled
// by 2, channels offset by p.res_pad); ACCUMULATE: backward adds dx to what dx holds (the first
// layer of a residual branch adds to the shortcut's gradient). Not uniforms: llvmpipe runs both
// sides of an `if` on a uniform under an execution mask, so every element also loaded the
// residual (both forms) and the average pool's gradient. Max pooling's arg-max is the first largest of the window in row-major
// order, as PyTorch.
//
// llvmpipe costs one memory access per lane ≈ 20 multiply-adds, and has no vector integer
// division: no entry point divides per element. Positions are walked with counters (a row and
// column that step by the workgroup size and wrap), the channel and image come from the
// workgroup id.
//
// stats, backward_reduce: one workgroup of GROUP per channel; each invocation walks its share
//   of the channel's n·h·w values (or windows) in a fixed order (every GROUP-th position; the
//   *_vec entries a run of consecutive vec4s, run_walk), then group_sum or
//   group_welford (group.wgsl: a fixed order) merges the invocations' partials
//   (deterministic). stats is one pass: per-invocation Welford (count, mean, M2), merged with
//   Chan's formula, so the variance does not suffer the cancellation of Σx² − (Σx)²/n.
// stats_split, backward_reduce_split, then stats_merge, backward_merge (the tiled family: a
//   GPU needs more workgroups than channels): the same walk and merge over the images of one of
//   p.splits contiguous ranges per workgroup (channel, split from the group id) into
//   partial[ch, split]; then one invocation per channel merges its splits in order.
//   stats_merge alone also merges the partials that the convolution before the batch norm
//   wrote while its output was in registers (conv2d_lanes.wgsl's forward_vec_stats; the host's
//   `conv_stats`), so that no pass over x computes the statistics.
// forward, backward, backward_residual: one invocation per run of CHUNK consecutive elements of
//   one (image, channel) plane (invocation id = plane · ⌈h·w/CHUNK⌉ + run), WG per workgroup;
//   the channel's statistics are loaded once per run. forward_max_pool and backward with
//   POOL = 1: one invocation per pooled output row. forward_avg_pool: one invocation per
//   plane, summing it in order.
// forward_vec, backward_vec, backward_residual_vec: forward, backward and backward_residual at
//   POOL = 0 where each run lies in one plane, starts on a vec4 and covers whole vec4s of its
//   rows (h·w a multiple of CHUNK, w of 4, an option-A residual of exactly twice the rows and
//   columns: the host's `vec_runs`). They load and store vec4s (on CPU drivers one loop over
//   the lanes per four floats instead of per float; option A's residual and its gradient too)
//   and compute each element as the scalar entries do, so the results are the same bit for bit.
// stats_vec, backward_reduce_vec: stats and backward_reduce (blocked family) for the *_vec
//   entries' units, walking whole vec4s: one division per four values in the Welford pass.
//   The order is fixed as theirs, but not the same: ResNet's sums round differently.
// running_stats (evaluation): one invocation per channel copies the running statistics into
//   mean/invstd, so evaluation runs the same forward kernels.

override WG: u32 = 64u;
override GROUP: u32 = 64u; // the reductions' workgroup (group.wgsl): a power of two
const CHUNK: u32 = 16u; // elements per invocation of the elementwise kernels
override RELU: u32 = 0u;
override POOL: u32 = 0u;
override RESIDUAL: u32 = 0u;
override ACCUMULATE: u32 = 0u;

struct BatchNormParams {
    n: u32, c: u32, h: u32, w: u32,
    eps: f32, momentum: f32, res_c: u32, res_h: u32,
    res_w: u32, res_pad: u32, oh: u32, ow: u32,
    splits: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: BatchNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(13) var<storage, read> res: array<f32>;
@group(0) @binding(14) var<storage, read_write> dres: array<f32>;
@group(0) @binding(15) var<storage, read_write> partial: array<f32>;
@group(0) @binding(16) var<storage, read> x_vec: array<vec4f>;
@group(0) @binding(17) var<storage, read_write> y_vec: array<vec4f>;
@group(0) @binding(18) var<storage, read> res_vec: array<vec4f>;
@group(0) @binding(19) var<storage, read> dy_vec: array<vec4f>;
@group(0) @binding(20) var<storage, read_write> dx_vec: array<vec4f>;
@group(0) @binding(21) var<storage, read_write> dres_vec: array<vec4f>;

fn group(wg: vec3u, nwg: vec3u) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// A position (n, row, col) in a [n, rows, cols] walk that advances by GROUP positions at a time
// (the reductions' invocations share a channel's positions).
struct Walk { n: u32, r: u32, c: u32, dn: u32, dr: u32, dc: u32, rows: u32, cols: u32 }

fn walk(start: u32, rows: u32, cols: u32) -> Walk {
    let plane = rows * cols;
    var k: Walk;
    k.n = start / plane;
    k.r = (start % plane) / cols;
    k.c = start % cols;
    k.dn = GROUP / plane;
    k.dr = (GROUP % plane) / cols;
    k.dc = GROUP % cols;
    k.rows = rows;
    k.cols = cols;
    return k;
}

// The vec4 reductions' walk: invocation li takes its own run of ⌈n·rows·cols / GROUP⌉
// consecutive positions, returned as `len`. llvmpipe runs a workgroup's subgroups one after
// the other, so interleaved positions would make each subgroup sweep the whole channel for a
// few bytes of every line; a run per invocation streams through memory.
fn run_walk(li: u32, n: u32, rows: u32, cols: u32, len: ptr<function, u32>) -> Walk {
    *len = (n * rows * cols + GROUP - 1u) / GROUP;
    var k = walk(li * *len, rows, cols);
    k.dn = 0u;
    k.dr = 0u;
    k.dc = 1u;
    return k;
}

fn step(k: ptr<function, Walk>) {
    (*k).c += (*k).dc;
    (*k).r += (*k).dr;
    (*k).n += (*k).dn;
    if ((*k).c >= (*k).cols) {
        (*k).c -= (*k).cols;
        (*k).r += 1u;
    }
    if ((*k).r >= (*k).rows) {
        (*k).r -= (*k).rows;
        (*k).n += 1u;
    }
}

// Per-channel affine of the batch norm: z = x·scale + shift.
struct Affine { scale: f32, shift: f32, mu: f32, is: f32 }

fn affine(ch: u32) -> Affine {
    let mu = mean[ch];
    let is = invstd[ch];
    let s = is * gamma[ch];
    return Affine(s, beta[ch] - mu * s, mu, is);
}

// The shortcut added to z at (n, ch, r, col) of the output.
fn shortcut(i: u32, n: u32, ch: u32, r: u32, col: u32) -> f32 {
    if (RESIDUAL == 1u) {
        return res[i];
    }
    if (RESIDUAL == 2u && ch >= p.res_pad && ch < p.res_pad + p.res_c) {
        return res[((n * p.res_c + ch - p.res_pad) * p.res_h + 2u * r) * p.res_w + 2u * col];
    }
    return 0.0;
}

fn act(v: f32) -> f32 {
    return select(v, max(v, 0.0), RELU == 1u);
}

// ---- statistics --------------------------------------------------------------------------

// Welford (count, mean, M2) of channel ch over images [n0, n1), merged over the workgroup by
// group_welford; every invocation returns the result.
fn welford(ch: u32, li: u32, n0: u32, n1: u32) -> vec3f {
    let hw = p.h * p.w;
    var k = walk(li, 1u, hw);
    k.n += n0;
    var cnt = 0.0;
    var m = 0.0;
    var q = 0.0;
    for (; k.n < n1; step(&k)) {
        let v = x[(k.n * p.c + ch) * hw + k.c];
        cnt += 1.0;
        let d = v - m;
        m += d / cnt;
        q += d * (v - m);
    }
    return group_welford(li, vec3f(cnt, m, q));
}

// Batch mean, invstd and the running statistics of channel ch from its (count, mean, M2).
fn put_stats(ch: u32, w: vec3f) {
    let count = f32(p.n * p.h * p.w);
    mean[ch] = w.y;
    invstd[ch] = inverseSqrt(w.z / count + p.eps);
    let unbiased = w.z / max(count - 1.0, 1.0);
    running_mean[ch] = (1.0 - p.momentum) * running_mean[ch] + p.momentum * w.y;
    running_var[ch] = (1.0 - p.momentum) * running_var[ch] + p.momentum * unbiased;
}

@compute @workgroup_size(GROUP)
fn stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg);
    let w = welford(ch, li, 0u, p.n);
    if (li == 0u) { put_stats(ch, w); }
}

// A split reduction's workgroup: channel, split and the split's images [n0, n1) of the
// s-th of p.splits ranges. Groups past c·splits (grids wider than one dimension) get ch ≥ c.
struct Split { ch: u32, s: u32, n0: u32, n1: u32 }

fn split(wg: vec3u, nwg: vec3u) -> Split {
    let g = group(wg, nwg);
    let s = g % p.splits;
    let r = split_range(s, p.splits, p.n);
    return Split(g / p.splits, s, r.x, r.y);
}

// partial[ch, s] = v (written by invocation 0).
fn put_partial(li: u32, k: Split, v: vec3f) {
    if (li != 0u) { return; }
    let at = (k.ch * p.splits + k.s) * 3u;
    partial[at] = v.x;
    partial[at + 1u] = v.y;
    partial[at + 2u] = v.z;
}

@compute @workgroup_size(GROUP)
fn stats_split(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let k = split(wg, nwg);
    if (k.ch >= p.c) { return; }
    put_partial(li, k, welford(k.ch, li, k.n0, k.n1));
}

@compute @workgroup_size(WG)
fn stats_merge(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg) * WG + li;
    if (ch >= p.c) { return; }
    var w = vec3f(0.0);
    for (var s = 0u; s < p.splits; s++) {
        let at = (ch * p.splits + s) * 3u;
        w = welford_merge(w, vec3f(partial[at], partial[at + 1u], partial[at + 2u]));
    }
    put_stats(ch, w);
}

// Evaluation: the running statistics become the saved ones, then the forward kernels normalise.
@compute @workgroup_size(WG)
fn running_stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg) * WG + li;
    if (ch >= p.c) { return; }
    mean[ch] = running_mean[ch];
    invstd[ch] = inverseSqrt(running_var[ch] + p.eps);
}

// ---- forward -----------------------------------------------------------------------------

// Elementwise kernels: invocation id → (plane, first element) of a run of CHUNK elements.
struct Run { plane: u32, n: u32, ch: u32, i0: u32, end: u32, r: u32, col: u32 }

fn run(wg: vec3u, nwg: vec3u, li: u32) -> Run {
    let id = group(wg, nwg) * WG + li;
    let hw = p.h * p.w;
    let chunks = (hw + CHUNK - 1u) / CHUNK;
    var q: Run;
    q.plane = id / chunks;
    q.n = q.plane / p.c;
    q.ch = q.plane % p.c;
    let k0 = (id % chunks) * CHUNK;
    q.i0 = q.plane * hw + k0;
    q.end = q.plane * hw + min(k0 + CHUNK, hw);
    q.r = k0 / p.w;
    q.col = k0 % p.w;
    return q;
}

// The row and column `step` elements on (1, or 4 for the *_vec entries, whose rows hold whole
// vec4s): the column meets the row's end exactly.
fn next(q: ptr<function, Run>, step: u32) {
    (*q).col += step;
    if ((*q).col == p.w) {
        (*q).col = 0u;
        (*q).r += 1u;
    }
}

// y = act(z [+ shortcut]) per element (POOL = 0).
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    for (var i = q.i0; i < q.end; i++) {
        y[i] = act(x[i] * a.scale + a.shift + shortcut(i, q.n, q.ch, q.r, q.col));
        next(&q, 1u);
    }
}

// The inputs of the window of pooled output (r, col), loaded once for all that uses them (each
// load is a loop over the lanes on CPU drivers).
fn window_x(base: u32, r: u32, col: u32) -> vec4f {
    let i = base + 2u * r * p.w + 2u * col;
    return vec4f(x[i], x[i + 1u], x[i + p.w], x[i + p.w + 1u]);
}

// The window's activations from its inputs xs, and which is the arg-max.
struct Window { v: vec4f, at: u32 }

fn window(xs: vec4f, a: Affine) -> Window {
    let v = vec4f(act(xs.x * a.scale + a.shift), act(xs.y * a.scale + a.shift),
                  act(xs.z * a.scale + a.shift), act(xs.w * a.scale + a.shift));
    var at = 0u;
    var best = v.x;
    if (v.y > best) { at = 1u; best = v.y; }
    if (v.z > best) { at = 2u; best = v.z; }
    if (v.w > best) { at = 3u; }
    return Window(v, at);
}

// y = max over each 2×2 window of act(z) (POOL = 1); one invocation per output row.
@compute @workgroup_size(WG)
fn forward_max_pool(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
    let id = group(wg, nwg) * WG + li;
    let plane = id / p.oh;
    if (plane >= p.n * p.c) { return; }
    let r = id % p.oh;
    let a = affine(plane % p.c);
    let base = plane * p.h * p.w;
    let out = id * p.ow;
    for (var col = 0u; col < p.ow; col++) {
        let v = window(window_x(base, r, col), a).v;
        y[out + col] = max(max(v.x, v.y), max(v.z, v.w));
    }
}

// y[n, c] = mean over the plane of act(z) (POOL = 2); one invocation per plane, in order.
@compute @workgroup_size(WG)
fn forward_avg_pool(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
    let plane = group(wg, nwg) * WG + li;
    if (plane >= p.n * p.c) { return; }
    let a = affine(plane % p.c);
    let hw = p.h * p.w;
    var s = 0.0;
    for (var i = plane * hw; i < (plane + 1u) * hw; i++) {
        s += act(x[i] * a.scale + a.shift);
    }
    y[plane] = s / f32(hw);
}

// ---- backward ----------------------------------------------------------------------------
// g is the gradient at z, recomputed through the pooling, the ReLU and the residual add.

// g of element i = (n, ch, r, col) with input xv = x[i] (POOL 0, or 2 with g_avg = dy[n, ch] /
// (h·w)). The caller loads x[i] once for this and dx or Σg·x̂.
fn grad_element(i: u32, xv: f32, n: u32, ch: u32, r: u32, col: u32, a: Affine, g_avg: f32) -> f32 {
    let g = select(dy[i], g_avg, POOL == 2u);
    if (RELU == 0u) {
        return g;
    }
    // The ReLU follows the residual add.
    return select(0.0, g, xv * a.scale + a.shift + shortcut(i, n, ch, r, col) > 0.0);
}

// g of the window of pooled output (r, col) with inputs xs (POOL = 1): dy at the arg-max,
// unless the ReLU blocked it.
fn grad_window(xs: vec4f, out: u32, r: u32, col: u32, a: Affine) -> vec4f {
    let w = window(xs, a);
    var g = dy[out + r * p.ow + col];
    if (RELU == 1u && w.v[w.at] <= 0.0) { g = 0.0; }
    return select(vec4f(0.0), vec4f(g), vec4<u32>(0u, 1u, 2u, 3u) == vec4u(w.at));
}

// (Σg, Σg·x̂) of channel ch over images [n0, n1), summed over the workgroup by group_sum;
// every invocation returns the result.
fn grad_sums(ch: u32, li: u32, n0: u32, n1: u32) -> vec2f {
    let a = affine(ch);
    var s = 0.0;
    var sx = 0.0;
    if (POOL == 1u) {
        var k = walk(li, p.oh, p.ow);
        k.n += n0;
        for (; k.n < n1; step(&k)) {
            let plane = k.n * p.c + ch;
            let base = plane * p.h * p.w;
            let xs = window_x(base, k.r, k.c);
            let g = grad_window(xs, plane * p.oh * p.ow, k.r, k.c, a);
            s += g.x + g.y + g.z + g.w;
            sx += dot(g, (xs - a.mu) * a.is);
        }
    } else {
        let inv_hw = 1.0 / f32(p.h * p.w);
        var k = walk(li, p.h, p.w);
        k.n += n0;
        for (; k.n < n1; step(&k)) {
            let plane = k.n * p.c + ch;
            let i = (plane * p.h + k.r) * p.w + k.c;
            var g_avg = 0.0;
            if (POOL == 2u) { g_avg = dy[plane] * inv_hw; }
            let xv = x[i];
            let g = grad_element(i, xv, k.n, ch, k.r, k.c, a, g_avg);
            s += g;
            sx += g * (xv - a.mu) * a.is;
        }
    }
    return group_sum(li, vec4f(s, sx, 0.0, 0.0)).xy;
}

@compute @workgroup_size(GROUP)
fn backward_reduce(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg);
    let r = grad_sums(ch, li, 0u, p.n);
    if (li == 0u) {
        dbeta[ch] = r.x;
        dgamma[ch] = r.y;
    }
}

@compute @workgroup_size(GROUP)
fn backward_reduce_split(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_index) li: u32) {
    let k = split(wg, nwg);
    if (k.ch >= p.c) { return; }
    put_partial(li, k, vec3f(grad_sums(k.ch, li, k.n0, k.n1), 0.0));
}

@compute @workgroup_size(WG)
fn backward_merge(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg) * WG + li;
    if (ch >= p.c) { return; }
    var r = vec2f(0.0);
    for (var s = 0u; s < p.splits; s++) {
        let at = (ch * p.splits + s) * 3u;
        r += vec2f(partial[at], partial[at + 1u]);
    }
    dbeta[ch] = r.x;
    dgamma[ch] = r.y;
}

// dx = γ·invstd · (g − Σg/M − x̂ · Σ(g·x̂)/M), M = n·h·w.
struct Backward { k1: f32, k2: f32, k3: f32, mu: f32, is: f32 }

fn backward_terms(ch: u32) -> Backward {
    let count = f32(p.n * p.h * p.w);
    let is = invstd[ch];
    let k1 = gamma[ch] * is;
    return Backward(k1, dbeta[ch] / count, dgamma[ch] / count, mean[ch], is);
}

fn dx_of(g: f32, xv: f32, t: Backward) -> f32 {
    return t.k1 * (g - t.k2 - (xv - t.mu) * t.is * t.k3);
}

fn put_dx(i: u32, v: f32) {
    if (ACCUMULATE == 1u) {
        dx[i] += v;
    } else {
        dx[i] = v;
    }
}

// dx of the window of pooled output (r, col) and, in the last window row and column, of the
// inputs past it that no window covers (their g is 0).
fn backward_window(base: u32, out: u32, r: u32, col: u32, a: Affine, t: Backward) {
    let xs = window_x(base, r, col);
    let g = grad_window(xs, out, r, col, a);
    let i = base + 2u * r * p.w + 2u * col;
    put_dx(i, dx_of(g.x, xs.x, t));
    put_dx(i + 1u, dx_of(g.y, xs.y, t));
    put_dx(i + p.w, dx_of(g.z, xs.z, t));
    put_dx(i + p.w + 1u, dx_of(g.w, xs.w, t));
    let last_col = col + 1u == p.ow && p.w > 2u * p.ow;
    let last_row = r + 1u == p.oh && p.h > 2u * p.oh;
    if (last_col) {
        put_dx(i + 2u, dx_of(0.0, x[i + 2u], t));
        put_dx(i + p.w + 2u, dx_of(0.0, x[i + p.w + 2u], t));
    }
    if (last_row) {
        let j = i + 2u * p.w;
        put_dx(j, dx_of(0.0, x[j], t));
        put_dx(j + 1u, dx_of(0.0, x[j + 1u], t));
        if (last_col) { put_dx(j + 2u, dx_of(0.0, x[j + 2u], t)); }
    }
}

// dx (POOL 0 or 2: runs of CHUNK elements per invocation; POOL 1: one pooled output row).
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    if (POOL == 1u) {
        let id = group(wg, nwg) * WG + li;
        let plane = id / p.oh;
        if (plane >= p.n * p.c) { return; }
        let r = id % p.oh;
        let ch = plane % p.c;
        let a = affine(ch);
        let t = backward_terms(ch);
        let base = plane * p.h * p.w;
        for (var col = 0u; col < p.ow; col++) {
            backward_window(base, plane * p.oh * p.ow, r, col, a, t);
        }
        return;
    }
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    let t = backward_terms(q.ch);
    var g_avg = 0.0;
    if (POOL == 2u) { g_avg = dy[q.plane] / f32(p.h * p.w); }
    for (var i = q.i0; i < q.end; i++) {
        let xv = x[i];
        put_dx(i, dx_of(grad_element(i, xv, q.n, q.ch, q.r, q.col, a, g_avg), xv, t));
        next(&q, 1u);
    }
}

// Option A: the shortcut gradient of input (n, ch − res_pad) at the block of output (r, col):
// g at (2r, 2col), zero at the other positions of the 2×2 block that exist.
fn shortcut_grad(n: u32, ch: u32, r: u32, col: u32, g: f32) {
    if (ch < p.res_pad || ch >= p.res_pad + p.res_c) { return; }
    let i = ((n * p.res_c + ch - p.res_pad) * p.res_h + 2u * r) * p.res_w + 2u * col;
    let right = 2u * col + 1u < p.res_w;
    let down = 2u * r + 1u < p.res_h;
    dres[i] = g;
    if (right) { dres[i + 1u] = 0.0; }
    if (down) { dres[i + p.res_w] = 0.0; }
    if (right && down) { dres[i + p.res_w + 1u] = 0.0; }
}

// backward of a unit with a residual (RESIDUAL 1 or 2, POOL 0): dx, and the shortcut's
// gradient into dres.
@compute @workgroup_size(WG)
fn backward_residual(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_index) li: u32) {
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    let t = backward_terms(q.ch);
    for (var i = q.i0; i < q.end; i++) {
        let xv = x[i];
        let g = grad_element(i, xv, q.n, q.ch, q.r, q.col, a, 0.0);
        put_dx(i, dx_of(g, xv, t));
        if (RESIDUAL == 1u) {
            dres[i] = g;
        } else {
            shortcut_grad(q.n, q.ch, q.r, q.col, g);
        }
        next(&q, 1u);
    }
}

// ---- four elements at a time ---------------------------------------------------------------

// The shortcut added to the 4 elements of vec4 j, at columns col .. col + 3 of row r.
fn shortcut4(j: u32, n: u32, ch: u32, r: u32, col: u32) -> vec4f {
    if (RESIDUAL == 1u) {
        return res_vec[j];
    }
    if (RESIDUAL == 2u && ch >= p.res_pad && ch < p.res_pad + p.res_c) {
        // Columns 2·col .. 2·col + 6 of the residual's row 2·r: every other of two vec4s.
        let k = res_vec_at(n, ch, r, col);
        let a = res_vec[k];
        let b = res_vec[k + 1u];
        return vec4f(a.x, a.z, b.x, b.z);
    }
    return vec4f(0.0);
}

// The vec4 of the residual (option A, the *_vec entries: twice the unit's rows and columns) at
// row 2·r, column 2·col of channel ch's match.
fn res_vec_at(n: u32, ch: u32, r: u32, col: u32) -> u32 {
    return (((n * p.res_c + ch - p.res_pad) * p.res_h + 2u * r) * p.res_w + 2u * col) / 4u;
}

// shortcut_grad of the four elements from column col (the *_vec entries): g at the subsampled
// positions of rows 2·r, zero between them and on rows 2·r + 1, as whole vec4s.
fn shortcut_grad4(n: u32, ch: u32, r: u32, col: u32, g: vec4f) {
    if (ch < p.res_pad || ch >= p.res_pad + p.res_c) { return; }
    let k = res_vec_at(n, ch, r, col);
    dres_vec[k] = vec4f(g.x, 0.0, g.y, 0.0);
    dres_vec[k + 1u] = vec4f(g.z, 0.0, g.w, 0.0);
    let below = k + p.res_w / 4u;
    dres_vec[below] = vec4f(0.0);
    dres_vec[below + 1u] = vec4f(0.0);
}

fn act4(v: vec4f) -> vec4f {
    return select(v, max(v, vec4f(0.0)), RELU == 1u);
}

@compute @workgroup_size(WG)
fn forward_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    for (var j = q.i0 / 4u; j < q.end / 4u; j++) {
        y_vec[j] = act4(x_vec[j] * a.scale + a.shift + shortcut4(j, q.n, q.ch, q.r, q.col));
        next(&q, 4u);
    }
}

// grad_element for the 4 elements of vec4 j with inputs xv (POOL = 0).
fn grad4(j: u32, xv: vec4f, n: u32, ch: u32, r: u32, col: u32, a: Affine) -> vec4f {
    let g = dy_vec[j];
    if (RELU == 0u) {
        return g;
    }
    return select(vec4f(0.0), g, xv * a.scale + a.shift + shortcut4(j, n, ch, r, col) > vec4f(0.0));
}

fn put_dx4(j: u32, v: vec4f) {
    if (ACCUMULATE == 1u) {
        dx_vec[j] += v;
    } else {
        dx_vec[j] = v;
    }
}

fn dx4(g: vec4f, xv: vec4f, t: Backward) -> vec4f {
    return t.k1 * (g - t.k2 - (xv - t.mu) * t.is * t.k3);
}

@compute @workgroup_size(WG)
fn backward_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    let t = backward_terms(q.ch);
    for (var j = q.i0 / 4u; j < q.end / 4u; j++) {
        let xv = x_vec[j];
        put_dx4(j, dx4(grad4(j, xv, q.n, q.ch, q.r, q.col, a), xv, t));
        next(&q, 4u);
    }
}

@compute @workgroup_size(WG)
fn backward_residual_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_index) li: u32) {
    var q = run(wg, nwg, li);
    if (q.plane >= p.n * p.c) { return; }
    let a = affine(q.ch);
    let t = backward_terms(q.ch);
    for (var j = q.i0 / 4u; j < q.end / 4u; j++) {
        let xv = x_vec[j];
        let g = grad4(j, xv, q.n, q.ch, q.r, q.col, a);
        put_dx4(j, dx4(g, xv, t));
        if (RESIDUAL == 1u) {
            dres_vec[j] = g;
        } else {
            shortcut_grad4(q.n, q.ch, q.r, q.col, g);
        }
        next(&q, 4u);
    }
}

// The reductions of the *_vec entries' units, four elements per load. The walk visits whole
// vec4s (rows of p.w / 4) in a fixed order, so the sums stay reproducible; they differ in
// rounding from stats and backward_reduce, which visit single elements.

// The vec4 of channel ch at walk position k (rows of p.w / 4 vec4s).
fn vec_at(k: Walk, ch: u32) -> u32 {
    return ((k.n * p.c + ch) * p.h + k.r) * (p.w / 4u) + k.c;
}

// welford over vec4s: each enters as a group of 4 (Chan's merge): one division per four values.
@compute @workgroup_size(GROUP)
fn stats_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg);
    var w = vec3f(0.0);
    var len: u32;
    var k = run_walk(li, p.n, p.h, p.w / 4u, &len);
    for (var i = 0u; i < len && k.n < p.n; i++) {
        let v = x_vec[vec_at(k, ch)];
        let m = (v.x + v.y + v.z + v.w) * 0.25;
        let d = v - m;
        w = welford_merge(w, vec3f(4.0, m, dot(d, d)));
        step(&k);
    }
    w = group_welford(li, w);
    if (li == 0u) { put_stats(ch, w); }
}

// backward_reduce over vec4s (grad4: POOL = 0).
@compute @workgroup_size(GROUP)
fn backward_reduce_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) li: u32) {
    let ch = group(wg, nwg);
    let a = affine(ch);
    var s = vec4f(0.0);
    var sx = vec4f(0.0);
    var len: u32;
    var k = run_walk(li, p.n, p.h, p.w / 4u, &len);
    for (var i = 0u; i < len && k.n < p.n; i++) {
        let j = vec_at(k, ch);
        let xv = x_vec[j];
        let g = grad4(j, xv, k.n, ch, k.r, 4u * k.c, a);
        s += g;
        sx += g * (xv - a.mu) * a.is;
        step(&k);
    }
    let r = group_sum(li, vec4f(s.x + s.y + s.z + s.w, sx.x + sx.y + sx.z + sx.w, 0.0, 0.0));
    if (li == 0u) {
        dbeta[ch] = r.x;
        dgamma[ch] = r.y;
    }
}
