//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu).
//!
//! Module map:
//! - `gpu`: the device boundary (adapter, tensors, kernels, dispatches).
//! - `ops`: host side of each shader file (shape checks, launches).
//! - `quant`: quantizers (TTQ, TWN, full precision) behind one trait.
//! - `nn`: layers, models, parameter store, recorded forward/backward programs.
//! - `bench`: micro-benchmarks.

pub mod bench;
pub mod gpu;
pub mod nn;
pub mod ops;
pub mod quant;
