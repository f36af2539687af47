//! Kernel families: `blocked` (register blocks, no workgroup memory: what CPU drivers such as
//! llvmpipe run best) and `tiled` (workgroup-memory tiles: what GPUs run best), and the tile
//! sizes of the tiled family, derived from the adapter's limits.

use super::GpuError;

/// `--kernels` / `TERN_KERNELS`: which kernel family the ops run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    /// blocked on CPU-type adapters (llvmpipe, WARP, SwiftShader), tiled elsewhere
    #[default]
    Auto,
    /// register blocks, no workgroup memory (CPU drivers)
    Blocked,
    /// workgroup-memory tiles (GPUs)
    Tiled,
}

impl Kernels {
    /// `TERN_KERNELS` (auto, blocked or tiled), if set.
    pub fn from_env() -> Result<Option<Kernels>, GpuError> {
        match std::env::var("TERN_KERNELS") {
            Err(_) => Ok(None),
            Ok(v) => <Kernels as clap::ValueEnum>::from_str(v.trim(), true).map(Some).map_err(|_| {
                GpuError::Invalid {
                    label: "TERN_KERNELS".into(),
                    what: format!("'{v}' is not a kernel family (auto, blocked or tiled)"),
                }
            }),
        }
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

    pub fn other(self) -> Family {
        match self {
            Family::Blocked => Family::Tiled,
            Family::Tiled => Family::Blocked,
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

/// Row and column tile sizes tried, in order of preference when they waste the same.
const EDGES: [u32; 5] = [64, 32, 128, 16, 256];
/// The invocation count aimed for: 256 (8 warps / 4 wavefronts), the WebGPU guaranteed limit.
const TARGET_INVOCATIONS: u32 = 256;
const MAX_K: u32 = 16;

impl Tile {
    pub fn invocations(&self) -> u32 {
        self.m * self.n / 16
    }

    /// Workgroup memory of the largest tiled entry point: two staged slices with one vec4 of
    /// padding per row, and a TILE_N table of vec4 (conv2d grad_weight's column table).
    pub fn storage_bytes(&self) -> u32 {
        4 * self.k * (self.m + self.n + 8) + 16 * self.n
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

    /// The tile for a GEMM of `rows` × `cols` outputs whose reduction comes in runs of `depth`
    /// (the channel count for a convolution's tap-by-tap reduction): among the shapes of the
    /// largest invocation count the limits allow, the one whose padding wastes least; TILE_K
    /// the smallest power of two ≥ depth, from 4 to 16, shrunk until the tile fits the
    /// workgroup storage. Invariants the shaders rely on: TILE_M and TILE_N multiples of 16,
    /// TILE_K a multiple of 4 that divides the invocation count.
    pub(crate) fn choose(limits: TileLimits, rows: usize, cols: usize, depth: usize) -> Tile {
        let mut invocations = TARGET_INVOCATIONS;
        while invocations > 16 && invocations > limits.invocations {
            invocations /= 2;
        }
        let k0 = (depth.max(1).next_power_of_two() as u32).clamp(4, MAX_K);
        loop {
            let padded = |v: usize, t: u32| v.max(1).div_ceil(t as usize) * t as usize;
            let best = EDGES
                .iter()
                .filter_map(|&m| {
                    let n = invocations * 16 / m;
                    (n >= 16 && n.is_multiple_of(16) && m * n / 16 == invocations).then_some((m, n))
                })
                .min_by_key(|&(m, n)| padded(rows, m) * padded(cols, n));
            if let Some((m, n)) = best {
                let mut tile = Tile { m, n, k: k0 };
                while tile.storage_bytes() > limits.storage && tile.k > 4 {
                    tile.k /= 2;
                }
                if tile.storage_bytes() <= limits.storage || invocations == 16 {
                    return tile;
                }
            }
            if invocations == 16 {
                return Tile { m: 16, n: 16, k: 4 };
            }
            invocations /= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBGPU: TileLimits = TileLimits { invocations: 256, storage: 16384 };

    #[test]
    fn tiles_fit_the_limits_and_follow_the_shape() {
        assert_eq!(Tile::choose(WEBGPU, 64, 32768, 64), Tile { m: 64, n: 64, k: 16 });
        assert_eq!(Tile::choose(WEBGPU, 16, 32768, 16), Tile { m: 16, n: 256, k: 8 });
        assert_eq!(Tile::choose(WEBGPU, 16, 32768, 3).k, 4);
        for limits in [
            WEBGPU,
            TileLimits { invocations: 128, storage: 16384 },
            TileLimits { invocations: 64, storage: 4096 },
            TileLimits { invocations: 1024, storage: 2048 },
            TileLimits { invocations: 16, storage: 1024 },
        ] {
            for (rows, cols, depth) in
                [(16, 144, 1000), (64, 576, 1000), (10, 128, 64), (3, 5, 1), (200, 7, 20)]
            {
                let t = Tile::choose(limits, rows, cols, depth);
                assert!(t.invocations() <= limits.invocations.max(16), "{t:?} {limits:?}");
                assert!(t.storage_bytes() <= limits.storage.max(1024), "{t:?} {limits:?}");
                assert!(t.m.is_multiple_of(16) && t.n.is_multiple_of(16) && t.k.is_multiple_of(4));
                assert!(t.invocations().is_multiple_of(t.k));
            }
        }
    }
}
