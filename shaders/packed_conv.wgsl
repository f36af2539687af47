// import: packed_bits.wgsl bitplane.wgsl
// packed_conv.wgsl — inference convolution straight from bit-packed ternary weights, with the
// folded batch norm, the residual add and ReLU fused into the epilogue. NCHW.
//
// Bindings (group 0):
//   0 p       uniform  PackedConvParams
//   1 x       storage read        [n, cin, h, w]  (avg_pool: x4's [c, h, w, n4] as floats)
//   2 pos     storage read        u32 words: bit i set ⇔ weight i is +Wp   (ternary)
//   3 neg     storage read        u32 words: bit i set ⇔ weight i is −Wn   (ternary)
//   4 wp      storage read        [1] or [cout] (p.per_channel)            (ternary)
//   5 wn      storage read        [1] or [cout]                            (ternary)
//   6 weight  storage read        [cout, cin, kh, kw] f32                  (dense)
//   7 scale   storage read        [cout]  folded batch norm: γ / √(var + ε)
//   8 shift   storage read        [cout]  β − mean · scale
//   9 res     storage read        [n, res_c, res_h, res_w]  residual input (p.residual = 1)
//   10 y      storage read_write  [n, cout, oh, ow]  (ternary_affine: [n, cin, h, w];
//                                 avg_pool: [n, cin])
//   11 act_scale  storage read    [cin]  folded batch norm before a ternary activation
//   12 act_shift  storage read    [cin]
//   13 act_pos    storage read_write  [(h+2·pad)·(w+2·pad), words, n4] as vec4: bit c % 32 of
//                                     word c / 32 set where activation c is +1; a zero border of
//                                     p.pad pixels; n4 = n rounded up to 4, images past n zero
//   14 act_neg    storage read_write  the same for activation −1  (words = ⌈cin/32⌉)
//   15 weight_pos storage read  weight planes [rows / 8, kh·kw, words, 8] as vec4: +Wp (bitplane)
//   16 weight_neg storage read  the same for −Wn  (bitplane)
//   17 x4     storage read        [c, h, w, n4] as vec4: x interleaved, images innermost
//                                 (pack_activations, deinterleave)
//   18 res4   storage read        [res_c, res_h, res_w, n4] as vec4: the residual (bitplane)
//   19 y4     storage read_write  [cout, oh, ow, n4] as vec4: the output (bitplane, interleave)
//
// Ternary weight i is the i-th in [cout, kh, kw, cin] order (tap-major: the input channels of one
// kernel tap are consecutive bits); it is bit i % 32 (least significant first) of word i / 32.
// Rows are not padded, so a layer costs 2 bits per weight plus its scales. Dense weights keep
// PyTorch's [cout, cin, kh, kw].
//
// Mapping (as conv2d.wgsl/forward): a 4×4 register block per invocation, 4 output channels ×
// 4 consecutive positions of the flattened (n, row, col); 64 invocations per workgroup, positions
// fastest; grid folded to 2-D. Per kernel tap the input offsets and bounds of the 4 positions are
// computed once. The ternary entry reads 32 input channels' codes of each of its 4 output channels
// at a time (a funnel shift, since rows are unaligned), skips the 32 channels when all 4 rows'
// codes are zero, and otherwise decodes each code to +Wp, 0 or −Wn in registers.
//
// Epilogue: v = conv·scale + shift, then + residual (option-A: subsample by res_stride, channels
// offset by res_pad_c, zero outside), then ReLU if p.relu = 1. With p.accumulate = 1 the
// output is added to what y holds (before the ReLU; training's input gradients).
//
// Ternary activations (STTN), a = +1 above 0.5, −1 below −0.5, else 0, of x·act_scale + act_shift:
// ternary_affine writes them as floats (one invocation per element, 256 per workgroup) for the
// `ternary` entry. On bit-planes, STTN's units pass their activations on interleaved (images
// innermost, [c, h, w, n4]; `interleave` and `deinterleave` convert at the ends of the chain, one
// invocation per 4 images, or `avg_pool` ends it): pack_activations reads them a vec4 per channel
// and writes the bit-planes (one invocation per padded pixel, 32-channel word and 4 images; the
// border, the convolution's zero padding, is written as zeros, so the convolution reads without
// bounds checks; one vec4 load fetches a word of 4 images), and `bitplane` convolves them with the
// weight planes: word (co, tap, w) holds input channels 32·w .. 32·w + 31 of output channel co at
// that tap, aligned like the activations' words, the PLANE_ROWS channels of a group side by side
// (rows past cout zero). Per word, popc(w⁺&a⁺) − popc(w⁺&a⁻) counts towards Wp and popc(w⁻&a⁺) −
// popc(w⁻&a⁻) towards Wn: integer dot products, no floating-point work until the epilogue, which
// reads the residual and writes the output interleaved, a vec4 per output channel.
//
// bitplane mapping: a workgroup covers PLANE_ROWS output channels, the same for all its
// invocations, and WG (output pixel, 4 images) items; per (tap, word) an invocation loads one
// vec4 per activation plane (its 4 images) and two per weight plane (the PLANE_ROWS channels),
// and runs PLANE_ROWS × 4 outputs' popcounts on them. Each (channel, image) keeps one i32: the
// Wp count in the low 16 bits, the Wn count above (|count| ≤ cin·kh·kw < 2^15, which the host
// checks), halving the accumulators.
// The counts, the invocation's item and the epilogue are bitplane.wgsl's, shared with
// bitplane_lanes.wgsl (the same kernel for the 3×3 convolutions on adapters with 8-lane
// subgroups, loading the group's weights once per subgroup).

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
@group(0) @binding(11) var<storage, read> act_scale: array<f32>;
@group(0) @binding(12) var<storage, read> act_shift: array<f32>;
@group(0) @binding(13) var<storage, read_write> act_pos: array<vec4u>;
@group(0) @binding(14) var<storage, read_write> act_neg: array<vec4u>;
@group(0) @binding(15) var<storage, read> weight_pos: array<vec4u>;
@group(0) @binding(16) var<storage, read> weight_neg: array<vec4u>;
@group(0) @binding(17) var<storage, read> x4: array<vec4f>;
@group(0) @binding(18) var<storage, read> res4: array<vec4f>;
@group(0) @binding(19) var<storage, read_write> y4: array<vec4f>;

override WG: u32 = 64u;
override WG_ELEMENT: u32 = 256u;

// The invocation's 4 output channels and 4 positions.
struct Block {
    co0: u32,
    pos0: u32,
    n: vec4u,      // image of each position
    base: vec4u,   // offset of image n in x
    r0: vec4i,     // top input row of the window
    c0: vec4i,     // left input column of the window
}

fn block(wg: vec3u, nwg: vec3u, li: u32) -> Block {
    var b: Block;
    let id = (wg.y * nwg.x + wg.x) * WG + li;
    let positions = p.n * p.oh * p.ow;
    let pos_blocks = (positions + 3u) / 4u;
    b.co0 = (id / pos_blocks) * 4u;
    b.pos0 = (id % pos_blocks) * 4u;
    for (var j = 0u; j < 4u; j++) {
        let q = min(b.pos0 + j, positions - 1u);
        let rc = q % (p.oh * p.ow);
        b.n[j] = q / (p.oh * p.ow);
        b.base[j] = b.n[j] * p.cin * p.h * p.w;
        b.r0[j] = i32((rc / p.ow) * p.stride) - i32(p.pad);
        b.c0[j] = i32((rc % p.ow) * p.stride) - i32(p.pad);
    }
    return b;
}

// Input offsets of the 4 positions at kernel tap t, and 1/0 for inside/outside the image.
struct Tap {
    off: vec4u,
    ok: vec4f,
}

fn tap(b: Block, t: u32) -> Tap {
    var r: Tap;
    let di = i32(t / p.kw);
    let dj = i32(t % p.kw);
    for (var j = 0u; j < 4u; j++) {
        let row = b.r0[j] + di;
        let col = b.c0[j] + dj;
        let inside = row >= 0 && row < i32(p.h) && col >= 0 && col < i32(p.w);
        r.ok[j] = select(0.0, 1.0, inside);
        r.off[j] = select(0u, b.base[j] + u32(row) * p.w + u32(col), inside);
    }
    return r;
}

// x at input channel ci of the tap, for the 4 positions.
fn gather(t: Tap, ci: u32) -> vec4f {
    let o = t.off + vec4u(ci * p.h * p.w);
    return vec4f(x[o[0]], x[o[1]], x[o[2]], x[o[3]]) * t.ok;
}

fn epilogue(b: Block, acc: array<vec4f, 4>) {
    epilogue_row(b, 0u, acc[0]);
    epilogue_row(b, 1u, acc[1]);
    epilogue_row(b, 2u, acc[2]);
    epilogue_row(b, 3u, acc[3]);
}

// Output channel co0 + m at the block's 4 positions (the components of v).
fn epilogue_row(b: Block, m: u32, v: vec4f) {
    let co = b.co0 + m;
    if (co >= p.cout) { return; }
    let out_hw = p.oh * p.ow;
    for (var j = 0u; j < 4u; j++) {
        let q = b.pos0 + j;
        if (q >= p.n * out_hw) { break; }
        let n = q / out_hw;
        let rc = q % out_hw;
        let r = (n * p.res_c + co - p.res_pad_c) * p.res_h * p.res_w
              + ((rc / p.ow) * p.res_w + rc % p.ow) * p.res_stride;
        finish(v[j] * scale[co] + shift[co], (n * p.cout + co) * out_hw + rc, r, has_residual(co));
    }
}

// Whether output channel co adds a residual channel (option A pads the others with zeros).
fn has_residual(co: u32) -> bool {
    return p.residual == 1u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c;
}

// Store output o (conv·scale + shift) at y[at], with the residual res[r] if `residual`, the
// accumulation and the ReLU.
fn finish(o: f32, at: u32, r: u32, residual: bool) {
    var v = o;
    if (residual) { v += res[r]; }
    if (p.accumulate == 1u) { v += y[at]; }
    if (p.relu == 1u) { v = max(v, 0.0); }
    y[at] = v;
}

// Wp and Wn of the invocation's output channels, and how many of its 4 channels exist.
struct Scales {
    wp: vec4f,
    wn: vec4f,
    rows: u32,
}

fn scales(b: Block) -> Scales {
    var s: Scales;
    let last = p.cout - 1u;
    let c = min(vec4u(b.co0) + vec4u(0u, 1u, 2u, 3u), vec4u(last)) * p.per_channel;
    s.wp = vec4f(wp[c.x], wp[c.y], wp[c.z], wp[c.w]);
    s.wn = vec4f(wn[c.x], wn[c.y], wn[c.z], wn[c.w]);
    s.rows = min(4u, p.cout - b.co0);
    return s;
}

// The W+ and W− codes of input channels ci0 .. ci0 + 31 at tap t for the invocation's output
// channels (zero past cin), and their union.
struct Codes {
    pos: vec4u,
    neg: vec4u,
    any: u32,
}

// One output channel's codes (row m < rows), or zeros.
fn code_row(b: Block, m: u32, rows: u32, t: u32, ci0: u32, keep: u32) -> vec2u {
    if (m >= rows) { return vec2u(0u); }
    let first = ((b.co0 + m) * p.kh * p.kw + t) * p.cin + ci0;
    return vec2u(bits32(first, false), bits32(first, true)) & vec2u(keep);
}

fn codes(b: Block, rows: u32, t: u32, ci0: u32) -> Codes {
    var c: Codes;
    let count = min(32u, p.cin - ci0);
    let keep = select((1u << count) - 1u, 0xffffffffu, count == 32u);
    let r0 = code_row(b, 0u, rows, t, ci0, keep);
    let r1 = code_row(b, 1u, rows, t, ci0, keep);
    let r2 = code_row(b, 2u, rows, t, ci0, keep);
    let r3 = code_row(b, 3u, rows, t, ci0, keep);
    c.pos = vec4u(r0.x, r1.x, r2.x, r3.x);
    c.neg = vec4u(r0.y, r1.y, r2.y, r3.y);
    c.any = r0.x | r0.y | r1.x | r1.y | r2.x | r2.y | r3.x | r3.y;
    return c;
}

@compute @workgroup_size(WG)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let b = block(wg, nwg, li);
    if (b.co0 >= p.cout) { return; }
    let kk = p.kh * p.kw;
    let sc = scales(b);
    let rows = sc.rows;
    var acc: array<vec4f, 4>;
    for (var t = 0u; t < kk; t++) {
        let at = tap(b, t);
        for (var ci0 = 0u; ci0 < p.cin; ci0 += 32u) {
            let w = codes(b, rows, t, ci0);
            var any = w.any;
            // Zero-heavy weights cost less: channels whose 4 codes are all zero are skipped.
            while (any != 0u) {
                let k = firstTrailingBit(any);
                any &= any - 1u;
                let xv = gather(at, ci0 + k);
                // each output channel's weight of input channel ci0 + k: +Wp, −Wn or 0
                let bit = vec4u(k);
                let v = select(vec4f(0.0), sc.wp, ((w.pos >> bit) & vec4u(1u)) == vec4u(1u))
                      - select(vec4f(0.0), sc.wn, ((w.neg >> bit) & vec4u(1u)) == vec4u(1u));
                acc[0] += v.x * xv;
                acc[1] += v.y * xv;
                acc[2] += v.z * xv;
                acc[3] += v.w * xv;
            }
        }
    }
    epilogue(b, acc);
}

@compute @workgroup_size(WG)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let b = block(wg, nwg, li);
    if (b.co0 >= p.cout) { return; }
    let kk = p.kh * p.kw;
    let stride_co = p.cin * kk;
    var acc: array<vec4f, 4>;
    for (var t = 0u; t < kk; t++) {
        let at = tap(b, t);
        var wi = b.co0 * stride_co + t;
        for (var ci = 0u; ci < p.cin; ci++) {
            let xv = gather(at, ci);
            acc[0] += weight[wi] * xv;
            if (b.co0 + 1u < p.cout) { acc[1] += weight[wi + stride_co] * xv; }
            if (b.co0 + 2u < p.cout) { acc[2] += weight[wi + 2u * stride_co] * xv; }
            if (b.co0 + 3u < p.cout) { acc[3] += weight[wi + 3u * stride_co] * xv; }
            wi += kk;
        }
    }
    epilogue(b, acc);
}

fn ternary_of(v: f32) -> f32 {
    return select(select(0.0, -1.0, v < -0.5), 1.0, v > 0.5);
}

@compute @workgroup_size(WG_ELEMENT)
fn ternary_affine(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG_ELEMENT + li;
    if (i >= p.n * p.cin * p.h * p.w) { return; }
    let c = (i / (p.h * p.w)) % p.cin;
    y[i] = ternary_of(x[i] * act_scale[c] + act_shift[c]);
}

// Element i of an interleaved [c, h, w, n4] tensor (one vec4 per 4 images): its first image n0
// and where that image's element is in [n, c, h, w] (image = c·h·w floats apart).
struct QuadItem { i: u32, ok: bool, n0: u32, at: u32, image: u32 }

fn quad_item(wg: vec3u, nwg: vec3u, li: u32) -> QuadItem {
    var q: QuadItem;
    q.i = (wg.y * nwg.x + wg.x) * WG_ELEMENT + li;
    let quads = (p.n + 3u) / 4u;
    q.image = p.cin * p.h * p.w;
    q.ok = q.i < q.image * quads;
    q.n0 = (q.i % quads) * 4u;
    q.at = q.n0 * q.image + q.i / quads;
    return q;
}

// Images innermost: x [n, c, h, w] → y4 [c, h, w, n4] (one vec4 per 4 images), zeros past n.
@compute @workgroup_size(WG_ELEMENT)
fn interleave(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let q = quad_item(wg, nwg, li);
    if (!q.ok) { return; }
    let live = vec4u(q.n0) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.n);
    let last = (p.n - 1u) * q.image + q.at - q.n0 * q.image;
    let v = vec4f(x[q.at], x[min(q.at + q.image, last)], x[min(q.at + 2u * q.image, last)],
                  x[min(q.at + 3u * q.image, last)]);
    y4[q.i] = select(vec4f(0.0), v, live);
}

// Back to x [n, c, h, w] from x4 [c, h, w, n4].
@compute @workgroup_size(WG_ELEMENT)
fn deinterleave(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
    let q = quad_item(wg, nwg, li);
    if (!q.ok) { return; }
    let v = x4[q.i];
    for (var j = 0u; j < 4u; j++) {
        if (q.n0 + j < p.n) { y[q.at + j * q.image] = v[j]; }
    }
}

// Global average pool of x [c, h, w, n4] (interleaved, read as floats) into y [n, c], one
// invocation per output as pool.wgsl's avg_forward, summing in its order, so the result is the
// same: the bit-plane chain's end, without deinterleaving.
@compute @workgroup_size(WG_ELEMENT)
fn avg_pool(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG_ELEMENT + li;
    if (i >= p.n * p.cin) { return; }
    let n4 = (p.n + 3u) / 4u * 4u;
    let hw = p.h * p.w;
    let c = i % p.cin;
    let n = i / p.cin;
    var s = 0.0;
    for (var k = 0u; k < hw; k++) { s += x[(c * hw + k) * n4 + n]; }
    y[i] = s / f32(hw);
}

@compute @workgroup_size(WG_ELEMENT)
fn pack_activations(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG_ELEMENT + li;
    let quads = (p.n + 3u) / 4u;
    let pw = p.w + 2u * p.pad;
    if (i >= (p.h + 2u * p.pad) * pw * p.words * quads) { return; }
    let quad = i % quads;
    let word = (i / quads) % p.words;
    let pixel = i / (quads * p.words);
    let row = i32(pixel / pw) - i32(p.pad);
    let col = i32(pixel % pw) - i32(p.pad);
    var plus = vec4u(0u);
    var minus = vec4u(0u);
    if (row >= 0 && row < i32(p.h) && col >= 0 && col < i32(p.w)) {
        let hw = p.h * p.w;
        var at = ((word * 32u * p.h + u32(row)) * p.w + u32(col)) * quads + quad;
        let bits = min(32u, p.cin - word * 32u);
        for (var b = 0u; b < bits; b++) {
            let c = word * 32u + b;
            let v = x4[at] * act_scale[c] + act_shift[c];
            plus |= select(vec4u(0u), vec4u(1u << b), v > vec4f(0.5));
            minus |= select(vec4u(0u), vec4u(1u << b), v < vec4f(-0.5));
            at += hw * quads;
        }
        let live = vec4u(quad * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.n);
        plus = select(vec4u(0u), plus, live);
        minus = select(vec4u(0u), minus, live);
    }
    act_pos[i] = plus;
    act_neg[i] = minus;
}

@compute @workgroup_size(WG)
fn bitplane(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let it = plane_item(wg, nwg, li, WG, PLANE_ROWS, 1u);
    if (it.co0 >= p.cout) { return; }
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
    // The group's weight words at (tap, word), two vec4 per plane.
    var wi = (it.co0 / PLANE_ROWS) * p.kh * p.kw * p.words * 2u;
    for (var di = 0u; di < p.kh; di++) {
        for (var dj = 0u; dj < p.kw; dj++) {
            var at = (it.corner + di * pw + dj) * p.words * quads + it.quad;
            for (var word = 0u; word < p.words; word++) {
                let ap = act_pos[at];
                let an = act_neg[at];
                at += quads;
                let p0 = weight_pos[wi];
                let p1 = weight_pos[wi + 1u];
                let n0 = weight_neg[wi];
                let n1 = weight_neg[wi + 1u];
                acc0 += counts(p0.x, n0.x, ap, an);
                acc1 += counts(p0.y, n0.y, ap, an);
                acc2 += counts(p0.z, n0.z, ap, an);
                acc3 += counts(p0.w, n0.w, ap, an);
                acc4 += counts(p1.x, n1.x, ap, an);
                acc5 += counts(p1.y, n1.y, ap, an);
                acc6 += counts(p1.z, n1.z, ap, an);
                acc7 += counts(p1.w, n1.w, ap, an);
                wi += 2u;
            }
        }
    }
    let co0 = it.co0;
    let quad = it.quad;
    let rc = it.rc;
    let live = it.live;
    // Option A's general indexing, which covers the identity too.
    let residual = select(0u, 2u, p.residual == 1u);
    let accumulate = p.accumulate == 1u;
    let relu = p.relu == 1u;
    _ = store_images(co0, quad, rc, live, acc0, channel_terms(co0), residual, accumulate, relu);
    _ = store_images(co0 + 1u, quad, rc, live, acc1, channel_terms(co0 + 1u), residual, accumulate, relu);
    _ = store_images(co0 + 2u, quad, rc, live, acc2, channel_terms(co0 + 2u), residual, accumulate, relu);
    _ = store_images(co0 + 3u, quad, rc, live, acc3, channel_terms(co0 + 3u), residual, accumulate, relu);
    _ = store_images(co0 + 4u, quad, rc, live, acc4, channel_terms(co0 + 4u), residual, accumulate, relu);
    _ = store_images(co0 + 5u, quad, rc, live, acc5, channel_terms(co0 + 5u), residual, accumulate, relu);
    _ = store_images(co0 + 6u, quad, rc, live, acc6, channel_terms(co0 + 6u), residual, accumulate, relu);
    _ = store_images(co0 + 7u, quad, rc, live, acc7, channel_terms(co0 + 7u), residual, accumulate, relu);
}
