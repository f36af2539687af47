// roofline.wgsl — the adapter's ceilings, for `tern bench --suite roofline` and the fractions
// in `tern profile`: memory bandwidth (a copy) and arithmetic throughput (a multiply-add loop).
//
// Bindings (group 0):
//   0 p     uniform  RooflineParams { len, iters }
//   1 src   storage read        [len] f32       copy: source
//   2 dst   storage read_write  [len] f32       copy: destination; multiply_add: one value per
//                                               invocation
//   3 src4  storage read        [len / 4] vec4  copy4: source
//   4 dst4  storage read_write  [len / 4] vec4  copy4: destination
//
// copy: one invocation per element, WG (256) per workgroup; copy4: one invocation per 4
// elements (one vec4 load and store); the better of the two is the bandwidth ceiling. Grids
// folded to 2-D (index = (wg.y · nwg.x + wg.x) · WG + local index).
// multiply_add: each invocation runs 3 independent vec4 chains of fused multiply-adds (12
// scalar chains, enough to hide the latency of a 4-cycle FMA on 2 ports), 4 steps of each chain
// per loop iteration, p.iters iterations, then stores their sum: 96·p.iters flops per
// invocation, no memory traffic in the loop. The chains converge (x ← 0.999·x + 0.001), so
// nothing overflows.

struct RooflineParams { len: u32, iters: u32 }

// Workgroup sizes are override constants; the host reads them from the compiled pipeline.
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: RooflineParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> src4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dst4: array<vec4f>;

fn index(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn copy(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { dst[i] = src[i]; }
}

@compute @workgroup_size(WG)
fn copy4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len / 4u) { dst4[i] = src4[i]; }
}

@compute @workgroup_size(WG)
fn multiply_add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    let m = vec4f(0.999);
    let c = vec4f(0.001);
    var a = vec4f(f32(li)) * 1e-3;
    var b = a + vec4f(0.25);
    var d = a + vec4f(0.5);
    for (var k = 0u; k < p.iters; k++) {
        a = fma(a, m, c);
        b = fma(b, m, c);
        d = fma(d, m, c);
        a = fma(a, m, c);
        b = fma(b, m, c);
        d = fma(d, m, c);
        a = fma(a, m, c);
        b = fma(b, m, c);
        d = fma(d, m, c);
        a = fma(a, m, c);
        b = fma(b, m, c);
        d = fma(d, m, c);
    }
    let s = a + b + d;
    if (i < p.len) { dst[i] = s.x + s.y + s.z + s.w; }
}
