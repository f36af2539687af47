//! Layers, models and the recorded step graph.

pub mod graph;
pub mod layers;
pub mod models;

pub use graph::{Builder, Mode};
pub use models::{Activation, Arch, Graph, Model, ModelSpec};
