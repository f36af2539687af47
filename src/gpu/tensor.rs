//! `Tensor`: a range of a GPU buffer with a shape and a name. Cloning shares the buffer.
//! `Var`: a tensor and the buffer its gradient is written to (activations and parameters alike).
//! `Uniform<T>`: a uniform buffer holding one `T` that the host rewrites between submissions.

use std::marker::PhantomData;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    /// Labels, indices and bit-packed weight words.
    U32,
}

#[derive(Clone)]
pub struct Tensor {
    buffer: Arc<wgpu::Buffer>,
    offset: u64,
    shape: Vec<usize>,
    name: Arc<str>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({} {:?} {:?})", self.name, self.shape, self.dtype)
    }
}

impl Tensor {
    pub(crate) fn new(
        buffer: Arc<wgpu::Buffer>,
        offset: u64,
        shape: &[usize],
        name: &str,
        dtype: DType,
    ) -> Tensor {
        Tensor { buffer, offset, shape: shape.to_vec(), name: name.into(), dtype }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Byte offset of the first element within the buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A sub-range starting `start` elements in, with its own shape and name (parameter views
    /// into the flat parameter buffer). The caller keeps `start * 4` aligned to the adapter's
    /// `min_storage_buffer_offset_alignment`.
    pub fn view(&self, name: &str, start: usize, shape: &[usize]) -> Tensor {
        let numel: usize = shape.iter().product();
        assert!(start + numel <= self.numel(), "view '{name}' out of range of '{}'", self.name);
        Tensor::new(self.buffer.clone(), self.offset + start as u64 * 4, shape, name, self.dtype)
    }

    /// The tensor as whole vec4s, for shaders that read it four elements at a time: its length
    /// rounded up to a multiple of 4 where its buffer holds the extra elements (the reader never
    /// uses them). Buffers are allocated in whole vec4s, so only a view ending inside another
    /// tensor's alignment padding could lack them.
    pub(crate) fn vec4_cover(&self) -> Option<Tensor> {
        let numel = self.numel().next_multiple_of(4);
        let fits = self.offset + numel as u64 * 4 <= self.buffer.size();
        fits.then(|| Tensor::new(self.buffer.clone(), self.offset, &[numel], &self.name, self.dtype))
    }

    /// The same memory under another shape (same element count).
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), self.numel(), "reshape of '{}'", self.name);
        Tensor::new(self.buffer.clone(), self.offset, shape, &self.name, self.dtype)
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.bytes().max(4)),
        })
    }

    /// True when the two tensors share any byte of the same buffer.
    pub fn overlaps(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
            && self.offset < other.offset + other.bytes().max(4)
            && other.offset < self.offset + self.bytes().max(4)
    }
}

/// A value and, when gradients flow to it, the tensor its gradient is written to: an activation
/// in the step graph, or a parameter's view into the store's value and gradient buffers.
#[derive(Clone, Debug)]
pub struct Var {
    pub value: Tensor,
    pub grad: Option<Tensor>,
}

/// A uniform buffer holding one `T` (learning rate, step count), rewritten with
/// `Gpu::write_uniform` between submissions and bound by name with `Dispatch::with_uniforms`.
pub struct Uniform<T> {
    pub(crate) buffer: wgpu::Buffer,
    value: PhantomData<T>,
}

impl<T: bytemuck::Pod> Uniform<T> {
    pub(crate) fn new(buffer: wgpu::Buffer) -> Uniform<T> {
        Uniform { buffer, value: PhantomData }
    }

    /// The untyped handle a dispatch binds.
    pub fn bind(&self) -> UniformRef<'_> {
        UniformRef(&self.buffer)
    }
}

/// A uniform buffer bound to a dispatch, whatever its type.
#[derive(Clone, Copy)]
pub struct UniformRef<'a>(pub(crate) &'a wgpu::Buffer);
