//! Per-sample preprocessing: random crop after zero padding, horizontal flip, normalisation.
//! The randomness of sample i in epoch e comes from (seed, e, i) alone, so batches are the same
//! whatever the number of loader threads, and a resumed run sees the same augmentations.

use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
pub struct Augment {
    /// Zero padding before the random crop back to the original size (0 = no crop).
    pub pad: usize,
    pub flip: bool,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// A generator for one (seed, epoch, index), decorrelated by SplitMix64 mixing.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> rand_pcg::Pcg32 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    rand_pcg::Pcg32::seed_from_u64(z ^ (z >> 31))
}

impl Augment {
    /// No augmentation, normalisation only (evaluation, inference).
    pub fn eval(mean: &[f32], std: &[f32]) -> Augment {
        Augment { pad: 0, flip: false, mean: mean.to_vec(), std: std.to_vec() }
    }

    /// Write the normalised (and, with `rng`, augmented) image into `out` ([c, h, w] f32).
    pub fn apply(
        &self,
        img: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: Option<&mut impl Rng>,
        out: &mut [f32],
    ) {
        let (mut dy, mut dx, mut flip) = (0isize, 0isize, false);
        if let Some(rng) = rng {
            if self.pad > 0 {
                let p = self.pad as i64;
                dy = rng.random_range(-p..=p) as isize;
                dx = rng.random_range(-p..=p) as isize;
            }
            flip = self.flip && rng.random_bool(0.5);
        }
        for ch in 0..c {
            // A zero (black) pixel after normalisation, as when padding the raw image.
            let zero = -self.mean[ch] / self.std[ch];
            let scale = 1.0 / (255.0 * self.std[ch]);
            let shift = self.mean[ch] / self.std[ch];
            for r in 0..h {
                let sr = r as isize + dy;
                for col in 0..w {
                    let scol = if flip { (w - 1 - col) as isize } else { col as isize } + dx;
                    let inside = sr >= 0 && sr < h as isize && scol >= 0 && scol < w as isize;
                    out[(ch * h + r) * w + col] = if inside {
                        img[(ch * h + sr as usize) * w + scol as usize] as f32 * scale - shift
                    } else {
                        zero
                    };
                }
            }
        }
    }
}
