// pool.wgsl — max pooling (k×k window, stride s, no padding) and global average pooling, NCHW.
//
// Bindings (group 0):
//   0 p   uniform  PoolParams { n, c, h, w, oh, ow, k, stride }
//   1 x   storage read        [n, c, h, w]
//   2 y   storage read_write  [n, c, oh, ow]   ([n, c] for the global average)
//   3 dy  storage read        like y
//   4 dx  storage read_write  like x
//
// One invocation per output element (forward) or per input element (backward), 256 per
// workgroup, 2-D grid. max_backward recomputes each window's arg-max instead of storing it;
// ties go to the first position in row-major order, as in PyTorch. When windows do not overlap
// (k = stride, the common 2×2/2 pool) max_backward runs one invocation per output element that
// writes its whole window (and any uncovered last rows and columns), which avoids per-input
// index arithmetic.

override WG: u32 = 256u;

struct PoolParams { n: u32, c: u32, h: u32, w: u32, oh: u32, ow: u32, k: u32, stride: u32 }

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn element(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

// Flat index within the plane of the largest value in the window at (r, c).
fn argmax(plane: u32, r: u32, c: u32) -> u32 {
    var best = plane + r * p.stride * p.w + c * p.stride;
    for (var i = 0u; i < p.k; i++) {
        for (var j = 0u; j < p.k; j++) {
            let at = plane + (r * p.stride + i) * p.w + c * p.stride + j;
            if (x[at] > x[best]) { best = at; }
        }
    }
    return best;
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    let out_hw = p.oh * p.ow;
    if (i >= p.n * p.c * out_hw) { return; }
    let plane = (i / out_hw) * p.h * p.w;
    let rc = i % out_hw;
    y[i] = x[argmax(plane, rc / p.ow, rc % p.ow)];
}

// Each input element gathers dy from every window that selected it.
@compute @workgroup_size(WG)
fn max_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (p.k == p.stride) {
        max_backward_disjoint(i);
        return;
    }
    let in_hw = p.h * p.w;
    if (i >= p.n * p.c * in_hw) { return; }
    let nc = i / in_hw;
    let r = (i % in_hw) / p.w;
    let c = i % p.w;
    // Windows containing (r, c): rows r0..=r1, cols c0..=c1 of the output.
    let r1 = min(r / p.stride, p.oh - 1u);
    let c1 = min(c / p.stride, p.ow - 1u);
    let r0 = select(0u, (r - p.k + p.stride) / p.stride, r + p.stride >= p.k);
    let c0 = select(0u, (c - p.k + p.stride) / p.stride, c + p.stride >= p.k);
    var g = 0.0;
    for (var orow = r0; orow <= r1; orow++) {
        for (var ocol = c0; ocol <= c1; ocol++) {
            if (orow * p.stride + p.k <= r || ocol * p.stride + p.k <= c) { continue; }
            if (argmax(nc * in_hw, orow, ocol) == i) {
                g += dy[(nc * p.oh + orow) * p.ow + ocol];
            }
        }
    }
    dx[i] = g;
}

// Non-overlapping windows: output element o owns its k×k window, extended to the plane's edge
// when it is the last row or column of windows.
fn max_backward_disjoint(o: u32) {
    let out_hw = p.oh * p.ow;
    if (o >= p.n * p.c * out_hw) { return; }
    let nc = o / out_hw;
    let orow = (o % out_hw) / p.ow;
    let ocol = o % p.ow;
    let plane = nc * p.h * p.w;
    let best = argmax(plane, orow, ocol);
    let g = dy[o];
    let r_end = select(orow * p.k + p.k, p.h, orow + 1u == p.oh);
    let c_end = select(ocol * p.k + p.k, p.w, ocol + 1u == p.ow);
    for (var r = orow * p.k; r < r_end; r++) {
        for (var c = ocol * p.k; c < c_end; c++) {
            let at = plane + r * p.w + c;
            dx[at] = select(0.0, g, at == best);
        }
    }
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.n * p.c) { return; }
    let hw = p.h * p.w;
    var s = 0.0;
    for (var k = 0u; k < hw; k++) { s += x[i * hw + k]; }
    y[i] = s / f32(hw);
}

@compute @workgroup_size(WG)
fn avg_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    let hw = p.h * p.w;
    if (i >= p.n * p.c * hw) { return; }
    dx[i] = dy[i / hw] / f32(hw);
}
