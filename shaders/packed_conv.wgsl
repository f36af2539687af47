// packed_conv.wgsl — inference convolution straight from bit-packed ternary weights, with the
// folded batch norm, the residual add and ReLU fused into the epilogue. NCHW, no padding bias.
//
// Bindings (group 0):
//   0 p       uniform  PackedConvParams
//   1 x       storage read        [n, cin, h, w]
//   2 pos     storage read        u32 words: bit i set ⇔ weight i is +Wp   (ternary)
//   3 neg     storage read        u32 words: bit i set ⇔ weight i is −Wn   (ternary)
//   4 wp      storage read        [1] or [cout] (p.per_channel)            (ternary)
//   5 wn      storage read        [1] or [cout]                            (ternary)
//   6 weight  storage read        [cout, cin, kh, kw] f32                  (dense)
//   7 scale   storage read        [cout]  folded batch norm: γ / √(var + ε)
//   8 shift   storage read        [cout]  β − mean · scale
//   9 res     storage read        [n, res_c, res_h, res_w]  residual input (p.residual = 1)
//   10 y      storage read_write  [n, cout, oh, ow]
//
// Weight i is the i-th of the layer's weights in [cout, cin, kh, kw] order; it is bit i % 32
// (least significant first) of word i / 32. Rows are not padded, so a layer costs 2 bits per
// weight plus its scales.
//
// Mapping: one workgroup of 64 per (output channel, 256 output positions); invocation l owns
// positions l, l + 64, l + 128, l + 192 of the block, so loads coalesce across invocations. The
// channel, and so every weight word, is uniform across the workgroup: set bits are visited with
// firstTrailingBit, all-zero words are skipped, and each visited weight costs one add or
// subtract per position — no multiplies until the epilogue.
//
// Epilogue: v = (Wp·Σ₊x − Wn·Σ₋x)·scale + shift  (dense: (Σ w·x)·scale + shift), then
// + residual (option-A: subsample by res_stride, channels offset by res_pad_c, zero outside),
// then ReLU if p.relu = 1.

struct PackedConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, per_channel: u32,
    relu: u32, residual: u32, res_c: u32, res_h: u32,
    res_w: u32, res_stride: u32, res_pad_c: u32,
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

// Per-invocation view of its 4 output positions.
struct Positions {
    base: vec4u,   // offset of image n in x
    r0: vec4i,     // top input row of the window
    c0: vec4i,     // left input column of the window
    valid: vec4<bool>,
}

fn positions(block: u32, li: u32) -> Positions {
    var q: Positions;
    let total = p.n * p.oh * p.ow;
    for (var j = 0u; j < 4u; j++) {
        let idx = block * 256u + li + 64u * j;
        q.valid[j] = idx < total;
        let i = min(idx, total - 1u);
        let n = i / (p.oh * p.ow);
        let rc = i % (p.oh * p.ow);
        q.base[j] = n * p.cin * p.h * p.w;
        q.r0[j] = i32((rc / p.ow) * p.stride) - i32(p.pad);
        q.c0[j] = i32((rc % p.ow) * p.stride) - i32(p.pad);
    }
    return q;
}

// x at kernel tap k (flattened [cin, kh, kw]) for the 4 positions, zero outside the image.
fn gather(q: Positions, k: u32) -> vec4f {
    let kk = p.kh * p.kw;
    let ci = k / kk;
    let t = k % kk;
    let di = i32(t / p.kw);
    let dj = i32(t % p.kw);
    var v: vec4f;
    for (var j = 0u; j < 4u; j++) {
        let r = q.r0[j] + di;
        let c = q.c0[j] + dj;
        let inside = r >= 0 && r < i32(p.h) && c >= 0 && c < i32(p.w);
        let at = q.base[j] + ci * p.h * p.w + u32(max(r, 0)) * p.w + u32(max(c, 0));
        v[j] = select(0.0, x[select(0u, at, inside)], inside);
    }
    return v;
}

fn epilogue(q: Positions, block: u32, li: u32, co: u32, acc: vec4f) {
    let out_hw = p.oh * p.ow;
    for (var j = 0u; j < 4u; j++) {
        if (!q.valid[j]) { continue; }
        let idx = block * 256u + li + 64u * j;
        let n = idx / out_hw;
        let rc = idx % out_hw;
        var v = acc[j] * scale[co] + shift[co];
        if (p.residual == 1u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c) {
            let rr = (rc / p.ow) * p.res_stride;
            let cc = (rc % p.ow) * p.res_stride;
            v += res[((n * p.res_c + co - p.res_pad_c) * p.res_h + rr) * p.res_w + cc];
        }
        if (p.relu == 1u) { v = max(v, 0.0); }
        y[(n * p.cout + co) * out_hw + rc] = v;
    }
}

@compute @workgroup_size(64)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let g = wg.y * nwg.x + wg.x;
    let blocks = (p.n * p.oh * p.ow + 255u) / 256u;
    let co = g / blocks;
    let block = g % blocks;
    if (co >= p.cout) { return; }
    let q = positions(block, li);
    let k_len = p.cin * p.kh * p.kw;
    let first = co * k_len;          // bit range [first, first + k_len) of this channel
    let last = first + k_len;
    var sp = vec4f(0.0);
    var sn = vec4f(0.0);
    for (var word = first / 32u; word * 32u < last; word++) {
        // Keep only this channel's bits of the word.
        let lo = max(first, word * 32u) - word * 32u;
        let hi = min(last, word * 32u + 32u) - word * 32u;
        let keep = select((1u << hi) - 1u, 0xffffffffu, hi == 32u) & ~((1u << lo) - 1u);
        var mp = pos[word] & keep;
        var mn = neg[word] & keep;
        let k0 = word * 32u - first;  // wraps for the first word; only k0 + bit is used
        while (mp != 0u) {
            let b = firstTrailingBit(mp);
            mp &= mp - 1u;
            sp += gather(q, k0 + b);
        }
        while (mn != 0u) {
            let b = firstTrailingBit(mn);
            mn &= mn - 1u;
            sn += gather(q, k0 + b);
        }
    }
    let c = co * p.per_channel;
    epilogue(q, block, li, co, wp[c] * sp - wn[c] * sn);
}

@compute @workgroup_size(64)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let g = wg.y * nwg.x + wg.x;
    let blocks = (p.n * p.oh * p.ow + 255u) / 256u;
    let co = g / blocks;
    let block = g % blocks;
    if (co >= p.cout) { return; }
    let q = positions(block, li);
    let k_len = p.cin * p.kh * p.kw;
    var acc = vec4f(0.0);
    for (var k = 0u; k < k_len; k++) {
        acc += weight[co * k_len + k] * gather(q, k);
    }
    epilogue(q, block, li, co, acc);
}
