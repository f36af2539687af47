// import: group.wgsl
// group_subgroup.wgsl — the group reductions of group.wgsl with subgroup operations, for adapters
// with subgroups in the tiled family: each subgroup reduces its lanes in registers, lane 0 of
// each stores the subgroup's partial, and the partials are reduced the same way by subgroups
// until one value remains (one more level for GROUP = 256 and 32-lane subgroups, against eight
// halving steps of the tree): fewer barriers and workgroup-memory round trips. Sums use
// subgroupAdd (the adapter's order, the same in every run); Welford partials go through a
// subgroupShuffleXor butterfly whose lane 0 merges in the tree's order, and lane 0's value is
// broadcast. Results are bit-reproducible on one adapter and differ from the tree's only by
// rounding.
//
// Bindings (group 0): none (see group.wgsl).
//
// Assumes, as every driver lays out a 1-D workgroup, that invocation li is lane li % size of
// subgroup li / size, and that GROUP is a multiple of the subgroup size (both powers of two).

var<workgroup> group_part: array<vec4f, GROUP>;
var<workgroup> group_size: u32;

// Invocations per subgroup, uniform over the workgroup (loop bounds around barriers must be).
// Later calls rewrite group_size with the same value.
fn subgroup_width(li: u32) -> u32 {
    let size = subgroupAdd(1u);
    if (li == 0u) { group_size = size; }
    return workgroupUniformLoad(&group_size);
}

// Lane 0's partial of each subgroup into slot li / size, then what this invocation reduces at
// the next level: slot li while more than `size` partials remain (subgroup j takes slots
// j·size ..), else slot li % size (every subgroup takes them all and returns the total).
// Empty slots read `zero`.
fn group_next(li: u32, size: u32, n: u32, t: vec4f, zero: vec4f) -> vec4f {
    workgroupBarrier();
    if (li % size == 0u) { group_part[li / size] = t; }
    workgroupBarrier();
    let at = select(li, li % size, n <= size);
    return select(zero, group_part[at], at < n);
}

fn group_sum(li: u32, v: vec4f) -> vec4f {
    let size = subgroup_width(li);
    var t = subgroupAdd(v);
    for (var n = GROUP / size; n > 1u; n = (n + size - 1u) / size) {
        t = subgroupAdd(group_next(li, size, n, t, vec4f(0.0)));
    }
    return t;
}

fn group_max(li: u32, v: f32) -> f32 {
    let size = subgroup_width(li);
    var t = subgroupMax(v);
    for (var n = GROUP / size; n > 1u; n = (n + size - 1u) / size) {
        t = subgroupMax(group_next(li, size, n, vec4f(t), vec4f(0.0)).x);
    }
    return t;
}

// The subgroup's Welford partials merged by a butterfly; lane 0's result (the tree's order).
fn welford_subgroup(v: vec3f, size: u32) -> vec3f {
    var t = v;
    for (var d = size / 2u; d > 0u; d >>= 1u) { t = welford_merge(t, subgroupShuffleXor(t, d)); }
    return subgroupBroadcast(t, 0u);
}

fn group_welford(li: u32, v: vec3f) -> vec3f {
    let size = subgroup_width(li);
    var t = welford_subgroup(v, size);
    for (var n = GROUP / size; n > 1u; n = (n + size - 1u) / size) {
        t = welford_subgroup(group_next(li, size, n, vec4f(t, 0.0), vec4f(0.0)).xyz, size);
    }
    return t;
}
