//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu).
//!
//! Module map:
//! - `gpu`: the device boundary (adapter, tensors, kernels, dispatches).
//! - `ops`: host side of each shader file (shape checks, launches).

pub mod gpu;
pub mod ops;
