//! Bit packing of ternary codes: two bitmasks, W+ (`pos`) and W− (`neg`). Weight i is bit
//! i % 32 (least significant first) of word i / 32; rows are not padded.
//!
//! Why two masks rather than 2-bit codes: the packed kernels iterate set bits with
//! firstTrailingBit, so a zero weight costs nothing and an all-zero word skips 32 weights at once;
//! the same masks are the bit-planes of the popcount kernels for ternary activations.

/// (pos, neg) words for codes in {−1, 0, +1}.
pub fn pack(codes: &[i8]) -> (Vec<u32>, Vec<u32>) {
    let words = codes.len().div_ceil(32);
    let (mut pos, mut neg) = (vec![0u32; words], vec![0u32; words]);
    for (i, &c) in codes.iter().enumerate() {
        match c {
            1 => pos[i / 32] |= 1 << (i % 32),
            -1 => neg[i / 32] |= 1 << (i % 32),
            _ => {}
        }
    }
    (pos, neg)
}

/// The first `len` codes of packed masks (a bit set in both reads as 0).
pub fn unpack(pos: &[u32], neg: &[u32], len: usize) -> Vec<i8> {
    (0..len)
        .map(|i| {
            let bit = |m: &[u32]| (m[i / 32] >> (i % 32)) & 1;
            bit(pos) as i8 - bit(neg) as i8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pack_round_trips_and_uses_two_bits_per_weight() {
        let codes: Vec<i8> = (0..77).map(|i| [1, 0, -1, 0, 0][i % 5]).collect();
        let (pos, neg) = super::pack(&codes);
        assert_eq!((pos.len(), neg.len()), (3, 3));
        assert_eq!(pos[0] & 1, 1);
        assert_eq!(neg[0] >> 2 & 1, 1);
        assert_eq!(super::unpack(&pos, &neg, 77), codes);
    }
}
