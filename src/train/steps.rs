//! One epoch's steps: batches from the loader threads, one submit per step, the loss and
//! accuracy counters read every `--log-every` steps, a non-finite loss stopped at once.

use super::stop::Diverged;
use super::{PROFILE_EVERY, Progress, Session, TrainConfig};
use crate::data::Dataset;
use crate::data::augment::Augment;
use crate::data::loader::{Loader, LoaderOptions, shuffled};
use crate::gpu::{Gpu, Profiler};
use crate::ops::optim::StepParams;
use crate::trace::Trace;
use anyhow::{Result, bail};
use indicatif::ProgressStyle;
use std::sync::Arc;
use std::time::Instant;

/// Which pass over the data: epoch `epoch` (0-based) of `steps` steps.
pub(super) struct Pass<'a> {
    pub epoch: usize,
    pub steps: usize,
    pub data: &'a Arc<Dataset>,
    pub augment: &'a Augment,
}

/// One pass over the training data. Returns (mean loss, accuracy, last learning rate).
pub(super) fn run_epoch(
    gpu: &Gpu,
    s: &Session,
    cfg: &TrainConfig,
    pass: Pass,
    global_step: &mut u64,
    profile: Option<(&Profiler, &mut Trace)>,
    progress: &Progress,
) -> Result<(f64, f64, f32)> {
    let Pass { epoch, steps, data, augment } = pass;
    let loader = Loader::new(
        data.clone(),
        shuffled(data.len(), cfg.seed, epoch as u64),
        LoaderOptions {
            batch: cfg.batch_size,
            drop_last: true,
            augment: augment.clone(),
            random: Some((cfg.seed, epoch as u64)),
            workers: cfg.workers,
            prefetch: 4,
        },
    );
    let bar = progress.bar(steps).with_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    let g = &s.train;
    gpu.write(&g.metrics, &[0.0; 4])?;
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0.0f64);
    let t0 = Instant::now();
    let mut lr = 0.0;
    let mut profile = profile;
    let mut loader = loader.enumerate();
    let mut done = 0;
    loop {
        if let Some(signal) = crate::interrupt::pending() {
            if crate::fault::armed("slow-steps", None) {
                // Test hook: a slow device takes long to stop (the window for a second signal).
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            bar.finish_and_clear();
            let at = format!("after step {done} of {steps}");
            return Err(crate::interrupt::Interrupted::new(signal, at).into());
        }
        let t_load = profile.as_ref().map(|(_, t)| t.now());
        let Some((i, batch)) = loader.next() else { break };
        let batch = batch?;
        if crate::fault::armed("slow-steps", None) {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        lr = cfg.lr_at(epoch, i, steps);
        *global_step += 1;
        let t = *global_step as i32;
        let step = StepParams::at(lr, t);
        let sampled = i % PROFILE_EVERY == PROFILE_EVERY / 2;
        match profile.as_mut() {
            Some((p, trace)) if sampled => {
                trace.host_span("data loading", t_load.unwrap_or(0.0));
                s.step(gpu, &batch, step, Some((p, trace)))?
            }
            _ => s.step(gpu, &batch, step, None)?,
        }
        if (i + 1) % cfg.log_every == 0 || i + 1 == steps {
            let m = gpu.read(&g.metrics)?;
            gpu.write(&g.metrics, &[0.0; 4])?;
            if !m[0].is_finite() {
                return Err(Diverged { loss: m[0], epoch: epoch + 1, step: i + 1 }.into());
            }
            loss_sum += m[0] as f64;
            correct += m[1] as f64;
            seen += m[2] as f64;
            let ips = seen / t0.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} acc {:5.2}% {ips:.0} img/s",
                loss_sum / seen.max(1.0),
                100.0 * correct / seen.max(1.0)
            ));
        }
        bar.set_position(i as u64 + 1);
        done = i + 1;
    }
    bar.finish_and_clear();
    if done != steps {
        bail!("the data loader ended after {done} of {steps} steps of epoch {}", epoch + 1);
    }
    Ok((loss_sum / seen.max(1.0), correct / seen.max(1.0), lr))
}
