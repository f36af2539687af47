// packed_bits.wgsl — reading bit-packed ternary weights, shared by packed_conv.wgsl,
// packed_conv_lanes.wgsl, packed_conv_tiled.wgsl and packed_linear_tiled.wgsl.
// Not a shader on its own: those files import it and declare the two masks it reads:
//   pos  storage read  u32 words: bit i set ⇔ weight i is +Wp (bit i % 32 of word i / 32)
//   neg  storage read  u32 words: bit i set ⇔ weight i is −Wn
//
// Bindings (group 0): none of its own (pos and neg are the importing file's).

// 32 bits of `pos` (or `neg` with use_neg) starting at bit `at`: two words when `at` is not
// aligned. A word past the end is not read (the index is clamped); callers mask bits past their
// channel count.
fn bits32(at: u32, use_neg: bool) -> u32 {
    let i = at / 32u;
    let s = at % 32u;
    var lo: u32;
    var hi: u32;
    if (use_neg) {
        lo = neg[i];
        hi = select(0u, neg[min(i + 1u, arrayLength(&neg) - 1u)], s != 0u);
    } else {
        lo = pos[i];
        hi = select(0u, pos[min(i + 1u, arrayLength(&pos) - 1u)], s != 0u);
    }
    return (lo >> s) | select(0u, hi << (32u - s), s != 0u);
}
