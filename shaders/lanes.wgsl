// import: lanes_unrolled.wgsl
// lanes.wgsl — the register block of the 3×3 lanes convolutions (conv2d_lanes.wgsl,
// packed_conv_lanes.wgsl): 16 output channels × 8 consecutive columns of an output row per
// accumulator array, acc[2k] and acc[2k + 1] holding columns 0-3 and 4-7 of channel k.
// Not a shader on its own: those two files import it; they load the source rows (each from its
// own binding) and the weights, and call these functions with them. The channels' unrolled
// multiply-adds (mac_rows) are in lanes_unrolled.wgsl, generated.
//
// The including files define source1(i) -> f32 and source4(i) -> vec4f: float i and vec4 i of
// the binding their rows come from (row_taps_vec reads through them), and source_row(plane, r,
// k) -> array<vec4f, 6>: the taps of source row r of a plane, zero outside it (mac_block reads
// through it).
//
// Bindings (group 0): none. Private arrays are indexed by constants only (llvmpipe keeps them
// in registers; a computed index sends the whole array to memory, written lane by lane).

// The convolution's stride (1 for grad_input) and the channels per block (16, or 8 where the
// launch writes no more), set by the host for both including files (`lanes_constants`).
// Pipeline constants rather than uniforms: llvmpipe runs both sides of an `if` on a uniform
// under an execution mask, so a uniform stride made every stride-1 block also run the stride-2
// loads and taps, and an 8-channel layer computed 16.
override STRIDE: u32 = 1u;
override BLOCK_CH: u32 = 16u;
// VEC_ROWS = 1 where the source width is a multiple of 8·STRIDE (set by the host, `vec_rows`):
// every segment's source columns from its first then lie inside the row and start on a vec4, so
// row_taps_vec loads them as vec4s and assembles the values that loading column by column gives.
// llvmpipe's loop over the lanes runs once per load: four floats in one load cost less than in
// four. VEC_ROWS = 2 (`vec_rows_shared`): as 1, and the columns just before and after a segment
// come from the lanes that loaded them, l − 1 and l + 1, instead of two more loads: the host sets
// it where lanes hold consecutive segments of a row and every row's segments lie in one subgroup
// (8 a multiple of the segments per row); a lane at a row's end takes zero instead.
override VEC_ROWS: u32 = 0u;
// Output rows per invocation (the host's `lanes_block_rows`, packed inference's `lanes_rows`):
// 2; 4 where the grid still fills the device, so that each source row feeds up to 3 of them and
// each weight 4; 1 (packed inference) where two would leave a subgroup's lanes idle. The
// stride-2 input gradient's class rows (`class_block_rows`): 1 or 2.
override ROWS: u32 = 2u;

// Whether the block from channel ch0 has channels 8-15 (of `channels`).
fn has_upper(ch0: u32, channels: u32) -> bool {
    return BLOCK_CH == 16u && ch0 + 8u < channels;
}

// Source offsets (clamped into a row of `width`) and 1/0 masks of 20 consecutive columns from c0.
struct Cols { off: array<vec4u, 5>, ok: array<vec4f, 5> }

fn cols(c0: i32, width: u32) -> Cols {
    var r: Cols;
    let last = vec4i(i32(width) - 1);
    let a = vec4i(c0) + vec4i(0, 1, 2, 3);
    let b = a + vec4i(4);
    let c = a + vec4i(8);
    let d = a + vec4i(12);
    let e = a + vec4i(16);
    r.off[0] = vec4u(clamp(a, vec4i(0), last)); r.ok[0] = vec4f(a >= vec4i(0) & a <= last);
    r.off[1] = vec4u(clamp(b, vec4i(0), last)); r.ok[1] = vec4f(b >= vec4i(0) & b <= last);
    r.off[2] = vec4u(clamp(c, vec4i(0), last)); r.ok[2] = vec4f(c >= vec4i(0) & c <= last);
    r.off[3] = vec4u(clamp(d, vec4i(0), last)); r.ok[3] = vec4f(d >= vec4i(0) & d <= last);
    r.off[4] = vec4u(clamp(e, vec4i(0), last)); r.ok[4] = vec4f(e >= vec4i(0) & e <= last);
    return r;
}

// The three taps of 8 outputs as (columns 0-3, columns 4-7) pairs, [tap 0 lo, hi, tap 1 lo, hi,
// ...], from a source row's columns c .. c + 9 (stride 1: a, b, c.xy) ...
fn taps_stride1(a: vec4f, b: vec4f, c: vec2f) -> array<vec4f, 6> {
    return array<vec4f, 6>(a, b, vec4f(a.yzw, b.x), vec4f(b.yzw, c.x), vec4f(a.zw, b.xy), vec4f(b.zw, c));
}

// ... or columns c .. c + 16 (stride 2: a, b, c, d, e).
fn taps_stride2(a: vec4f, b: vec4f, c: vec4f, d: vec4f, e: f32) -> array<vec4f, 6> {
    return array<vec4f, 6>(vec4f(a.xz, b.xz), vec4f(c.xz, d.xz), vec4f(a.yw, b.yw), vec4f(c.yw, d.yw),
                           vec4f(a.z, b.x, b.z, c.x), vec4f(c.z, d.x, d.z, e));
}

// A source row's columns from a segment's first, as vec4s (VEC_ROWS ≠ 0): 2 at stride 1, 4 at
// stride 2 (the rest zero).
fn row_vecs(rb: u32, k: Cols) -> array<vec4f, 4> {
    let m = (rb + k.off[0].y) / 4u;
    var v = array<vec4f, 4>(source4(m), source4(m + 1u), vec4f(), vec4f());
    if (STRIDE == 2u) {
        v[2] = source4(m + 2u);
        v[3] = source4(m + 3u);
    }
    return v;
}

// The last of row_vecs' columns.
fn last_column(v: array<vec4f, 4>) -> f32 {
    return select(v[1].w, v[3].w, STRIDE == 2u);
}

// The taps (as taps_stride*) of a source row from row_vecs' columns v, the column before them
// and, at stride 1, the one after them, zero where k or rok says.
fn row_taps_from(v: array<vec4f, 4>, before: f32, after: f32, k: Cols, rok: f32) -> array<vec4f, 6> {
    let a = vec4f(before, v[0].xyz) * (k.ok[0] * rok);
    let b = vec4f(v[0].w, v[1].xyz) * (k.ok[1] * rok);
    if (STRIDE == 2u) {
        return taps_stride2(a, b, vec4f(v[1].w, v[2].xyz) * (k.ok[2] * rok),
                            vec4f(v[2].w, v[3].xyz) * (k.ok[3] * rok), v[3].w * k.ok[4].x * rok);
    }
    return taps_stride1(a, b, vec2f(v[1].w, after) * k.ok[2].xy * rok);
}

// The taps of the source row at rb (VEC_ROWS ≠ 0): row_vecs, and the columns beside them loaded
// or, VEC_ROWS = 2, from the lanes beside.
fn row_taps_vec(rb: u32, k: Cols, rok: f32) -> array<vec4f, 6> {
    let v = row_vecs(rb, k);
    var before: f32;
    var after = 0.0;
    if (VEC_ROWS == 2u) {
        // The previous segment's last source column, the next one's first; zero where the
        // column is outside the row, since a lane past the subgroup's ends reads an
        // indeterminate value, which the mask alone would not zero if it were not finite.
        before = select(0.0, subgroupShuffleUp(last_column(v), 1u), k.ok[0].x != 0.0);
        if (STRIDE == 1u) { after = select(0.0, subgroupShuffleDown(v[0].x, 1u), k.ok[2].y != 0.0); }
    } else {
        before = source1(rb + k.off[0].x);
        if (STRIDE == 1u) { after = source1(rb + k.off[2].y); }
    }
    return row_taps_from(v, before, after, k, rok);
}

// One input channel's 9 weights wv against the block's ROWS output rows from `top`·STRIDE − 1:
// rows 0 and 1 into acc0, acc1 and, with ROWS = 4, rows 2 and 3 into acc2, acc3, the two pairs
// sharing source rows (read through source_row from `plane`). With ROWS = 1 the driver drops
// what only acc1 needed.
fn mac_block(acc0: ptr<function, array<vec4f, 32>>, acc1: ptr<function, array<vec4f, 32>>,
             acc2: ptr<function, array<vec4f, 32>>, acc3: ptr<function, array<vec4f, 32>>, wv: array<vec2f, 9>,
             plane: u32, top: i32, k: Cols, upper: bool) {
    let t2 = source_row(plane, top + 2, k);
    let t3 = source_row(plane, top + 3, k);
    var t4: array<vec4f, 6>;
    if (STRIDE == 2u || ROWS == 4u) { t4 = source_row(plane, top + 4, k); }
    mac_two_rows(acc0, acc1, wv, source_row(plane, top, k), source_row(plane, top + 1, k), t2, t3, t4, upper);
    if (ROWS == 4u && STRIDE == 1u) {
        mac_two_rows(acc2, acc3, wv, t2, t3, t4, source_row(plane, top + 5, k), t4, upper);
    }
    if (ROWS == 4u && STRIDE == 2u) {
        mac_two_rows(acc2, acc3, wv, t4, source_row(plane, top + 5, k), source_row(plane, top + 6, k),
                     source_row(plane, top + 7, k), source_row(plane, top + 8, k), upper);
    }
}

// One input channel's 9 weights against a block of two output rows r and r + 1: acc0 from
// source rows t0 .. t2 (rows r·s − 1 ..), acc1 from t1 .. t3 (STRIDE 1) or t2 .. t4 (STRIDE 2;
// t4 is not read at STRIDE 1). Each weight serves both rows, each source row up to 6 taps.
fn mac_two_rows(acc0: ptr<function, array<vec4f, 32>>, acc1: ptr<function, array<vec4f, 32>>, wv: array<vec2f, 9>,
                t0: array<vec4f, 6>, t1: array<vec4f, 6>, t2: array<vec4f, 6>, t3: array<vec4f, 6>,
                t4: array<vec4f, 6>, upper: bool) {
    if (STRIDE == 2u) {
        mac_rows(acc0, acc1, wv, t0, t1, t2, t2, t3, t4, upper);
    } else {
        mac_rows(acc0, acc1, wv, t0, t1, t2, t1, t2, t3, upper);
    }
}
