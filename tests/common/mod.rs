//! Helpers of the end-to-end tests: one GPU per test binary, golden files, tiny datasets.
#![allow(dead_code)]

use std::sync::OnceLock;
use tern::internals::gpu::{Gpu, GpuOptions};

/// The adapter the tests run on. No adapter is a failure, never a skip: CI installs lavapipe.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("{e}")))
}

/// A golden file made by tests/golden/make_golden.py.
pub fn golden(file: &str) -> tern::internals::check::Golden {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file);
    tern::internals::check::Golden::load(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Write a small Fashion-MNIST-format dataset (raw idx files, not gzip'd) with the first
/// `train` / `test` images of the embedded subset; returns the directory.
pub fn tiny_fashion(dir: &std::path::Path, train: usize, test: usize) -> std::path::PathBuf {
    let (tr, te) = tern::internals::data::embedded::fashion_mnist().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, d, n) in [("train", &tr, train), ("t10k", &te, test)] {
        let mut images = vec![0, 0, 8, 3];
        for v in [n as u32, 28, 28] {
            images.extend(v.to_be_bytes());
        }
        images.extend(&d.pixels[..n * 784]);
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        labels.extend(d.labels[..n].iter().map(|l| *l as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
    dir.to_path_buf()
}

/// A training config parsed from command-line words, with the CLI's defaults.
pub fn train_config(args: &[&str]) -> tern::internals::train::TrainConfig {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: tern::internals::train::TrainConfig,
    }
    Wrapper::parse_from(std::iter::once("tern").chain(args.iter().copied())).config
}
