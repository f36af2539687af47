// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// reduce.wgsl — deterministic reductions shared by several ops.
//
// Bindings (group 0):
//   0 p        uniform  ReduceParams { len, splits }
//   1 partial  storage read        [splits, len]   per-split partial sums (conv2d grad_weight)
//   2 total    storage read_write  [len]           sum_splits output
//   3 src      storage read        [len]           max_abs input
//   4 result   storage read_write  [1]             max_abs output: max |src|
//   5 maxima   storage read_write  [p.splits]      max_abs_split output: max |src| per range
//   6 partial_vec, 7 total_vec, 8 src_vec: partial, total and src as vec4s (the *_vec entries)
//
// sum_splits: one invocation per output element, 64 per workgroup (grid folded to 2-D), adds
//   the splits in index order. sum_splits_vec: the same four elements per invocation (len a
//   multiple of 4), one loop over the lanes per four on CPU drivers; the same sums.
// max_abs: a single workgroup of 256 strides over src, then group_max (group.wgsl); launch
//   exactly one workgroup. Per-layer weight tensors are small, so one workgroup
//   is enough on a CPU driver. max_abs_vec: the same over vec4s (len a multiple of 4).
// max_abs_split (the tiled family): workgroup s of p.splits takes the s-th of p.splits
//   contiguous ranges of src the same way and writes maxima[s]; max_abs over maxima then gives
//   the result. A maximum does not depend on the order: the result is bit-identical either way.

override WG: u32 = 64u;
override GROUP: u32 = 256u; // the reduction's workgroup (group.wgsl): a power of two

struct ReduceParams { len: u32, splits: u32 }

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> result: array<f32>;
@group(0) @binding(5) var<storage, read_write> maxima: array<f32>;
@group(0) @binding(6) var<storage, read> partial_vec: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> total_vec: array<vec4f>;
@group(0) @binding(8) var<storage, read> src_vec: array<vec4f>;

@compute @workgroup_size(WG)
fn sum_splits(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        s += partial[k * p.len + i];
    }
    total[i] = s;
}

@compute @workgroup_size(WG)
fn sum_splits_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    let len = p.len / 4u;
    if (i >= len) { return; }
    var s = vec4f(0.0);
    for (var k = 0u; k < p.splits; k++) {
        s += partial_vec[k * len + i];
    }
    total_vec[i] = s;
}

// max |src[i]| for i in [start, end), every invocation returns it.
fn range_max(li: u32, start: u32, end: u32) -> f32 {
    var m = 0.0;
    for (var i = start + li; i < end; i += GROUP) {
        m = max(m, abs(src[i]));
    }
    return group_max(li, m);
}

@compute @workgroup_size(GROUP)
fn max_abs(@builtin(local_invocation_index) li: u32) {
    let m = range_max(li, 0u, p.len);
    if (li == 0u) { result[0] = m; }
}

@compute @workgroup_size(GROUP)
fn max_abs_vec(@builtin(local_invocation_index) li: u32) {
    var m = vec4f(0.0);
    for (var i = li; i < p.len / 4u; i += GROUP) {
        m = max(m, abs(src_vec[i]));
    }
    let r = group_max(li, max(max(m.x, m.y), max(m.z, m.w)));
    if (li == 0u) { result[0] = r; }
}

@compute @workgroup_size(GROUP)
fn max_abs_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let m = range_max(li, r.x, r.y);
    if (li == 0u) { maxima[wg.x] = m; }
}
