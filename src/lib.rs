//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu).
//!
//! Module map, lowest layer first; a module imports only from layers below it:
//! - `gpu`: the device boundary, the only module that talks to wgpu (adapter, tensors,
//!   kernels, dispatches, the one submit path, profiler). `data` and `plot` stand beside it.
//! - `ops`: host side of each shader file (shape checks, launches).
//! - `params`: the parameter store (every parameter in one flat buffer).
//! - `quant`: the quantizers (TTQ, TTN, STTN, TWN, full precision) behind one trait.
//! - `nn`: layers, models and the recorded forward/backward programs.
//! - flows: `checkpoint`, `import`, `trace`, `packed`, `infer`, `train`, `export`, `profile`,
//!   `bench`, `check` (the f64 reference of every op and the cases holding each kernel against
//!   it and PyTorch's goldens: tests/ops and `tern check`); `cli` holds one function per
//!   subcommand, which `main.rs` calls.
//! - `output`: every write to stdout and stderr (`outln!`, `showln!`, `errln!`), none of which
//!   panics when the output is a closed pipe or a full disk.

// First: the output macros (outln!, showln!, errln!) the modules below use.
#[macro_use]
pub mod output;

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod export;
pub mod fault;
pub mod files;
pub mod gpu;
pub mod import;
pub mod infer;
pub mod interrupt;
pub mod nn;
pub mod ops;
pub mod packed;
pub mod params;
pub mod plot;
pub mod profile;
pub mod quant;
pub mod trace;
pub mod train;
