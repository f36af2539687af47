//! Kernel families: `blocked` (register blocks, no workgroup memory: what CPU drivers such as
//! llvmpipe run best) and `tiled` (workgroup-memory tiles: what GPUs run best), and the tile
//! sizes of the tiled family, derived from the adapter's limits.

use super::GpuError;

/// A setting with a closed set of named values (`--kernels blocked`): the names, and help for
/// each, that the command line (src/cli.rs) and the environment variables parse.
pub trait Choice: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn help(self) -> &'static str {
        ""
    }
    /// The value named `s` (ASCII case ignored).
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

/// The choice an environment variable names, if set; an error saying it is not `what` otherwise.
fn from_env<T: Choice>(var: &str, what: &str) -> Result<Option<T>, GpuError> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => T::parse(v.trim())
            .map(Some)
            .ok_or_else(|| GpuError::Invalid { label: var.into(), what: format!("'{v}' is not {what}") }),
    }
}

/// `--kernels` / `TERN_KERNELS`: which kernel family the ops run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    #[default]
    Auto,
    Blocked,
    Tiled,
}

impl Choice for Kernels {
    const ALL: &'static [Kernels] = &[Kernels::Auto, Kernels::Blocked, Kernels::Tiled];

    fn name(self) -> &'static str {
        match self {
            Kernels::Auto => "auto",
            Kernels::Blocked => "blocked",
            Kernels::Tiled => "tiled",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Kernels::Auto => "blocked on CPU-type adapters (llvmpipe, WARP, SwiftShader), tiled elsewhere",
            Kernels::Blocked => "register blocks, no workgroup memory (CPU drivers)",
            Kernels::Tiled => "workgroup-memory tiles (GPUs)",
        }
    }
}

impl Kernels {
    /// `TERN_KERNELS` (auto, blocked or tiled), if set.
    pub fn from_env() -> Result<Option<Kernels>, GpuError> {
        from_env("TERN_KERNELS", "a kernel family (auto, blocked or tiled)")
    }

    /// The family this choice runs on an adapter of `device_type`.
    pub(crate) fn resolve(self, device_type: wgpu::DeviceType) -> Family {
        match self {
            Kernels::Blocked => Family::Blocked,
            Kernels::Tiled => Family::Tiled,
            Kernels::Auto if device_type == wgpu::DeviceType::Cpu => Family::Blocked,
            Kernels::Auto => Family::Tiled,
        }
    }
}

/// `--ternary-kernels` / `TERN_TERNARY_KERNELS`: what a ternary layer's forward convolution and
/// input gradient read in training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TernaryKernels {
    #[default]
    Auto,
    Packed,
    Dense,
}

impl Choice for TernaryKernels {
    const ALL: &'static [TernaryKernels] =
        &[TernaryKernels::Auto, TernaryKernels::Packed, TernaryKernels::Dense];

    fn name(self) -> &'static str {
        match self {
            TernaryKernels::Auto => "auto",
            TernaryKernels::Packed => "packed",
            TernaryKernels::Dense => "dense",
        }
    }

    fn help(self) -> &'static str {
        match self {
            TernaryKernels::Auto => {
                "packed where the blocked family's register-block kernels run (they skip zero weights' multiply-adds), dense with its lanes kernels (8-lane subgroups) and in the tiled family"
            }
            TernaryKernels::Packed => {
                "bit masks written from the quantized weights every step, zero weights skipped"
            }
            TernaryKernels::Dense => "the quantized weights as f32, zeros multiplied like any weight",
        }
    }
}

impl TernaryKernels {
    /// `TERN_TERNARY_KERNELS` (auto, packed or dense), if set.
    pub fn from_env() -> Result<Option<TernaryKernels>, GpuError> {
        from_env("TERN_TERNARY_KERNELS", "a choice of ternary kernels (auto, packed or dense)")
    }

    /// Whether ternary layers train on masks under kernel family `family`, `lanes` saying whether
    /// its 3×3 convolutions run the lanes kernels (conv2d_lanes.wgsl, packed_conv_lanes.wgsl).
    pub fn on_masks(self, family: Family, lanes: bool) -> bool {
        match self {
            TernaryKernels::Packed => true,
            TernaryKernels::Dense => false,
            TernaryKernels::Auto => family == Family::Blocked && !lanes,
        }
    }
}

/// The kernel family a `Gpu` runs; the ops pick their entry points and grids by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Blocked,
    Tiled,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Blocked => "blocked",
            Family::Tiled => "tiled",
        }
    }
}

/// One workgroup tile of the tiled family: a TILE_M × TILE_N block of a GEMM's output computed
/// by TILE_M·TILE_N/16 invocations (4×4 outputs each), the reduction staged TILE_K at a time.
/// Passed to the shaders as `override` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

/// The adapter limits a tile must respect.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileLimits {
    /// min(max_compute_invocations_per_workgroup, max_compute_workgroup_size_x)
    pub invocations: u32,
    /// max_compute_workgroup_storage_size, bytes
    pub storage: u32,
}

/// Row and column tile sizes tried.
const EDGES: [u32; 5] = [16, 32, 64, 128, 256];
/// The most invocations a tile uses: 256 (8 warps / 4 wavefronts), the WebGPU guaranteed limit.
const MAX_INVOCATIONS: u32 = 256;
const MAX_K: u32 = 16;

impl Tile {
    pub fn invocations(&self) -> u32 {
        self.m * self.n / 16
    }

    /// Workgroup memory of the largest tiled entry point: two staged slices with one vec4 of
    /// padding per row, two TILE_K k-tables and a TILE_N column table of vec4 (conv2d
    /// forward/grad_input and grad_weight).
    pub fn storage_bytes(&self) -> u32 {
        4 * self.k * (self.m + self.n + 8) + 32 * self.k + 16 * self.n
    }

    /// Every tile `choose` can return, on any adapter: TILE_M and TILE_N from 16 to 256 with at
    /// most 256 invocations, TILE_K 4, 8 or 16 (the pipeline constants tests/portability.rs
    /// translates).
    pub fn all() -> Vec<Tile> {
        let mut tiles = Vec::new();
        for m in EDGES {
            for n in EDGES.into_iter().filter(|n| m * n / 16 <= MAX_INVOCATIONS) {
                tiles.extend([4, 8, 16].map(|k| Tile { m, n, k }));
            }
        }
        tiles
    }

    /// The `override` constants of the tiled shaders.
    pub fn constants(&self) -> [(&'static str, f64); 4] {
        [
            ("TILE_M", self.m as f64),
            ("TILE_N", self.n as f64),
            ("TILE_K", self.k as f64),
            ("WG", self.invocations() as f64),
        ]
    }

    /// The tile for a GEMM of `rows` × `cols` outputs reduced over `depth`: TILE_M and TILE_N
    /// from 16 to 256 with at most 256 invocations and within the adapter's limits, TILE_K the
    /// smallest power of two ≥ depth from 4 to 16, halved until the tile fits the workgroup
    /// storage. Among those, the least estimated cost: the padded output area (work on rows and
    /// columns past the end) × (1 + 8/TILE_M + 8/TILE_N + 4/TILE_K), the staging loads and
    /// barriers per multiply-add (a heuristic; ties go to more invocations). Invariants the
    /// shaders rely on: TILE_M and TILE_N multiples of 16, TILE_K a multiple of 4 dividing the
    /// invocation count.
    pub(crate) fn choose(limits: TileLimits, rows: usize, cols: usize, depth: usize) -> Tile {
        let max_invocations = limits.invocations.min(MAX_INVOCATIONS);
        let k0 = (depth.max(1).next_power_of_two() as u32).clamp(4, MAX_K);
        let padded = |v: usize, t: u32| v.max(1).div_ceil(t as usize) as f64 * t as f64;
        let mut best: Option<(f64, Tile)> = None;
        for m in EDGES {
            for n in EDGES {
                let mut tile = Tile { m, n, k: k0 };
                if tile.invocations() > max_invocations {
                    continue;
                }
                while tile.storage_bytes() > limits.storage && tile.k > 4 {
                    tile.k /= 2;
                }
                if tile.storage_bytes() > limits.storage {
                    continue;
                }
                let overhead = 1.0 + 8.0 / m as f64 + 8.0 / n as f64 + 4.0 / tile.k as f64;
                let cost = padded(rows, m) * padded(cols, n) * overhead;
                let better = match best {
                    None => true,
                    Some((c, b)) => cost < c || (cost == c && tile.invocations() > b.invocations()),
                };
                if better {
                    best = Some((cost, tile));
                }
            }
        }
        best.map_or(Tile { m: 16, n: 16, k: 4 }, |(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBGPU: TileLimits = TileLimits { invocations: 256, storage: 16384 };

    #[test]
    fn tiles_fit_the_limits_and_follow_the_shape() {
        // ResNet-20's layer3 forward, layer1 forward, conv1's weight gradient (16 × 27).
        assert_eq!(Tile::choose(WEBGPU, 64, 4096, 576), Tile { m: 64, n: 64, k: 16 });
        assert_eq!(Tile::choose(WEBGPU, 16, 32768, 144), Tile { m: 16, n: 128, k: 16 });
        assert_eq!(Tile::choose(WEBGPU, 16, 27, 32768), Tile { m: 16, n: 32, k: 16 });
        assert_eq!(Tile::choose(WEBGPU, 16, 32768, 3).k, 4);
        for limits in [
            WEBGPU,
            TileLimits { invocations: 128, storage: 16384 },
            TileLimits { invocations: 64, storage: 4096 },
            TileLimits { invocations: 1024, storage: 2048 },
            TileLimits { invocations: 16, storage: 1400 },
        ] {
            for (rows, cols, depth) in
                [(16, 144, 1000), (64, 576, 1000), (10, 128, 64), (3, 5, 1), (200, 7, 20)]
            {
                let t = Tile::choose(limits, rows, cols, depth);
                assert!(t.invocations() <= limits.invocations.max(16), "{t:?} {limits:?}");
                assert!(t.storage_bytes() <= limits.storage, "{t:?} {limits:?}");
                assert!(t.m.is_multiple_of(16) && t.n.is_multiple_of(16) && t.k.is_multiple_of(4));
                assert!(t.invocations().is_multiple_of(t.k));
                assert!(Tile::all().contains(&t), "{t:?} is not among the tiles translated");
            }
        }
    }

    /// auto trains on masks only where the register-block kernels run: they skip zero weights.
    /// The lanes kernels multiply every weight (a branch runs under a mask on llvmpipe, skipping
    /// nothing) and the tiled family stages weights in workgroup memory, so masks only add the
    /// decoding there.
    #[test]
    fn auto_trains_on_masks_only_with_the_register_block_kernels() {
        let auto = TernaryKernels::Auto;
        assert!(auto.on_masks(Family::Blocked, false));
        assert!(!auto.on_masks(Family::Blocked, true));
        assert!(!auto.on_masks(Family::Tiled, false));
        for (family, lanes) in [(Family::Blocked, true), (Family::Tiled, false)] {
            assert!(TernaryKernels::Packed.on_masks(family, lanes));
            assert!(!TernaryKernels::Dense.on_masks(family, lanes));
        }
    }
}
