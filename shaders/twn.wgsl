// twn.wgsl — Ternary Weight Networks (Li & Liu 2016), the baseline quantizer, per layer.
//
// Bindings (group 0):
//   0 p      uniform  TwnParams { len }
//   1 w      storage read        [len]  latent full-precision weights
//   2 delta_alpha storage read_write  [2]    [Δ, α]: Δ = 0.7·mean|w|, α = mean |w| over |w| > Δ
//   3 wq     storage read_write  [len]  α·sign(w) where |w| > Δ, else 0
//
// stats: a single workgroup of 256 (launch one), two strided passes with fixed-order trees.
// quantize: one invocation per weight, 256 per workgroup, 2-D grid.
// The backward pass is the straight-through estimator ∂L/∂w = ∂L/∂wq: the convolution writes its
// weight gradient straight into the latent gradient, so there is no backward entry point.

override WG: u32 = 256u; // a power of two: the reductions halve it

struct TwnParams { len: u32 }

@group(0) @binding(0) var<uniform> p: TwnParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> delta_alpha: array<f32>;
@group(0) @binding(3) var<storage, read_write> wq: array<f32>;

var<workgroup> tree_sum: array<f32, WG>;
var<workgroup> tree_count: array<f32, WG>;

fn reduce(li: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (li < half) {
            tree_sum[li] += tree_sum[li + half];
            tree_count[li] += tree_count[li + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn stats(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < p.len; i += WG) { s += abs(w[i]); }
    tree_sum[li] = s;
    tree_count[li] = 0.0;
    reduce(li);
    let delta = 0.7 * tree_sum[0] / f32(p.len);
    workgroupBarrier();
    var above = 0.0;
    var count = 0.0;
    for (var i = li; i < p.len; i += WG) {
        let a = abs(w[i]);
        if (a > delta) {
            above += a;
            count += 1.0;
        }
    }
    tree_sum[li] = above;
    tree_count[li] = count;
    reduce(li);
    if (li == 0u) {
        delta_alpha[0] = delta;
        delta_alpha[1] = select(0.0, tree_sum[0] / tree_count[0], tree_count[0] > 0.0);
    }
}

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    let v = w[i];
    wq[i] = select(0.0, sign(v) * delta_alpha[1], abs(v) > delta_alpha[0]);
}
