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
//
// forward: one invocation per sample, 64 per workgroup, 2-D grid.
// accumulate: a single workgroup of 256; group_sum over the batch (group.wgsl: a fixed order),
//   then adds the batch totals to `metrics`, which the host reads (and zeroes) only every few steps.

override WG: u32 = 64u;
override GROUP: u32 = 256u; // the reduction's workgroup (group.wgsl): a power of two

struct LossParams { n: u32, classes: u32 }

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> pred: array<u32>;
@group(0) @binding(6) var<storage, read_write> metrics: array<f32>;

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

@compute @workgroup_size(GROUP)
fn accumulate(@builtin(local_invocation_index) li: u32) {
    var l = 0.0;
    var c = 0.0;
    for (var i = li; i < p.n; i += GROUP) {
        l += loss[i];
        c += select(0.0, 1.0, pred[i] == labels[i]);
    }
    let s = group_sum(li, vec4f(l, c, 0.0, 0.0));
    if (li == 0u) {
        metrics[0] += s.x;
        metrics[1] += s.y;
        metrics[2] += f32(p.n);
    }
}
