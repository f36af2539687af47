//! Inference flows: evaluation of a model on a labelled split (accuracy, loss, confusion matrix)
//! and loading a model from a checkpoint.

use crate::checkpoint::{Checkpoint, Meta};
use crate::data::Dataset;
use crate::data::augment::Augment;
use crate::data::loader::{Loader, LoaderOptions};
use crate::gpu::{Gpu, Program};
use crate::nn::{Graph, Mode, Model};
use anyhow::{Result, bail};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<usize>>,
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
        bail!("evaluation loss is not finite");
    }
    Ok(Evaluation {
        loss: loss / samples as f64,
        accuracy: correct as f64 / samples as f64,
        samples,
        confusion,
    })
}

/// A model and its metadata from a native checkpoint.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<(Model, Meta)> {
    let ckpt = Checkpoint::load(path)?;
    let model = Model::new(gpu, ckpt.meta.spec.clone(), 0)?;
    ckpt.restore(gpu, &model, path)?;
    Ok((model, ckpt.meta))
}

/// An eval-mode graph for `batch` images.
pub fn eval_graph(gpu: &Gpu, model: &Model, batch: usize) -> Result<Graph> {
    model.graph(gpu, batch, Mode::Eval)
}

/// Logits for already-normalised images [n, c, h, w], in batches of `graph.batch`.
pub fn logits(gpu: &Gpu, graph: &Graph, images: &[f32], n: usize) -> Result<Vec<f32>> {
    let per_image = graph.input.numel() / graph.batch;
    let classes = graph.logits.shape()[1];
    let mut out = Vec::with_capacity(n * classes);
    for start in (0..n).step_by(graph.batch) {
        let count = graph.batch.min(n - start);
        let mut chunk = images[start * per_image..(start + count) * per_image].to_vec();
        chunk.resize(graph.batch * per_image, 0.0);
        gpu.write(&graph.input, &chunk)?;
        gpu.write_u32(&graph.labels, &vec![0; graph.batch])?;
        gpu.run(&[&graph.forward as &Program])?;
        out.extend_from_slice(&gpu.read(&graph.logits)?[..count * classes]);
    }
    Ok(out)
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
