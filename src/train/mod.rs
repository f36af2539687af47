//! `tern train`: the training flow. Data on loader threads; each step writes one batch, records
//! forward, backward and optimizer kernels into one command buffer and submits; the loss and
//! accuracy counters are read back every `--log-every` steps. Checkpoints, metrics.jsonl and
//! curves.png are written at the end of every epoch.

mod config;
mod init;
mod session;

pub use config::{Augment, Optimizer, Schedule, TrainConfig};
pub(crate) use session::Session;

use crate::checkpoint::{Checkpoint, Meta};
use crate::data::loader::{Loader, LoaderOptions, shuffled};
use crate::data::{self, Dataset, FolderOptions};
use crate::gpu::{Gpu, Profiler};
use crate::infer::{self, Evaluation};
use crate::nn::ModelSpec;
use crate::ops::optim::StepParams;
use crate::params::Slot;
use crate::quant::QuantKind;
use crate::trace::Trace;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One epoch's numbers, appended to OUT/metrics.jsonl.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub quant: QuantKind,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// Progress saved in checkpoints; with the config it lets --resume continue exactly.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    pub step: u64,
    pub best_accuracy: f64,
    pub history: Vec<EpochMetrics>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

pub struct Summary {
    pub out: PathBuf,
    pub history: Vec<EpochMetrics>,
    pub layers: Vec<crate::nn::models::LayerStats>,
    pub test: Evaluation,
}

/// Train per `cfg`, or continue the run in `resume` (its own config then applies). With
/// `stop_after`, return after that many epochs have completed (resume later).
pub fn train(
    gpu: &Gpu,
    cfg: &TrainConfig,
    resume: Option<&Path>,
    stop_after: Option<usize>,
) -> Result<Summary> {
    // On --resume the run's own config and state come from OUT/last.safetensors.
    let (cfg, mut state, resume_ckpt) = match resume {
        Some(dir) => {
            let path = dir.join("last.safetensors");
            let ckpt =
                Checkpoint::load(&path).with_context(|| format!("cannot resume from {}", dir.display()))?;
            let text = ckpt
                .training
                .clone()
                .with_context(|| format!("{}: no training state to resume", path.display()))?;
            let mut state: TrainState = serde_json::from_str(&text)
                .with_context(|| format!("{}: bad training state", path.display()))?;
            state.config.out = Some(dir.to_path_buf());
            (state.config.clone(), Some(state), Some((ckpt, path)))
        }
        None => (cfg.clone(), None, None),
    };
    cfg.validate()?;
    let splits = data::load(
        cfg.dataset,
        cfg.data.as_deref(),
        FolderOptions { size: cfg.image_size, channels: cfg.channels },
    )?;
    let out = cfg.out_dir();
    if resume.is_none() && out.join("last.safetensors").exists() {
        bail!("{} already holds a run: resume it with --resume {0}, or choose another --out", out.display());
    }
    // Reject an impossible model before anything is written.
    init::spec(&cfg, &splits.train, cfg.quant).layers()?;
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let (mean, std) = match &state {
        Some(s) => (s.mean.clone(), s.std.clone()),
        None => (splits.mean.clone(), splits.std.clone()),
    };
    let train_data = Arc::new(splits.train);
    let test_data = Arc::new(splits.test);
    let meta = |spec: &ModelSpec| Meta {
        spec: spec.clone(),
        mean: mean.clone(),
        std: std.clone(),
        classes: train_data.classes.clone(),
    };
    let eval_batch = 256.min(test_data.len());

    let start_epoch = state.as_ref().map_or(0, |s| s.epoch);
    let model = init::initial_model(gpu, &cfg, &train_data, resume_ckpt.as_ref())?;
    let mut session = Session::new(gpu, model, &cfg, eval_batch)?;
    let mut st = state.take().unwrap_or(TrainState {
        config: cfg.clone(),
        epoch: 0,
        step: 0,
        best_accuracy: -1.0,
        history: Vec::new(),
        mean: mean.clone(),
        std: std.clone(),
    });
    println!(
        "training {} ({} parameters) on {} — {} train / {} test images, {} classes, out {}",
        cfg.arch.name(),
        session.model.store.trainable_count(),
        gpu.describe(),
        train_data.len(),
        test_data.len(),
        train_data.classes.len(),
        out.display()
    );
    let (pad, flip) = cfg.augmentation(splits.flip);
    let augment = data::augment::Augment { pad, flip, mean: mean.clone(), std: std.clone() };
    let steps = train_data.len() / cfg.batch_size;
    if steps == 0 {
        bail!("--batch-size {} is larger than the {} training images", cfg.batch_size, train_data.len());
    }
    let mut last_eval = None;
    let (mut profiler, mut trace) = (None, cfg.profile.then(Trace::default));
    let end_epoch = stop_after.map_or(cfg.epochs, |n| n.clamp(start_epoch, cfg.epochs));
    for epoch in start_epoch..end_epoch {
        let quant = cfg.quant_at(epoch);
        if session.model.spec.quant != quant {
            // End of the full-precision warm-up: continue from its weights with the quantizer.
            println!("switching to {} from the full-precision weights", quant.name());
            let fp = session.model.store.read(gpu, Slot::Values)?;
            let mut s = session.model.spec.clone();
            s.quant = quant;
            let model = init::from_full_precision(gpu, s, &fp, Path::new("warm-up weights"))?;
            session = Session::new(gpu, model, &cfg, eval_batch)?;
        }
        if cfg.profile {
            profiler = Some(Profiler::new(gpu, session.dispatch_count()));
        }
        let prof = profiler.as_ref().zip(trace.as_mut());
        let t0 = Instant::now();
        let (train_loss, train_acc, lr) =
            run_epoch(gpu, &session, &cfg, &train_data, &augment, epoch, steps, &mut st.step, prof)?;
        let seconds = t0.elapsed().as_secs_f64();
        let eval = infer::evaluate(gpu, &session.eval, &test_data, &mean, &std)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            quant,
            lr,
            train_loss,
            train_accuracy: train_acc,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            images_per_second: (steps * cfg.batch_size) as f64 / seconds,
            seconds,
        };
        println!(
            "epoch {:>3}/{} [{}] loss {:.4} acc {:5.2}% | test loss {:.4} acc {:5.2}% | {:.0} img/s, {:.1} s",
            m.epoch,
            cfg.epochs,
            quant.name(),
            m.train_loss,
            100.0 * m.train_accuracy,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.images_per_second,
            seconds
        );
        st.epoch = epoch + 1;
        st.history.push(m.clone());
        let best = eval.accuracy > st.best_accuracy;
        if best {
            st.best_accuracy = eval.accuracy;
        }
        let training = Some(serde_json::to_string(&st)?);
        let ckpt = Checkpoint::of(gpu, &session.model, meta(&session.model.spec), true, training)?;
        ckpt.save(&out.join("last.safetensors"))?;
        if best {
            ckpt.save(&out.join("best.safetensors"))?;
        }
        append_jsonl(&out.join("metrics.jsonl"), &m)?;
        curves(&out.join("curves.png"), &st.history)?;
        last_eval = Some(eval);
    }
    let test = match last_eval {
        Some(e) => e,
        None => infer::evaluate(gpu, &session.eval, &test_data, &mean, &std)?,
    };
    let layers = session.model.layer_stats(gpu)?;
    println!("{}", layer_table(&layers));
    if let (Some(trace), Some(p)) = (&trace, &profiler) {
        print!("{}", trace.table(p.describe()));
        trace.write(&out.join("profile.json"))?;
        println!("trace of the sampled steps: {}", out.join("profile.json").display());
    }
    Ok(Summary { out, history: st.history, layers, test })
}

/// OUT/curves.png: loss and accuracy (%) against epoch, train and test.
fn curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    use crate::plot::{Panel, Series};
    let series = |name, f: fn(&EpochMetrics) -> f64| Series {
        name,
        points: history.iter().map(|m| (m.epoch as f64, f(m))).collect(),
    };
    crate::plot::panels(
        path,
        "epoch",
        &[
            Panel {
                title: "loss",
                series: [series("train", |m| m.train_loss), series("test", |m| m.test_loss)],
            },
            Panel {
                title: "accuracy (%)",
                series: [
                    series("train", |m| 100.0 * m.train_accuracy),
                    series("test", |m| 100.0 * m.test_accuracy),
                ],
            },
        ],
    )
}

/// With --profile, one step in this many is timed.
pub const PROFILE_EVERY: usize = 50;

/// One pass over the training data. Returns (mean loss, accuracy, last learning rate).
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    gpu: &Gpu,
    s: &Session,
    cfg: &TrainConfig,
    data: &Arc<Dataset>,
    augment: &data::augment::Augment,
    epoch: usize,
    steps: usize,
    global_step: &mut u64,
    profile: Option<(&Profiler, &mut Trace)>,
) -> Result<(f64, f64, f32)> {
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
    let bar = ProgressBar::new(steps as u64).with_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
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
    loop {
        let t_load = profile.as_ref().map(|(_, t)| t.now());
        let Some((i, batch)) = loader.next() else { break };
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
                bail!(
                    "loss became {} at epoch {} step {}: training stopped, the last good checkpoint is kept",
                    m[0],
                    epoch + 1,
                    i + 1
                );
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
    }
    bar.finish_and_clear();
    Ok((loss_sum / seen.max(1.0), correct / seen.max(1.0), lr))
}

fn append_jsonl(path: &Path, m: &EpochMetrics) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(m)?)?;
    Ok(())
}

/// The per-layer report: quantizer, Wp, Wn, sparsity, bits per weight.
pub fn layer_table(layers: &[crate::nn::models::LayerStats]) -> String {
    let mut s = format!(
        "{:<18} {:>5} {:>8} {:>8} {:>8} {:>9} {:>10}\n",
        "layer", "quant", "weights", "Wp", "Wn", "sparsity", "bits/w"
    );
    let opt = |v: Option<f32>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for l in layers {
        s += &format!(
            "{:<18} {:>5} {:>8} {:>8} {:>8} {:>9} {:>10.3}\n",
            l.name,
            l.quant.name(),
            l.weights,
            opt(l.wp),
            opt(l.wn),
            l.sparsity.map_or("-".to_string(), |x| format!("{:.1}%", 100.0 * x)),
            l.bits_per_weight
        );
    }
    s
}
