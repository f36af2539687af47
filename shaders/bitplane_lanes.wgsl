// import: bitplane.wgsl
// bitplane_lanes.wgsl — the popcount convolution of packed_conv.wgsl's `bitplane` entry point
// (same bindings, parameters, layouts and results) on adapters whose subgroups have at least 8
// lanes: the blocked family's fast path on CPU drivers (llvmpipe), for the 3×3 convolutions.
//
// Bindings (group 0), as packed_conv.wgsl:
//   0 p          uniform  PackedConvParams (the same struct as packed_conv.wgsl)
//   4 wp         storage read  [1] or [cout] (p.per_channel)
//   5 wn         storage read  [1] or [cout]
//   7 scale      storage read  [cout]  folded batch norm: γ / √(var + ε)
//   8 shift      storage read  [cout]  β − mean · scale
//   13 act_pos   storage read  [(h+2·pad)·(w+2·pad), words, n4] as vec4: activation planes (+1)
//   14 act_neg   storage read  the same for −1
//   15 weight_pos storage read  weight planes [rows / 8, kh·kw, words, 8], read as u32 here
//   16 weight_neg storage read  the same for −Wn
//   18 res4      storage read  [res_c, res_h, res_w, n4] as vec4: the residual (RESIDUAL = 1)
//   19 y4        storage read_write  [cout, oh, ow, n4] as vec4: the output
//
// Mapping: packed_conv.wgsl's (one output pixel and 4 images per invocation), with BLOCK_CH
// output channels per workgroup: 16 (two groups of the weight planes, each activation word
// loaded once for both) where the layer has more than 8, else 8. On a CPU driver a load whose address differs between invocations
// costs one scalar access per invocation and component; the weight words and the epilogue's
// per-channel terms are the same for the whole workgroup, so lane l of each subgroup loads
// those of output channel co0 + l alone and subgroupBroadcast hands them to every lane.
// The epilogue's residual and ReLU are pipeline constants (llvmpipe runs both sides of an `if`
// on a uniform); accumulation (training) is packed_conv.wgsl's.

override WG: u32 = 64u;
override RESIDUAL: u32 = 0u;
override RELU: u32 = 0u;
override BLOCK_CH: u32 = 16u;

struct PackedConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, per_channel: u32,
    relu: u32, residual: u32, res_c: u32, res_h: u32,
    res_w: u32, res_stride: u32, res_pad_c: u32, words: u32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PackedConvParams;
@group(0) @binding(4) var<storage, read> wp: array<f32>;
@group(0) @binding(5) var<storage, read> wn: array<f32>;
@group(0) @binding(7) var<storage, read> scale: array<f32>;
@group(0) @binding(8) var<storage, read> shift: array<f32>;
@group(0) @binding(13) var<storage, read> act_pos: array<vec4u>;
@group(0) @binding(14) var<storage, read> act_neg: array<vec4u>;
@group(0) @binding(15) var<storage, read> weight_pos: array<u32>;
@group(0) @binding(16) var<storage, read> weight_neg: array<u32>;
@group(0) @binding(18) var<storage, read> res4: array<vec4f>;
@group(0) @binding(19) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(WG)
fn bitplane(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sub: u32) {
    let it = plane_item(wg, nwg, li, WG, BLOCK_CH);
    if (it.co0 >= p.cout) { return; }
    let lane = sub % PLANE_ROWS;
    let quads = (p.n + 3u) / 4u;
    let pw = p.w + 2u * p.pad;
    var acc0 = vec4i(0);
    var acc1 = vec4i(0);
    var acc2 = vec4i(0);
    var acc3 = vec4i(0);
    var acc4 = vec4i(0);
    var acc5 = vec4i(0);
    var acc6 = vec4i(0);
    var acc7 = vec4i(0);
    var acc8 = vec4i(0);
    var acc9 = vec4i(0);
    var acc10 = vec4i(0);
    var acc11 = vec4i(0);
    var acc12 = vec4i(0);
    var acc13 = vec4i(0);
    var acc14 = vec4i(0);
    var acc15 = vec4i(0);
    // Rows co0 + 8 .. co0 + 15 are the next group of the weight planes; where they do not
    // exist the lanes reread the first group (in bounds) and the epilogue stores nothing.
    let taps = p.kh * p.kw * p.words;
    let upper = select(0u, taps * PLANE_ROWS, BLOCK_CH == 16u && it.co0 + PLANE_ROWS < p.cout);
    // This lane's channel's weight word at (tap, word).
    var wi = (it.co0 / PLANE_ROWS) * taps * PLANE_ROWS + lane;
    for (var di = 0u; di < p.kh; di++) {
        for (var dj = 0u; dj < p.kw; dj++) {
            var at = (it.corner + di * pw + dj) * p.words * quads + it.quad;
            for (var word = 0u; word < p.words; word++) {
                let ap = act_pos[at];
                let an = act_neg[at];
                at += quads;
                let wpos = weight_pos[wi];
                let wneg = weight_neg[wi];
                let upos = weight_pos[wi + upper];
                let uneg = weight_neg[wi + upper];
                wi += PLANE_ROWS;
                acc0 += counts(subgroupBroadcast(wpos, 0u), subgroupBroadcast(wneg, 0u), ap, an);
                acc1 += counts(subgroupBroadcast(wpos, 1u), subgroupBroadcast(wneg, 1u), ap, an);
                acc2 += counts(subgroupBroadcast(wpos, 2u), subgroupBroadcast(wneg, 2u), ap, an);
                acc3 += counts(subgroupBroadcast(wpos, 3u), subgroupBroadcast(wneg, 3u), ap, an);
                acc4 += counts(subgroupBroadcast(wpos, 4u), subgroupBroadcast(wneg, 4u), ap, an);
                acc5 += counts(subgroupBroadcast(wpos, 5u), subgroupBroadcast(wneg, 5u), ap, an);
                acc6 += counts(subgroupBroadcast(wpos, 6u), subgroupBroadcast(wneg, 6u), ap, an);
                acc7 += counts(subgroupBroadcast(wpos, 7u), subgroupBroadcast(wneg, 7u), ap, an);
                if (BLOCK_CH == 16u) {
                    acc8 += counts(subgroupBroadcast(upos, 0u), subgroupBroadcast(uneg, 0u), ap, an);
                    acc9 += counts(subgroupBroadcast(upos, 1u), subgroupBroadcast(uneg, 1u), ap, an);
                    acc10 += counts(subgroupBroadcast(upos, 2u), subgroupBroadcast(uneg, 2u), ap, an);
                    acc11 += counts(subgroupBroadcast(upos, 3u), subgroupBroadcast(uneg, 3u), ap, an);
                    acc12 += counts(subgroupBroadcast(upos, 4u), subgroupBroadcast(uneg, 4u), ap, an);
                    acc13 += counts(subgroupBroadcast(upos, 5u), subgroupBroadcast(uneg, 5u), ap, an);
                    acc14 += counts(subgroupBroadcast(upos, 6u), subgroupBroadcast(uneg, 6u), ap, an);
                    acc15 += counts(subgroupBroadcast(upos, 7u), subgroupBroadcast(uneg, 7u), ap, an);
                }
            }
        }
    }
    let k = channel_terms(it.co0 + lane);
    let co0 = it.co0;
    let quad = it.quad;
    let rc = it.rc;
    let live = it.live;
    let residual = RESIDUAL == 1u;
    let relu = RELU == 1u;
    store_images(co0, quad, rc, live, acc0, subgroupBroadcast(k, 0u), residual, false, relu);
    store_images(co0 + 1u, quad, rc, live, acc1, subgroupBroadcast(k, 1u), residual, false, relu);
    store_images(co0 + 2u, quad, rc, live, acc2, subgroupBroadcast(k, 2u), residual, false, relu);
    store_images(co0 + 3u, quad, rc, live, acc3, subgroupBroadcast(k, 3u), residual, false, relu);
    store_images(co0 + 4u, quad, rc, live, acc4, subgroupBroadcast(k, 4u), residual, false, relu);
    store_images(co0 + 5u, quad, rc, live, acc5, subgroupBroadcast(k, 5u), residual, false, relu);
    store_images(co0 + 6u, quad, rc, live, acc6, subgroupBroadcast(k, 6u), residual, false, relu);
    store_images(co0 + 7u, quad, rc, live, acc7, subgroupBroadcast(k, 7u), residual, false, relu);
    if (BLOCK_CH == 16u) {
        let k8 = channel_terms(co0 + PLANE_ROWS + lane);
        store_images(co0 + 8u, quad, rc, live, acc8, subgroupBroadcast(k8, 0u), residual, false, relu);
        store_images(co0 + 9u, quad, rc, live, acc9, subgroupBroadcast(k8, 1u), residual, false, relu);
        store_images(co0 + 10u, quad, rc, live, acc10, subgroupBroadcast(k8, 2u), residual, false, relu);
        store_images(co0 + 11u, quad, rc, live, acc11, subgroupBroadcast(k8, 3u), residual, false, relu);
        store_images(co0 + 12u, quad, rc, live, acc12, subgroupBroadcast(k8, 4u), residual, false, relu);
        store_images(co0 + 13u, quad, rc, live, acc13, subgroupBroadcast(k8, 5u), residual, false, relu);
        store_images(co0 + 14u, quad, rc, live, acc14, subgroupBroadcast(k8, 6u), residual, false, relu);
        store_images(co0 + 15u, quad, rc, live, acc15, subgroupBroadcast(k8, 7u), residual, false, relu);
    }
}
