// import: lanes.wgsl packed_bits.wgsl
// packed_conv_lanes.wgsl — inference convolution from bit-packed ternary (or f32) weights with the
// folded batch norm, residual add and ReLU in the epilogue, for 3×3 kernels, padding 1, stride 1
// or 2, on adapters whose subgroups have at least 8 lanes: the blocked family's fast path on
// CPU drivers (llvmpipe). Same format, results and epilogue as packed_conv.wgsl, which the host
// uses for other shapes and adapters. NCHW. It imports lanes.wgsl (the register block, shared
// with conv2d_lanes.wgsl) and packed_bits.wgsl (bits32).
//
// Bindings (group 0):
//   0 p       uniform  PackedLanesParams
//   1 x       storage read        [n, cin, h, w]
//   2 pos     storage read        u32 words: bit i set ⇔ weight i is +Wp   (ternary)
//   3 neg     storage read        u32 words: bit i set ⇔ weight i is −Wn   (ternary)
//   4 wp      storage read        [1] or [cout] (p.per_channel)            (ternary)
//   5 wn      storage read        [1] or [cout]                            (ternary)
//   6 weight  storage read        [cout, cin, 3, 3] f32                    (dense)
//   7 scale   storage read        [cout]  folded batch norm: γ / √(var + ε)
//   8 shift   storage read        [cout]  β − mean · scale
//   9 res     storage read        [n, res_c, res_h, res_w]  residual input (RESIDUAL ≠ 0)
//   10 y      storage read_write  [n, cout, oh, ow], or with INTERLEAVED = 1 [cout, oh, ow, n4]
//                                 (images innermost, n4 = n rounded up to 4; the bit-plane
//                                 units' layout, ops::bitplane::interleaved; images past n
//                                 are not written)
//   11 x_vec  storage read        x as vec4s (VEC_ROWS ≠ 0, lanes.wgsl)
//   12 y_vec  storage read_write  y as vec4s (the *_vec entries, in place of y)
//   13 res_vec storage read       res as vec4s (the *_vec entries)
//
// Ternary weight i is the i-th in [cout, kh, kw, cin] order, bit i % 32 of word i / 32 (see
// packed_conv.wgsl).
//
// Mapping: BLOCK_CH output channels (16; 8 for layers of at most 8 channels) × 8 consecutive
// columns of ROWS output rows (four where the grid still fills the device, as conv2d_lanes.wgsl;
// two; one where a channel block has too few segments to fill a subgroup's lanes) per
// invocation, WG_LANES invocations along these segments (64; 8, one
// subgroup, for launches too small to give each core several workgroups: llvmpipe runs a
// workgroup on one thread), the channel block the same for the whole workgroup. Lane l
// of a subgroup owns output channels co0 + l and co0 + 8 + l: per 32 input channels it reads
// their codes for the 9 taps (two words each for W+ and W−: rows are not aligned), decodes each
// input channel's weight to +Wp, 0 or −Wn in registers, and subgroupBroadcast hands it to every
// lane; the dense entry loads the f32 weight instead. Per input channel, each of the 4 source
// rows (5 at stride 2; 10 values at stride 1, 17 at stride 2) is loaded once for up to 6 taps ×
// 16 channels × 8 columns, and each weight serves both rows (decoded once for two rows). Kernel
// rows are written out (private arrays are indexed by constants only: llvmpipe keeps them in
// registers). Invocations past the last segment repeat it without storing; subgroups made only
// of those return at once.
//
// Epilogue: v = conv·scale + shift, then + residual (RESIDUAL = 1: the identity; 2: option A,
// subsample by res_stride, channels offset by res_pad_c, zero outside), then + y's old value if
// ACCUMULATE = 1 (training's input gradients), then ReLU if RELU = 1: pipeline constants, like
// lanes.wgsl's STRIDE (llvmpipe would run both kinds of residual load on a uniform).
// INTERLEAVED = 1 (the host allows it without residual and ACCUMULATE) writes y for the
// bit-plane units that follow, so that no separate pass reorders it.
//
// ternary_vec, dense_vec: ternary and dense storing y, and loading an identity residual, four
// elements at a time (y_vec, res_vec) where every segment lies inside its row (ow a multiple of
// 8) and y is not interleaved: one loop over the lanes per vec4 instead of per element on CPU
// drivers. Entry points apart, because wgpu refuses one buffer bound writable twice.

override WG_LANES: u32 = 64u;
override RESIDUAL: u32 = 0u;
override ACCUMULATE: u32 = 0u;
override RELU: u32 = 0u;
override INTERLEAVED: u32 = 0u;

struct PackedLanesParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32,
    per_channel: u32, res_c: u32,
    res_h: u32, res_w: u32, res_stride: u32, res_pad_c: u32,
    segs_row: u32, segs: u32, groups: u32,
}

@group(0) @binding(0) var<uniform> p: PackedLanesParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> neg: array<u32>;
@group(0) @binding(4) var<storage, read> wp: array<f32>;
@group(0) @binding(5) var<storage, read> wn: array<f32>;
@group(0) @binding(6) var<storage, read> weight: array<f32>;
@group(0) @binding(7) var<storage, read> scale: array<f32>;
@group(0) @binding(8) var<storage, read> shift: array<f32>;
@group(0) @binding(9) var<storage, read> res: array<f32>;
@group(0) @binding(10) var<storage, read_write> y: array<f32>;
@group(0) @binding(11) var<storage, read> x_vec: array<vec4f>;
@group(0) @binding(12) var<storage, read_write> y_vec: array<vec4f>;
@group(0) @binding(13) var<storage, read> res_vec: array<vec4f>;

// lanes.wgsl's row_taps_vec reads x through these (mac_block through source_row).
fn source1(i: u32) -> f32 { return x[i]; }
fn source4(i: u32) -> vec4f { return x_vec[i]; }

fn x4(rb: u32, off: vec4u, ok: vec4f) -> vec4f {
    return vec4f(x[rb + off.x], x[rb + off.y], x[rb + off.z], x[rb + off.w]) * ok;
}

// Source row r (zero outside the image) as the three taps of 8 outputs (lanes.wgsl's
// taps_stride*).
fn source_row(plane: u32, r: i32, k: Cols) -> array<vec4f, 6> {
    let rok = select(0.0, 1.0, r >= 0 && r < i32(p.h));
    let rb = plane + u32(clamp(r, 0, i32(p.h) - 1)) * p.w;
    if (VEC_ROWS != 0u) { return row_taps_vec(rb, k, rok); }
    let a = x4(rb, k.off[0], k.ok[0] * rok);
    let b = x4(rb, k.off[1], k.ok[1] * rok);
    if (STRIDE == 2u) {
        let e = x[rb + k.off[4].x] * k.ok[4].x * rok;
        return taps_stride2(a, b, x4(rb, k.off[2], k.ok[2] * rok), x4(rb, k.off[3], k.ok[3] * rok), e);
    }
    return taps_stride1(a, b, vec2f(x[rb + k.off[2].x], x[rb + k.off[2].y]) * k.ok[2].xy * rok);
}

// Codes of input channels ci0 .. ci0 + 31 at tap t for this lane's channels a and b (b only when
// `upper`): (W+ of a, W− of a, W+ of b, W− of b).
fn codes(a: u32, b: u32, t: u32, ci0: u32, upper: bool) -> vec4u {
    let fa = (a * 9u + t) * p.cin + ci0;
    var c = vec4u(bits32(fa, false), bits32(fa, true), 0u, 0u);
    if (upper) {
        let fb = (b * 9u + t) * p.cin + ci0;
        c.z = bits32(fb, false);
        c.w = bits32(fb, true);
    }
    return c;
}

// Weights of input channel ci0 + k from codes: +Wp, 0 or −Wn for channels a and b.
fn decode(c: vec4u, k: u32, sp: vec2f, sn: vec2f) -> vec2f {
    let b = (c >> vec4u(k)) & vec4u(1u);
    return select(vec2f(0.0), sp, b.xz == vec2u(1u)) - select(vec2f(0.0), sn, b.yw == vec2u(1u));
}

// Dense weight of input channel ci at tap t for channels a and b.
fn dense_w(a: u32, b: u32, ci: u32, t: u32, upper: bool) -> vec2f {
    var r = vec2f(weight[(a * p.cin + ci) * 9u + t], 0.0);
    if (upper) { r.y = weight[(b * p.cin + ci) * 9u + t]; }
    return r;
}

// Epilogue of output channel co at 8 columns from col of output row `row`, image n.
fn put8(live: bool, n: u32, co: u32, row: u32, col: u32, lo: vec4f, hi: vec4f, sc: f32, sh: f32) {
    if (!live || co >= p.cout) { return; }
    var o = ((n * p.cout + co) * p.oh + row) * p.ow + col;
    var step = 1u;
    if (INTERLEAVED == 1u) {
        step = (p.n + 3u) / 4u * 4u;
        o = ((co * p.oh + row) * p.ow + col) * step + n;
    }
    let left = p.ow - col;
    let with_res = RESIDUAL != 0u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c;
    let rb = ((n * p.res_c + co - min(co, p.res_pad_c)) * p.res_h + row * p.res_stride) * p.res_w + col * p.res_stride;
    for (var q = 0u; q < 8u; q++) {
        if (q >= left) { break; }
        var v = select(hi, lo, q < 4u)[q & 3u] * sc + sh;
        if (with_res) { v += res[rb + q * p.res_stride]; }
        if (ACCUMULATE == 1u) { v += y[o + q * step]; }
        if (RELU == 1u) { v = max(v, 0.0); }
        y[o + q * step] = v;
    }
}

// put8 for a segment inside its row, y not interleaved: four elements at a time, in the same
// order of operations.
fn put8_vec(live: bool, n: u32, co: u32, row: u32, col: u32, lo: vec4f, hi: vec4f, sc: f32, sh: f32) {
    if (!live || co >= p.cout) { return; }
    let j = (((n * p.cout + co) * p.oh + row) * p.ow + col) / 4u;
    var a = lo * sc + sh;
    var b = hi * sc + sh;
    if (RESIDUAL == 1u) {
        a += res_vec[j];
        b += res_vec[j + 1u];
    }
    if (RESIDUAL == 2u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c) {
        let rb = ((n * p.res_c + co - p.res_pad_c) * p.res_h + row * p.res_stride) * p.res_w + col * p.res_stride;
        let s = p.res_stride;
        a += vec4f(res[rb], res[rb + s], res[rb + 2u * s], res[rb + 3u * s]);
        b += vec4f(res[rb + 4u * s], res[rb + 5u * s], res[rb + 6u * s], res[rb + 7u * s]);
    }
    if (ACCUMULATE == 1u) {
        a += y_vec[j];
        b += y_vec[j + 1u];
    }
    if (RELU == 1u) {
        a = max(a, vec4f(0.0));
        b = max(b, vec4f(0.0));
    }
    y_vec[j] = a;
    y_vec[j + 1u] = b;
}

// The block's channels through the epilogue (stored only by `live` invocations; 8-15 only when
// `upper`); lane l holds channel l's and 8 + l's scale and shift in ss (scale a, shift a, scale
// b, shift b).
fn store16(acc: ptr<function, array<vec4f, 32>>, live: bool, n: u32, co0: u32, row: u32, col: u32, ss: vec4f, upper: bool) {
    put8(live, n, co0 + 0u, row, col, (*acc)[0], (*acc)[1], subgroupBroadcast(ss.x, 0u), subgroupBroadcast(ss.y, 0u));
    put8(live, n, co0 + 1u, row, col, (*acc)[2], (*acc)[3], subgroupBroadcast(ss.x, 1u), subgroupBroadcast(ss.y, 1u));
    put8(live, n, co0 + 2u, row, col, (*acc)[4], (*acc)[5], subgroupBroadcast(ss.x, 2u), subgroupBroadcast(ss.y, 2u));
    put8(live, n, co0 + 3u, row, col, (*acc)[6], (*acc)[7], subgroupBroadcast(ss.x, 3u), subgroupBroadcast(ss.y, 3u));
    put8(live, n, co0 + 4u, row, col, (*acc)[8], (*acc)[9], subgroupBroadcast(ss.x, 4u), subgroupBroadcast(ss.y, 4u));
    put8(live, n, co0 + 5u, row, col, (*acc)[10], (*acc)[11], subgroupBroadcast(ss.x, 5u), subgroupBroadcast(ss.y, 5u));
    put8(live, n, co0 + 6u, row, col, (*acc)[12], (*acc)[13], subgroupBroadcast(ss.x, 6u), subgroupBroadcast(ss.y, 6u));
    put8(live, n, co0 + 7u, row, col, (*acc)[14], (*acc)[15], subgroupBroadcast(ss.x, 7u), subgroupBroadcast(ss.y, 7u));
    if (!upper) { return; }
    put8(live, n, co0 + 8u, row, col, (*acc)[16], (*acc)[17], subgroupBroadcast(ss.z, 0u), subgroupBroadcast(ss.w, 0u));
    put8(live, n, co0 + 9u, row, col, (*acc)[18], (*acc)[19], subgroupBroadcast(ss.z, 1u), subgroupBroadcast(ss.w, 1u));
    put8(live, n, co0 + 10u, row, col, (*acc)[20], (*acc)[21], subgroupBroadcast(ss.z, 2u), subgroupBroadcast(ss.w, 2u));
    put8(live, n, co0 + 11u, row, col, (*acc)[22], (*acc)[23], subgroupBroadcast(ss.z, 3u), subgroupBroadcast(ss.w, 3u));
    put8(live, n, co0 + 12u, row, col, (*acc)[24], (*acc)[25], subgroupBroadcast(ss.z, 4u), subgroupBroadcast(ss.w, 4u));
    put8(live, n, co0 + 13u, row, col, (*acc)[26], (*acc)[27], subgroupBroadcast(ss.z, 5u), subgroupBroadcast(ss.w, 5u));
    put8(live, n, co0 + 14u, row, col, (*acc)[28], (*acc)[29], subgroupBroadcast(ss.z, 6u), subgroupBroadcast(ss.w, 6u));
    put8(live, n, co0 + 15u, row, col, (*acc)[30], (*acc)[31], subgroupBroadcast(ss.z, 7u), subgroupBroadcast(ss.w, 7u));
}

// store16 through put8_vec (the *_vec entries).
fn store16_vec(acc: ptr<function, array<vec4f, 32>>, live: bool, n: u32, co0: u32, row: u32, col: u32, ss: vec4f, upper: bool) {
    put8_vec(live, n, co0 + 0u, row, col, (*acc)[0], (*acc)[1], subgroupBroadcast(ss.x, 0u), subgroupBroadcast(ss.y, 0u));
    put8_vec(live, n, co0 + 1u, row, col, (*acc)[2], (*acc)[3], subgroupBroadcast(ss.x, 1u), subgroupBroadcast(ss.y, 1u));
    put8_vec(live, n, co0 + 2u, row, col, (*acc)[4], (*acc)[5], subgroupBroadcast(ss.x, 2u), subgroupBroadcast(ss.y, 2u));
    put8_vec(live, n, co0 + 3u, row, col, (*acc)[6], (*acc)[7], subgroupBroadcast(ss.x, 3u), subgroupBroadcast(ss.y, 3u));
    put8_vec(live, n, co0 + 4u, row, col, (*acc)[8], (*acc)[9], subgroupBroadcast(ss.x, 4u), subgroupBroadcast(ss.y, 4u));
    put8_vec(live, n, co0 + 5u, row, col, (*acc)[10], (*acc)[11], subgroupBroadcast(ss.x, 5u), subgroupBroadcast(ss.y, 5u));
    put8_vec(live, n, co0 + 6u, row, col, (*acc)[12], (*acc)[13], subgroupBroadcast(ss.x, 6u), subgroupBroadcast(ss.y, 6u));
    put8_vec(live, n, co0 + 7u, row, col, (*acc)[14], (*acc)[15], subgroupBroadcast(ss.x, 7u), subgroupBroadcast(ss.y, 7u));
    if (!upper) { return; }
    put8_vec(live, n, co0 + 8u, row, col, (*acc)[16], (*acc)[17], subgroupBroadcast(ss.z, 0u), subgroupBroadcast(ss.w, 0u));
    put8_vec(live, n, co0 + 9u, row, col, (*acc)[18], (*acc)[19], subgroupBroadcast(ss.z, 1u), subgroupBroadcast(ss.w, 1u));
    put8_vec(live, n, co0 + 10u, row, col, (*acc)[20], (*acc)[21], subgroupBroadcast(ss.z, 2u), subgroupBroadcast(ss.w, 2u));
    put8_vec(live, n, co0 + 11u, row, col, (*acc)[22], (*acc)[23], subgroupBroadcast(ss.z, 3u), subgroupBroadcast(ss.w, 3u));
    put8_vec(live, n, co0 + 12u, row, col, (*acc)[24], (*acc)[25], subgroupBroadcast(ss.z, 4u), subgroupBroadcast(ss.w, 4u));
    put8_vec(live, n, co0 + 13u, row, col, (*acc)[26], (*acc)[27], subgroupBroadcast(ss.z, 5u), subgroupBroadcast(ss.w, 5u));
    put8_vec(live, n, co0 + 14u, row, col, (*acc)[28], (*acc)[29], subgroupBroadcast(ss.z, 6u), subgroupBroadcast(ss.w, 6u));
    put8_vec(live, n, co0 + 15u, row, col, (*acc)[30], (*acc)[31], subgroupBroadcast(ss.z, 7u), subgroupBroadcast(ss.w, 7u));
}

// The invocation's block: (image, first of its ROWS output rows, first column), its channel
// block, and whether the invocation owns a segment (others run only to take part in the
// broadcasts).
struct Block { n: u32, row: u32, col: u32, co0: u32, live: bool }

fn block(wg: vec3u, nwg: vec3u, li: u32) -> Block {
    let g = wg.y * nwg.x + wg.x;
    let pb = (g % p.groups) * WG_LANES + li;
    let q = min(pb, p.segs - 1u);
    // (image, segment s of the image's row blocks × segs_row), images slowest; with INTERLEAVED
    // fastest, so that a subgroup's lanes store neighbouring floats.
    let per_image = (p.oh + ROWS - 1u) / ROWS * p.segs_row;
    var n = q / per_image;
    var s = q % per_image;
    if (INTERLEAVED == 1u) {
        n = q % p.n;
        s = q / p.n;
    }
    return Block(n, (s / p.segs_row) * ROWS, (s % p.segs_row) * 8u, (g / p.groups) * BLOCK_CH, pb < p.segs);
}

// What conv leaves for the store: the block, the scale and shift terms of the lane's channels
// (store16's ss), whether the block has channels 8-15, and whether anything is stored at all.
struct Out { b: Block, ss: vec4f, upper: bool, stores: bool }

// The block's sums into acc0 .. acc3 (its rows; acc1 with ROWS ≥ 2, acc2 and acc3 with ROWS = 4);
// the entry point stores them.
fn conv(wg: vec3u, nwg: vec3u, li: u32, lane: u32, ternary: bool, acc0: ptr<function, array<vec4f, 32>>,
        acc1: ptr<function, array<vec4f, 32>>, acc2: ptr<function, array<vec4f, 32>>,
        acc3: ptr<function, array<vec4f, 32>>) -> Out {
    let b = block(wg, nwg, li);
    // Subgroups past the last segment have nothing to compute or share.
    if (subgroupAll(!b.live)) { return Out(b, vec4f(0.0), false, false); }
    let k = cols(i32(b.col * STRIDE) - 1, p.w);
    let ca = min(b.co0 + lane % 8u, p.cout - 1u);
    let cb = min(b.co0 + 8u + lane % 8u, p.cout - 1u);
    let upper = has_upper(b.co0, p.cout);
    let sp = vec2f(wp[ca * p.per_channel], wp[cb * p.per_channel]);
    let sn = vec2f(wn[ca * p.per_channel], wn[cb * p.per_channel]);
    // Source rows of output rows b.row and b.row + 1: top .. top + 2 and top + s .. top + s + 2.
    let top = i32(b.row * STRIDE) - 1;
    let hw = p.h * p.w;
    for (var ci0 = 0u; ci0 < p.cin; ci0 += 32u) {
        var c: array<vec4u, 9>;
        if (ternary) {
            c[0] = codes(ca, cb, 0u, ci0, upper);
            c[1] = codes(ca, cb, 1u, ci0, upper);
            c[2] = codes(ca, cb, 2u, ci0, upper);
            c[3] = codes(ca, cb, 3u, ci0, upper);
            c[4] = codes(ca, cb, 4u, ci0, upper);
            c[5] = codes(ca, cb, 5u, ci0, upper);
            c[6] = codes(ca, cb, 6u, ci0, upper);
            c[7] = codes(ca, cb, 7u, ci0, upper);
            c[8] = codes(ca, cb, 8u, ci0, upper);
        }
        for (var ci = ci0; ci < min(ci0 + 32u, p.cin); ci++) {
            let plane = (b.n * p.cin + ci) * hw;
            var wv: array<vec2f, 9>;
            if (ternary) {
                let kb = ci - ci0;
                wv[0] = decode(c[0], kb, sp, sn); wv[1] = decode(c[1], kb, sp, sn); wv[2] = decode(c[2], kb, sp, sn);
                wv[3] = decode(c[3], kb, sp, sn); wv[4] = decode(c[4], kb, sp, sn); wv[5] = decode(c[5], kb, sp, sn);
                wv[6] = decode(c[6], kb, sp, sn); wv[7] = decode(c[7], kb, sp, sn); wv[8] = decode(c[8], kb, sp, sn);
            } else {
                wv[0] = dense_w(ca, cb, ci, 0u, upper); wv[1] = dense_w(ca, cb, ci, 1u, upper);
                wv[2] = dense_w(ca, cb, ci, 2u, upper); wv[3] = dense_w(ca, cb, ci, 3u, upper);
                wv[4] = dense_w(ca, cb, ci, 4u, upper); wv[5] = dense_w(ca, cb, ci, 5u, upper);
                wv[6] = dense_w(ca, cb, ci, 6u, upper); wv[7] = dense_w(ca, cb, ci, 7u, upper);
                wv[8] = dense_w(ca, cb, ci, 8u, upper);
            }
            mac_block(acc0, acc1, acc2, acc3, wv, plane, top, k, upper);
        }
    }
    return Out(b, vec4f(scale[ca], shift[ca], scale[cb], shift[cb]), upper, true);
}

// conv through the epilogue, element by element. Every lane takes part in store16's
// broadcasts; only live ones store. With one row, acc1 is never stored, and the driver drops
// what only it needed.
fn conv_stored(wg: vec3u, nwg: vec3u, li: u32, lane: u32, ternary: bool) {
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    var acc2: array<vec4f, 32>;
    var acc3: array<vec4f, 32>;
    let o = conv(wg, nwg, li, lane, ternary, &acc0, &acc1, &acc2, &acc3);
    if (!o.stores) { return; }
    let b = o.b;
    store16(&acc0, b.live, b.n, b.co0, b.row, b.col, o.ss, o.upper);
    if (ROWS >= 2u) { store16(&acc1, b.live && b.row + 1u < p.oh, b.n, b.co0, b.row + 1u, b.col, o.ss, o.upper); }
    if (ROWS == 4u) {
        store16(&acc2, b.live && b.row + 2u < p.oh, b.n, b.co0, b.row + 2u, b.col, o.ss, o.upper);
        store16(&acc3, b.live && b.row + 3u < p.oh, b.n, b.co0, b.row + 3u, b.col, o.ss, o.upper);
    }
}

// conv_stored four elements at a time (store16_vec).
fn conv_stored_vec(wg: vec3u, nwg: vec3u, li: u32, lane: u32, ternary: bool) {
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    var acc2: array<vec4f, 32>;
    var acc3: array<vec4f, 32>;
    let o = conv(wg, nwg, li, lane, ternary, &acc0, &acc1, &acc2, &acc3);
    if (!o.stores) { return; }
    let b = o.b;
    store16_vec(&acc0, b.live, b.n, b.co0, b.row, b.col, o.ss, o.upper);
    if (ROWS >= 2u) {
        store16_vec(&acc1, b.live && b.row + 1u < p.oh, b.n, b.co0, b.row + 1u, b.col, o.ss, o.upper);
    }
    if (ROWS == 4u) {
        store16_vec(&acc2, b.live && b.row + 2u < p.oh, b.n, b.co0, b.row + 2u, b.col, o.ss, o.upper);
        store16_vec(&acc3, b.live && b.row + 3u < p.oh, b.n, b.co0, b.row + 3u, b.col, o.ss, o.upper);
    }
}

@compute @workgroup_size(WG_LANES)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    conv_stored(wg, nwg, li, lane, true);
}

@compute @workgroup_size(WG_LANES)
fn ternary_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    conv_stored_vec(wg, nwg, li, lane, true);
}

@compute @workgroup_size(WG_LANES)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    conv_stored(wg, nwg, li, lane, false);
}

@compute @workgroup_size(WG_LANES)
fn dense_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    conv_stored_vec(wg, nwg, li, lane, false);
}
