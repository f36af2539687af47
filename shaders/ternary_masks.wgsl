// ternary_masks.wgsl — a ternary layer's quantized weights wq [cout, cin, kh, kw] as the bit
// masks and scales the packed convolutions read (packed_conv*.wgsl), written on the GPU after
// the quantizer's forward, every training step.
//
// Bindings (group 0):
//   0 p    uniform  MaskParams
//   1 wq   storage read        [cout, cin, kh, kw] f32, at most two distinct non-zero values per row
//   2 pos  storage read_write  u32 words: bit i set ⇔ weight i is the row's largest non-zero value
//   3 neg  storage read_write  u32 words: bit i set ⇔ weight i is another non-zero value
//   4 wp   storage read_write  [rows] the row's largest non-zero value (0 if none)
//   5 wn   storage read_write  [rows] minus the row's smallest non-zero value (0 if none)
//
// Two layouts, the same as the export format's bit order (weight i is bit i % 32 of word i / 32):
// - forward (p.transposed = 0): rows are output channels, weight i is the i-th in
//   [cout, kh, kw, cin] order;
// - transposed (p.transposed = 1): the weights of the input gradient's convolution (stride 1,
//   "same" padding), rows are input channels, weight i is the i-th in [cin, kh, kw, cout] order
//   with the taps flipped: w'[ci, t, co] = wq[co, ci, taps − 1 − t].
// Classifying by value rather than by sign makes decode(pos, neg, wp, wn) reproduce every value
// exactly whatever the signs of the learned scales (TTQ's Wp, Wn). With Wp, Wn > 0 the masks are
// the usual W+ / W− ones. A row with two different magnitudes per sign (STTN's per-channel scales
// in the transposed layout) cannot be represented: the host keeps those on the dense kernels.
//
// `scales` (one invocation per row), then `masks` (one per word).

override WG: u32 = 64u;

struct MaskParams {
    cout: u32, cin: u32, taps: u32, transposed: u32,
    rows: u32, inner: u32, words: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: MaskParams;
@group(0) @binding(1) var<storage, read> wq: array<f32>;
@group(0) @binding(2) var<storage, read_write> pos: array<u32>;
@group(0) @binding(3) var<storage, read_write> neg: array<u32>;
@group(0) @binding(4) var<storage, read_write> wp: array<f32>;
@group(0) @binding(5) var<storage, read_write> wn: array<f32>;

// Weight i of the layout, from wq.
fn weight(i: u32) -> f32 {
    let row = i / (p.taps * p.inner);
    let t = (i / p.inner) % p.taps;
    let k = i % p.inner;
    if (p.transposed == 1u) {
        return wq[(k * p.cin + row) * p.taps + (p.taps - 1u - t)];
    }
    return wq[(row * p.cin + k) * p.taps + t];
}

// (largest, smallest) non-zero value of a row; (0, 0) for an all-zero row.
fn extremes(row: u32) -> vec2f {
    let len = p.taps * p.inner;
    var hi = -3.4e38;
    var lo = 3.4e38;
    for (var j = 0u; j < len; j++) {
        let v = weight(row * len + j);
        if (v != 0.0) {
            hi = max(hi, v);
            lo = min(lo, v);
        }
    }
    if (hi < lo) { return vec2f(0.0); }
    return vec2f(hi, lo);
}

// Scales first (one invocation per row), then the masks (one per word), which read them.
@compute @workgroup_size(WG)
fn scales(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
    let row = (wg.y * nwg.x + wg.x) * WG + li;
    if (row >= p.rows) { return; }
    let e = extremes(row);
    wp[row] = e.x;
    wn[row] = -e.y;
}

@compute @workgroup_size(WG)
fn masks(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.words) { return; }
    let len = p.taps * p.inner;
    var pw = 0u;
    var nw = 0u;
    for (var b = 0u; b < 32u; b++) {
        let j = i * 32u + b;
        if (j >= p.rows * len) { break; }
        let v = weight(j);
        if (v != 0.0) {
            if (v == wp[j / len]) { pw |= 1u << b; } else { nw |= 1u << b; }
        }
    }
    pos[i] = pw;
    neg[i] = nw;
}
