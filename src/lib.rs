//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu).
//!
//! Module map, lowest layer first; a module imports only from layers below it:
//! - `gpu`: the device boundary, the only module that talks to wgpu (adapter, tensors,
//!   kernels, dispatches, the one submit path, profiler). `data` and `plot` stand beside it.
//! - `ops`: host side of each shader file (shape checks, launches).
//! - `params`: the parameter store (every parameter in one flat buffer).
//! - `quant`: the quantizers (TTQ, TTN, STTN, TWN, full precision) behind one trait.
//! - `nn`: layers, models and the recorded forward/backward programs.
//! - flows: `checkpoint`, `import`, `trace`, `packed`, `infer`, `train`, `export`, `bench`,
//!   `profile`; `cli` holds one function per subcommand, which `main.rs` calls.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod export;
pub mod gpu;
pub mod import;
pub mod infer;
pub mod nn;
pub mod ops;
pub mod packed;
pub mod params;
pub mod plot;
pub mod profile;
pub mod quant;
pub mod trace;
pub mod train;
