// import: tile.wgsl packed_bits.wgsl
// packed_conv_tiled.wgsl — the tiled family's inference convolution (for GPUs): the `ternary`,
// `dense` and `bitplane` entry points of packed_conv.wgsl (same bindings, parameters, weight bit
// order and fused epilogue) as implicit GEMMs staged in workgroup memory. The element-wise
// `ternary_affine` and `pack_activations` stay in packed_conv.wgsl for both families.
//
// Bindings (group 0), as packed_conv.wgsl:
//   0 p       uniform  PackedConvParams (the same struct as packed_conv.wgsl)
//   1 x       storage read        [n, cin, h, w]                            (ternary, dense)
//   2 pos     storage read        u32 words: bit i set ⇔ weight i is +Wp   (ternary)
//   3 neg     storage read        u32 words: bit i set ⇔ weight i is −Wn   (ternary)
//   4 wp      storage read        [1] or [cout] (p.per_channel)
//   5 wn      storage read        [1] or [cout]
//   6 weight  storage read        [cout, cin, kh, kw] f32                  (dense)
//   7 scale   storage read        [cout]  folded batch norm: γ / √(var + ε)
//   8 shift   storage read        [cout]  β − mean · scale
//   9 res     storage read        [n, res_c, res_h, res_w]  residual input (p.residual = 1)
//   10 y      storage read_write  [n, cout, oh, ow]; bitplane: [cout, oh, ow, n4], images
//                                 innermost (n4 = n rounded up to 4), as is res
//   13 act_pos  storage read      [(h+2·pad)·(w+2·pad), words, n4] activation planes (+1),
//                                 zero border, n4 = n rounded up to 4 (packed_conv.wgsl)  (bitplane)
//   14 act_neg  storage read      the same for −1  (bitplane)
//   15 weight_pos storage read    weight planes [rows / 8, kh·kw, words, 8] as vec4 (bitplane)
//   16 weight_neg storage read    the same for −Wn  (bitplane)
//
// Ternary weight i is the i-th in [cout, kh, kw, cin] order, bit i % 32 of word i / 32, rows
// unpadded; dense weights keep [cout, cin, kh, kw].
//
// Tiling (as conv2d_tiled.wgsl/forward; override constants chosen by the host from the
// adapter's limits): a workgroup of WG = TILE_M·TILE_N/16 invocations computes TILE_M output
// channels × TILE_N positions of the flattened (n, row, col); invocation li owns channels
// 4·ty .. 4·ty + 3 and positions 4·tx .. 4·tx + 3 of the tile (tx = li mod TILE_N/4). The
// reduction runs over k = tap · cin + ci (the masks' bit order) in slices of TILE_K staged in
// workgroup memory, each k decoded once per workgroup into ktab (as conv2d_tiled.wgsl/forward):
//   ternary: the masks are decoded while staging: each staging item reads 32 bits of W+ and of
//     W− at 4 consecutive k of one output channel (a funnel shift, rows are unaligned) and
//     writes +Wp, 0 or −Wn to a_tile, so the inner loop is the dense one (16 multiply-adds per
//     two vec4 workgroup loads) and each code is decoded once per workgroup instead of once per
//     invocation; zero codes are multiplied, not skipped (skipping pays on CPUs, not in
//     lock-step SIMD);
//   dense: a_tile holds the f32 weights;
//   bitplane: the reduction runs over (tap, 32-channel word) pairs, TILE_K / 2 per slice: the
//     weight planes' W+ and W− words and the activation planes' +1 and −1 words are staged as
//     u32 (both aligned to 32-channel words, as packed_conv.wgsl lays them out), and the
//     block accumulates popc(w⁺&a⁺) − popc(w⁺&a⁻) towards Wp and popc(w⁻&a⁺) − popc(w⁻&a⁻)
//     towards Wn in integers (exact: the same sums as the blocked kernel).
// A staging invocation's column (position) is fixed (WG is a multiple of TILE_N) and decoded
// once; consecutive invocations load consecutive positions.
// Epilogue: v = conv·scale + shift, + residual (option-A: subsample by res_stride, channels
// offset by res_pad_c, zero outside), ReLU if p.relu = 1. With p.accumulate = 1 the output is
// added to what y holds (before the ReLU; training's input gradients).
// Grid: Groups folded to 2-D, t = wg.y · nwg.x + wg.x, channel tiles fastest; t past the last
// tile returns (uniform per workgroup).
// Assumes (host-guaranteed): TILE_M and TILE_N multiples of 16, WG = TILE_M·TILE_N/16, TILE_K a
// multiple of 4 dividing WG. Workgroup memory is not zero-initialised (every staged element is
// written before it is read). Deterministic: fixed summation order, no atomics.

struct PackedConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, per_channel: u32,
    relu: u32, residual: u32, res_c: u32, res_h: u32,
    res_w: u32, res_stride: u32, res_pad_c: u32, words: u32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PackedConvParams;
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
@group(0) @binding(13) var<storage, read> act_pos: array<u32>;
@group(0) @binding(14) var<storage, read> act_neg: array<u32>;
@group(0) @binding(15) var<storage, read> weight_pos: array<vec4u>;
@group(0) @binding(16) var<storage, read> weight_neg: array<vec4u>;

// ternary, dense: the reduction index k of the current and the next slice, decoded once per
// workgroup (the next slice's buffer is filled while the current one is staged).
var<workgroup> ktab: array<vec4i, 2u * TILE_K>;
// bitplane: TILE_K / 2 (tap, word) pairs per slice.
var<workgroup> wpos_tile: array<vec4u, TILE_K / 2u * (TILE_M / 4u + 1u)>;
var<workgroup> wneg_tile: array<vec4u, TILE_K / 2u * (TILE_M / 4u + 1u)>;
var<workgroup> apos_tile: array<vec4u, TILE_K / 2u * (TILE_N / 4u + 1u)>;
var<workgroup> aneg_tile: array<vec4u, TILE_K / 2u * (TILE_N / 4u + 1u)>;

// The workgroup's tile and the invocation's place in it.
struct Tile {
    live: bool,   // false past the last tile (uniform per workgroup)
    m0: u32,      // first output channel
    n0: u32,      // first position
    tx: u32,
    ty: u32,
    // The staging column: its position, whether it exists, its image and window corner.
    col: u32,
    q_ok: bool,
    img: u32,
    r0: i32,
    c0: i32,
}

fn tile(wg: vec3u, nwg: vec3u, li: u32) -> Tile {
    var t: Tile;
    let out_hw = p.oh * p.ow;
    let positions = p.n * out_hw;
    let tiles_m = (p.cout + TILE_M - 1u) / TILE_M;
    let g = wg.y * nwg.x + wg.x;
    t.live = g < tiles_m * ((positions + TILE_N - 1u) / TILE_N);
    t.m0 = (g % tiles_m) * TILE_M;
    t.n0 = (g / tiles_m) * TILE_N;
    t.tx = li % (TILE_N / 4u);
    t.ty = li / (TILE_N / 4u);
    t.col = li % TILE_N;
    let q = t.n0 + t.col;
    t.q_ok = q < positions;
    let qc = min(q, positions - 1u);
    let rc = qc % out_hw;
    t.img = qc / out_hw;
    t.r0 = i32((rc / p.ow) * p.stride) - i32(p.pad);
    t.c0 = i32((rc % p.ow) * p.stride) - i32(p.pad);
    return t;
}

// k-table entries past the reduction's end: a row offset that puts every window outside.
const OUTSIDE: i32 = -1073741824;

// Fill buffer `buf` of ktab for k = k0 .. k0 + TILE_K − 1 (k = tap · cin + ci, the ternary bit
// order): (x offset ci·h·w + i·w + j from the window corner, i, j, dense weight offset
// ci·kh·kw + tap).
fn fill_ktab(li: u32, buf: u32, k0: u32) {
    let kk = p.kh * p.kw;
    for (var r = li; r < TILE_K; r += WG) {
        let k = k0 + r;
        var e = vec4i(0, OUTSIDE, 0, 0);
        if (k < p.cin * kk) {
            let tap = k / p.cin;
            let ci = k % p.cin;
            let i = tap / p.kw;
            let j = tap % p.kw;
            e = vec4i(i32(ci * p.h * p.w + i * p.w + j), i32(i), i32(j), i32(ci * kk + tap));
        }
        ktab[buf * TILE_K + r] = e;
    }
}

// Stage x for the slice whose k-table is ktab[cur ..]: the staging column's window values.
fn stage_x(t: Tile, li: u32, cur: u32) {
    let corner = i32(t.img * p.cin * p.h * p.w) + t.r0 * i32(p.w) + t.c0;
    for (var row = li / TILE_N; row < TILE_K; row += WG / TILE_N) {
        let e = ktab[cur + row];
        let r = t.r0 + e.y;
        let c = t.c0 + e.z;
        var v = 0.0;
        if (t.q_ok && r >= 0 && r < i32(p.h) && c >= 0 && c < i32(p.w)) { v = x[u32(corner + e.x)]; }
        b_tile[row * (TILE_N / 4u + 1u) + t.col / 4u][t.col % 4u] = v;
    }
}

// Output and residual in NCHW, or (`interleaved`, bitplane) images innermost: [c, h, w, n4].
fn epilogue(t: Tile, acc: array<vec4f, 4>, interleaved: bool) {
    let out_hw = p.oh * p.ow;
    let positions = p.n * out_hw;
    let n4 = (p.n + 3u) / 4u * 4u;
    for (var j = 0u; j < 4u; j++) {
        let q = t.n0 + t.tx * 4u + j;
        if (q >= positions) { break; }
        let n = q / out_hw;
        let rc = q % out_hw;
        for (var m = 0u; m < 4u; m++) {
            let co = t.m0 + t.ty * 4u + m;
            if (co >= p.cout) { break; }
            var v = acc[m][j] * scale[co] + shift[co];
            if (p.residual == 1u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c) {
                let rr = (rc / p.ow) * p.res_stride;
                let cc = (rc % p.ow) * p.res_stride;
                let ch = co - p.res_pad_c;
                let pixel = rr * p.res_w + cc;
                let hw = p.res_h * p.res_w;
                v += res[select((n * p.res_c + ch) * hw + pixel, (ch * hw + pixel) * n4 + n, interleaved)];
            }
            let at = select((n * p.cout + co) * out_hw + rc, (co * out_hw + rc) * n4 + n, interleaved);
            if (p.accumulate == 1u) { v += y[at]; }
            if (p.relu == 1u) { v = max(v, 0.0); }
            y[at] = v;
        }
    }
}

@compute @workgroup_size(WG)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let t = tile(wg, nwg, li);
    if (!t.live) { return; }
    let k_total = p.cin * p.kh * p.kw;
    var acc: array<vec4f, 4>;
    fill_ktab(li, 0u, 0u);
    workgroupBarrier();
    for (var s = 0u; s * TILE_K < k_total; s++) {
        let k0 = s * TILE_K;
        stage_x(t, li, (s % 2u) * TILE_K);
        // Decode 4 consecutive k of one output channel per staging item.
        for (var e = li; e < TILE_M * TILE_K / 4u; e += WG) {
            let m = e % TILE_M;
            let seg = (e / TILE_M) * 4u;
            let co = t.m0 + m;
            let k = k0 + seg;
            var v = vec4f(0.0);
            if (co < p.cout && k < k_total) {
                let count = min(4u, k_total - k);
                let bp = bits32(co * k_total + k, false);
                let bn = bits32(co * k_total + k, true);
                let c = co * p.per_channel;
                for (var b = 0u; b < count; b++) {
                    v[b] = select(0.0, wp[c], ((bp >> b) & 1u) == 1u)
                         - select(0.0, wn[c], ((bn >> b) & 1u) == 1u);
                }
            }
            for (var b = 0u; b < 4u; b++) { put_a(seg + b, m, v[b]); }
        }
        fill_ktab(li, 1u - s % 2u, k0 + TILE_K);
        workgroupBarrier();
        mma(&acc, t.tx, t.ty);
        workgroupBarrier();
    }
    epilogue(t, acc, false);
}

@compute @workgroup_size(WG)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let t = tile(wg, nwg, li);
    if (!t.live) { return; }
    let k_total = p.cin * p.kh * p.kw;
    let am = li % TILE_M;
    let co_a = t.m0 + am;
    var acc: array<vec4f, 4>;
    fill_ktab(li, 0u, 0u);
    workgroupBarrier();
    for (var s = 0u; s * TILE_K < k_total; s++) {
        let k0 = s * TILE_K;
        let cur = (s % 2u) * TILE_K;
        stage_x(t, li, cur);
        for (var row = li / TILE_M; row < TILE_K; row += WG / TILE_M) {
            var v = 0.0;
            if (co_a < p.cout && k0 + row < k_total) {
                v = weight[co_a * k_total + u32(ktab[cur + row].w)];
            }
            put_a(row, am, v);
        }
        fill_ktab(li, 1u - s % 2u, k0 + TILE_K);
        workgroupBarrier();
        mma(&acc, t.tx, t.ty);
        workgroupBarrier();
    }
    epilogue(t, acc, false);
}

@compute @workgroup_size(WG)
fn bitplane(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let t = tile(wg, nwg, li);
    if (!t.live) { return; }
    let pairs_per_slice = TILE_K / 2u;
    let kk = p.kh * p.kw;
    let pairs = kk * p.words;
    let am = li % TILE_M;
    let co_a = t.m0 + am;
    var sp: array<vec4i, 4>;
    var sn: array<vec4i, 4>;
    for (var kp0 = 0u; kp0 < pairs; kp0 += pairs_per_slice) {
        // Activations: the staging column's words at (tap, word) = pair kp0 + row.
        for (var row = li / TILE_N; row < pairs_per_slice; row += WG / TILE_N) {
            let kp = kp0 + row;
            var ap = 0u;
            var an = 0u;
            if (kp < pairs) {
                let tap = kp / p.words;
                let word = kp % p.words;
                let r = t.r0 + i32(tap / p.kw);
                let c = t.c0 + i32(tap % p.kw);
                if (t.q_ok) {
                    // The planes' zero border is the convolution's padding.
                    let pixel = u32(r + i32(p.pad)) * (p.w + 2u * p.pad) + u32(c + i32(p.pad));
                    let k = (pixel * p.words + word) * ((p.n + 3u) / 4u * 4u) + t.img;
                    ap = act_pos[k];
                    an = act_neg[k];
                }
            }
            let at = row * (TILE_N / 4u + 1u) + t.col / 4u;
            apos_tile[at][t.col % 4u] = ap;
            aneg_tile[at][t.col % 4u] = an;
        }
        // Weights: output channel co_a's plane word at the pair (tap, word), the 8 channels of
        // a group side by side.
        for (var row = li / TILE_M; row < pairs_per_slice; row += WG / TILE_M) {
            let kp = kp0 + row;
            var bp = 0u;
            var bn = 0u;
            if (co_a < p.cout && kp < pairs) {
                let i = ((co_a / 8u) * pairs + kp) * 8u + co_a % 8u;
                bp = weight_pos[i / 4u][i % 4u];
                bn = weight_neg[i / 4u][i % 4u];
            }
            let at = row * (TILE_M / 4u + 1u) + am / 4u;
            wpos_tile[at][am % 4u] = bp;
            wneg_tile[at][am % 4u] = bn;
        }
        workgroupBarrier();
        for (var k = 0u; k < pairs_per_slice; k++) {
            let a_p = wpos_tile[k * (TILE_M / 4u + 1u) + t.ty];
            let a_n = wneg_tile[k * (TILE_M / 4u + 1u) + t.ty];
            let b_p = apos_tile[k * (TILE_N / 4u + 1u) + t.tx];
            let b_n = aneg_tile[k * (TILE_N / 4u + 1u) + t.tx];
            for (var m = 0u; m < 4u; m++) {
                let wpm = vec4u(a_p[m]);
                let wnm = vec4u(a_n[m]);
                sp[m] += vec4i(countOneBits(wpm & b_p)) - vec4i(countOneBits(wpm & b_n));
                sn[m] += vec4i(countOneBits(wnm & b_p)) - vec4i(countOneBits(wnm & b_n));
            }
        }
        workgroupBarrier();
    }
    var acc: array<vec4f, 4>;
    for (var m = 0u; m < 4u; m++) {
        let c = min(t.m0 + t.ty * 4u + m, p.cout - 1u) * p.per_channel;
        acc[m] = wp[c] * vec4f(sp[m]) - wn[c] * vec4f(sn[m]);
    }
    epilogue(t, acc, true);
}
