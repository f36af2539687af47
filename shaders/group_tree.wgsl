// import: group.wgsl
// group_tree.wgsl — the group reductions of group.wgsl in workgroup memory: a fixed halving
// tree (slot i takes slot i + half, half = GROUP/2 .. 1), so results are bit-reproducible. What
// the blocked family runs, and the tiled family on adapters without subgroups.
//
// Bindings (group 0): none (see group.wgsl).

var<workgroup> group_part: array<vec4f, GROUP>;

// Stores v in this invocation's slot after every earlier use of the slots has finished.
fn group_put(li: u32, v: vec4f) {
    workgroupBarrier();
    group_part[li] = v;
    workgroupBarrier();
}

fn group_sum(li: u32, v: vec4f) -> vec4f {
    group_put(li, v);
    for (var half = GROUP / 2u; half > 0u; half >>= 1u) {
        if (li < half) { group_part[li] += group_part[li + half]; }
        workgroupBarrier();
    }
    return group_part[0];
}

fn group_max(li: u32, v: f32) -> f32 {
    group_put(li, vec4f(v));
    for (var half = GROUP / 2u; half > 0u; half >>= 1u) {
        if (li < half) { group_part[li].x = max(group_part[li].x, group_part[li + half].x); }
        workgroupBarrier();
    }
    return group_part[0].x;
}

fn group_welford(li: u32, v: vec3f) -> vec3f {
    group_put(li, vec4f(v, 0.0));
    for (var half = GROUP / 2u; half > 0u; half >>= 1u) {
        if (li < half) { group_part[li] = vec4f(welford_merge(group_part[li].xyz, group_part[li + half].xyz), 0.0); }
        workgroupBarrier();
    }
    return group_part[0].xyz;
}
