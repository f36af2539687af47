// activation.wgsl — elementwise ReLU, the ternary activation of STTN, and addition (residual
// joins).
//
// Bindings (group 0):
//   0 p    uniform  ActivationParams { len }
//   1 x    storage read        [len]  relu input
//   2 y    storage read_write  [len]  relu output
//   3 dy   storage read        [len]  gradient of y
//   4 dx   storage read_write  [len]  gradient of x
//   5 a    storage read        [len]  add operand
//   6 b    storage read        [len]  add operand
//   7 sum  storage read_write  [len]  a + b
//
// One invocation per element, 256 per workgroup, grid folded to 2-D.
// relu_backward masks dy with the forward input x (the gradient at x = 0 is taken as 0).
// ternary_forward: y = +1 above 0.5, −1 below −0.5, else 0 (Xu et al. 2020);
// ternary_backward: straight-through, dx = dy where |x| ≤ 1, else 0.

override WG: u32 = 256u;

struct ActivationParams { len: u32 }

@group(0) @binding(0) var<uniform> p: ActivationParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read> a: array<f32>;
@group(0) @binding(6) var<storage, read> b: array<f32>;
@group(0) @binding(7) var<storage, read_write> sum: array<f32>;

fn index(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { y[i] = max(x[i], 0.0); }
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { dx[i] = select(0.0, dy[i], x[i] > 0.0); }
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { sum[i] = a[i] + b[i]; }
}

@compute @workgroup_size(WG)
fn ternary_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { y[i] = select(select(0.0, -1.0, x[i] < -0.5), 1.0, x[i] > 0.5); }
}

@compute @workgroup_size(WG)
fn ternary_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
    let i = index(wg, nwg, li);
    if (i < p.len) { dx[i] = select(0.0, dy[i], abs(x[i]) <= 1.0); }
}
