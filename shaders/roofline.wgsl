// roofline.wgsl — the adapter's ceilings, for `tern bench --suite roofline` and the fractions
// in `tern profile`: memory bandwidth (a copy), arithmetic throughput (a multiply-add loop) and
// bit-plane throughput (an AND + popcount loop).
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
// and_popcount: the bit-plane kernels' inner step, s += popcount(a & m), on 4 vec4u words
// against 2 masks that change every iteration (so nothing is hoisted out of the loop): 8
// independent vec4 chains, 32·p.iters steps per invocation, then the sum is stored.

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

@compute @workgroup_size(WG)
fn and_popcount(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    let a = vec4u(i) * vec4u(0x9e3779b9u, 0x85ebca6bu, 0xc2b2ae35u, 0x27d4eb2fu);
    let b = a ^ vec4u(0x55555555u);
    let c = a ^ vec4u(0x33333333u);
    let d = a ^ vec4u(0x0f0f0f0fu);
    var s0 = vec4u(0u);
    var s1 = vec4u(0u);
    var s2 = vec4u(0u);
    var s3 = vec4u(0u);
    var s4 = vec4u(0u);
    var s5 = vec4u(0u);
    var s6 = vec4u(0u);
    var s7 = vec4u(0u);
    for (var k = 0u; k < p.iters; k++) {
        let m = vec4u(k * 0x9e3779b9u);
        let n = vec4u(k * 0x85ebca6bu);
        s0 += countOneBits(a & m);
        s1 += countOneBits(b & m);
        s2 += countOneBits(c & m);
        s3 += countOneBits(d & m);
        s4 += countOneBits(a & n);
        s5 += countOneBits(b & n);
        s6 += countOneBits(c & n);
        s7 += countOneBits(d & n);
    }
    let s = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    if (i < p.len) { dst[i] = f32(s.x + s.y + s.z + s.w); }
}
