// shortcut.wgsl — option A shortcut of CIFAR ResNets (He et al. 2016 §4.2): subsample by
// `stride` and zero-pad channels equally on both sides, so cout = cin + 2·pad_c.
//
// Bindings (group 0):
//   0 p   uniform  ShortcutParams { n, cin, h, w, cout, oh, ow, stride, pad_c }
//   1 x   storage read        [n, cin, h, w]
//   2 y   storage read_write  [n, cout, oh, ow]
//   3 dy  storage read        [n, cout, oh, ow]
//   4 dx  storage read_write  [n, cin, h, w]
//
// One invocation per output (forward) or input (backward) element, 256 per workgroup, 2-D grid.

override WG: u32 = 256u;

struct ShortcutParams { n: u32, cin: u32, h: u32, w: u32, cout: u32, oh: u32, ow: u32, stride: u32, pad_c: u32 }

@group(0) @binding(0) var<uniform> p: ShortcutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn element(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    let out_hw = p.oh * p.ow;
    if (i >= p.n * p.cout * out_hw) { return; }
    let n = i / (p.cout * out_hw);
    let c = (i / out_hw) % p.cout;
    let r = (i % out_hw) / p.ow;
    let col = i % p.ow;
    var v = 0.0;
    if (c >= p.pad_c && c < p.pad_c + p.cin) {
        v = x[((n * p.cin + c - p.pad_c) * p.h + r * p.stride) * p.w + col * p.stride];
    }
    y[i] = v;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    let in_hw = p.h * p.w;
    if (i >= p.n * p.cin * in_hw) { return; }
    let n = i / (p.cin * in_hw);
    let c = (i / in_hw) % p.cin;
    let r = (i % in_hw) / p.w;
    let col = i % p.w;
    var g = 0.0;
    if (r % p.stride == 0u && col % p.stride == 0u && r / p.stride < p.oh && col / p.stride < p.ow) {
        g = dy[((n * p.cout + c + p.pad_c) * p.oh + r / p.stride) * p.ow + col / p.stride];
    }
    dx[i] = g;
}
