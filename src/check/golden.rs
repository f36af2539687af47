//! PyTorch's outputs for the kernels' inputs: tests/golden/ops.safetensors, made by
//! tests/golden/make_golden.py and built into the binary so that `tern check` needs no files.

use crate::gpu::{Gpu, Tensor};
use anyhow::{Context, Result};
use std::borrow::Cow;

/// A safetensors file of float32 tensors read by name.
pub struct Golden {
    bytes: Cow<'static, [u8]>,
}

impl Golden {
    /// The op goldens, embedded.
    pub fn ops() -> Golden {
        Golden { bytes: Cow::Borrowed(include_bytes!("../../tests/golden/ops.safetensors")) }
    }

    pub fn load(path: &std::path::Path) -> Result<Golden> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Golden { bytes: Cow::Owned(bytes) })
    }

    /// (shape, values) of a float32 tensor.
    pub fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes)?;
        let t = st.tensor(name).with_context(|| format!("golden tensor '{name}' missing"))?;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        Ok((t.shape().to_vec(), super::to_f64(&v)))
    }

    pub fn values(&self, name: &str) -> Result<Vec<f64>> {
        Ok(self.get(name)?.1)
    }

    /// Sizes stored as floats (a case's geometry).
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.values(name)?.iter().map(|v| *v as usize).collect())
    }

    pub fn upload(&self, gpu: &Gpu, name: &str) -> Result<Tensor> {
        let (shape, v) = self.get(name)?;
        super::upload(gpu, name, &shape, &v)
    }
}
