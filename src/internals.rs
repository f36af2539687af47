//! tern's machinery beneath the front door ([`crate::Gpu`], [`crate::Model`],
//! [`crate::Trainer`], [`crate::Error`]): public for the `tern` binary, the tests, the
//! benchmarks and `tern check`, with no promise of stability. Lowest layer first; a module
//! imports only from the layers below it (docs/architecture.md).

// First: the output macros (outln!, showln!, errln!) the modules below use.
#[macro_use]
#[path = "output.rs"]
pub mod output;

#[path = "bench.rs"]
pub mod bench;
#[path = "check/mod.rs"]
pub mod check;
#[path = "checkpoint.rs"]
pub mod checkpoint;
#[path = "cli.rs"]
pub mod cli;
#[path = "data/mod.rs"]
pub mod data;
#[path = "export.rs"]
pub mod export;
#[path = "fault.rs"]
pub mod fault;
#[path = "files.rs"]
pub mod files;
#[path = "gpu/mod.rs"]
pub mod gpu;
#[path = "import.rs"]
pub mod import;
#[path = "infer.rs"]
pub mod infer;
#[path = "interrupt.rs"]
pub mod interrupt;
#[path = "nn/mod.rs"]
pub mod nn;
#[path = "ops/mod.rs"]
pub mod ops;
#[path = "packed/mod.rs"]
pub mod packed;
#[path = "params.rs"]
pub mod params;
#[path = "plot.rs"]
pub mod plot;
#[path = "profile.rs"]
pub mod profile;
#[path = "quant/mod.rs"]
pub mod quant;
#[path = "roofline.rs"]
pub mod roofline;
#[path = "trace.rs"]
pub mod trace;
#[path = "train/mod.rs"]
pub mod train;
