//! Host side of every shader entry point: one file per shader file, same name. Each function
//! checks shapes, then returns the `Dispatch`es that compute the op (built once, replayed).

pub mod activation;
pub mod batchnorm;
pub mod bitplane;
pub mod conv2d;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod packed_conv;
pub mod packed_linear;
pub mod pool;
pub mod reduce;
pub mod shortcut;
pub mod ternary_masks;

use crate::gpu::{GpuError, Result, Tensor};

/// Fail with an error naming the tensor when its shape is not `expected`.
pub fn expect_shape(label: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape() != expected {
        return Err(GpuError::Shape {
            label: label.into(),
            name: t.name().into(),
            got: t.shape().to_vec(),
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// Bytes of f32 traffic for `elements` values.
pub fn f32_bytes(elements: usize) -> u64 {
    elements as u64 * 4
}

pub fn u32_of(label: &str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| GpuError::Invalid { label: label.into(), what: format!("{what} = {v} exceeds u32") })
}
