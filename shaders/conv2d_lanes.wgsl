// import: lanes.wgsl conv2d_lanes_unrolled.wgsl
// conv2d_lanes.wgsl — 3×3 convolutions with padding 1 and stride 1 or 2 for adapters whose
// subgroups have at least 8 lanes: the blocked family's fast path on CPU drivers (llvmpipe runs
// one subgroup as the 8 lanes of a 256-bit vector). NCHW, no bias. The host uses conv2d.wgsl for
// other shapes and adapters; both compute the same sums in the same order per output. It imports
// lanes.wgsl (the register block of forward and grad_input: cols, the taps of a source row,
// mac_two_rows, whose multiply-adds are generated in lanes_unrolled.wgsl), which
// packed_conv_lanes.wgsl shares, and conv2d_lanes_unrolled.wgsl (store16, mac_classes,
// grad_acc, grad_store), generated.
//
// Bindings (group 0):
//   0 p           uniform  LanesParams
//   1 src         storage read        forward, grad_weight: x [n, cin, h, w]; grad_input: dy [n, cout, oh, ow]
//   3 dst         storage read_write  forward: y [n, cout, oh, ow]; grad_input: dx [n, cin, h, w]
//   4 dy          storage read        grad_weight: [n, cout, oh, ow]
//   5 dw_partial  storage read_write  grad_weight: [splits, cout, cin·9] partial sums
//   6 src_vec     storage read        src as vec4s (VEC_ROWS ≠ 0)
//   7 dy_vec      storage read        grad_weight: dy as vec4s (VEC_ROWS = 1)
//   8 dst_vec     storage read_write  forward_vec, grad_input_vec: dst as vec4s (in place of dst)
//   9 stats_partial storage read_write forward_vec_stats: [dst_c, ⌈segs/8⌉, 3] batch-norm partials
//   10 bn_mean, 11 bn_invstd, 12 bn_gamma, 13 bn_beta  storage read  [src_c] (SOURCE_BN = 1)
//   14 w_vec      storage read        forward, grad_input: the weights [cout, cin, 3, 3] as vec4s,
//                                     covering every element (the host rounds the binding up)
//
// SOURCE_BN = 1 (forward, grad_weight): the source is a batch norm's input x and the kernels read
//   max(x·scale + shift, 0), the batch norm's normalised ReLU output (batchnorm.wgsl's affine),
//   per input channel, so that the activation between the two is never stored. Padding stays
//   zero: the taps multiply what the source returns by their masks.
//
// Cost model. llvmpipe runs a load or store whose address differs per lane as a scalar loop over
// the 8 lanes (about 20 cycles a lane), while a multiply-add over all 8 lanes costs under one:
// these kernels minimise loads per multiply-add. Private arrays are indexed by constants only (a
// computed index sends the whole array to memory, written lane by lane), and no private array is
// indexed in a loop (wgpu bounds every loop, so the driver unrolls none): the register-block code
// is written out, by src/gpu/unrolled.rs (the *_unrolled.wgsl parts).
//
// forward, grad_input: a register block of 16 output channels × 8 consecutive columns (a
//   segment) of ROWS (2 or 4) output rows per invocation; WG (64) invocations along segments,
//   the channel block (co0 = 16·group / p.groups) the same for the whole workgroup. Per input
//   channel, each of the segment's ROWS + 2 source rows (2·ROWS + 1 at stride 2; 10 values at
//   stride 1, 17 at stride 2) is loaded once and feeds up to 9 taps × 16 channels × 8 columns;
//   lane l loads the 9 weights of channels co0 + l and co0 + 8 + l (each channel's 9 from the
//   three aligned vec4s that hold them, then shifted into place: 6 loops over the lanes instead
//   of 18), which serve every row, and subgroupBroadcast hands each to every lane. More rows per
//   invocation load each weight once for all of them, cutting the weight loads and broadcasts
//   per multiply-add, and share source rows between neighbouring pairs. Output channels past the end
//   read the last channel's weights and are not stored; invocations past the last segment repeat
//   it (so every lane takes part in the broadcasts) without storing, and subgroups made only of
//   those return at once.
//   grad_input (stride 1 only) is the forward convolution of dy with the kernel flipped and its
//   channels swapped: weight index = ch·p.w_ch + c·p.w_in + tap, or 8 − tap (p.w_flip). With
//   ACCUMULATE, grad_input adds to dx (a residual branch's first convolution adds to the
//   shortcut's gradient).
// forward_vec, grad_input_vec: forward and grad_input storing their block four elements at a
//   time through dst_vec, where every segment lies inside its row (the host's `vec_stores`:
//   rows of a multiple of 8): one loop over the lanes per vec4 instead of per element. Entry
//   points apart, because wgpu refuses one buffer bound writable twice (dst and dst_vec).
// forward_vec_stats: forward_vec that also writes the batch-norm statistics of what it stores,
//   while they are in registers (the batch norm that follows then reads no activations for
//   them): per channel, the (count, mean, M2) of each aligned group of 8 lanes (a slot: the
//   group's positions pb / 8), mean and M2 in two passes over the group's values, summed by a
//   shuffle butterfly that leaves every lane the same sum. batchnorm.wgsl's stats_merge merges
//   a channel's slots in order (Chan's formula). Slots past ⌈segs/8⌉ hold no segment and are
//   neither written nor merged. Lane l is invocation li with l = li mod 8, as llvmpipe runs them.
// grad_input_s2: stride 2 by parity. dx rows r = 2u + pr take only kernel rows i with
//   i ≡ pr + 1 (mod 2), from dy row u (+1 for i = 0), and likewise columns: each workgroup owns
//   one row parity pr (a bit of the group id) and each invocation both column parities of its
//   segment, so no tap is wasted. Block: 16 input channels × 8 consecutive class columns (dx
//   columns 2v and 2v + 1) × ROWS (1 or 2, the host's `class_block_rows`) class rows, the second
//   row's terms reusing the first's weights. A term's three weights per channel come from the
//   two aligned vec4s that hold them, and with VEC_ROWS = 2 (a class row's segments in one
//   subgroup) the dy column after a segment from the lane beside.
// grad_weight: WG (8) invocations, one subgroup; lane l owns input channel ci0 + l and every
//   (output channel co0 + k, tap) for k < WEIGHT_BLOCK (16 or 32): up to 288 accumulators. The
//   sum over (n, row, segment) is split into p.splits contiguous chunks, one per workgroup
//   ((split, ci block, co block) from the group id); per segment a lane loads its channel's 3
//   source rows and dy of channels co0 + l, co0 + 8 + l (and co0 + 16 + l, co0 + 24 + l), and
//   broadcasts hand every lane all the block's dy. Each chunk writes its own slice of
//   dw_partial; reduce.wgsl/sum_splits adds the slices in order.
// Every sum runs in a fixed order: results are bit-identical from run to run.

struct LanesParams {
    n: u32, src_c: u32, src_h: u32, src_w: u32,    // source: channels, rows, columns
    dst_c: u32, dst_h: u32, dst_w: u32,            // destination (forward, grad_input)
    w_ch: u32, w_in: u32, w_flip: u32,             // weight index of (out channel, in channel, tap)
    segs_row: u32, segs: u32, groups: u32, splits: u32, // segments per row and in all, position groups
}

@group(0) @binding(0) var<uniform> p: LanesParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_partial: array<f32>;
@group(0) @binding(6) var<storage, read> src_vec: array<vec4f>;
@group(0) @binding(7) var<storage, read> dy_vec: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> dst_vec: array<vec4f>;
@group(0) @binding(9) var<storage, read_write> stats_partial: array<f32>;
@group(0) @binding(10) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(11) var<storage, read> bn_invstd: array<f32>;
@group(0) @binding(12) var<storage, read> bn_gamma: array<f32>;
@group(0) @binding(13) var<storage, read> bn_beta: array<f32>;
@group(0) @binding(14) var<storage, read> w_vec: array<vec4f>;

override WG: u32 = 64u;
override WG_GRAD_WEIGHT: u32 = 8u; // one subgroup of 8 lanes
// grad_weight's output channels per workgroup: 16, or 32 for layers that have them (each
// segment's source rows, loaded per lane, then serve twice the multiply-adds).
override WEIGHT_BLOCK: u32 = 16u;
// grad_input adds to dst (a pipeline constant, like lanes.wgsl's STRIDE and BLOCK_CH).
override ACCUMULATE: u32 = 0u;
override SOURCE_BN: u32 = 0u;

// The (scale, shift) of the input channel being read (SOURCE_BN = 1; set_source_channel).
var<private> source_affine: vec2f;

fn set_source_channel(c: u32) {
    if (SOURCE_BN == 1u) {
        let s = bn_invstd[c] * bn_gamma[c];
        source_affine = vec2f(s, bn_beta[c] - bn_mean[c] * s);
    }
}

// lanes.wgsl's row_taps_vec reads src through these (row_taps too).
fn source1(i: u32) -> f32 {
    if (SOURCE_BN == 1u) { return max(src[i] * source_affine.x + source_affine.y, 0.0); }
    return src[i];
}

fn source4(i: u32) -> vec4f {
    if (SOURCE_BN == 1u) { return max(src_vec[i] * source_affine.x + source_affine.y, vec4f(0.0)); }
    return src_vec[i];
}

fn src4(rb: u32, off: vec4u, ok: vec4f) -> vec4f {
    return vec4f(source1(rb + off.x), source1(rb + off.y), source1(rb + off.z), source1(rb + off.w)) * ok;
}

// The three taps of 8 outputs from the source row at rb (lanes.wgsl's taps_stride*), zero
// where k or rok says the column or row is outside the source.
fn row_taps(rb: u32, k: Cols, rok: f32) -> array<vec4f, 6> {
    if (VEC_ROWS != 0u) { return row_taps_vec(rb, k, rok); }
    let a = src4(rb, k.off[0], k.ok[0] * rok);
    let b = src4(rb, k.off[1], k.ok[1] * rok);
    if (STRIDE == 2u) {
        let e = source1(rb + k.off[4].x) * k.ok[4].x * rok;
        return taps_stride2(a, b, src4(rb, k.off[2], k.ok[2] * rok), src4(rb, k.off[3], k.ok[3] * rok), e);
    }
    return taps_stride1(a, b, vec2f(source1(rb + k.off[2].x), source1(rb + k.off[2].y)) * k.ok[2].xy * rok);
}

// grad_weight's source rows of segment seg in channel ci: the starts of rows seg.y·STRIDE − 1
// .. + 1, clamped into the plane (row_taps' rok zeroes the clamped ones).
fn row_bases(seg: vec3u, ci: u32) -> vec3u {
    let plane = (seg.x * p.src_c + ci) * p.src_h * p.src_w;
    let r0 = i32(seg.y * STRIDE) - 1;
    let rows = vec3u(u32(max(r0, 0)), u32(r0 + 1), u32(min(r0 + 2, i32(p.src_h) - 1)));
    return plane + rows * p.src_w;
}

// The segment's three source rows as row_vecs (VEC_ROWS ≠ 0).
struct SourceRows { r0: array<vec4f, 4>, r1: array<vec4f, 4>, r2: array<vec4f, 4> }

fn source_rows(rb: vec3u, k: Cols) -> SourceRows {
    return SourceRows(row_vecs(rb.x, k), row_vecs(rb.y, k), row_vecs(rb.z, k));
}

fn put(o: u32, v: f32) {
    if (ACCUMULATE == 1u) {
        dst[o] += v;
    } else {
        dst[o] = v;
    }
}

// The 8 values from o (on a vec4) to dst_vec.
fn put8_vec(o: u32, lo: vec4f, hi: vec4f) {
    let j = o / 4u;
    if (ACCUMULATE == 1u) {
        dst_vec[j] += lo;
        dst_vec[j + 1u] += hi;
    } else {
        dst_vec[j] = lo;
        dst_vec[j + 1u] = hi;
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

// The first four of the eight elements (a, b) after the first sh (0 to 3).
fn shift4(a: vec4f, b: vec4f, sh: u32) -> vec4f {
    let s1 = vec4f(a.yzw, b.x);
    let s2 = vec4f(a.zw, b.xy);
    let s3 = vec4f(a.w, b.xyz);
    return select(select(a, s1, sh == 1u), select(s2, s3, sh == 3u), sh >= 2u);
}

// The 9 weights of one (channel, input channel) pair, elements start .. start + 9 of w_vec in memory order,
// from the three aligned vec4s that hold them.
fn nine(start: u32) -> array<f32, 9> {
    let q = start / 4u;
    let sh = start % 4u;
    let a = w_vec[q];
    let b = w_vec[q + 1u];
    let c = w_vec[q + 2u];
    let lo = shift4(a, b, sh);
    let hi = shift4(b, c, sh);
    let last = select(select(c.x, c.y, sh == 1u), select(c.z, c.w, sh == 3u), sh >= 2u);
    return array(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w, last);
}

// Every tap's weights of this lane's channels wa and, when `upper`, wb (input channel c), as
// `weights` gives them one tap at a time.
fn tap_weights(wa: u32, wb: u32, c: u32, upper: bool) -> array<vec2f, 9> {
    let a = nine(wa * p.w_ch + c * p.w_in);
    var b: array<f32, 9>;
    if (upper) { b = nine(wb * p.w_ch + c * p.w_in); }
    // Tap t is element t of the nine, or 8 − t where the kernel is flipped.
    let f = p.w_flip == 1u;
    return array(
        select(vec2f(a[0], b[0]), vec2f(a[8], b[8]), f), select(vec2f(a[1], b[1]), vec2f(a[7], b[7]), f),
        select(vec2f(a[2], b[2]), vec2f(a[6], b[6]), f), select(vec2f(a[3], b[3]), vec2f(a[5], b[5]), f),
        vec2f(a[4], b[4]),
        select(vec2f(a[5], b[5]), vec2f(a[3], b[3]), f), select(vec2f(a[6], b[6]), vec2f(a[2], b[2]), f),
        select(vec2f(a[7], b[7]), vec2f(a[1], b[1]), f), select(vec2f(a[8], b[8]), vec2f(a[0], b[0]), f));
}

// The position group's segment for this invocation (clamped to the last one, so every lane takes
// part in the broadcasts), as (image, row, first column) with `rows` rows per image (block_rows:
// blocks of ROWS rows).
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

// Where a block goes: its first element in dst (channel ch0, row ROWS·seg.y, the segment's
// first column), the plane size, the columns left in the row, whether it stores at all (`live`),
// how many of its ROWS rows lie inside dst (`rows`), and its position in the channel block
// (`pos`).
struct Dest { base: u32, plane: u32, ch0: u32, cols_left: u32, upper: bool, live: bool, rows: u32, pos: u32 }

// forward and grad_input: destination rows ROWS·seg.y .. + ROWS − 1 of the segment into acc0 ..
// acc3 (acc2 and acc3 only with ROWS = 4) by lanes.wgsl's mac_block; the entry point stores them
// (store16, or store16_vec for the *_vec entries).
fn block_rows(wg: vec3u, nwg: vec3u, li: u32, lane: u32, acc0: ptr<function, array<vec4f, 32>>,
              acc1: ptr<function, array<vec4f, 32>>, acc2: ptr<function, array<vec4f, 32>>,
              acc3: ptr<function, array<vec4f, 32>>) -> Dest {
    let g = wg.y * nwg.x + wg.x;
    let ch0 = (g / p.groups) * 16u;
    let pb = (g % p.groups) * WG + li;
    // Subgroups past the last segment have nothing to compute or share.
    if (subgroupAll(pb >= p.segs)) { return Dest(0u, 0u, 0u, 0u, false, false, 0u, pb); }
    let seg = segment(pb, (p.dst_h + ROWS - 1u) / ROWS);
    let row = ROWS * seg.y;
    let k = cols(i32(seg.z * STRIDE) - 1, p.src_w);
    let wa = min(ch0 + lane % 8u, p.dst_c - 1u);
    let wb = min(ch0 + 8u + lane % 8u, p.dst_c - 1u);
    let upper = has_upper(ch0, p.dst_c);
    let top = i32(row * STRIDE) - 1;
    for (var c = 0u; c < p.src_c; c++) {
        set_source_channel(c);
        let plane = (seg.x * p.src_c + c) * p.src_h * p.src_w;
        let wv = tap_weights(wa, wb, c, upper);
        mac_block(acc0, acc1, acc2, acc3, wv, plane, top, k, upper);
    }
    let plane = p.dst_h * p.dst_w;
    let base = (seg.x * p.dst_c + ch0) * plane + row * p.dst_w + seg.z;
    return Dest(base, plane, ch0, p.dst_w - seg.z, upper, pb < p.segs, min(ROWS, p.dst_h - row), pb);
}

// block_rows, stored element by element.
fn block_stored(wg: vec3u, nwg: vec3u, li: u32, lane: u32) {
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    var acc2: array<vec4f, 32>;
    var acc3: array<vec4f, 32>;
    let d = block_rows(wg, nwg, li, lane, &acc0, &acc1, &acc2, &acc3);
    if (!d.live) { return; }
    store16(&acc0, d.base, d.plane, d.ch0, d.cols_left, 1u, d.upper);
    if (d.rows > 1u) { store16(&acc1, d.base + p.dst_w, d.plane, d.ch0, d.cols_left, 1u, d.upper); }
    if (ROWS == 4u && d.rows > 2u) { store16(&acc2, d.base + 2u * p.dst_w, d.plane, d.ch0, d.cols_left, 1u, d.upper); }
    if (ROWS == 4u && d.rows > 3u) { store16(&acc3, d.base + 3u * p.dst_w, d.plane, d.ch0, d.cols_left, 1u, d.upper); }
}

// The block stored four elements at a time (every segment inside its row, rows on vec4s).
fn store_vec(d: Dest, acc0: ptr<function, array<vec4f, 32>>, acc1: ptr<function, array<vec4f, 32>>,
             acc2: ptr<function, array<vec4f, 32>>, acc3: ptr<function, array<vec4f, 32>>) {
    if (!d.live) { return; }
    store16_vec(acc0, d.base, d.plane, d.ch0, d.upper);
    if (d.rows > 1u) { store16_vec(acc1, d.base + p.dst_w, d.plane, d.ch0, d.upper); }
    if (ROWS == 4u && d.rows > 2u) { store16_vec(acc2, d.base + 2u * p.dst_w, d.plane, d.ch0, d.upper); }
    if (ROWS == 4u && d.rows > 3u) { store16_vec(acc3, d.base + 3u * p.dst_w, d.plane, d.ch0, d.upper); }
}

// block_rows, stored with store_vec.
fn block_stored_vec(wg: vec3u, nwg: vec3u, li: u32, lane: u32) {
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    var acc2: array<vec4f, 32>;
    var acc3: array<vec4f, 32>;
    store_vec(block_rows(wg, nwg, li, lane, &acc0, &acc1, &acc2, &acc3), &acc0, &acc1, &acc2, &acc3);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    block_stored(wg, nwg, li, lane);
}

@compute @workgroup_size(WG)
fn forward_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    block_stored_vec(wg, nwg, li, lane);
}

// Σ v over this lane's aligned group of 8, the same value in each of them: every step adds the
// same two values in both lanes of a pair.
fn sum8(v: f32) -> f32 {
    var s = v + subgroupShuffleXor(v, 1u);
    s += subgroupShuffleXor(s, 2u);
    return s + subgroupShuffleXor(s, 4u);
}

// What block_stats needs besides a channel's values: the slot, the lane group's count n, this
// lane's weight (1 or 0) of each of its rows, and whether this lane writes the slot.
struct BlockStats { slot: u32, n: f32, rows: vec4f, writes: bool }

// Channel ch's (count, mean, M2) over the lane group's rows (row r: columns 0-3 in lo[r], 4-7
// in hi[r]) into its slot of stats_partial.
fn block_stats(ch: u32, s: BlockStats, lo: array<vec4f, 4>, hi: array<vec4f, 4>) {
    let one = vec4f(1.0);
    var sum = s.rows.x * dot(lo[0] + hi[0], one) + s.rows.y * dot(lo[1] + hi[1], one);
    if (ROWS == 4u) { sum += s.rows.z * dot(lo[2] + hi[2], one) + s.rows.w * dot(lo[3] + hi[3], one); }
    let m = sum8(sum) / s.n;
    var q = s.rows.x * (squares(lo[0] - m) + squares(hi[0] - m)) + s.rows.y * (squares(lo[1] - m) + squares(hi[1] - m));
    if (ROWS == 4u) {
        q += s.rows.z * (squares(lo[2] - m) + squares(hi[2] - m)) + s.rows.w * (squares(lo[3] - m) + squares(hi[3] - m));
    }
    q = sum8(q);
    if (s.writes) {
        let at = (ch * ((p.segs + 7u) / 8u) + s.slot) * 3u;
        stats_partial[at] = s.n;
        stats_partial[at + 1u] = m;
        stats_partial[at + 2u] = q;
    }
}

fn squares(d: vec4f) -> f32 {
    return dot(d, d);
}

@compute @workgroup_size(WG)
fn forward_vec_stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    var acc0: array<vec4f, 32>;
    var acc1: array<vec4f, 32>;
    var acc2: array<vec4f, 32>;
    var acc3: array<vec4f, 32>;
    let d = block_rows(wg, nwg, li, lane, &acc0, &acc1, &acc2, &acc3);
    // Subgroups past the last segment; the others' idle lanes stay for the shuffles.
    if (subgroupAll(!d.live)) { return; }
    store_vec(d, &acc0, &acc1, &acc2, &acc3);
    let live = select(0.0, 1.0, d.live);
    let rows = live * vec4f(vec4u(0u, 1u, 2u, 3u) < vec4u(d.rows));
    let slot = d.pos / 8u;
    let s = BlockStats(slot, sum8(8.0 * dot(rows, vec4f(1.0))), rows, lane % 8u == 0u && slot < (p.segs + 7u) / 8u);
    stats16(&acc0, &acc1, &acc2, &acc3, d.ch0, s, d.upper);
}

// Same as forward at STRIDE 1 (bindings src = dy, dst = dx, weights flipped and transposed by
// the host's w_* parameters): the stride-1 input gradient.
@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    block_stored(wg, nwg, li, lane);
}

@compute @workgroup_size(WG)
fn grad_input_vec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    block_stored_vec(wg, nwg, li, lane);
}

// One term of the stride-2 input gradient: dy row r of channel c at the segment's columns (lo,
// hi; shifted by a column: lo1, hi1; zero outside dy) and the weights of kernel row i that meet
// it: w_even (tap j = 1, even dx columns), w_odd and w_odd1 (j = 2 and 0, odd ones).
struct ClassTerm { w_even: vec2f, w_odd: vec2f, w_odd1: vec2f, lo: vec4f, hi: vec4f, lo1: vec4f, hi1: vec4f }

// Term j of the four of a pass from dy channel c, for class row u and, ROWS = 2, the term with
// the same weights one dy row down for class row u + 1 (`below`). Row parity 0 takes channels
// c + j of dy row u with kernel row 1; parity 1 channels c + j / 2, each dy row u (kernel row 2)
// then u + 1 (kernel row 0). Computed, not branched on pr: llvmpipe would run both branches.
struct ClassTerms { at: ClassTerm, below: ClassTerm }

fn class_terms(j: u32, c: u32, pr: u32, image: u32, u: u32, k: Cols, wa: u32, wb: u32, upper: bool) -> ClassTerms {
    let second = pr * (j % 2u);
    let i = select(1u, 2u - 2u * second, pr == 1u);
    let ch = min(c + (j >> pr), p.src_c - 1u);
    let live = c + (j >> pr) < p.src_c;
    // The kernel row's weights of the lane's channels, from the two aligned vec4s that hold each.
    let wa3 = row_weights(wa * p.w_ch + ch * p.w_in + 3u * i);
    var wb3 = vec3f(0.0);
    if (upper) { wb3 = row_weights(wb * p.w_ch + ch * p.w_in + 3u * i); }
    // taps 1 and 2 read dy columns v .., tap 0 reads v + 1 ..
    let weights = array(vec2f(wa3.y, wb3.y), vec2f(wa3.z, wb3.z), vec2f(wa3.x, wb3.x));
    let at = class_term(weights, dy_row(image, ch, live, u + second, k));
    var below: ClassTerm;
    if (ROWS == 2u) { below = class_term(weights, dy_row(image, ch, live, u + second + 1u, k)); }
    return ClassTerms(at, below);
}

fn class_term(weights: array<vec2f, 3>, d: array<vec4f, 3>) -> ClassTerm {
    let a = d[0];
    let b = d[1];
    return ClassTerm(weights[0], weights[1], weights[2], a, b, vec4f(a.yzw, b.x), vec4f(b.yzw, d[2].x));
}

// dy row r of channel ch (zero unless `live` and inside dy) at the segment's 8 columns (two
// vec4s) and the column after them (the third's x).
fn dy_row(image: u32, ch: u32, live: bool, r: u32, k: Cols) -> array<vec4f, 3> {
    let ok = select(0.0, 1.0, live && r < p.src_h);
    let rb = ((image * p.src_c + ch) * p.src_h + min(r, p.src_h - 1u)) * p.src_w;
    var a: vec4f;
    var b: vec4f;
    if (VEC_ROWS != 0u) {
        a = src_vec[(rb + k.off[0].x) / 4u] * (k.ok[0] * ok);
        b = src_vec[(rb + k.off[0].x) / 4u + 1u] * (k.ok[1] * ok);
    } else {
        a = src4(rb, k.off[0], k.ok[0] * ok);
        b = src4(rb, k.off[1], k.ok[1] * ok);
    }
    var e: f32;
    if (VEC_ROWS == 2u) {
        // The next segment's first column, from the lane beside (lanes.wgsl's row_taps_vec).
        e = select(0.0, subgroupShuffleDown(a.x, 1u), k.ok[2].x != 0.0);
    } else {
        e = src[rb + k.off[2].x] * k.ok[2].x * ok;
    }
    return array(a, b, vec4f(e));
}

// The three weights from index `start` of w_vec's elements (one kernel row; the stride-2 input
// gradient's kernel is not flipped) from the two aligned vec4s that hold them.
fn row_weights(start: u32) -> vec3f {
    let q = start / 4u;
    return shift4(w_vec[q], w_vec[q + 1u], start % 4u).xyz;
}

// Stride 2: dx[n, ci, 2u + pr, 2v + pc] = Σ_co Σ_{i ≡ pr + 1, j ≡ pc + 1 (mod 2)}
//   w[co, ci, i, j] · dy[n, co, u + (pr + 1 − i)/2, v + (pc + 1 − j)/2].
// The group id gives (channel block, row parity pr, position group); segments cover blocks of
// ROWS (1 or 2) class rows: ⌈⌈h/2⌉/ROWS⌉ blocks of p.segs_row segments of ⌈w/2⌉ class columns.
// Each invocation computes both column parities of its segment from the same dy values
// (acc_even: dx columns 2v, tap j = 1; acc_odd: 2v + 1, taps j = 2 and 0): with the column
// parity in the group id, llvmpipe ran the odd class's second tap under a mask in the even class
// too. Four terms per pass (class_terms), in the order of a term-by-term walk over channels
// then rows, so that each accumulator takes four or eight multiply-adds per load and store; with
// ROWS = 2 the second class row's terms reuse the first's weights.
@compute @workgroup_size(WG)
fn grad_input_s2(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let g = wg.y * nwg.x + wg.x;
    let ci0 = (g / (2u * p.groups)) * 16u;
    let pr = (g / p.groups) % 2u;
    let pb = (g % p.groups) * WG + li;
    // Subgroups past the last segment have nothing to compute or share.
    if (subgroupAll(pb >= p.segs)) { return; }
    let class_rows = (p.dst_h + 1u) / 2u;
    let seg = segment(pb, (class_rows + ROWS - 1u) / ROWS);
    let u = seg.y * ROWS;
    // dy columns v .. v + 8 of the segment
    let k = cols(i32(seg.z), p.src_w);
    let wa = min(ci0 + lane % 8u, p.dst_c - 1u);
    let wb = min(ci0 + 8u + lane % 8u, p.dst_c - 1u);
    let upper = has_upper(ci0, p.dst_c);
    var acc_even: array<vec4f, 32>;
    var acc_odd: array<vec4f, 32>;
    var acc_even1: array<vec4f, 32>;
    var acc_odd1: array<vec4f, 32>;
    let per_pass = 4u >> pr;
    for (var c = 0u; c < p.src_c; c += per_pass) {
        let t0 = class_terms(0u, c, pr, seg.x, u, k, wa, wb, upper);
        let t1 = class_terms(1u, c, pr, seg.x, u, k, wa, wb, upper);
        let t2 = class_terms(2u, c, pr, seg.x, u, k, wa, wb, upper);
        let t3 = class_terms(3u, c, pr, seg.x, u, k, wa, wb, upper);
        mac_classes(&acc_even, &acc_odd, t0.at, t1.at, t2.at, t3.at, upper);
        if (ROWS == 2u) { mac_classes(&acc_even1, &acc_odd1, t0.below, t1.below, t2.below, t3.below, upper); }
    }
    if (pb >= p.segs) { return; }
    store_classes(&acc_even, &acc_odd, seg, u, pr, ci0, upper);
    if (ROWS == 2u && u + 1u < class_rows) { store_classes(&acc_even1, &acc_odd1, seg, u + 1u, pr, ci0, upper); }
}

// Class row u's even and odd dx columns of the segment (dx row 2u + pr, if inside dx).
fn store_classes(acc_even: ptr<function, array<vec4f, 32>>, acc_odd: ptr<function, array<vec4f, 32>>, seg: vec3u,
                 u: u32, pr: u32, ci0: u32, upper: bool) {
    let row = 2u * u + pr;
    if (row >= p.dst_h) { return; }
    let plane = p.dst_h * p.dst_w;
    let base = (seg.x * p.dst_c + ci0) * plane + row * p.dst_w + 2u * seg.z;
    // ⌈w/2⌉ even and ⌊w/2⌋ odd columns; segments cover the even ones.
    store16(acc_even, base, plane, ci0, (p.dst_w + 1u) / 2u - seg.z, 2u, upper);
    let odd_cols = p.dst_w / 2u;
    if (seg.z < odd_cols) { store16(acc_odd, base + 1u, plane, ci0, odd_cols - seg.z, 2u, upper); }
}

// dy at the first `left` of 8 columns from b, zero past them (reads stay inside the row). With
// VEC_ROWS = 1 all 8 are inside and b is on a vec4.
fn dy8(b: u32, left: u32) -> array<vec4f, 2> {
    if (VEC_ROWS == 1u) { return array<vec4f, 2>(dy_vec[b / 4u], dy_vec[b / 4u + 1u]); }
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
    let co0 = (g / (p.splits * ci_blocks)) * WEIGHT_BLOCK;
    let l = lane % 8u;
    let ci = ci_block * 8u + l;
    let has_ci = ci < p.src_c;
    let chunk = (p.segs + p.splits - 1u) / p.splits;
    let s_begin = split * chunk;
    let s_end = min(s_begin + chunk, p.segs);
    let dy_hw = p.dst_h * p.dst_w;
    let co_a = min(co0 + l, p.dst_c - 1u);
    let co_b = min(co0 + 8u + l, p.dst_c - 1u);
    let co_c = min(co0 + 16u + l, p.dst_c - 1u);
    let co_d = min(co0 + 24u + l, p.dst_c - 1u);
    let upper = has_upper(co0, p.dst_c);
    let far = WEIGHT_BLOCK == 32u && co0 + 16u < p.dst_c;
    set_source_channel(min(ci, p.src_c - 1u));
    var acc: array<f32, 288>;
    // VEC_ROWS ≠ 0: the source rows of segment s + 1 are loaded one iteration ahead, so that the
    // column after a segment is the next one's first and the column before it the previous
    // one's last, both already loaded (the column before the chunk's first segment apart). A
    // neighbour in another row only meets a zero column mask.
    var cur: SourceRows;
    var before = vec3f(0.0);
    if (VEC_ROWS != 0u && has_ci) {
        let seg = segment(s_begin, p.dst_h);
        let k = cols(i32(seg.z * STRIDE) - 1, p.src_w);
        let rb = row_bases(seg, ci);
        cur = source_rows(rb, k);
        before = vec3f(source1(rb.x + k.off[0].x), source1(rb.y + k.off[0].x), source1(rb.z + k.off[0].x));
    }
    for (var s = s_begin; s < s_end; s++) {
        let seg = segment(s, p.dst_h);
        let left = p.dst_w - seg.z;
        let d = seg.y * p.dst_w + seg.z;
        let da = dy8((seg.x * p.dst_c + co_a) * dy_hw + d, left);
        var db: array<vec4f, 2>;
        var dc: array<vec4f, 2>;
        var dd: array<vec4f, 2>;
        if (upper) { db = dy8((seg.x * p.dst_c + co_b) * dy_hw + d, left); }
        if (far) {
            dc = dy8((seg.x * p.dst_c + co_c) * dy_hw + d, left);
            dd = dy8((seg.x * p.dst_c + co_d) * dy_hw + d, left);
        }
        var t: array<vec4f, 18>;
        if (has_ci) {
            let k = cols(i32(seg.z * STRIDE) - 1, p.src_w);
            let r0 = i32(seg.y * STRIDE) - 1;
            let rok = vec3f(select(0.0, 1.0, r0 >= 0), 1.0, select(0.0, 1.0, r0 + 2 < i32(p.src_h)));
            var t0: array<vec4f, 6>;
            var t1: array<vec4f, 6>;
            var t2: array<vec4f, 6>;
            if (VEC_ROWS != 0u) {
                let after = segment(s + 1u, p.dst_h);
                let next = source_rows(row_bases(after, ci), cols(i32(after.z * STRIDE) - 1, p.src_w));
                t0 = row_taps_from(cur.r0, before.x, next.r0[0].x, k, rok.x);
                t1 = row_taps_from(cur.r1, before.y, next.r1[0].x, k, rok.y);
                t2 = row_taps_from(cur.r2, before.z, next.r2[0].x, k, rok.z);
                before = vec3f(last_column(cur.r0), last_column(cur.r1), last_column(cur.r2));
                cur = next;
            } else {
                let rb = row_bases(seg, ci);
                t0 = row_taps(rb.x, k, rok.x);
                t1 = row_taps(rb.y, k, rok.y);
                t2 = row_taps(rb.z, k, rok.z);
            }
            t = array<vec4f, 18>(t0[0], t0[1], t0[2], t0[3], t0[4], t0[5], t1[0], t1[1], t1[2], t1[3], t1[4], t1[5],
                                 t2[0], t2[1], t2[2], t2[3], t2[4], t2[5]);
        }
        grad_acc(&acc, t, da[0], da[1], db[0], db[1], dc[0], dc[1], dd[0], dd[1], upper, far);
    }
    if (!has_ci) { return; }
    grad_store(&acc, split * p.dst_c * p.src_c * 9u + co0 * p.src_c * 9u + ci * 9u, co0, p.src_c * 9u, upper, far);
}
