// import: bitplane.wgsl
// bitplane_lanes.wgsl — the popcount convolution of packed_conv.wgsl's `bitplane` entry point
// (same bindings, parameters, layouts and results) on adapters whose subgroups have at least 8
// lanes: the blocked family's fast path on CPU drivers (llvmpipe), for the 3×3 convolutions.
//
// Bindings (group 0), numbered as packed_conv.wgsl's, and the next unit's (20-23):
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
//   20 next_scale storage read  [cout]  the next unit's activation terms (NEXT ≠ 0):
//   21 next_shift storage read  [cout]  a = ternary(y·next_scale + next_shift)
//   22 next_pos   storage read_write  [(oh+2)·(ow+2), ⌈cout/32⌉, n4] as vec4: the next unit's
//                                     activation planes (+1), as pack_activations writes them
//                                     with pad 1; the border is left as it is (zeros)
//   23 next_neg   storage read_write  the same for −1
//
// Mapping: packed_conv.wgsl's (one output pixel and 4 images per invocation), with BLOCK_CH
// output channels per workgroup: 16 (two groups of the weight planes, each activation word
// loaded once for both) where the layer has more than 8, else 8. On a CPU driver a load whose
// address differs between invocations costs one scalar access per invocation and component;
// the weight words and the epilogue's per-channel terms are the same for the whole workgroup,
// so lane l of each subgroup loads those of output channel co0 + l alone and subgroupBroadcast
// hands them to every lane.
// The epilogue's residual and ReLU are pipeline constants (llvmpipe runs both sides of an `if`
// on a uniform); accumulation (training) is packed_conv.wgsl's.
//
// NEXT ≠ 0: the epilogue also packs the next unit's activations, so no pack_activations runs
// between the units. An invocation convolves the NEXT blocks of 16 channels of one 32-channel
// word (1 for a 16-channel layer), one after the other (32 accumulators at once do not fit in
// registers), and writes the word.

override WG: u32 = 64u;
override RESIDUAL: u32 = 0u;
override RELU: u32 = 0u;
override BLOCK_CH: u32 = 16u;
override NEXT: u32 = 0u;

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
@group(0) @binding(20) var<storage, read> next_scale: array<f32>;
@group(0) @binding(21) var<storage, read> next_shift: array<f32>;
@group(0) @binding(22) var<storage, read_write> next_pos: array<vec4u>;
@group(0) @binding(23) var<storage, read_write> next_neg: array<vec4u>;

@compute @workgroup_size(WG)
fn bitplane(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sub: u32) {
    let it = plane_item(wg, nwg, li, WG, select(BLOCK_CH, 2u * BLOCK_CH, NEXT == 2u));
    if (it.co0 >= p.cout) { return; }
    let lane = sub % PLANE_ROWS;
    var bits: array<vec4u, 2>;
    convolve(it, it.co0, lane, &bits);
    // A pipeline constant: llvmpipe would run a skipped second block under an empty mask.
    if (NEXT == 2u) { convolve(it, it.co0 + BLOCK_CH, lane, &bits); }
    if (NEXT != 0u) { write_next(it, bits); }
}

// Output channels co0 .. co0 + BLOCK_CH − 1 of the item, through the epilogue (and, NEXT, into
// the next unit's bits).
fn convolve(it: PlaneItem, co0: u32, lane: u32, bits: ptr<function, array<vec4u, 2>>) {
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
    let second = select(0u, taps * PLANE_ROWS, BLOCK_CH == 16u && co0 + PLANE_ROWS < p.cout);
    // This lane's channel's weight word at (tap, word).
    var wi = (co0 / PLANE_ROWS) * taps * PLANE_ROWS + lane;
    for (var di = 0u; di < p.kh; di++) {
        for (var dj = 0u; dj < p.kw; dj++) {
            var at = (it.corner + di * pw + dj) * p.words * quads + it.quad;
            for (var word = 0u; word < p.words; word++) {
                let ap = act_pos[at];
                let an = act_neg[at];
                at += quads;
                let wpos = weight_pos[wi];
                let wneg = weight_neg[wi];
                let upos = weight_pos[wi + second];
                let uneg = weight_neg[wi + second];
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
    let k = channel_terms(co0 + lane);
    let k8 = channel_terms(co0 + PLANE_ROWS + lane);
    var nk = vec4f(0.0);
    if (NEXT != 0u) { nk = next_terms(co0 + lane); }
    finish(it, co0 + 0u, acc0, subgroupBroadcast(k, 0u), subgroupBroadcast(nk.xy, 0u), bits);
    finish(it, co0 + 1u, acc1, subgroupBroadcast(k, 1u), subgroupBroadcast(nk.xy, 1u), bits);
    finish(it, co0 + 2u, acc2, subgroupBroadcast(k, 2u), subgroupBroadcast(nk.xy, 2u), bits);
    finish(it, co0 + 3u, acc3, subgroupBroadcast(k, 3u), subgroupBroadcast(nk.xy, 3u), bits);
    finish(it, co0 + 4u, acc4, subgroupBroadcast(k, 4u), subgroupBroadcast(nk.xy, 4u), bits);
    finish(it, co0 + 5u, acc5, subgroupBroadcast(k, 5u), subgroupBroadcast(nk.xy, 5u), bits);
    finish(it, co0 + 6u, acc6, subgroupBroadcast(k, 6u), subgroupBroadcast(nk.xy, 6u), bits);
    finish(it, co0 + 7u, acc7, subgroupBroadcast(k, 7u), subgroupBroadcast(nk.xy, 7u), bits);
    if (BLOCK_CH == 16u) {
        finish(it, co0 + 8u, acc8, subgroupBroadcast(k8, 0u), subgroupBroadcast(nk.zw, 0u), bits);
        finish(it, co0 + 9u, acc9, subgroupBroadcast(k8, 1u), subgroupBroadcast(nk.zw, 1u), bits);
        finish(it, co0 + 10u, acc10, subgroupBroadcast(k8, 2u), subgroupBroadcast(nk.zw, 2u), bits);
        finish(it, co0 + 11u, acc11, subgroupBroadcast(k8, 3u), subgroupBroadcast(nk.zw, 3u), bits);
        finish(it, co0 + 12u, acc12, subgroupBroadcast(k8, 4u), subgroupBroadcast(nk.zw, 4u), bits);
        finish(it, co0 + 13u, acc13, subgroupBroadcast(k8, 5u), subgroupBroadcast(nk.zw, 5u), bits);
        finish(it, co0 + 14u, acc14, subgroupBroadcast(k8, 6u), subgroupBroadcast(nk.zw, 6u), bits);
        finish(it, co0 + 15u, acc15, subgroupBroadcast(k8, 7u), subgroupBroadcast(nk.zw, 7u), bits);
    }
}

// The next unit's activation terms of channels c (xy) and c + 8 (zw); past cout, the last's.
fn next_terms(c: u32) -> vec4f {
    let a = min(c, p.cout - 1u);
    let b = min(c + PLANE_ROWS, p.cout - 1u);
    return vec4f(next_scale[a], next_shift[a], next_scale[b], next_shift[b]);
}

// Channel co of the item through the epilogue (terms k) and, NEXT, into the next unit's bits:
// +1 where y·s + t > 0.5, −1 below −0.5 (nk = (s, t)).
fn finish(it: PlaneItem, co: u32, acc: vec4i, k: vec4f, nk: vec2f, bits: ptr<function, array<vec4u, 2>>) {
    let y = store_images(co, it.quad, it.rc, it.live, acc, k, RESIDUAL == 1u, false, RELU == 1u);
    if (NEXT != 0u && co < p.cout) {
        let a = y * nk.x + nk.y;
        let bit = vec4u(1u << (co % 32u));
        (*bits)[0] |= select(vec4u(0u), bit, a > vec4f(0.5));
        (*bits)[1] |= select(vec4u(0u), bit, a < vec4f(-0.5));
    }
}

// The item's word of the next unit's planes, at its padded pixel (images past n zero).
fn write_next(it: PlaneItem, bits: array<vec4u, 2>) {
    if (!it.live) { return; }
    let images = vec4u(it.quad * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.n);
    let pixel = (it.rc.x + 1u) * (p.ow + 2u) + it.rc.y + 1u;
    let at = (pixel * ((p.cout + 31u) / 32u) + it.co0 / 32u) * ((p.n + 3u) / 4u) + it.quad;
    next_pos[at] = select(vec4u(0u), bits[0], images);
    next_neg[at] = select(vec4u(0u), bits[1], images);
}
