//! Layers, models, the parameter store and the recorded step graph.

pub mod graph;
pub mod layers;
pub mod models;
pub mod packed;
pub mod params;

pub use graph::{Act, Builder, Mode};
pub use models::{Activation, Arch, Graph, Model, ModelSpec};
