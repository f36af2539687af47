//! The parameter store: every parameter and persistent state tensor of a model in one flat GPU
//! buffer (plus same-layout buffers for gradients and optimizer moments), so one optimizer
//! dispatch updates all of them. Each tensor starts at an offset aligned for binding.
//!
//! Layout: [weights with decay | other trainable | non-trainable state (running stats)].

use crate::gpu::{Gpu, Result, Tensor, Var};
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Const(f32),
    /// Kaiming normal for ReLU networks: N(0, 2 / fan_in).
    KaimingNormal {
        fan_in: usize,
    },
    /// U(−b, b), PyTorch's default for linear layers with b = 1/√fan_in.
    Uniform {
        bound: f32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Trained with weight decay (conv and linear weights).
    Decayed,
    /// Trained without weight decay (batch-norm affine, biases, quantizer scales).
    Trained,
    /// Saved and restored but not trained (batch-norm running statistics).
    State,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub role: Role,
}

impl ParamSpec {
    pub fn new(name: String, shape: &[usize], init: Init, decay: bool) -> ParamSpec {
        let role = if decay { Role::Decayed } else { Role::Trained };
        ParamSpec { name, shape: shape.to_vec(), init, role }
    }

    pub fn state(name: String, shape: &[usize], init: Init) -> ParamSpec {
        ParamSpec { name, shape: shape.to_vec(), init, role: Role::State }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Which of the store's flat buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Values,
    Moment1,
    Moment2,
}

/// A named tensor on the host (checkpoints, imports, exports).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct ParamStore {
    pub specs: Vec<ParamSpec>,
    offsets: Vec<usize>,
    index: HashMap<String, usize>,
    /// Elements [0, decay_end) get weight decay; [0, trainable_end) are trained.
    pub decay_end: usize,
    pub trainable_end: usize,
    pub values: Tensor,
    pub grads: Tensor,
    pub moment1: Tensor,
    pub moment2: Tensor,
}

impl ParamStore {
    /// Lay out `specs` and allocate the flat buffers (values initialised from `seed`).
    pub fn new(gpu: &Gpu, specs: Vec<ParamSpec>, seed: u64) -> anyhow::Result<ParamStore> {
        let align = gpu.offset_alignment();
        let mut specs = specs;
        let rank = |r: &Role| match r {
            Role::Decayed => 0,
            Role::Trained => 1,
            Role::State => 2,
        };
        specs.sort_by_key(|s| rank(&s.role)); // stable: keeps model order within a role
        let (mut offsets, mut index, mut end) = (Vec::new(), HashMap::new(), 0);
        let (mut decay_end, mut trainable_end) = (0, 0);
        for (i, s) in specs.iter().enumerate() {
            if index.insert(s.name.clone(), i).is_some() {
                bail!("duplicate parameter name '{}'", s.name);
            }
            offsets.push(end);
            end = (end + s.numel()).next_multiple_of(align);
            if s.role == Role::Decayed {
                decay_end = end;
            }
            if s.role != Role::State {
                trainable_end = end;
            }
        }
        let total = end.max(1);
        let store = ParamStore {
            values: gpu.tensor("params", &[total])?,
            grads: gpu.tensor("grads", &[trainable_end.max(1)])?,
            moment1: gpu.tensor("moment1", &[trainable_end.max(1)])?,
            moment2: gpu.tensor("moment2", &[trainable_end.max(1)])?,
            specs,
            offsets,
            index,
            decay_end,
            trainable_end,
        };
        let mut host = vec![0.0f32; total];
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        for (s, &o) in store.specs.iter().zip(&store.offsets) {
            let dst = &mut host[o..o + s.numel()];
            match s.init {
                Init::Const(c) => dst.fill(c),
                Init::KaimingNormal { fan_in } => {
                    let normal = Normal::new(0.0, (2.0 / fan_in as f32).sqrt()).context("init")?;
                    dst.iter_mut().for_each(|v| *v = normal.sample(&mut rng));
                }
                Init::Uniform { bound } => {
                    let u = Uniform::new_inclusive(-bound, bound).context("init")?;
                    dst.iter_mut().for_each(|v| *v = u.sample(&mut rng));
                }
            }
        }
        gpu.write(&store.values, &host)?;
        Ok(store)
    }

    fn find(&self, name: &str) -> Result<usize, anyhow::Error> {
        self.index.get(name).copied().with_context(|| format!("no parameter named '{name}'"))
    }

    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.index.get(name).map(|&i| &self.specs[i])
    }

    /// The value view and (for trainable parameters) the gradient view of one parameter.
    pub fn get(&self, name: &str) -> anyhow::Result<Var> {
        let i = self.find(name)?;
        let s = &self.specs[i];
        let o = self.offsets[i];
        let grad = (s.role != Role::State).then(|| self.grads.view(&format!("{name}.grad"), o, &s.shape));
        Ok(Var { value: self.values.view(name, o, &s.shape), grad })
    }

    fn flat(&self, slot: Slot) -> &Tensor {
        match slot {
            Slot::Values => &self.values,
            Slot::Moment1 => &self.moment1,
            Slot::Moment2 => &self.moment2,
        }
    }

    /// Every tensor of one slot by name, in layout order (one readback). Moments exist for
    /// trainable parameters only.
    pub fn read(&self, gpu: &Gpu, slot: Slot) -> anyhow::Result<Vec<HostTensor>> {
        let flat = gpu.read(self.flat(slot))?;
        Ok(self
            .specs
            .iter()
            .zip(&self.offsets)
            .filter(|(s, _)| slot == Slot::Values || s.role != Role::State)
            .map(|(s, &o)| HostTensor {
                name: s.name.clone(),
                shape: s.shape.clone(),
                data: flat[o..o + s.numel()].to_vec(),
            })
            .collect())
    }

    /// Overwrite named tensors of one slot; every name must exist with the same shape.
    pub fn write(&self, gpu: &Gpu, slot: Slot, tensors: &[HostTensor]) -> anyhow::Result<()> {
        for t in tensors {
            let i = self.find(&t.name)?;
            let s = &self.specs[i];
            if s.shape != t.shape || t.data.len() != s.numel() {
                bail!("tensor '{}' has shape {:?}, the model expects {:?}", t.name, t.shape, s.shape);
            }
            if slot != Slot::Values && s.role == Role::State {
                bail!("tensor '{}' is not trained and has no optimizer state", t.name);
            }
            gpu.write(&self.flat(slot).view(&t.name, self.offsets[i], &t.shape), &t.data)?;
        }
        Ok(())
    }

    /// Parameter elements (excluding alignment padding and state).
    pub fn trainable_count(&self) -> usize {
        self.specs.iter().filter(|s| s.role != Role::State).map(|s| s.numel()).sum()
    }
}
