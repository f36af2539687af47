//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu).
//!
//! Module map:
//! - `gpu`: the device boundary (adapter, tensors, kernels, dispatches).
//! - `ops`: host side of each shader file (shape checks, launches).
//! - `quant`: quantizers (TTQ, TWN, full precision) behind one trait.
//! - `nn`: layers, models, parameter store, recorded forward/backward programs.
//! - `data`: datasets, augmentation, the prefetching loader.
//! - `train`, `infer`, `checkpoint`, `plot`: the user-facing flows.
//! - `bench`: micro-benchmarks.
//! - `check`: the f64 reference of every op and the cases holding each kernel against it and
//!   against PyTorch's goldens (tests/ops, `tern check`).

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod data;
pub mod export;
pub mod gpu;
pub mod import;
pub mod infer;
pub mod nn;
pub mod ops;
pub mod plot;
pub mod profile;
pub mod quant;
pub mod trace;
pub mod train;
