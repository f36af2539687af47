// conv2d_lanes.wgsl — 3×3 convolutions with padding 1 and stride 1 or 2 for adapters whose
// subgroups have at least 8 lanes: the blocked family's fast path on CPU drivers (llvmpipe runs
// one subgroup as the 8 lanes of a 256-bit vector). NCHW, no bias. The host uses conv2d.wgsl for
// other shapes and adapters; both compute the same sums in the same order per output. The host
// prepends lanes.wgsl (the register block of forward and grad_input: cols, the taps of a source
// row, mac16, mac_two_rows), which packed_conv_lanes.wgsl shares.
//
// Bindings (group 0):
//   0 p           uniform  LanesParams
//   1 src         storage read        forward, grad_weight: x [n, cin, h, w]; grad_input: dy [n, cout, oh, ow]
//   2 w           storage read        [cout, cin, 3, 3]
//   3 dst         storage read_write  forward: y [n, cout, oh, ow]; grad_input: dx [n, cin, h, w]
//   4 dy          storage read        grad_weight: [n, cout, oh, ow]
//   5 dw_partial  storage read_write  grad_weight: [splits, cout, cin·9] partial sums
//
// Cost model. llvmpipe runs a load or store whose address differs per lane as a scalar loop over
// the 8 lanes (about 20 cycles a lane), while a multiply-add over all 8 lanes costs under one:
// these kernels minimise loads per multiply-add. Private arrays are indexed by constants only (a
// computed index sends the whole array to memory, written lane by lane), and no private array is
// indexed in a loop (wgpu bounds every loop, so the driver unrolls none): the register-block code
// is written out.
//
// forward, grad_input: a register block of 16 output channels × 8 consecutive columns (a
//   segment) of two output rows per invocation; WG (64) invocations along segments, the channel
//   block (co0 = 16·group / p.groups) the same for the whole workgroup. Per input channel, each
//   of the segment's 4 source rows (5 at stride 2; 10 values at stride 1, 17 at stride 2) is
//   loaded once and feeds up to 6 taps × 16 channels × 8 columns; lane l loads the 9 weights of
//   channels co0 + l and co0 + 8 + l, which serve both rows, and subgroupBroadcast hands each
//   to every lane (2 loads for 16 weights). Two rows per invocation load each weight once for
//   both, halving the weight loads and broadcasts per multiply-add. Output channels past the end
//   read the last channel's weights and are not stored; invocations past the last segment repeat
//   it (so every lane takes part in the broadcasts) without storing, and subgroups made only of
//   those return at once.
//   grad_input (stride 1 only) is the forward convolution of dy with the kernel flipped and its
//   channels swapped: weight index = ch·p.w_ch + c·p.w_in + p.w_tap0 ± tap (p.w_flip). With
//   ACCUMULATE, grad_input adds to dx (a residual branch's first convolution adds to the
//   shortcut's gradient).
// grad_input_s2: stride 2 by parity. dx rows r = 2u + pr take only kernel rows i with
//   i ≡ pr + 1 (mod 2), from dy row u (+1 for i = 0), and likewise columns: each workgroup owns
//   one row parity pr (a bit of the group id) and each invocation both column parities of its
//   segment, so no tap is wasted. Block: 16 input channels × 8 consecutive class columns (dx
//   columns 2v and 2v + 1).
// grad_weight: WG (8) invocations, one subgroup; lane l owns input channel ci0 + l and every
//   (output channel co0 + k, tap) for k < 16: 144 accumulators. The sum over (n, row, segment) is
//   split into p.splits contiguous chunks, one per workgroup ((split, ci block, co block) from
//   the group id); per segment a lane loads its channel's 3 source rows and dy of channels
//   co0 + l and co0 + 8 + l, and broadcasts hand every lane all 16 channels' dy. Each chunk
//   writes its own slice of dw_partial; reduce.wgsl/sum_splits adds the slices in order.
// Every sum runs in a fixed order: results are bit-identical from run to run.

struct LanesParams {
    n: u32, src_c: u32, src_h: u32, src_w: u32,    // source: channels, rows, columns
    dst_c: u32, dst_h: u32, dst_w: u32,            // destination (forward, grad_input)
    w_ch: u32, w_in: u32, w_tap0: u32, w_flip: u32, // weight index of (out channel, in channel, tap)
    segs_row: u32, segs: u32, groups: u32, splits: u32, // segments per row and in all, position groups
}

@group(0) @binding(0) var<uniform> p: LanesParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_partial: array<f32>;

override WG: u32 = 64u;
override WG_GRAD_WEIGHT: u32 = 8u; // one subgroup of 8 lanes
// grad_input adds to dst (a pipeline constant, like lanes.wgsl's STRIDE and BLOCK_CH).
override ACCUMULATE: u32 = 0u;

fn src4(rb: u32, off: vec4u, ok: vec4f) -> vec4f {
    return vec4f(src[rb + off.x], src[rb + off.y], src[rb + off.z], src[rb + off.w]) * ok;
}

// The three taps of 8 outputs from the source row at rb (lanes.wgsl's taps_stride*), zero
// where k or rok says the column or row is outside the source.
fn row_taps(rb: u32, k: Cols, rok: f32) -> array<vec4f, 6> {
    let a = src4(rb, k.off[0], k.ok[0] * rok);
    let b = src4(rb, k.off[1], k.ok[1] * rok);
    if (STRIDE == 2u) {
        let e = src[rb + k.off[4].x] * k.ok[4].x * rok;
        return taps_stride2(a, b, src4(rb, k.off[2], k.ok[2] * rok), src4(rb, k.off[3], k.ok[3] * rok), e);
    }
    return taps_stride1(a, b, vec2f(src[rb + k.off[2].x], src[rb + k.off[2].y]) * k.ok[2].xy * rok);
}

fn put(o: u32, v: f32) {
    if (ACCUMULATE == 1u) {
        dst[o] += v;
    } else {
        dst[o] = v;
    }
}

// The first n of 8 values to dst, `step` apart from o.
fn put8(o: u32, lo: vec4f, hi: vec4f, n: u32, step: u32) {
    if (n > 0u) { put(o, lo.x); }
    if (n > 1u) { put(o + step, lo.y); }
    if (n > 2u) { put(o + 2u * step, lo.z); }
    if (n > 3u) { put(o + 3u * step, lo.w); }
    if (n > 4u) { put(o + 4u * step, hi.x); }
    if (n > 5u) { put(o + 5u * step, hi.y); }
    if (n > 6u) { put(o + 6u * step, hi.z); }
    if (n > 7u) { put(o + 7u * step, hi.w); }
}

// Store the block: channel ch0 + k of row `row` at columns c0 .. c0 + 7 of each dst plane,
// stepping `step` elements per column (1, or 2 for a stride-2 parity class).
fn store16(acc: ptr<function, array<vec4f, 32>>, base: u32, plane: u32, ch0: u32, cols_left: u32, step: u32, upper: bool) {
    if (ch0 + 0u < p.dst_c) { put8(base + 0u * plane, (*acc)[0], (*acc)[1], cols_left, step); }
    if (ch0 + 1u < p.dst_c) { put8(base + 1u * plane, (*acc)[2], (*acc)[3], cols_left, step); }
    if (ch0 + 2u < p.dst_c) { put8(base + 2u * plane, (*acc)[4], (*acc)[5], cols_left, step); }
    if (ch0 + 3u < p.dst_c) { put8(base + 3u * plane, (*acc)[6], (*acc)[7], cols_left, step); }
    if (ch0 + 4u < p.dst_c) { put8(base + 4u * plane, (*acc)[8], (*acc)[9], cols_left, step); }
    if (ch0 + 5u < p.dst_c) { put8(base + 5u * plane, (*acc)[10], (*acc)[11], cols_left, step); }
    if (ch0 + 6u < p.dst_c) { put8(base + 6u * plane, (*acc)[12], (*acc)[13], cols_left, step); }
    if (ch0 + 7u < p.dst_c) { put8(base + 7u * plane, (*acc)[14], (*acc)[15], cols_left, step); }
    if (upper && ch0 + 8u < p.dst_c) { put8(base + 8u * plane, (*acc)[16], (*acc)[17], cols_left, step); }
    if (upper && ch0 + 9u < p.dst_c) { put8(base + 9u * plane, (*acc)[18], (*acc)[19], cols_left, step); }
    if (upper && ch0 + 10u < p.dst_c) { put8(base + 10u * plane, (*acc)[20], (*acc)[21], cols_left, step); }
    if (upper && ch0 + 11u < p.dst_c) { put8(base + 11u * plane, (*acc)[22], (*acc)[23], cols_left, step); }
    if (upper && ch0 + 12u < p.dst_c) { put8(base + 12u * plane, (*acc)[24], (*acc)[25], cols_left, step); }
    if (upper && ch0 + 13u < p.dst_c) { put8(base + 13u * plane, (*acc)[26], (*acc)[27], cols_left, step); }
    if (upper && ch0 + 14u < p.dst_c) { put8(base + 14u * plane, (*acc)[28], (*acc)[29], cols_left, step); }
    if (upper && ch0 + 15u < p.dst_c) { put8(base + 15u * plane, (*acc)[30], (*acc)[31], cols_left, step); }
}

// Weight index of output channel `ch`, input channel `c`, tap t = 3·i + j.
fn w_index(ch: u32, c: u32, t: u32) -> u32 {
    let base = ch * p.w_ch + c * p.w_in + p.w_tap0;
    return select(base + t, base - t, p.w_flip == 1u);
}

// Tap t's weights of this lane's channels wa and, when `upper`, wb (input channel c).
fn weights(wa: u32, wb: u32, c: u32, t: u32, upper: bool) -> vec2f {
    var r = vec2f(w[w_index(wa, c, t)], 0.0);
    if (upper) { r.y = w[w_index(wb, c, t)]; }
    return r;
}

// The position group's segment for this invocation (clamped to the last one, so every lane takes
// part in the broadcasts), as (image, row, first column) with `rows` rows per image (two_rows:
// row pairs).
fn segment(pb: u32, rows: u32) -> vec3u {
    let q = min(pb, p.segs - 1u);
    let t = q / p.segs_row;
    return vec3u(t / rows, t % rows, (q % p.segs_row) * 8u);
}

// Source row r of a plane (zero outside it) as row_taps.
fn source_row(plane: u32, r: i32, k: Cols) -> array<vec4f, 6> {
    let rok = select(0.0, 1.0, r >= 0 && r < i32(p.src_h));
    return row_taps(plane + u32(clamp(r, 0, i32(p.src_h) - 1)) * p.src_w, k, rok);
}

// forward and grad_input: destination rows 2·seg.y and 2·seg.y + 1 of the segment, from source
// rows top .. top + 2 and top + stride .. top + stride + 2.
fn two_rows(wg: vec3u, nwg: vec3u, li: u32, lane: u32) {
    let g = wg.y * nwg.x + wg.x;
    let ch0 = (g / p.groups) * 16u;
    let pb = (g % p.groups) * WG + li;
    // Subgroups past the last segment have nothing to compute or share.
    if (subgroupAll(pb >= p.segs)) { return; }
    let seg = segment(pb, (p.dst_h + 1u) / 2u);
    let row = 2u * seg.y;
    let k = cols(i32(seg.z * STRIDE) - 1, p.src_w);
    let wa = min(ch0 + lane % 8u, p.dst_c - 1u);
    let wb = min(ch0 + 8u + lane % 8u, p.dst_c - 1u);
    let upper = has_upper(ch0, p.dst_c);
    let top = i32(row * STRIDE) - 1;
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    for (var c = 0u; c < p.src_c; c++) {
        let plane = (seg.x * p.src_c + c) * p.src_h * p.src_w;
        var wv: array<vec2f, 9>;
        wv[0] = weights(wa, wb, c, 0u, upper); wv[1] = weights(wa, wb, c, 1u, upper);
        wv[2] = weights(wa, wb, c, 2u, upper); wv[3] = weights(wa, wb, c, 3u, upper);
        wv[4] = weights(wa, wb, c, 4u, upper); wv[5] = weights(wa, wb, c, 5u, upper);
        wv[6] = weights(wa, wb, c, 6u, upper); wv[7] = weights(wa, wb, c, 7u, upper);
        wv[8] = weights(wa, wb, c, 8u, upper);
        var t4: array<vec4f, 6>;
        if (STRIDE == 2u) { t4 = source_row(plane, top + 4, k); }
        mac_two_rows(&acc0, &acc1, wv, source_row(plane, top, k), source_row(plane, top + 1, k),
                     source_row(plane, top + 2, k), source_row(plane, top + 3, k), t4, upper);
    }
    if (pb >= p.segs) { return; }
    let plane = p.dst_h * p.dst_w;
    let base = (seg.x * p.dst_c + ch0) * plane + row * p.dst_w + seg.z;
    store16(&acc0, base, plane, ch0, p.dst_w - seg.z, 1u, upper);
    if (row + 1u < p.dst_h) { store16(&acc1, base + p.dst_w, plane, ch0, p.dst_w - seg.z, 1u, upper); }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    two_rows(wg, nwg, li, lane);
}

// Same as forward at STRIDE 1 (bindings src = dy, dst = dx, weights flipped and transposed by
// the host's w_* parameters): the stride-1 input gradient.
@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    two_rows(wg, nwg, li, lane);
}

// Stride 2: dx[n, ci, 2u + pr, 2v + pc] = Σ_co Σ_{i ≡ pr + 1, j ≡ pc + 1 (mod 2)}
//   w[co, ci, i, j] · dy[n, co, u + (pr + 1 − i)/2, v + (pc + 1 − j)/2].
// The group id gives (channel block, row parity pr, position group); segments cover class
// positions: ⌈h/2⌉ class rows of p.segs_row segments of ⌈w/2⌉ class columns. Each invocation
// computes both column parities of its segment from the same dy values (acc_even: dx columns
// 2v, tap j = 1; acc_odd: 2v + 1, taps j = 2 and 0): with the column parity in the group id,
// llvmpipe ran the odd class's second tap under a mask in the even class too.
@compute @workgroup_size(WG)
fn grad_input_s2(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let g = wg.y * nwg.x + wg.x;
    let ci0 = (g / (2u * p.groups)) * 16u;
    let pr = (g / p.groups) % 2u;
    let pb = (g % p.groups) * WG + li;
    // Subgroups past the last segment have nothing to compute or share.
    if (subgroupAll(pb >= p.segs)) { return; }
    let seg = segment(pb, (p.dst_h + 1u) / 2u);
    // dy columns v .. v + 8 of the segment
    let k = cols(i32(seg.z), p.src_w);
    let wa = min(ci0 + lane % 8u, p.dst_c - 1u);
    let wb = min(ci0 + 8u + lane % 8u, p.dst_c - 1u);
    let upper = has_upper(ci0, p.dst_c);
    let src_hw = p.src_h * p.src_w;
    // Kernel rows of the class: pr = 0: i = 1 from dy row u; pr = 1: i = 2 from row u and i = 0
    // from row u + 1.
    let i_near = 1u + pr;
    var acc_even: array<vec4f, 32>;
    var acc_odd: array<vec4f, 32>;
    for (var c = 0u; c < p.src_c; c++) {
        let plane = (seg.x * p.src_c + c) * src_hw;
        for (var dr = 0u; dr <= pr; dr++) {
            let r = seg.y + dr;
            let rok = select(0.0, 1.0, r < p.src_h);
            let rb = plane + min(r, p.src_h - 1u) * p.src_w;
            let a = src4(rb, k.off[0], k.ok[0] * rok);
            let b = src4(rb, k.off[1], k.ok[1] * rok);
            let e = src[rb + k.off[2].x] * k.ok[2].x * rok;
            let i = i_near - 2u * dr;
            // taps 1 and 2 read dy columns v .., tap 0 reads v + 1 ..
            mac16(&acc_even, weights(wa, wb, c, 3u * i + 1u, upper), a, b, upper);
            mac16(&acc_odd, weights(wa, wb, c, 3u * i + 2u, upper), a, b, upper);
            mac16(&acc_odd, weights(wa, wb, c, 3u * i, upper), vec4f(a.yzw, b.x), vec4f(b.yzw, e), upper);
        }
    }
    if (pb >= p.segs) { return; }
    let row = 2u * seg.y + pr;
    if (row >= p.dst_h) { return; }
    let plane = p.dst_h * p.dst_w;
    let base = (seg.x * p.dst_c + ci0) * plane + row * p.dst_w + 2u * seg.z;
    // ⌈w/2⌉ even and ⌊w/2⌋ odd columns; segments cover the even ones.
    store16(&acc_even, base, plane, ci0, (p.dst_w + 1u) / 2u - seg.z, 2u, upper);
    let odd_cols = p.dst_w / 2u;
    if (seg.z < odd_cols) { store16(&acc_odd, base + 1u, plane, ci0, odd_cols - seg.z, 2u, upper); }
}

// Lane l's 9 taps (lo, hi over the 8 positions) against channel k's dy, for the 16 channels:
// acc[9k + tap] += dy_k · x_tap, where lane k % 8 holds dy_k in (a_lo, a_hi) (k < 8) or (b_lo, b_hi).
// Channels 8-15 only when `upper` (they exist).
fn grad_acc(acc: ptr<function, array<f32, 144>>, t: array<vec4f, 18>, a_lo: vec4f, a_hi: vec4f, b_lo: vec4f, b_hi: vec4f, upper: bool) {
    var lo: vec4f;
    var hi: vec4f;
    lo = vec4f(subgroupBroadcast(a_lo.x, 0u), subgroupBroadcast(a_lo.y, 0u), subgroupBroadcast(a_lo.z, 0u), subgroupBroadcast(a_lo.w, 0u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 0u), subgroupBroadcast(a_hi.y, 0u), subgroupBroadcast(a_hi.z, 0u), subgroupBroadcast(a_hi.w, 0u));
    (*acc)[0] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[1] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[2] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[3] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[4] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[5] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[6] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[7] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[8] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 1u), subgroupBroadcast(a_lo.y, 1u), subgroupBroadcast(a_lo.z, 1u), subgroupBroadcast(a_lo.w, 1u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 1u), subgroupBroadcast(a_hi.y, 1u), subgroupBroadcast(a_hi.z, 1u), subgroupBroadcast(a_hi.w, 1u));
    (*acc)[9] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[10] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[11] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[12] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[13] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[14] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[15] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[16] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[17] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 2u), subgroupBroadcast(a_lo.y, 2u), subgroupBroadcast(a_lo.z, 2u), subgroupBroadcast(a_lo.w, 2u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 2u), subgroupBroadcast(a_hi.y, 2u), subgroupBroadcast(a_hi.z, 2u), subgroupBroadcast(a_hi.w, 2u));
    (*acc)[18] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[19] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[20] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[21] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[22] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[23] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[24] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[25] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[26] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 3u), subgroupBroadcast(a_lo.y, 3u), subgroupBroadcast(a_lo.z, 3u), subgroupBroadcast(a_lo.w, 3u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 3u), subgroupBroadcast(a_hi.y, 3u), subgroupBroadcast(a_hi.z, 3u), subgroupBroadcast(a_hi.w, 3u));
    (*acc)[27] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[28] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[29] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[30] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[31] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[32] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[33] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[34] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[35] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 4u), subgroupBroadcast(a_lo.y, 4u), subgroupBroadcast(a_lo.z, 4u), subgroupBroadcast(a_lo.w, 4u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 4u), subgroupBroadcast(a_hi.y, 4u), subgroupBroadcast(a_hi.z, 4u), subgroupBroadcast(a_hi.w, 4u));
    (*acc)[36] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[37] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[38] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[39] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[40] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[41] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[42] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[43] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[44] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 5u), subgroupBroadcast(a_lo.y, 5u), subgroupBroadcast(a_lo.z, 5u), subgroupBroadcast(a_lo.w, 5u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 5u), subgroupBroadcast(a_hi.y, 5u), subgroupBroadcast(a_hi.z, 5u), subgroupBroadcast(a_hi.w, 5u));
    (*acc)[45] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[46] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[47] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[48] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[49] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[50] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[51] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[52] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[53] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 6u), subgroupBroadcast(a_lo.y, 6u), subgroupBroadcast(a_lo.z, 6u), subgroupBroadcast(a_lo.w, 6u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 6u), subgroupBroadcast(a_hi.y, 6u), subgroupBroadcast(a_hi.z, 6u), subgroupBroadcast(a_hi.w, 6u));
    (*acc)[54] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[55] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[56] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[57] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[58] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[59] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[60] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[61] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[62] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(a_lo.x, 7u), subgroupBroadcast(a_lo.y, 7u), subgroupBroadcast(a_lo.z, 7u), subgroupBroadcast(a_lo.w, 7u));
    hi = vec4f(subgroupBroadcast(a_hi.x, 7u), subgroupBroadcast(a_hi.y, 7u), subgroupBroadcast(a_hi.z, 7u), subgroupBroadcast(a_hi.w, 7u));
    (*acc)[63] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[64] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[65] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[66] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[67] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[68] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[69] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[70] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[71] += dot(lo, t[16]) + dot(hi, t[17]);
    if (!upper) { return; }
    lo = vec4f(subgroupBroadcast(b_lo.x, 0u), subgroupBroadcast(b_lo.y, 0u), subgroupBroadcast(b_lo.z, 0u), subgroupBroadcast(b_lo.w, 0u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 0u), subgroupBroadcast(b_hi.y, 0u), subgroupBroadcast(b_hi.z, 0u), subgroupBroadcast(b_hi.w, 0u));
    (*acc)[72] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[73] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[74] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[75] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[76] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[77] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[78] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[79] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[80] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 1u), subgroupBroadcast(b_lo.y, 1u), subgroupBroadcast(b_lo.z, 1u), subgroupBroadcast(b_lo.w, 1u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 1u), subgroupBroadcast(b_hi.y, 1u), subgroupBroadcast(b_hi.z, 1u), subgroupBroadcast(b_hi.w, 1u));
    (*acc)[81] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[82] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[83] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[84] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[85] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[86] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[87] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[88] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[89] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 2u), subgroupBroadcast(b_lo.y, 2u), subgroupBroadcast(b_lo.z, 2u), subgroupBroadcast(b_lo.w, 2u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 2u), subgroupBroadcast(b_hi.y, 2u), subgroupBroadcast(b_hi.z, 2u), subgroupBroadcast(b_hi.w, 2u));
    (*acc)[90] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[91] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[92] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[93] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[94] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[95] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[96] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[97] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[98] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 3u), subgroupBroadcast(b_lo.y, 3u), subgroupBroadcast(b_lo.z, 3u), subgroupBroadcast(b_lo.w, 3u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 3u), subgroupBroadcast(b_hi.y, 3u), subgroupBroadcast(b_hi.z, 3u), subgroupBroadcast(b_hi.w, 3u));
    (*acc)[99] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[100] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[101] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[102] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[103] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[104] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[105] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[106] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[107] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 4u), subgroupBroadcast(b_lo.y, 4u), subgroupBroadcast(b_lo.z, 4u), subgroupBroadcast(b_lo.w, 4u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 4u), subgroupBroadcast(b_hi.y, 4u), subgroupBroadcast(b_hi.z, 4u), subgroupBroadcast(b_hi.w, 4u));
    (*acc)[108] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[109] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[110] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[111] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[112] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[113] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[114] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[115] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[116] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 5u), subgroupBroadcast(b_lo.y, 5u), subgroupBroadcast(b_lo.z, 5u), subgroupBroadcast(b_lo.w, 5u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 5u), subgroupBroadcast(b_hi.y, 5u), subgroupBroadcast(b_hi.z, 5u), subgroupBroadcast(b_hi.w, 5u));
    (*acc)[117] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[118] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[119] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[120] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[121] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[122] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[123] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[124] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[125] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 6u), subgroupBroadcast(b_lo.y, 6u), subgroupBroadcast(b_lo.z, 6u), subgroupBroadcast(b_lo.w, 6u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 6u), subgroupBroadcast(b_hi.y, 6u), subgroupBroadcast(b_hi.z, 6u), subgroupBroadcast(b_hi.w, 6u));
    (*acc)[126] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[127] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[128] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[129] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[130] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[131] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[132] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[133] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[134] += dot(lo, t[16]) + dot(hi, t[17]);
    lo = vec4f(subgroupBroadcast(b_lo.x, 7u), subgroupBroadcast(b_lo.y, 7u), subgroupBroadcast(b_lo.z, 7u), subgroupBroadcast(b_lo.w, 7u));
    hi = vec4f(subgroupBroadcast(b_hi.x, 7u), subgroupBroadcast(b_hi.y, 7u), subgroupBroadcast(b_hi.z, 7u), subgroupBroadcast(b_hi.w, 7u));
    (*acc)[135] += dot(lo, t[0]) + dot(hi, t[1]);
    (*acc)[136] += dot(lo, t[2]) + dot(hi, t[3]);
    (*acc)[137] += dot(lo, t[4]) + dot(hi, t[5]);
    (*acc)[138] += dot(lo, t[6]) + dot(hi, t[7]);
    (*acc)[139] += dot(lo, t[8]) + dot(hi, t[9]);
    (*acc)[140] += dot(lo, t[10]) + dot(hi, t[11]);
    (*acc)[141] += dot(lo, t[12]) + dot(hi, t[13]);
    (*acc)[142] += dot(lo, t[14]) + dot(hi, t[15]);
    (*acc)[143] += dot(lo, t[16]) + dot(hi, t[17]);
}

fn grad_store(acc: ptr<function, array<f32, 144>>, o: u32, co0: u32, row: u32, upper: bool) {
    if (co0 + 0u < p.dst_c) {
        let b = o + 0u * row;
        dw_partial[b + 0u] = (*acc)[0]; dw_partial[b + 1u] = (*acc)[1]; dw_partial[b + 2u] = (*acc)[2]; dw_partial[b + 3u] = (*acc)[3]; dw_partial[b + 4u] = (*acc)[4]; dw_partial[b + 5u] = (*acc)[5]; dw_partial[b + 6u] = (*acc)[6]; dw_partial[b + 7u] = (*acc)[7]; dw_partial[b + 8u] = (*acc)[8];
    }
    if (co0 + 1u < p.dst_c) {
        let b = o + 1u * row;
        dw_partial[b + 0u] = (*acc)[9]; dw_partial[b + 1u] = (*acc)[10]; dw_partial[b + 2u] = (*acc)[11]; dw_partial[b + 3u] = (*acc)[12]; dw_partial[b + 4u] = (*acc)[13]; dw_partial[b + 5u] = (*acc)[14]; dw_partial[b + 6u] = (*acc)[15]; dw_partial[b + 7u] = (*acc)[16]; dw_partial[b + 8u] = (*acc)[17];
    }
    if (co0 + 2u < p.dst_c) {
        let b = o + 2u * row;
        dw_partial[b + 0u] = (*acc)[18]; dw_partial[b + 1u] = (*acc)[19]; dw_partial[b + 2u] = (*acc)[20]; dw_partial[b + 3u] = (*acc)[21]; dw_partial[b + 4u] = (*acc)[22]; dw_partial[b + 5u] = (*acc)[23]; dw_partial[b + 6u] = (*acc)[24]; dw_partial[b + 7u] = (*acc)[25]; dw_partial[b + 8u] = (*acc)[26];
    }
    if (co0 + 3u < p.dst_c) {
        let b = o + 3u * row;
        dw_partial[b + 0u] = (*acc)[27]; dw_partial[b + 1u] = (*acc)[28]; dw_partial[b + 2u] = (*acc)[29]; dw_partial[b + 3u] = (*acc)[30]; dw_partial[b + 4u] = (*acc)[31]; dw_partial[b + 5u] = (*acc)[32]; dw_partial[b + 6u] = (*acc)[33]; dw_partial[b + 7u] = (*acc)[34]; dw_partial[b + 8u] = (*acc)[35];
    }
    if (co0 + 4u < p.dst_c) {
        let b = o + 4u * row;
        dw_partial[b + 0u] = (*acc)[36]; dw_partial[b + 1u] = (*acc)[37]; dw_partial[b + 2u] = (*acc)[38]; dw_partial[b + 3u] = (*acc)[39]; dw_partial[b + 4u] = (*acc)[40]; dw_partial[b + 5u] = (*acc)[41]; dw_partial[b + 6u] = (*acc)[42]; dw_partial[b + 7u] = (*acc)[43]; dw_partial[b + 8u] = (*acc)[44];
    }
    if (co0 + 5u < p.dst_c) {
        let b = o + 5u * row;
        dw_partial[b + 0u] = (*acc)[45]; dw_partial[b + 1u] = (*acc)[46]; dw_partial[b + 2u] = (*acc)[47]; dw_partial[b + 3u] = (*acc)[48]; dw_partial[b + 4u] = (*acc)[49]; dw_partial[b + 5u] = (*acc)[50]; dw_partial[b + 6u] = (*acc)[51]; dw_partial[b + 7u] = (*acc)[52]; dw_partial[b + 8u] = (*acc)[53];
    }
    if (co0 + 6u < p.dst_c) {
        let b = o + 6u * row;
        dw_partial[b + 0u] = (*acc)[54]; dw_partial[b + 1u] = (*acc)[55]; dw_partial[b + 2u] = (*acc)[56]; dw_partial[b + 3u] = (*acc)[57]; dw_partial[b + 4u] = (*acc)[58]; dw_partial[b + 5u] = (*acc)[59]; dw_partial[b + 6u] = (*acc)[60]; dw_partial[b + 7u] = (*acc)[61]; dw_partial[b + 8u] = (*acc)[62];
    }
    if (co0 + 7u < p.dst_c) {
        let b = o + 7u * row;
        dw_partial[b + 0u] = (*acc)[63]; dw_partial[b + 1u] = (*acc)[64]; dw_partial[b + 2u] = (*acc)[65]; dw_partial[b + 3u] = (*acc)[66]; dw_partial[b + 4u] = (*acc)[67]; dw_partial[b + 5u] = (*acc)[68]; dw_partial[b + 6u] = (*acc)[69]; dw_partial[b + 7u] = (*acc)[70]; dw_partial[b + 8u] = (*acc)[71];
    }
    if (upper && co0 + 8u < p.dst_c) {
        let b = o + 8u * row;
        dw_partial[b + 0u] = (*acc)[72]; dw_partial[b + 1u] = (*acc)[73]; dw_partial[b + 2u] = (*acc)[74]; dw_partial[b + 3u] = (*acc)[75]; dw_partial[b + 4u] = (*acc)[76]; dw_partial[b + 5u] = (*acc)[77]; dw_partial[b + 6u] = (*acc)[78]; dw_partial[b + 7u] = (*acc)[79]; dw_partial[b + 8u] = (*acc)[80];
    }
    if (upper && co0 + 9u < p.dst_c) {
        let b = o + 9u * row;
        dw_partial[b + 0u] = (*acc)[81]; dw_partial[b + 1u] = (*acc)[82]; dw_partial[b + 2u] = (*acc)[83]; dw_partial[b + 3u] = (*acc)[84]; dw_partial[b + 4u] = (*acc)[85]; dw_partial[b + 5u] = (*acc)[86]; dw_partial[b + 6u] = (*acc)[87]; dw_partial[b + 7u] = (*acc)[88]; dw_partial[b + 8u] = (*acc)[89];
    }
    if (upper && co0 + 10u < p.dst_c) {
        let b = o + 10u * row;
        dw_partial[b + 0u] = (*acc)[90]; dw_partial[b + 1u] = (*acc)[91]; dw_partial[b + 2u] = (*acc)[92]; dw_partial[b + 3u] = (*acc)[93]; dw_partial[b + 4u] = (*acc)[94]; dw_partial[b + 5u] = (*acc)[95]; dw_partial[b + 6u] = (*acc)[96]; dw_partial[b + 7u] = (*acc)[97]; dw_partial[b + 8u] = (*acc)[98];
    }
    if (upper && co0 + 11u < p.dst_c) {
        let b = o + 11u * row;
        dw_partial[b + 0u] = (*acc)[99]; dw_partial[b + 1u] = (*acc)[100]; dw_partial[b + 2u] = (*acc)[101]; dw_partial[b + 3u] = (*acc)[102]; dw_partial[b + 4u] = (*acc)[103]; dw_partial[b + 5u] = (*acc)[104]; dw_partial[b + 6u] = (*acc)[105]; dw_partial[b + 7u] = (*acc)[106]; dw_partial[b + 8u] = (*acc)[107];
    }
    if (upper && co0 + 12u < p.dst_c) {
        let b = o + 12u * row;
        dw_partial[b + 0u] = (*acc)[108]; dw_partial[b + 1u] = (*acc)[109]; dw_partial[b + 2u] = (*acc)[110]; dw_partial[b + 3u] = (*acc)[111]; dw_partial[b + 4u] = (*acc)[112]; dw_partial[b + 5u] = (*acc)[113]; dw_partial[b + 6u] = (*acc)[114]; dw_partial[b + 7u] = (*acc)[115]; dw_partial[b + 8u] = (*acc)[116];
    }
    if (upper && co0 + 13u < p.dst_c) {
        let b = o + 13u * row;
        dw_partial[b + 0u] = (*acc)[117]; dw_partial[b + 1u] = (*acc)[118]; dw_partial[b + 2u] = (*acc)[119]; dw_partial[b + 3u] = (*acc)[120]; dw_partial[b + 4u] = (*acc)[121]; dw_partial[b + 5u] = (*acc)[122]; dw_partial[b + 6u] = (*acc)[123]; dw_partial[b + 7u] = (*acc)[124]; dw_partial[b + 8u] = (*acc)[125];
    }
    if (upper && co0 + 14u < p.dst_c) {
        let b = o + 14u * row;
        dw_partial[b + 0u] = (*acc)[126]; dw_partial[b + 1u] = (*acc)[127]; dw_partial[b + 2u] = (*acc)[128]; dw_partial[b + 3u] = (*acc)[129]; dw_partial[b + 4u] = (*acc)[130]; dw_partial[b + 5u] = (*acc)[131]; dw_partial[b + 6u] = (*acc)[132]; dw_partial[b + 7u] = (*acc)[133]; dw_partial[b + 8u] = (*acc)[134];
    }
    if (upper && co0 + 15u < p.dst_c) {
        let b = o + 15u * row;
        dw_partial[b + 0u] = (*acc)[135]; dw_partial[b + 1u] = (*acc)[136]; dw_partial[b + 2u] = (*acc)[137]; dw_partial[b + 3u] = (*acc)[138]; dw_partial[b + 4u] = (*acc)[139]; dw_partial[b + 5u] = (*acc)[140]; dw_partial[b + 6u] = (*acc)[141]; dw_partial[b + 7u] = (*acc)[142]; dw_partial[b + 8u] = (*acc)[143];
    }
}

// dy at the first `left` of 8 columns from b, zero past them (reads stay inside the row).
fn dy8(b: u32, left: u32) -> array<vec4f, 2> {
    let last = vec4u(left - 1u);
    let lo = b + min(vec4u(0u, 1u, 2u, 3u), last);
    let hi = b + min(vec4u(4u, 5u, 6u, 7u), last);
    let lo_ok = vec4f(vec4u(left) > vec4u(0u, 1u, 2u, 3u));
    let hi_ok = vec4f(vec4u(left) > vec4u(4u, 5u, 6u, 7u));
    return array<vec4f, 2>(vec4f(dy[lo.x], dy[lo.y], dy[lo.z], dy[lo.w]) * lo_ok,
                           vec4f(dy[hi.x], dy[hi.y], dy[hi.z], dy[hi.w]) * hi_ok);
}

// dw[co, ci, i, j] = Σ_{n, r, c} dy[n, co, r, c] · x[n, ci, r·s − 1 + i, c·s − 1 + j] over this
// workgroup's chunk of segments. Here src = x: p.src_c = cin, (p.src_h, p.src_w) = (h, w);
// p.dst_c = cout, (p.dst_h, p.dst_w) = (oh, ow).
@compute @workgroup_size(WG_GRAD_WEIGHT)
fn grad_weight(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(subgroup_invocation_id) lane: u32) {
    let g = wg.y * nwg.x + wg.x;
    let ci_blocks = (p.src_c + 7u) / 8u;
    let split = g % p.splits;
    let ci_block = (g / p.splits) % ci_blocks;
    let co0 = (g / (p.splits * ci_blocks)) * 16u;
    let l = lane % 8u;
    let ci = ci_block * 8u + l;
    let has_ci = ci < p.src_c;
    let chunk = (p.segs + p.splits - 1u) / p.splits;
    let s_begin = split * chunk;
    let s_end = min(s_begin + chunk, p.segs);
    let src_hw = p.src_h * p.src_w;
    let dy_hw = p.dst_h * p.dst_w;
    let co_a = min(co0 + l, p.dst_c - 1u);
    let co_b = min(co0 + 8u + l, p.dst_c - 1u);
    let upper = has_upper(co0, p.dst_c);
    var acc: array<f32, 144>;
    for (var s = s_begin; s < s_end; s++) {
        let seg = segment(s, p.dst_h);
        let left = p.dst_w - seg.z;
        let d = seg.y * p.dst_w + seg.z;
        let da = dy8((seg.x * p.dst_c + co_a) * dy_hw + d, left);
        var db: array<vec4f, 2>;
        if (upper) { db = dy8((seg.x * p.dst_c + co_b) * dy_hw + d, left); }
        var t: array<vec4f, 18>;
        if (has_ci) {
            let k = cols(i32(seg.z * STRIDE) - 1, p.src_w);
            let plane = (seg.x * p.src_c + ci) * src_hw;
            let r0 = i32(seg.y * STRIDE) - 1;
            let t0 = row_taps(plane + u32(clamp(r0, 0, i32(p.src_h) - 1)) * p.src_w, k, select(0.0, 1.0, r0 >= 0));
            let t1 = row_taps(plane + u32(r0 + 1) * p.src_w, k, 1.0);
            let r2 = r0 + 2;
            let t2 = row_taps(plane + u32(min(r2, i32(p.src_h) - 1)) * p.src_w, k, select(0.0, 1.0, r2 < i32(p.src_h)));
            t = array<vec4f, 18>(t0[0], t0[1], t0[2], t0[3], t0[4], t0[5], t1[0], t1[1], t1[2], t1[3], t1[4], t1[5],
                                 t2[0], t2[1], t2[2], t2[3], t2[4], t2[5]);
        }
        grad_acc(&acc, t, da[0], da[1], db[0], db[1], upper);
    }
    if (!has_ci) { return; }
    grad_store(&acc, split * p.dst_c * p.src_c * 9u + co0 * p.src_c * 9u + ci * 9u, co0, p.src_c * 9u, upper);
}
