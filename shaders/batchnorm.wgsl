// batchnorm.wgsl — batch normalisation over (n, h, w) per channel, NCHW.
//
// Bindings (group 0):
//   0  p             uniform  BatchNormParams
//   1  x             storage read        [n, c, hw]  input
//   2  y             storage read_write  [n, c, hw]  output
//   3  gamma         storage read        [c]         scale
//   4  beta          storage read        [c]         shift
//   5  mean          storage read_write  [c]         batch mean (saved for backward)
//   6  invstd        storage read_write  [c]         1 / sqrt(batch var + eps) (saved)
//   7  running_mean  storage read_write  [c]
//   8  running_var   storage read_write  [c]         unbiased, as PyTorch
//   9  dy            storage read        [n, c, hw]  gradient of y
//   10 dx            storage read_write  [n, c, hw]  gradient of x
//   11 dgamma        storage read_write  [c]         Σ dy·x̂
//   12 dbeta         storage read_write  [c]         Σ dy
//
// stats, backward_reduce: one workgroup of 256 per channel; each strides over the channel's
//   n·hw values, then a fixed-order tree in workgroup memory (deterministic). stats uses two
//   passes (mean, then Σ(x − mean)²) for accuracy.
//   Each invocation walks its values with (n, k) counters, so no division per value.
// forward, backward: one invocation per element, 256 per workgroup, 2-D grid.
// running_stats (evaluation): one invocation per channel copies the running statistics into
//   mean/invstd, so evaluation runs the same `forward`.

override WG: u32 = 256u; // a power of two: the reductions halve it

struct BatchNormParams { n: u32, c: u32, hw: u32, eps: f32, momentum: f32 }

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

var<workgroup> tree: array<f32, WG>;
var<workgroup> tree2: array<f32, WG>;

fn element(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

// Position of value m = li, li + 256, ... of a channel: image n, offset k within the plane.
struct Cursor { n: u32, k: u32, dn: u32, dk: u32 }

fn cursor(li: u32) -> Cursor {
    return Cursor(li / p.hw, li % p.hw, WG / p.hw, WG % p.hw);
}

fn advance(q: ptr<function, Cursor>) {
    (*q).k += (*q).dk;
    (*q).n += (*q).dn;
    if ((*q).k >= p.hw) {
        (*q).k -= p.hw;
        (*q).n += 1u;
    }
}

// Tree-sum tree[] (and tree2[]) in place; the result lands in slot 0.
fn tree_sum(li: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (li < half) {
            tree[li] += tree[li + half];
            tree2[li] += tree2[li + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let count = p.n * p.hw;
    var s = 0.0;
    var q = cursor(li);
    for (var m = li; m < count; m += WG) {
        s += x[(q.n * p.c + c) * p.hw + q.k];
        advance(&q);
    }
    tree[li] = s;
    tree2[li] = 0.0;
    tree_sum(li);
    let mu = tree[0] / f32(count);
    workgroupBarrier();
    var v = 0.0;
    q = cursor(li);
    for (var m = li; m < count; m += WG) {
        let d = x[(q.n * p.c + c) * p.hw + q.k] - mu;
        v += d * d;
        advance(&q);
    }
    tree[li] = v;
    tree_sum(li);
    if (li == 0u) {
        let var_biased = tree[0] / f32(count);
        mean[c] = mu;
        invstd[c] = inverseSqrt(var_biased + p.eps);
        let unbiased = tree[0] / f32(max(count, 2u) - 1u);
        running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mu;
        running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.n * p.c * p.hw) { return; }
    let c = (i / p.hw) % p.c;
    y[i] = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
}

// Evaluation: the saved statistics become the running ones, then `forward` normalises.
@compute @workgroup_size(WG)
fn running_stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
    let c = (wg.y * nwg.x + wg.x) * WG + li;
    if (c >= p.c) { return; }
    mean[c] = running_mean[c];
    invstd[c] = inverseSqrt(running_var[c] + p.eps);
}

@compute @workgroup_size(WG)
fn backward_reduce(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let mu = mean[c];
    let is = invstd[c];
    var s = 0.0;
    var sx = 0.0;
    var q = cursor(li);
    for (var m = li; m < p.n * p.hw; m += WG) {
        let k = (q.n * p.c + c) * p.hw + q.k;
        s += dy[k];
        sx += dy[k] * (x[k] - mu) * is;
        advance(&q);
    }
    tree[li] = s;
    tree2[li] = sx;
    tree_sum(li);
    if (li == 0u) {
        dbeta[c] = tree[0];
        dgamma[c] = tree2[0];
    }
}

// dx = γ·invstd · (dy − Σdy/M − x̂ · Σ(dy·x̂)/M), M = n·hw
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.n * p.c * p.hw) { return; }
    let c = (i / p.hw) % p.c;
    let count = f32(p.n * p.hw);
    let xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = gamma[c] * invstd[c] * (dy[i] - dbeta[c] / count - xhat * dgamma[c] / count);
}
