// import: group_tree.wgsl|group_subgroup.wgsl
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
// scale, backward: one workgroup of 64 per output channel; summed by group_sum
//   (group.wgsl: a fixed order, deterministic).
// quantize, clamp_latent: one invocation per weight, 256 per workgroup, 2-D grid.
// backward, with G = Σ_channel g·(sign(w1) + sign(w2)):
//   ∂L/∂w1 = g·α·1{|w1| ≤ 1} + G·sign(w1)/(2n)   (straight-through sign, plus the path through α)
//   and the same for w2.

override WG: u32 = 256u;
override GROUP: u32 = 64u; // the reductions' workgroup (group.wgsl): a power of two

struct SttnParams { cout: u32, per_channel: u32, len: u32 }

@group(0) @binding(0) var<uniform> p: SttnParams;
@group(0) @binding(1) var<storage, read_write> w1: array<f32>;
@group(0) @binding(2) var<storage, read_write> w2: array<f32>;
@group(0) @binding(3) var<storage, read_write> alpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> wq: array<f32>;
@group(0) @binding(5) var<storage, read> gq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw1: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw2: array<f32>;

fn sgn(v: f32) -> f32 {
    return select(-1.0, 1.0, v >= 0.0);
}

// Σ v over the workgroup; every invocation returns it.
fn total(li: u32, v: f32) -> f32 {
    return group_sum(li, vec4f(v, 0.0, 0.0, 0.0)).x;
}

@compute @workgroup_size(GROUP)
fn scale(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let base = c * p.per_channel;
    var s = 0.0;
    for (var i = li; i < p.per_channel; i += GROUP) { s += abs(w1[base + i]) + abs(w2[base + i]); }
    let sum = total(li, s);
    if (li == 0u) { alpha[c] = sum / (2.0 * f32(p.per_channel)); }
}

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    wq[i] = alpha[i / p.per_channel] * (sgn(w1[i]) + sgn(w2[i]));
}

@compute @workgroup_size(GROUP)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let c = wg.y * nwg.x + wg.x;
    let base = c * p.per_channel;
    var s = 0.0;
    for (var i = li; i < p.per_channel; i += GROUP) {
        s += gq[base + i] * (sgn(w1[base + i]) + sgn(w2[base + i]));
    }
    let g_alpha = total(li, s) / (2.0 * f32(p.per_channel));
    let a = alpha[c];
    for (var i = li; i < p.per_channel; i += GROUP) {
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
