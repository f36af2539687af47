// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// twn.wgsl — Ternary Weight Networks (Li & Liu 2016), the baseline quantizer, per layer.
//
// Bindings (group 0):
//   0 p      uniform  TwnParams { len }
//   1 w      storage read        [len]  latent full-precision weights
//   2 delta_alpha storage read_write  [2]    [Δ, α]: Δ = 0.7·mean|w|, α = mean |w| over |w| > Δ
//   3 wq     storage read_write  [len]  α·sign(w) where |w| > Δ, else 0
//   4 partial storage read_write [p.splits, 2]  per-range sums (the split statistics)
//
// stats: a single workgroup of 256 (launch one), two strided passes, each summed by group_sum
//   (group.wgsl: a fixed order).
// The tiled family's split statistics, for large layers: sum_split (workgroup s of p.splits
//   sums |w| over the s-th contiguous range), set_delta (one invocation adds the ranges in
//   order), above_split (Σ|w| and count above Δ per range), set_alpha (likewise): fixed orders,
//   so results are bit-identical from run to run.
// quantize: one invocation per weight, 256 per workgroup, 2-D grid.
// The backward pass is the straight-through estimator ∂L/∂w = ∂L/∂wq: the convolution writes its
// weight gradient straight into the latent gradient, so there is no backward entry point.

override WG: u32 = 256u;
override GROUP: u32 = 256u; // the reductions' workgroup (group.wgsl): a power of two

struct TwnParams { len: u32, splits: u32 }

@group(0) @binding(0) var<uniform> p: TwnParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> delta_alpha: array<f32>;
@group(0) @binding(3) var<storage, read_write> wq: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

// Σ|w| over [start, end); every invocation returns it.
fn sum_abs(li: u32, start: u32, end: u32) -> f32 {
    var s = 0.0;
    for (var i = start + li; i < end; i += GROUP) { s += abs(w[i]); }
    return group_sum(li, vec4f(s, 0.0, 0.0, 0.0)).x;
}

// (Σ|w|, count) over |w| > delta in [start, end); every invocation returns it.
fn sum_above(li: u32, start: u32, end: u32, delta: f32) -> vec2f {
    var above = 0.0;
    var count = 0.0;
    for (var i = start + li; i < end; i += GROUP) {
        let a = abs(w[i]);
        if (a > delta) {
            above += a;
            count += 1.0;
        }
    }
    return group_sum(li, vec4f(above, count, 0.0, 0.0)).xy;
}

fn alpha(s: vec2f) -> f32 {
    return select(0.0, s.x / s.y, s.y > 0.0);
}

@compute @workgroup_size(GROUP)
fn stats(@builtin(local_invocation_index) li: u32) {
    let delta = 0.7 * sum_abs(li, 0u, p.len) / f32(p.len);
    let s = sum_above(li, 0u, p.len, delta);
    if (li == 0u) {
        delta_alpha[0] = delta;
        delta_alpha[1] = alpha(s);
    }
}

@compute @workgroup_size(GROUP)
fn sum_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = sum_abs(li, r.x, r.y);
    if (li == 0u) { partial[2u * wg.x] = s; }
}

@compute @workgroup_size(1)
fn set_delta() {
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) { s += partial[2u * k]; }
    delta_alpha[0] = 0.7 * s / f32(p.len);
}

@compute @workgroup_size(GROUP)
fn above_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = sum_above(li, r.x, r.y, delta_alpha[0]);
    if (li == 0u) {
        partial[2u * wg.x] = s.x;
        partial[2u * wg.x + 1u] = s.y;
    }
}

@compute @workgroup_size(1)
fn set_alpha() {
    var s = vec2f(0.0);
    for (var k = 0u; k < p.splits; k++) { s += vec2f(partial[2u * k], partial[2u * k + 1u]); }
    delta_alpha[1] = alpha(s);
}

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    let v = w[i];
    wq[i] = select(0.0, sign(v) * delta_alpha[1], abs(v) > delta_alpha[0]);
}
