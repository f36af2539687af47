// import: bitplane.wgsl
// bitplane_lanes.wgsl — the popcount convolution of packed_conv.wgsl's `bitplane` entry point
// (same bindings, parameters, layouts and results) on adapters whose subgroups have at least 8
// lanes: the blocked family's fast path on CPU drivers (llvmpipe), for the 3×3 convolutions.
//
// Bindings (group 0), numbered as packed_conv.wgsl's, the next unit's (20-23) and the weight
// quads (24) in place of packed_conv.wgsl's weight planes (15, 16):
//   0 p          uniform  PackedConvParams (the same struct as packed_conv.wgsl)
//   4 wp         storage read  [1] or [cout] (p.per_channel)
//   5 wn         storage read  [1] or [cout]
//   7 scale      storage read  [cout]  folded batch norm: γ / √(var + ε)
//   8 shift      storage read  [cout]  β − mean · scale
//   13 act_pos   storage read  [(h+2·pad)·(w+2·pad), words, n4] as vec4: activation planes (+1)
//   14 act_neg   storage read  the same for −1
//   18 res4      storage read  [res_c, res_h, res_w, n4] as vec4: the residual (RESIDUAL = 1: the
//                                 identity, of y4's shape; 2: option A)
//   19 y4        storage read_write  [cout, oh, ow, n4] as vec4: the output
//   20 next_scale storage read  [cout]  the next unit's activation terms (NEXT ≠ 0):
//   21 next_shift storage read  [cout]  a = ternary(y·next_scale + next_shift)
//   22 next_pos   storage read_write  [(oh+2)·(ow+2), ⌈cout/32⌉, n4] as vec4: the next unit's
//                                     activation planes (+1), as pack_activations writes them
//                                     with pad 1; the border is left as it is (zeros)
//   23 next_neg   storage read_write  the same for −1
//   24 weight_quads storage read  [⌈cout/16⌉, kh·kw, words, 8] as vec4: (W+, W−) of channel
//                                 16·b + l, then of channel 16·b + 8 + l (packed::weight_quads)
//
// Mapping: packed_conv.wgsl's (one output pixel and 4 images per invocation; PIXELS = 2 or 4:
// neighbours in a row, which share every weight word and, at stride 1, most of their windows'
// columns of activation words; at stride 2 and with 4 only with PAIRS), with BLOCK_CH output
// channels per workgroup: 16 (each activation word loaded once for both groups of 8) where the
// layer has more than 8, else 8. On a CPU driver a load whose address differs between
// invocations costs one scalar access per invocation and component; the weight words and the
// epilogue's per-channel terms are the same for the whole workgroup, so lane l of each subgroup
// loads those of output channels co0 + l and co0 + 8 + l alone (the weight words in one vec4)
// and subgroupBroadcast hands them to every lane.
// The epilogue's residual and ReLU are pipeline constants (llvmpipe runs both sides of an `if`
// on a uniform); accumulation (training) is packed_conv.wgsl's.
//
// PAIRS ≠ 0 (layers of at most 16 input channels, symmetric counts, PIXELS = 2 or 4): a pair
// of neighbouring pixels' activation words, which fill only their low 16 bits, share one 32-bit
// word per tap (the right pixel's, PAIRS = the stride columns further on, in the high half),
// and the weight words hold their 16 bits twice. Each AND, OR and count then serves both
// pixels. The epilogue adds each half's two bytes.
//
// Byte counts (PAIRS or BYTES ≠ 0, symmetric counts of at most 15 calls per output: 3×3 taps of
// one word): a SWAR popcount counts each byte of the +1 products and of the complement of the
// −1 products (8 less their count) at once (byte_sums), and the accumulators sum the bytes,
// each under 256. The epilogue (split_bytes) adds the bytes of each half (PAIRS) or word
// (BYTES) and takes the offset of 8 per byte and call back off. The counts are never folded
// into a word per call.
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
override PIXELS: u32 = 1u;
override PAIRS: u32 = 0u;
override BYTES: u32 = 0u;

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
@group(0) @binding(18) var<storage, read> res4: array<vec4f>;
@group(0) @binding(19) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(20) var<storage, read> next_scale: array<f32>;
@group(0) @binding(21) var<storage, read> next_shift: array<f32>;
@group(0) @binding(22) var<storage, read_write> next_pos: array<vec4u>;
@group(0) @binding(23) var<storage, read_write> next_neg: array<vec4u>;
@group(0) @binding(24) var<storage, read> weight_quads: array<vec4u>;

@compute @workgroup_size(WG)
fn bitplane(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sub: u32) {
    let it = plane_item(wg, nwg, li, WG, select(BLOCK_CH, 2u * BLOCK_CH, NEXT == 2u), PIXELS);
    if (it.co0 >= p.cout) { return; }
    // Subgroups past the last item have nothing to compute or share.
    if (subgroupAll(!it.live)) { return; }
    let lane = sub % PLANE_ROWS;
    // The next unit's words (+1, −1) of the item's pixel k at 2k and 2k + 1.
    var bits: array<vec4u, 8>;
    convolve(it, it.co0, lane, &bits);
    // A pipeline constant: llvmpipe would run a skipped second block under an empty mask.
    if (NEXT == 2u) { convolve(it, it.co0 + BLOCK_CH, lane, &bits); }
    if (NEXT != 0u) {
        write_next(it, bits[0], bits[1]);
        if (PIXELS >= 2u) { write_next(pixel(it, 1u), bits[2], bits[3]); }
        if (PIXELS == 4u) {
            write_next(pixel(it, 2u), bits[4], bits[5]);
            write_next(pixel(it, 3u), bits[6], bits[7]);
        }
    }
}

// The item's pixel k, k columns to the right of its first.
fn pixel(it: PlaneItem, k: u32) -> PlaneItem {
    return PlaneItem(it.co0, it.quad, it.rc + vec2u(0u, k), it.corner + k * p.stride, it.live);
}

// The activation words (+1, −1) at `at`.
fn words(at: u32) -> array<vec4u, 2> {
    return array(act_pos[at], act_neg[at]);
}

// A pair of pixels' taps (PAIRS), the left one's window from `at`, the right one's PAIRS (the
// stride) columns on, into acc: weights w0, w1, w2 for the window's three columns.
fn pair_taps(acc: ptr<function, array<vec4i, 16>>, w0: vec4u, w1: vec4u, w2: vec4u, at: u32, column: u32) {
    let right = PAIRS * column;
    tap(acc, w0, halves(words(at), words(at + right)));
    tap(acc, w1, halves(words(at + column), words(at + column + right)));
    tap(acc, w2, halves(words(at + 2u * column), words(at + 2u * column + right)));
}

// Activation words a (the left pixel's tap) and b (the right pixel's) in one word each (PAIRS).
fn halves(a: array<vec4u, 2>, b: array<vec4u, 2>) -> array<vec4u, 2> {
    let high = vec4u(16u);
    return array(a[0] | (b[0] << high), a[1] | (b[1] << high));
}

// A lane's weight words: with PAIRS, each one's 16 bits in both halves.
fn weight_words(i: u32) -> vec4u {
    let w = weight_quads[i];
    if (PAIRS == 0u) { return w; }
    return w | (w << vec4u(16u));
}

// The signed counts of one weight word pair against the activation words: counts', or with
// PAIRS or BYTES those of each byte, each plus 8.
fn signed_counts(wpos: u32, wneg: u32, ap: vec4u, an: vec4u) -> vec4i {
    if (PAIRS == 0u && BYTES == 0u) { return counts(wpos, wneg, ap, an); }
    let wp4 = vec4u(wpos);
    let wn4 = vec4u(wneg);
    let plus = (wp4 & ap) | (wn4 & an);
    let minus = (wp4 & an) | (wn4 & ap);
    // A byte of ~minus counts 8 less the byte of minus.
    return bitcast<vec4i>(byte_sums(plus, ~minus));
}

// The popcount of each nibble of each word, in that nibble.
fn nibble_counts(x: vec4u) -> vec4u {
    let v = x - ((x >> vec4u(1u)) & vec4u(0x55555555u));
    return (v & vec4u(0x33333333u)) + ((v >> vec4u(2u)) & vec4u(0x33333333u));
}

// The popcounts of each byte of a and of b, summed in that byte (at most 16): the nibbles'
// counts are added first (at most 8 each), so the bytes' step runs once for both words.
fn byte_sums(a: vec4u, b: vec4u) -> vec4u {
    let n = nibble_counts(a) + nibble_counts(b);
    return (n & vec4u(0x0f0f0f0fu)) + ((n >> vec4u(4u)) & vec4u(0x0f0f0f0fu));
}

// Output channels co0 .. co0 + BLOCK_CH − 1 of the item's PIXELS pixels through the epilogue
// (and, NEXT, into the next unit's bits). acc holds the first pixel's sums (with PAIRS, the
// first two's), acc_right the second's (with PAIRS and PIXELS = 4, the last two's).
fn convolve(it: PlaneItem, co0: u32, lane: u32, bits: ptr<function, array<vec4u, 8>>) {
    let quads = (p.n + 3u) / 4u;
    let pw = p.w + 2u * p.pad;
    var acc: array<vec4i, 16>;
    var acc_right: array<vec4i, 16>;
    // This lane's channels' weight words (channels co0 + lane and co0 + 8 + lane, zero past
    // cout): tap (di, dj) of `word` at base + (dj·words + word)·8.
    let taps = p.kh * p.kw * p.words;
    let column = p.words * quads;
    var base = (co0 / (2u * PLANE_ROWS)) * taps * PLANE_ROWS + lane;
    for (var di = 0u; di < p.kh; di++) {
        var at = (it.corner + di * pw) * column + it.quad;
        for (var word = 0u; word < p.words; word++) {
            let w0 = weight_words(base + word * PLANE_ROWS);
            let w1 = weight_words(base + (p.words + word) * PLANE_ROWS);
            let w2 = weight_words(base + (2u * p.words + word) * PLANE_ROWS);
            if (PAIRS != 0u) {
                pair_taps(&acc, w0, w1, w2, at, column);
                // The second pair's window starts two pixels on.
                if (PIXELS == 4u) { pair_taps(&acc_right, w0, w1, w2, at + 2u * PAIRS * column, column); }
            } else {
                // The window's columns: 3, and with the second pixel 4, each loaded once.
                let a0 = words(at);
                let a1 = words(at + column);
                let a2 = words(at + 2u * column);
                tap(&acc, w0, a0);
                tap(&acc, w1, a1);
                tap(&acc, w2, a2);
                if (PIXELS == 2u) {
                    let a3 = words(at + 3u * column);
                    tap(&acc_right, w0, a1);
                    tap(&acc_right, w1, a2);
                    tap(&acc_right, w2, a3);
                }
            }
            at += quads;
        }
        base += p.kw * p.words * PLANE_ROWS;
    }
    let k = channel_terms(co0 + lane);
    let k8 = channel_terms(co0 + PLANE_ROWS + lane);
    var nk = vec4f(0.0);
    if (NEXT != 0u) { nk = next_terms(co0 + lane); }
    // With byte counts, each half's two bytes hold its count plus 16 per signed_counts call: one
    // per tap and word.
    let offset = vec4i(i32(16u * p.kh * p.kw * p.words));
    var high: array<vec4i, 16>;
    if (PAIRS == 0u) {
        if (BYTES != 0u) {
            split_bytes(&acc, &high, offset);
            if (PIXELS == 2u) { split_bytes(&acc_right, &high, offset); }
        }
        finish_block(it, co0, &acc, k, k8, nk, bits, 0u);
        if (PIXELS == 2u) { finish_block(pixel(it, 1u), co0, &acc_right, k, k8, nk, bits, 2u); }
        return;
    }
    split_bytes(&acc, &high, offset);
    finish_block(it, co0, &acc, k, k8, nk, bits, 0u);
    finish_block(pixel(it, 1u), co0, &high, k, k8, nk, bits, 2u);
    if (PIXELS == 4u) {
        split_bytes(&acc_right, &high, offset);
        finish_block(pixel(it, 2u), co0, &acc_right, k, k8, nk, bits, 4u);
        finish_block(pixel(it, 3u), co0, &high, k, k8, nk, bits, 6u);
    }
}

// The block's per-byte counts into counts, each half's less the offset that kept its bytes
// positive: with PAIRS the left pixels' in acc and the right's in high, with BYTES each word's
// (its two halves') in acc.
fn split_bytes(acc: ptr<function, array<vec4i, 16>>, high: ptr<function, array<vec4i, 16>>, offset: vec4i) {
    split_channel(acc, high, 0u, offset); split_channel(acc, high, 1u, offset);
    split_channel(acc, high, 2u, offset); split_channel(acc, high, 3u, offset);
    split_channel(acc, high, 4u, offset); split_channel(acc, high, 5u, offset);
    split_channel(acc, high, 6u, offset); split_channel(acc, high, 7u, offset);
    if (BLOCK_CH == 16u) {
        split_channel(acc, high, 8u, offset); split_channel(acc, high, 9u, offset);
        split_channel(acc, high, 10u, offset); split_channel(acc, high, 11u, offset);
        split_channel(acc, high, 12u, offset); split_channel(acc, high, 13u, offset);
        split_channel(acc, high, 14u, offset); split_channel(acc, high, 15u, offset);
    }
}

// split_bytes for channel c.
fn split_channel(acc: ptr<function, array<vec4i, 16>>, high: ptr<function, array<vec4i, 16>>, c: u32,
                 offset: vec4i) {
    let halves = byte_pairs((*acc)[c]);
    let low = vec4i(halves & vec4u(0xffffu)) - offset;
    let high_half = vec4i(halves >> vec4u(16u)) - offset;
    if (PAIRS != 0u) {
        (*acc)[c] = low;
        (*high)[c] = high_half;
    } else {
        (*acc)[c] = low + high_half;
    }
}

// Each half of each word: the sum of its two bytes.
fn byte_pairs(x: vec4i) -> vec4u {
    let bytes = bitcast<vec4u>(x);
    return (bytes & vec4u(0x00ff00ffu)) + ((bytes >> vec4u(8u)) & vec4u(0x00ff00ffu));
}

// One tap's activation words (+1, −1) of the item's 4 images against the block's 16 channels'
// weight words, lane l holding channel l's (w.xy) and channel 8 + l's (w.zw).
fn tap(acc: ptr<function, array<vec4i, 16>>, w: vec4u, a: array<vec4u, 2>) {
    (*acc)[0] += signed_counts(subgroupBroadcast(w.x, 0u), subgroupBroadcast(w.y, 0u), a[0], a[1]);
    (*acc)[1] += signed_counts(subgroupBroadcast(w.x, 1u), subgroupBroadcast(w.y, 1u), a[0], a[1]);
    (*acc)[2] += signed_counts(subgroupBroadcast(w.x, 2u), subgroupBroadcast(w.y, 2u), a[0], a[1]);
    (*acc)[3] += signed_counts(subgroupBroadcast(w.x, 3u), subgroupBroadcast(w.y, 3u), a[0], a[1]);
    (*acc)[4] += signed_counts(subgroupBroadcast(w.x, 4u), subgroupBroadcast(w.y, 4u), a[0], a[1]);
    (*acc)[5] += signed_counts(subgroupBroadcast(w.x, 5u), subgroupBroadcast(w.y, 5u), a[0], a[1]);
    (*acc)[6] += signed_counts(subgroupBroadcast(w.x, 6u), subgroupBroadcast(w.y, 6u), a[0], a[1]);
    (*acc)[7] += signed_counts(subgroupBroadcast(w.x, 7u), subgroupBroadcast(w.y, 7u), a[0], a[1]);
    if (BLOCK_CH == 16u) {
        (*acc)[8] += signed_counts(subgroupBroadcast(w.z, 0u), subgroupBroadcast(w.w, 0u), a[0], a[1]);
        (*acc)[9] += signed_counts(subgroupBroadcast(w.z, 1u), subgroupBroadcast(w.w, 1u), a[0], a[1]);
        (*acc)[10] += signed_counts(subgroupBroadcast(w.z, 2u), subgroupBroadcast(w.w, 2u), a[0], a[1]);
        (*acc)[11] += signed_counts(subgroupBroadcast(w.z, 3u), subgroupBroadcast(w.w, 3u), a[0], a[1]);
        (*acc)[12] += signed_counts(subgroupBroadcast(w.z, 4u), subgroupBroadcast(w.w, 4u), a[0], a[1]);
        (*acc)[13] += signed_counts(subgroupBroadcast(w.z, 5u), subgroupBroadcast(w.w, 5u), a[0], a[1]);
        (*acc)[14] += signed_counts(subgroupBroadcast(w.z, 6u), subgroupBroadcast(w.w, 6u), a[0], a[1]);
        (*acc)[15] += signed_counts(subgroupBroadcast(w.z, 7u), subgroupBroadcast(w.w, 7u), a[0], a[1]);
    }
}

// The block's channels co0 .. co0 + 15 of item `it` through the epilogue: lane l holds channel
// l's terms in k and channel 8 + l's in k8, their next-unit terms in nk (xy, zw).
fn finish_block(it: PlaneItem, co0: u32, acc: ptr<function, array<vec4i, 16>>, k: vec4f, k8: vec4f, nk: vec4f,
                bits: ptr<function, array<vec4u, 8>>, at: u32) {
    finish(it, co0 + 0u, (*acc)[0], subgroupBroadcast(k, 0u), subgroupBroadcast(nk.xy, 0u), bits, at);
    finish(it, co0 + 1u, (*acc)[1], subgroupBroadcast(k, 1u), subgroupBroadcast(nk.xy, 1u), bits, at);
    finish(it, co0 + 2u, (*acc)[2], subgroupBroadcast(k, 2u), subgroupBroadcast(nk.xy, 2u), bits, at);
    finish(it, co0 + 3u, (*acc)[3], subgroupBroadcast(k, 3u), subgroupBroadcast(nk.xy, 3u), bits, at);
    finish(it, co0 + 4u, (*acc)[4], subgroupBroadcast(k, 4u), subgroupBroadcast(nk.xy, 4u), bits, at);
    finish(it, co0 + 5u, (*acc)[5], subgroupBroadcast(k, 5u), subgroupBroadcast(nk.xy, 5u), bits, at);
    finish(it, co0 + 6u, (*acc)[6], subgroupBroadcast(k, 6u), subgroupBroadcast(nk.xy, 6u), bits, at);
    finish(it, co0 + 7u, (*acc)[7], subgroupBroadcast(k, 7u), subgroupBroadcast(nk.xy, 7u), bits, at);
    if (BLOCK_CH == 16u) {
        finish(it, co0 + 8u, (*acc)[8], subgroupBroadcast(k8, 0u), subgroupBroadcast(nk.zw, 0u), bits, at);
        finish(it, co0 + 9u, (*acc)[9], subgroupBroadcast(k8, 1u), subgroupBroadcast(nk.zw, 1u), bits, at);
        finish(it, co0 + 10u, (*acc)[10], subgroupBroadcast(k8, 2u), subgroupBroadcast(nk.zw, 2u), bits, at);
        finish(it, co0 + 11u, (*acc)[11], subgroupBroadcast(k8, 3u), subgroupBroadcast(nk.zw, 3u), bits, at);
        finish(it, co0 + 12u, (*acc)[12], subgroupBroadcast(k8, 4u), subgroupBroadcast(nk.zw, 4u), bits, at);
        finish(it, co0 + 13u, (*acc)[13], subgroupBroadcast(k8, 5u), subgroupBroadcast(nk.zw, 5u), bits, at);
        finish(it, co0 + 14u, (*acc)[14], subgroupBroadcast(k8, 6u), subgroupBroadcast(nk.zw, 6u), bits, at);
        finish(it, co0 + 15u, (*acc)[15], subgroupBroadcast(k8, 7u), subgroupBroadcast(nk.zw, 7u), bits, at);
    }
}

// The next unit's activation terms of channels c (xy) and c + 8 (zw); past cout, the last's.
fn next_terms(c: u32) -> vec4f {
    let a = min(c, p.cout - 1u);
    let b = min(c + PLANE_ROWS, p.cout - 1u);
    return vec4f(next_scale[a], next_shift[a], next_scale[b], next_shift[b]);
}

// Channel co of the item through the epilogue (terms k) and, NEXT, into the next unit's bits
// (`bits` at and at + 1): +1 where y·s + t > 0.5, −1 below −0.5 (nk = (s, t)).
fn finish(it: PlaneItem, co: u32, acc: vec4i, k: vec4f, nk: vec2f, bits: ptr<function, array<vec4u, 8>>, at: u32) {
    let y = store_images(co, it.quad, it.rc, it.live, acc, k, RESIDUAL, false, RELU == 1u);
    if (NEXT != 0u && co < p.cout) {
        let a = y * nk.x + nk.y;
        let bit = vec4u(1u << (co % 32u));
        (*bits)[at] |= select(vec4u(0u), bit, a > vec4f(0.5));
        (*bits)[at + 1u] |= select(vec4u(0u), bit, a < vec4f(-0.5));
    }
}

// The item's word of the next unit's planes, at its padded pixel (images past n zero).
fn write_next(it: PlaneItem, pos: vec4u, neg: vec4u) {
    if (!it.live) { return; }
    let images = vec4u(it.quad * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.n);
    let pixel = (it.rc.x + 1u) * (p.ow + 2u) + it.rc.y + 1u;
    let at = (pixel * ((p.cout + 31u) / 32u) + it.co0 / 32u) * ((p.n + 3u) / 4u) + it.quad;
    next_pos[at] = select(vec4u(0u), pos, images);
    next_neg[at] = select(vec4u(0u), neg, images);
}
