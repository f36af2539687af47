// sttn.wgsl — Soft Threshold Ternary Networks (Xu et al., IJCAI 2020): each ternary kernel is
// trained as two binary kernels, T = α·(sign(W1) + sign(W2)) ∈ {−2α, 0, +2α}, with one scale per
// output channel, α = (‖W1‖₁ + ‖W2‖₁) / (2n) over the channel's n weights. The threshold is
// implicit: a weight is zero where the two signs disagree.
//
// Bindings (group 0):
//   0 p      uniform  SttnParams { cout, per_channel (n), len }
//   1 w1     storage read_write  [len]   first latent kernel (clamped to [−1, 1] by `clamp`)
//   2 w2     storage read_write  [len]   second latent kernel
//   3 alpha  storage read_write  [cout]  per-channel scale
//   4 wq     storage read_write  [len]   ternary weights
//   5 gq     storage read        [len]   ∂L/∂wq
//   6 dw1    storage read_write  [len]   ∂L/∂w1
//   7 dw2    storage read_write  [len]   ∂L/∂w2
//
// sign(v) = +1 for v ≥ 0, else −1.
// scale, backward: one workgroup of 64 per output channel; fixed-order trees (deterministic).
// quantize, clamp_latent: one invocation per weight, 256 per workgroup, 2-D grid.
// backward, with G = Σ_channel g·(sign(w1) + sign(w2)):
//   ∂L/∂w1 = g·α·1{|w1| ≤ 1} + G·sign(w1)/(2n)   (straight-through sign, plus the path through α)
//   and the same for w2.

override WG: u32 = 256u;
override TREE: u32 = 64u; // a power of two: the reductions halve it

struct SttnParams { cout: u32, per_channel: u32, len: u32 }

@group(0) @binding(0) var<uniform> p: SttnParams;
@group(0) @binding(1) var<storage, read_write> w1: array<f32>;
@group(0) @binding(2) var<storage, read_write> w2: array<f32>;
@group(0) @binding(3) var<storage, read_write> alpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> wq: array<f32>;
@group(0) @binding(5) var<storage, read> gq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw1: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw2: array<f32>;

var<workgroup> tree: array<f32, TREE>;

fn sgn(v: f32) -> f32 {
    return select(-1.0, 1.0, v >= 0.0);
}

fn tree_sum(li: u32, v: f32) -> f32 {
    tree[li] = v;
    workgroupBarrier();
    for (var half = TREE / 2u; half > 0u; half >>= 1u) {
        if (li < half) { tree[li] += tree[li + half]; }
        workgroupBarrier();
    }
    let s = tree[0];
    workgroupBarrier();
    return s;
}

@compute @workgroup_size(TREE)
fn scale(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let base = c * p.per_channel;
    var s = 0.0;
    for (var i = li; i < p.per_channel; i += TREE) { s += abs(w1[base + i]) + abs(w2[base + i]); }
    let total = tree_sum(li, s);
    if (li == 0u) { alpha[c] = total / (2.0 * f32(p.per_channel)); }
}

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    wq[i] = alpha[i / p.per_channel] * (sgn(w1[i]) + sgn(w2[i]));
}

@compute @workgroup_size(TREE)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let base = c * p.per_channel;
    var s = 0.0;
    for (var i = li; i < p.per_channel; i += TREE) {
        s += gq[base + i] * (sgn(w1[base + i]) + sgn(w2[base + i]));
    }
    let g_alpha = tree_sum(li, s) / (2.0 * f32(p.per_channel));
    let a = alpha[c];
    for (var i = li; i < p.per_channel; i += TREE) {
        let k = base + i;
        let g = gq[k];
        dw1[k] = select(0.0, g * a, abs(w1[k]) <= 1.0) + g_alpha * sgn(w1[k]);
        dw2[k] = select(0.0, g * a, abs(w2[k]) <= 1.0) + g_alpha * sgn(w2[k]);
    }
}

@compute @workgroup_size(WG)
fn clamp_latent(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    w1[i] = clamp(w1[i], -1.0, 1.0);
    w2[i] = clamp(w2[i], -1.0, 1.0);
}
