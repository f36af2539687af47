//! Inference flows: evaluation on a labelled split (accuracy, loss, confusion matrix), loading
//! checkpoints or packed models, and `tern classify`.

use crate::checkpoint::{Checkpoint, Meta};
use crate::data::Dataset;
use crate::data::augment::Augment;
use crate::data::loader::{Loader, LoaderOptions};
use crate::gpu::{Gpu, Program, Tensor};
use crate::nn::{Graph, Mode, Model};
use anyhow::{Result, bail};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<usize>>,
}

/// Fail, naming the model file, when `data` does not fit the model's input or classes.
pub fn check_compatible(path: &Path, meta: &Meta, data: &Dataset) -> Result<()> {
    let s = &meta.spec;
    let p = path.display();
    if (data.channels, data.height, data.width) != (s.in_channels, s.height, s.width) {
        bail!(
            "{p}: the model takes {}x{}x{} images, the dataset has {}x{}x{}",
            s.in_channels,
            s.height,
            s.width,
            data.channels,
            data.height,
            data.width
        );
    }
    if data.classes.len() != s.classes {
        bail!("{p}: the model has {} classes, the dataset {}", s.classes, data.classes.len());
    }
    Ok(())
}

/// Run `graph` (eval mode) over `data`, normalised with `mean`/`std`.
pub fn evaluate(
    gpu: &Gpu,
    graph: &Graph,
    data: &Arc<Dataset>,
    mean: &[f32],
    std: &[f32],
) -> Result<Evaluation> {
    let classes = data.classes.len();
    let loader = Loader::new(
        data.clone(),
        (0..data.len()).collect(),
        LoaderOptions {
            batch: graph.batch,
            drop_last: false,
            augment: Augment::eval(mean, std),
            random: None,
            workers: 2,
            prefetch: 2,
        },
    );
    let (mut loss, mut confusion) = (0.0f64, vec![vec![0usize; classes]; classes]);
    for batch in loader {
        let batch = batch?;
        if let Some(signal) = crate::interrupt::pending() {
            let msg = "during the evaluation".to_string();
            return Err(crate::interrupt::Interrupted::new(signal, msg).into());
        }
        gpu.write(&graph.input, &batch.images)?;
        gpu.write_u32(&graph.labels, &batch.labels)?;
        gpu.run(&[&graph.forward])?;
        let pred = gpu.read_u32(&graph.pred)?;
        let per = gpu.read(&graph.loss)?;
        for i in 0..batch.valid {
            loss += per[i] as f64;
            let p = (pred[i] as usize).min(classes - 1);
            confusion[batch.labels[i] as usize][p] += 1;
        }
    }
    let samples = data.len();
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    if !loss.is_finite() {
        bail!("the model's loss on the test images is not finite (its outputs overflow)");
    }
    Ok(Evaluation {
        loss: loss / samples as f64,
        accuracy: correct as f64 / samples as f64,
        samples,
        confusion,
    })
}

/// A model and its metadata from a native checkpoint: metadata, tensors and outputs checked.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<(Model, Meta)> {
    let ckpt = Checkpoint::load(path)?;
    let model =
        Model::new(gpu, ckpt.meta.spec.clone(), 0).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    ckpt.restore(gpu, &model, path)?;
    let probe =
        model.graph(gpu, PROBES, Mode::Eval).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    check_outputs(gpu, &probe.input, &probe.logits, &probe.forward, &ckpt.meta, path)?;
    Ok((model, ckpt.meta))
}

/// Images in the probe `check_outputs` runs.
const PROBES: usize = 8;

/// Finite tensors can still overflow on the way through the network: run black, white,
/// patterned and noise images through the model's own program (at the batch size it will run)
/// and refuse a model whose logits are not all finite, naming its file.
fn check_outputs(
    gpu: &Gpu,
    input: &Tensor,
    logits: &Tensor,
    forward: &Program,
    meta: &Meta,
    path: &Path,
) -> Result<()> {
    let s = &meta.spec;
    let hw = s.height * s.width;
    let augment = Augment::eval(&meta.mean, &meta.std);
    let mut images = Vec::new();
    for pattern in 0..PROBES {
        let px: Vec<u8> = (0..s.in_channels * hw)
            .map(|i| match pattern {
                0 => 0,
                1 => 255,
                2 => ((i % s.width + i / s.width) % 2 * 255) as u8,
                3 => (255 * (i % hw) / hw) as u8,
                k => (i.wrapping_mul(2654435761).wrapping_add(k * 40503) >> 11) as u8,
            })
            .collect();
        let mut out = vec![0f32; px.len()];
        augment.apply(&px, s.in_channels, s.height, s.width, None::<&mut rand_pcg::Pcg32>, &mut out);
        images.extend(out);
    }
    let out = batched_logits(gpu, input, logits, forward, &images, PROBES)?;
    if out.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: the model's outputs are not finite (NaN or infinite): its weights overflow",
            path.display()
        );
    }
    Ok(())
}

/// An eval-mode graph for `batch` images.
pub fn eval_graph(gpu: &Gpu, model: &Model, batch: usize) -> Result<Graph> {
    model.graph(gpu, batch, Mode::Eval)
}

/// Logits for already-normalised images [n, c, h, w], in batches of `graph.batch`.
pub fn logits(gpu: &Gpu, graph: &Graph, images: &[f32], n: usize) -> Result<Vec<f32>> {
    batched_logits(gpu, &graph.input, &graph.logits, &graph.forward, images, n)
}

/// Run `forward` over `images` in batches of the input's batch size (the last one padded).
fn batched_logits(
    gpu: &Gpu,
    input: &Tensor,
    out: &Tensor,
    forward: &Program,
    images: &[f32],
    n: usize,
) -> Result<Vec<f32>> {
    let batch = input.shape()[0];
    let per_image = input.numel() / batch;
    let classes = out.shape()[1];
    let mut logits = Vec::with_capacity(n * classes);
    for start in (0..n).step_by(batch) {
        let count = batch.min(n - start);
        let mut chunk = images[start * per_image..(start + count) * per_image].to_vec();
        chunk.resize(batch * per_image, 0.0);
        gpu.write(input, &chunk)?;
        gpu.run(&[forward])?;
        logits.extend_from_slice(&gpu.read(out)?[..count * classes]);
    }
    Ok(logits)
}

/// The confusion matrix as text rows, class names abbreviated to 10 characters.
pub fn confusion_table(e: &Evaluation, classes: &[String]) -> String {
    let short: Vec<String> = classes.iter().map(|c| c.chars().take(10).collect()).collect();
    let mut s = format!("{:>12}", "true\\pred");
    for c in &short {
        s += &format!(" {c:>10}");
    }
    s.push('\n');
    for (i, row) in e.confusion.iter().enumerate() {
        s += &format!("{:>12}", short[i]);
        for v in row {
            s += &format!(" {v:>10}");
        }
        s.push('\n');
    }
    s
}

/// A model ready for inference: the training graph's eval path, or the packed kernels.
pub enum Runner {
    Graph(Box<(Model, Graph)>),
    Packed(Box<crate::packed::PackedGraph>),
}

impl Runner {
    pub fn batch(&self) -> usize {
        match self {
            Runner::Graph(m) => m.1.batch,
            Runner::Packed(g) => g.batch,
        }
    }

    /// Logits for normalised images [n, c, h, w].
    pub fn logits(&self, gpu: &Gpu, images: &[f32], n: usize) -> Result<Vec<f32>> {
        match self {
            Runner::Graph(m) => logits(gpu, &m.1, images, n),
            Runner::Packed(g) => batched_logits(gpu, &g.input, &g.logits, &g.forward, images, n),
        }
    }
}

/// The packed model built into the binary: what `tern classify` answers with when no `--model`
/// is given (see assets/model/README.md for how it was trained).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../assets/model/fashion-mnist.tern.safetensors");

/// How errors name the built-in model.
pub const BUILTIN_NAME: &str = "the built-in model";

/// `load_runner` of the built-in packed model.
pub fn load_builtin_runner(gpu: &Gpu, batch: usize) -> Result<(Runner, Meta)> {
    packed_runner(gpu, BUILTIN_MODEL, Path::new(BUILTIN_NAME), batch)
}

/// Load a native checkpoint or a packed model (told apart by their metadata).
pub fn load_runner(gpu: &Gpu, path: &Path, batch: usize) -> Result<(Runner, Meta)> {
    let bytes = crate::files::read(path)?;
    match crate::checkpoint::format_of(&bytes).as_deref() {
        Some(crate::packed::FORMAT) => packed_runner(gpu, &bytes, path, batch),
        _ => {
            let (model, meta) = load_model(gpu, path)?;
            let graph =
                eval_graph(gpu, &model, batch).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            check_outputs(gpu, &graph.input, &graph.logits, &graph.forward, &meta, path)?;
            Ok((Runner::Graph(Box::new((model, graph))), meta))
        }
    }
}

/// A packed model's bytes, checked and built for `batch`; `path` names it in errors.
fn packed_runner(gpu: &Gpu, bytes: &[u8], path: &Path, batch: usize) -> Result<(Runner, Meta)> {
    let packed = crate::packed::PackedModel::from_bytes(bytes, path)?;
    // Ternary activations run on bit-planes, which fill 4 images per word load: from 4 images
    // per batch on they are the faster path.
    let graph =
        packed.graph_with(gpu, batch, batch >= 4).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    check_outputs(gpu, &graph.input, &graph.logits, &graph.forward, &packed.meta, path)?;
    Ok((Runner::Packed(Box::new(graph)), packed.meta))
}

/// Files named directly, and the files inside named directories (sorted, not recursive).
/// Anything else that exists (a FIFO, socket or device) is refused: reading it could block.
pub fn collect_images(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if std::fs::metadata(p).is_ok_and(|m| !m.is_dir()) {
            crate::files::check_regular(p)?;
        }
        if p.is_dir() {
            let inside = crate::data::folder::image_files(p)?;
            if inside.is_empty() {
                bail!("{}: no images in this directory", p.display());
            }
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}
