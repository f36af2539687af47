// group.wgsl — reductions over one workgroup, and the ranges of split reductions, for the
// shaders whose header says they use them.
// Not a shader on its own: a shader that reduces begins with
//   // import: group_tree.wgsl|group_subgroup.wgsl
// (with group.wgsl first if it calls split_range or welford_merge itself), and the host puts
// one implementation of the group_* functions before it, after this file, which both import:
// group_tree.wgsl (workgroup memory) or group_subgroup.wgsl (subgroup operations: adapters
// with subgroups, in the tiled family). Any tool resolves the file the same way.
//
// Bindings (group 0): none. The including file declares `override GROUP` (a power of two) and
// launches its reductions with @workgroup_size(GROUP); every invocation of the workgroup calls
// each function (they hold barriers) and gets the result:
//   group_sum(li, v: vec4f) -> vec4f      Σ v over the workgroup, per component
//   group_max(li, v: f32) -> f32          max v over the workgroup (v ≥ 0)
//   group_welford(li, v: vec3f) -> vec3f  Welford partials (count, mean, M2) merged by
//                                         welford_merge
// Both implementations merge in a fixed order: results are bit-reproducible on one adapter.
// A split reduction's workgroup s reduces split_range(s, splits, len) and a second kernel adds
// the ranges' results in order.

// [start, end) of the s-th of `splits` contiguous ranges of `len` values (the last may be short
// or empty).
fn split_range(s: u32, splits: u32, len: u32) -> vec2u {
    let per = (len + splits - 1u) / splits;
    return vec2u(min(s * per, len), min((s + 1u) * per, len));
}

// Merge Welford partials (count, mean, M2) b into a (Chan et al.). Zero counts merge exactly.
fn welford_merge(a: vec3f, b: vec3f) -> vec3f {
    let n = a.x + b.x;
    if (n == 0.0) { return vec3f(0.0); }
    let d = b.y - a.y;
    let f = b.x / n;
    return vec3f(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}
