//! tern: train and run ternary-weight neural networks with WGSL compute shaders (wgpu), on any
//! GPU that Vulkan, Metal, DX12 or GL reach, and on Mesa's software Vulkan driver.
//!
//! # Classify
//!
//! A packed model (`tern export`), a training checkpoint, an imported PyTorch model, or the
//! Fashion-MNIST model built into the crate (`examples/classify.rs`):
//!
//! ```no_run
//! # fn main() -> Result<(), tern::Error> {
//! let gpu = tern::Gpu::new(&Default::default())?;
//! let model = tern::Model::builtin(&gpu)?; // or tern::Model::load(&gpu, "m.tern.safetensors")?
//! let image = image::open("shirt.png").expect("an image");
//! for class in &model.classify(&[image], 5)?[0] {
//!     println!("{} {:.1} %", class.label, 100.0 * class.probability);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Train
//!
//! [`TrainConfig::default`] is `tern train` with no flags; each epoch's results come to a
//! callback (`examples/train.rs`):
//!
//! ```no_run
//! # fn main() -> Result<(), tern::Error> {
//! let gpu = tern::Gpu::new(&Default::default())?;
//! let config = tern::TrainConfig { epochs: 2, fp_epochs: 1, ..Default::default() };
//! let summary = tern::Trainer::new(&gpu, config).run(|epoch| {
//!     println!("epoch {}: test accuracy {:.2} %", epoch.epoch, 100.0 * epoch.test_accuracy);
//! })?;
//! println!("checkpoints in {}", summary.out.display());
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`Error`]s, told apart by kind: a missing adapter, a bad file, an invalid setting,
//! a failed or interrupted run.
//!
//! # The house
//!
//! The front door is the items above; everything beneath it is in [`internals`], public for the
//! `tern` binary, the tests and `tern check` but with no promise of stability. Module map, lowest
//! layer first; a module imports only from layers below it:
//! - `gpu`: the device boundary, the only module that talks to wgpu (adapter, tensors,
//!   kernels, dispatches, the one submit path, profiler). `data` and `plot` stand beside it.
//! - `ops`: host side of each shader file (shape checks, launches).
//! - `params`: the parameter store (every parameter in one flat buffer).
//! - `quant`: the quantizers (TTQ, TTN, STTN, TWN, full precision) behind one trait.
//! - `nn`: layers, models and the recorded forward/backward programs.
//! - flows: `checkpoint`, `import`, `trace`, `packed`, `infer`, `train`, `export`, `profile`,
//!   `bench`, `check` (the f64 reference of every op and the cases holding each kernel against
//!   it and PyTorch's goldens: tests/ops and `tern check`); `api` is the front door above them,
//!   and `cli` holds one function per subcommand, which `main.rs` calls.
//! - `output`: every write to stdout and stderr (`outln!`, `showln!`, `errln!`), none of which
//!   panics when the output is a closed pipe or a full disk.

mod api;
mod error;
pub mod internals;
// Inside the crate the internals are crate::gpu, crate::train, ...
pub(crate) use internals::*;

pub use api::{Class, DEFAULT_BATCH, Model, Trainer};
pub use error::Error;
pub use internals::gpu::{Gpu, GpuOptions};
pub use internals::train::{EpochMetrics, LayerTrace, Summary, TrainConfig};
