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

pub mod bench;
pub mod checkpoint;
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
pub mod plot;
pub mod profile;
pub mod quant;
pub mod trace;
pub mod train;
