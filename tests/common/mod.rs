//! Shared test helpers: one GPU per test binary, upload/readback in f64.
#![allow(dead_code)]

use std::sync::OnceLock;
use tern::gpu::{Dispatch, Gpu, GpuOptions, Program, Tensor};

/// The adapter the tests run on. No adapter is a failure, never a skip: CI installs lavapipe.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("{e}")))
}

pub fn upload(name: &str, shape: &[usize], data: &[f64]) -> Tensor {
    let v: Vec<f32> = data.iter().map(|x| *x as f32).collect();
    gpu().tensor_from(name, shape, &v).unwrap()
}

pub fn zeros(name: &str, shape: &[usize]) -> Tensor {
    gpu().tensor(name, shape).unwrap()
}

pub fn download(t: &Tensor) -> Vec<f64> {
    gpu().read(t).unwrap().iter().map(|x| *x as f64).collect()
}

pub fn run(dispatches: impl IntoIterator<Item = Dispatch>) {
    let program = Program { dispatches: dispatches.into_iter().collect() };
    gpu().run(&[&program]).unwrap();
}

pub fn run_programs(programs: &[&Program]) {
    gpu().run(programs).unwrap();
}

/// Tensors of a golden file made by tests/golden/make_golden.py.
pub struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    pub fn load(file: &str) -> Golden {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file);
        Golden { bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) }
    }

    pub fn has(&self, name: &str) -> bool {
        safetensors::SafeTensors::deserialize(&self.bytes).unwrap().tensor(name).is_ok()
    }

    /// (shape, values) of a float32 tensor.
    pub fn get(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("golden tensor '{name}' missing"));
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        (t.shape().to_vec(), v.iter().map(|x| *x as f64).collect())
    }

    pub fn values(&self, name: &str) -> Vec<f64> {
        self.get(name).1
    }

    pub fn upload(&self, name: &str) -> Tensor {
        let (shape, v) = self.get(name);
        upload(name, &shape, &v)
    }

    pub fn usizes(&self, name: &str) -> Vec<usize> {
        self.values(name).iter().map(|v| *v as usize).collect()
    }
}

/// Write a small Fashion-MNIST-format dataset (raw idx files, not gzip'd) with the first
/// `train` / `test` images of the embedded subset; returns the directory.
pub fn tiny_fashion(dir: &std::path::Path, train: usize, test: usize) -> std::path::PathBuf {
    let (tr, te) = tern::data::embedded::fashion_mnist().unwrap();
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
pub fn train_config(args: &[&str]) -> tern::train::TrainConfig {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: tern::train::TrainConfig,
    }
    Wrapper::parse_from(std::iter::once("tern").chain(args.iter().copied())).config
}
