// linear.wgsl — fully connected layer y = x·wᵀ + b.
//
// Bindings (group 0):
//   0 p   uniform  LinearParams { n, fin, fout }
//   1 x   storage read        [n, fin]
//   2 w   storage read        [fout, fin]
//   3 b   storage read        [fout]
//   4 y   storage read_write  [n, fout]
//   5 dy  storage read        [n, fout]
//   6 dx  storage read_write  [n, fin]
//   7 dw  storage read_write  [fout, fin]
//   8 db  storage read_write  [fout]
//
// One invocation per output element, 64 per workgroup, 2-D grid; each runs its dot product or
// its sum over the batch in index order (deterministic). grad_weight also writes db: the
// invocation for column 0 of each row adds up dy for that output.

override WG: u32 = 64u;

struct LinearParams { n: u32, fin: u32, fout: u32 }

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

fn element(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.n * p.fout) { return; }
    let row = i / p.fout;
    let o = i % p.fout;
    var s = b[o];
    for (var k = 0u; k < p.fin; k++) { s += x[row * p.fin + k] * w[o * p.fin + k]; }
    y[i] = s;
}

@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.n * p.fin) { return; }
    let row = i / p.fin;
    let k = i % p.fin;
    var s = 0.0;
    for (var o = 0u; o < p.fout; o++) { s += dy[row * p.fout + o] * w[o * p.fin + k]; }
    dx[i] = s;
}

@compute @workgroup_size(WG)
fn grad_weight(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.fout * p.fin) { return; }
    let o = i / p.fin;
    let k = i % p.fin;
    var s = 0.0;
    for (var row = 0u; row < p.n; row++) { s += dy[row * p.fout + o] * x[row * p.fin + k]; }
    dw[i] = s;
    if (k == 0u) {
        var sb = 0.0;
        for (var row = 0u; row < p.n; row++) { sb += dy[row * p.fout + o]; }
        db[o] = sb;
    }
}
