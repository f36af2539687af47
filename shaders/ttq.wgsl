// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// ttq.wgsl — Trained Ternary Quantization (Zhu, Han, Mao, Dally, ICLR 2017), per layer.
//
// Bindings (group 0):
//   0 p       uniform  TtqParams { len, threshold }   threshold = t (Δ = t·max|w|)
//   1 w       storage read        [len]  latent full-precision weights
//   2 maxabs  storage read_write  [1]    max |w| (reduce.wgsl/max_abs; quantize_layer writes it)
//   3 wp      storage read        [1]    positive scale Wp
//   4 wn      storage read        [1]    negative scale Wn
//   5 wq      storage read_write  [len]  ternary weights {−Wn, 0, +Wp}
//   6 gq      storage read        [len]  ∂L/∂wq
//   7 dw      storage read_write  [len]  ∂L/∂w
//   8 dwp     storage read_write  [1]    ∂L/∂Wp
//   9 dwn     storage read_write  [1]    ∂L/∂Wn
//   10 partial storage read_write  [p.splits, 2]  backward_split's per-range (Σ_pos g, Σ_neg g)
//   11 w_vec   storage read        w as vec4s (quantize_vec)
//   12 wq_vec  storage read_write  wq as vec4s (quantize_vec, in place of wq)
//
// quantize: one invocation per weight, 256 per workgroup, 2-D grid.
//   wq = +Wp where w > Δ, 0 where |w| ≤ Δ, −Wn where w < −Δ.
// quantize_vec: quantize four weights per invocation (len a multiple of 4), so that a CPU
//   driver loops over the lanes once per four weights, and once per four for Δ, Wp and Wn.
// quantize_layer: max|w| and quantize_vec in one workgroup of GROUP (launch one; the blocked
//   family, whose max|w| is one workgroup's anyway): group_max, maxabs[0] for the backward, then
//   the layer's weights, in one dispatch instead of two (on CPU drivers each dispatch has a
//   fixed cost that these small kernels mostly are). The maximum, and so every wq, is the same.
// backward: a single workgroup of 256 (launch one) strides over the layer:
//   ∂L/∂w = Wp·g on the positive set, g on the zero set, Wn·g on the negative set;
//   ∂L/∂Wp = Σ_{w > Δ} g,  ∂L/∂Wn = −Σ_{w < −Δ} g  (wq = −Wn there, hence the sign),
//   both summed by group_sum (group.wgsl: a fixed order, deterministic).
// backward_split, backward_merge (the tiled family, large layers): workgroup s of p.splits does
//   the same over the s-th contiguous range and writes its two sums to partial[s]; one
//   invocation then adds the ranges' sums in order into ∂L/∂Wp and ∂L/∂Wn.

override WG: u32 = 256u;
override GROUP: u32 = 256u; // the reductions' workgroup (group.wgsl): a power of two

struct TtqParams { len: u32, threshold: f32, splits: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: TtqParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> maxabs: array<f32>;
@group(0) @binding(3) var<storage, read> wp: array<f32>;
@group(0) @binding(4) var<storage, read> wn: array<f32>;
@group(0) @binding(5) var<storage, read_write> wq: array<f32>;
@group(0) @binding(6) var<storage, read> gq: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> dwp: array<f32>;
@group(0) @binding(9) var<storage, read_write> dwn: array<f32>;
@group(0) @binding(10) var<storage, read_write> partial: array<f32>;
@group(0) @binding(11) var<storage, read> w_vec: array<vec4f>;
@group(0) @binding(12) var<storage, read_write> wq_vec: array<vec4f>;

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    let delta = p.threshold * maxabs[0];
    let v = w[i];
    wq[i] = select(select(0.0, -wn[0], v < -delta), wp[0], v > delta);
}

@compute @workgroup_size(WG)
fn quantize_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len / 4u) { return; }
    let delta = p.threshold * maxabs[0];
    let v = w_vec[i];
    wq_vec[i] = select(select(vec4f(0.0), vec4f(-wn[0]), v < vec4f(-delta)), vec4f(wp[0]), v > vec4f(delta));
}

@compute @workgroup_size(GROUP)
fn quantize_layer(@builtin(local_invocation_index) li: u32) {
    let n = p.len / 4u;
    var m = 0.0;
    for (var i = li; i < n; i += GROUP) {
        let v = abs(w_vec[i]);
        m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
    }
    let top = group_max(li, m);
    if (li == 0u) { maxabs[0] = top; }
    let delta = vec4f(p.threshold * top);
    let pos = vec4f(wp[0]);
    let neg = vec4f(-wn[0]);
    for (var i = li; i < n; i += GROUP) {
        let v = w_vec[i];
        wq_vec[i] = select(select(vec4f(0.0), neg, v < -delta), pos, v > delta);
    }
}

// ∂L/∂w over [start, end) and the workgroup's (Σ_pos g, Σ_neg g) there; every invocation
// returns the sums.
fn backward_range(li: u32, start: u32, end: u32) -> vec2f {
    let delta = p.threshold * maxabs[0];
    let scale_p = wp[0];
    let scale_n = wn[0];
    var sp = 0.0;
    var sn = 0.0;
    // Selects, not branches: a CPU driver would run each branch's store under a mask.
    for (var i = start + li; i < end; i += GROUP) {
        let g = gq[i];
        let v = w[i];
        let pos = v > delta;
        let neg = v < -delta;
        dw[i] = select(select(1.0, scale_n, neg), scale_p, pos) * g;
        sp += select(0.0, g, pos);
        sn += select(0.0, g, neg);
    }
    return group_sum(li, vec4f(sp, sn, 0.0, 0.0)).xy;
}

@compute @workgroup_size(GROUP)
fn backward(@builtin(local_invocation_index) li: u32) {
    let s = backward_range(li, 0u, p.len);
    if (li == 0u) {
        dwp[0] = s.x;
        dwn[0] = -s.y;
    }
}

@compute @workgroup_size(GROUP)
fn backward_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = backward_range(li, r.x, r.y);
    if (li == 0u) {
        partial[2u * wg.x] = s.x;
        partial[2u * wg.x + 1u] = s.y;
    }
}

@compute @workgroup_size(1)
fn backward_merge() {
    var s = vec2f(0.0);
    for (var k = 0u; k < p.splits; k++) {
        s += vec2f(partial[2u * k], partial[2u * k + 1u]);
    }
    dwp[0] = s.x;
    dwn[0] = -s.y;
}
