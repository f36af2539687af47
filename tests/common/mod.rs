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
