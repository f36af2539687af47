//! `Session`: a model with its training and evaluation graphs and its optimizer dispatch, and the
//! training step that replays them.

use super::TrainConfig;
use super::config::Optimizer;
use crate::data::loader::Batch;
use crate::gpu::{Gpu, Profiler, Program, Uniform};
use crate::nn::{Graph, Mode, Model};
use crate::ops::optim::{self, OptimParams, StepParams};
use crate::trace::Trace;
use anyhow::Result;

/// A model with its training and evaluation graphs and optimizer kernel.
pub(crate) struct Session {
    pub(crate) model: Model,
    pub(crate) train: Graph,
    pub(crate) eval: Graph,
    /// The optimizer, then the quantizers' after-update kernels.
    update: Program,
    /// StepParams, rewritten before each step.
    step_params: Uniform<StepParams>,
}

impl Session {
    pub(crate) fn new(gpu: &Gpu, model: Model, cfg: &TrainConfig, eval_batch: usize) -> Result<Session> {
        let mut train = model.graph(gpu, cfg.batch_size, Mode::Train)?;
        let eval = model.graph(gpu, eval_batch, Mode::Eval)?;
        let step_params = gpu.uniform("step", &StepParams::default());
        let s = &model.store;
        let params = OptimParams {
            len: s.trainable_end as u32,
            decay_end: s.decay_end as u32,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            beta1: optim::ADAM_BETA1,
            beta2: optim::ADAM_BETA2,
            eps: optim::ADAM_EPS,
        };
        let entry = match cfg.optimizer {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        };
        let trained = s.values.view("params.trained", 0, &[s.trainable_end.max(1)]);
        let optimizer =
            optim::update(gpu, entry, &params, &step_params, &trained, &s.grads, &s.moment1, &s.moment2)?;
        // The optimizer, then the quantizers' after-update kernels (STTN's latent clamp).
        let mut update = Program { dispatches: vec![optimizer] };
        update.extend(std::mem::take(&mut train.after_update));
        Ok(Session { model, train, eval, update, step_params })
    }

    pub(crate) fn programs(&self) -> [&Program; 3] {
        [&self.train.forward, &self.train.backward, &self.update]
    }

    pub(crate) fn dispatch_count(&self) -> usize {
        self.programs().iter().map(|p| p.dispatches.len()).sum()
    }

    /// One training step: the batch and the step's optimizer parameters are written, then
    /// forward, backward and update are recorded into one command buffer and submitted. With a
    /// profiler every dispatch is timed and the host phases go into the trace (this waits for
    /// the GPU, so only sampled steps are profiled).
    pub fn step(
        &self,
        gpu: &Gpu,
        batch: &Batch,
        params: StepParams,
        profile: Option<(&Profiler, &mut Trace)>,
    ) -> Result<()> {
        let g = &self.train;
        let upload = |gpu: &Gpu| -> Result<()> {
            gpu.write_uniform(&self.step_params, &params);
            gpu.write(&g.input, &batch.images)?;
            Ok(gpu.write_u32(&g.labels, &batch.labels)?)
        };
        let Some((profiler, trace)) = profile else {
            upload(gpu)?;
            gpu.submit(&self.programs(), "train step");
            return Ok(());
        };
        let t = trace.now();
        upload(gpu)?;
        trace.host_span("upload", t);
        trace.add(profiler.submit(gpu, &self.programs(), "train step")?);
        Ok(())
    }
}
