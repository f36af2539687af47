//! `Builder` records a model's kernels once: the forward program in order, and each layer's
//! backward program, replayed in reverse. Activations are `Var`s: the value and, in training,
//! the buffer its gradient is written to.

use crate::gpu::{Gpu, Program, Tensor, Var};
use crate::params::ParamStore;
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, gradients, backward program.
    Train,
    /// Running statistics, forward only.
    Eval,
}

pub struct Builder<'a> {
    pub gpu: &'a Gpu,
    pub store: &'a ParamStore,
    pub mode: Mode,
    pub forward: Program,
    backward: Vec<Program>,
    /// Runs after the optimizer step (quantizers that constrain their latent weights).
    pub after_update: Program,
}

impl<'a> Builder<'a> {
    pub fn new(gpu: &'a Gpu, store: &'a ParamStore, mode: Mode) -> Builder<'a> {
        Builder {
            gpu,
            store,
            mode,
            forward: Program::default(),
            backward: Vec::new(),
            after_update: Program::default(),
        }
    }

    pub fn training(&self) -> bool {
        self.mode == Mode::Train
    }

    /// A parameter; its gradient slot only when training.
    pub fn param(&self, name: &str) -> Result<Var> {
        let mut p = self.store.get(name)?;
        if !self.training() {
            p.grad = None;
        }
        Ok(p)
    }

    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.gpu.tensor(name, shape)?)
    }

    /// A new activation, with a gradient buffer when training.
    pub fn act(&self, name: &str, shape: &[usize]) -> Result<Var> {
        let grad = if self.training() { Some(self.tensor(&format!("{name}.grad"), shape)?) } else { None };
        Ok(Var { value: self.tensor(name, shape)?, grad })
    }

    /// Add a layer's backward program; programs run in the reverse order of their pushing.
    /// Returns a slot that `set_backward` can fill later (for joins that must run last).
    pub fn push_backward(&mut self, p: Program) -> usize {
        self.backward.push(p);
        self.backward.len() - 1
    }

    pub fn set_backward(&mut self, slot: usize, p: Program) {
        self.backward[slot] = p;
    }

    /// (forward, backward, after_update) programs.
    pub fn finish(self) -> (Program, Program, Program) {
        let mut backward = Program::default();
        for p in self.backward.into_iter().rev() {
            backward.extend(p);
        }
        (self.forward, backward, self.after_update)
    }
}
