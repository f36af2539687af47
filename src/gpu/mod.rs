//! The device boundary: everything that talks to wgpu lives under this module, and no wgpu type
//! crosses it.
//!
//! `Gpu` owns the adapter, device and queue, the kernel family its ops run (`Family`: blocked or
//! tiled, from `--kernels`/`TERN_KERNELS`; the tiled family's `Tile` sizes from the adapter's
//! limits; `Reductions`: how shaders reduce within a workgroup, subgroups or trees) and the one
//! submit path (`Gpu::submit`, `run`, and `Profiler::submit` all record through `submit_with`); `Tensor` is a buffer range with a shape, `Var` a value with its
//! gradient, `Uniform<T>` a typed uniform buffer; `Kernel` is one compiled shader entry point
//! (specialised by `override` constants where given) whose bindings and workgroup size are read
//! from the WGSL by naga; `Dispatch` is one launch of a kernel with its bind group, built once and
//! replayed every step; `Profiler` times dispatches with timestamp queries.

mod context;
mod family;
mod kernel;
pub mod profiler;
pub mod shaders;
mod tensor;
pub mod unrolled;

pub use context::{Backend, Gpu, GpuOptions, adapter_summaries};
pub use family::{Choice, Family, Kernels, TernaryKernels, Tile};
pub use kernel::{Cost, Dispatch, Grid, Kernel, Program};
pub use profiler::{KernelStat, Profiled, Profiler, Timing};
pub use shaders::Reductions;
pub use tensor::{DType, Tensor, Uniform, UniformRef, Var};

/// Errors at the device boundary. Each names the tensor, kernel or limit at fault.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{0}; on headless Linux install a Vulkan driver \
         (`apt-get install mesa-vulkan-drivers` gives the llvmpipe software driver)"
    )]
    NoAdapter(String),
    #[error(
        "adapter index {index} is out of range: {count} adapter(s) found (list them with `tern devices`)"
    )]
    AdapterIndex { index: usize, count: usize },
    #[error("could not open the GPU device on {adapter}: {reason}")]
    Device { adapter: String, reason: String },
    #[error("tensor '{name}' needs {bytes} bytes, over the adapter limit {limit} = {max} bytes")]
    TooLarge { name: String, bytes: u64, limit: &'static str, max: u64 },
    #[error("tensor '{name}': expected {expected} values, got {got}")]
    Length { name: String, expected: usize, got: usize },
    #[error("{label}: tensor '{name}' has shape {got:?}, expected {expected:?}")]
    Shape { label: String, name: String, got: Vec<usize>, expected: Vec<usize> },
    #[error("{label}: {what}")]
    Invalid { label: String, what: String },
    #[error("{label}: {what}")]
    Binding { label: String, what: String },
    #[error(
        "{label}: {threads} invocations need more workgroups than the adapter allows ({max} per dimension)"
    )]
    Workgroups { label: String, threads: u64, max: u32 },
    #[error("shader {shader}: {reason}")]
    Shader { shader: String, reason: String },
    #[error("GPU error: {0}")]
    Wgpu(String),
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;
