// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// loss.wgsl — softmax cross-entropy (mean over the batch) with prediction counting.
//
// Bindings (group 0):
//   0 p        uniform  LossParams { n, classes }
//   1 logits   storage read        [n, classes]
//   2 labels   storage read        [n] u32, each < classes (checked on the host)
//   3 dlogits  storage read_write  [n, classes]  (softmax − onehot) / n
//   4 loss     storage read_write  [n]           per-sample −log softmax[label]
//   5 pred     storage read_write  [n] u32       arg-max class (first on ties)
//   6 metrics  storage read_write  [4]           running [Σ loss, Σ correct, Σ samples, 0]
//   7 partial  storage read_write  [p.splits, 2] per-range sums (the split accumulation)
//
// forward: one invocation per sample, 64 per workgroup, 2-D grid.
// accumulate: a single workgroup of 256; group_sum over the batch (group.wgsl: a fixed order),
//   then adds the batch totals to `metrics`, which the host reads (and zeroes) only every few
//   steps.
// accumulate_split, accumulate_merge (the tiled family, batches over 4096 samples): workgroup s
//   sums the s-th of p.splits contiguous ranges into partial[s]; one invocation then adds the
//   ranges in order to `metrics`.

override WG: u32 = 64u;
override GROUP: u32 = 256u; // the reduction's workgroup (group.wgsl): a power of two

struct LossParams { n: u32, classes: u32, splits: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> pred: array<u32>;
@group(0) @binding(6) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.n) { return; }
    let row = i * p.classes;
    var best = 0u;
    for (var k = 1u; k < p.classes; k++) {
        if (logits[row + k] > logits[row + best]) { best = k; }
    }
    let top = logits[row + best];
    var z = 0.0;
    for (var k = 0u; k < p.classes; k++) { z += exp(logits[row + k] - top); }
    let label = labels[i];
    loss[i] = log(z) + top - logits[row + label];
    pred[i] = best;
    let scale = 1.0 / f32(p.n);
    for (var k = 0u; k < p.classes; k++) {
        let prob = exp(logits[row + k] - top) / z;
        dlogits[row + k] = (prob - select(0.0, 1.0, k == label)) * scale;
    }
}

// (Σ loss, Σ correct) over samples [start, end); every invocation returns them.
fn sums(li: u32, start: u32, end: u32) -> vec2f {
    var l = 0.0;
    var c = 0.0;
    for (var i = start + li; i < end; i += GROUP) {
        l += loss[i];
        c += select(0.0, 1.0, pred[i] == labels[i]);
    }
    return group_sum(li, vec4f(l, c, 0.0, 0.0)).xy;
}

fn add_metrics(s: vec2f) {
    metrics[0] += s.x;
    metrics[1] += s.y;
    metrics[2] += f32(p.n);
}

@compute @workgroup_size(GROUP)
fn accumulate(@builtin(local_invocation_index) li: u32) {
    let s = sums(li, 0u, p.n);
    if (li == 0u) { add_metrics(s); }
}

@compute @workgroup_size(GROUP)
fn accumulate_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.n);
    let s = sums(li, r.x, r.y);
    if (li == 0u) {
        partial[2u * wg.x] = s.x;
        partial[2u * wg.x + 1u] = s.y;
    }
}

@compute @workgroup_size(1)
fn accumulate_merge() {
    var s = vec2f(0.0);
    for (var k = 0u; k < p.splits; k++) { s += vec2f(partial[2u * k], partial[2u * k + 1u]); }
    add_metrics(s);
}
