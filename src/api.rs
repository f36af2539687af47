//! The front door: a model loaded and images classified, or a training run driven from code, in a
//! few lines, with errors a caller can tell apart. The CLI is built on it.

use crate::Error;
use crate::checkpoint::Meta;
use crate::gpu::Gpu;
use crate::infer::{self, Runner};
use crate::train::{self, EpochMetrics, Progress, Summary, TrainArgs, TrainConfig};
use std::path::{Path, PathBuf};

/// One class of a classification: its label, index in the model's outputs and probability.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Class {
    pub label: String,
    pub index: usize,
    pub probability: f32,
}

/// A model ready to classify: a packed model (`tern export`), a checkpoint (`tern train`), an
/// imported PyTorch model, or the model built into the binary.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gpu = tern::Gpu::new(&Default::default())?;
/// let model = tern::Model::load(&gpu, "model.tern.safetensors")?;
/// let image = image::open("shirt.png")?;
/// for class in &model.classify(&[image], 3)?[0] {
///     println!("{} {:.1} %", class.label, 100.0 * class.probability);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Model<'g> {
    gpu: &'g Gpu,
    runner: Runner,
    meta: Meta,
}

/// Images per dispatch unless chosen with `Model::load_batched`.
pub const DEFAULT_BATCH: usize = 32;

impl<'g> Model<'g> {
    /// Load a model file (its kind is told by its metadata).
    pub fn load(gpu: &'g Gpu, path: impl AsRef<Path>) -> Result<Model<'g>, Error> {
        Model::load_batched(gpu, Some(path.as_ref()), DEFAULT_BATCH)
    }

    /// The packed Fashion-MNIST model built into the binary (assets/model/README.md).
    pub fn builtin(gpu: &'g Gpu) -> Result<Model<'g>, Error> {
        Model::load_batched(gpu, None, DEFAULT_BATCH)
    }

    /// `load` (`path` Some) or `builtin` (None), running `batch` images per dispatch.
    pub fn load_batched(gpu: &'g Gpu, path: Option<&Path>, batch: usize) -> Result<Model<'g>, Error> {
        if batch == 0 {
            return Err(Error::Invalid("the batch size must be at least 1".into()));
        }
        let (runner, meta) = match path {
            Some(p) => infer::load_runner(gpu, p, batch).map_err(|e| Error::file(p, e))?,
            None => infer::load_builtin_runner(gpu, batch)
                .map_err(|e| Error::file(Path::new(infer::BUILTIN_NAME), e))?,
        };
        Ok(Model { gpu, runner, meta })
    }

    /// The class names, in the order of the model's outputs.
    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// (channels, height, width) the model takes; other images are converted and resized.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        let s = &self.meta.spec;
        (s.in_channels, s.height, s.width)
    }

    /// The `k` most probable classes of each image, most probable first.
    pub fn classify(&self, images: &[image::DynamicImage], k: usize) -> Result<Vec<Vec<Class>>, Error> {
        Ok(self.logits(images)?.iter().map(|l| self.top(l, k)).collect())
    }

    /// The model's outputs (before softmax) for each image.
    pub fn logits(&self, images: &[image::DynamicImage]) -> Result<Vec<Vec<f32>>, Error> {
        let (c, h, w) = self.input_shape();
        let pixels: Vec<Vec<u8>> =
            images.iter().map(|img| crate::data::folder::pixels(img, c, h, w)).collect();
        self.logits_of_pixels(&pixels)
    }

    /// Logits of images already at the model's input shape: u8 pixels, [channels, height, width].
    pub(crate) fn logits_of_pixels(&self, pixels: &[Vec<u8>]) -> Result<Vec<Vec<f32>>, Error> {
        let (c, h, w) = self.input_shape();
        let augment = crate::data::augment::Augment::eval(&self.meta.mean, &self.meta.std);
        let mut out = Vec::with_capacity(pixels.len());
        for chunk in pixels.chunks(self.runner.batch()) {
            let mut images = vec![0f32; chunk.len() * c * h * w];
            for (px, dst) in chunk.iter().zip(images.chunks_mut(c * h * w)) {
                augment.apply(px, c, h, w, None::<&mut rand_pcg::Pcg32>, dst);
            }
            let logits = self
                .runner
                .logits(self.gpu, &images, chunk.len())
                .map_err(|e| Error::Adapter(format!("{e:#}")))?;
            out.extend(logits.chunks(self.meta.classes.len()).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The `k` most probable classes for one image's logits.
    pub fn top(&self, logits: &[f32], k: usize) -> Vec<Class> {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = logits.iter().map(|v| (v - max).exp()).sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order
            .into_iter()
            .take(k)
            .map(|i| Class {
                label: self.meta.classes[i].clone(),
                index: i,
                probability: (logits[i] - max).exp() / z,
            })
            .collect()
    }
}

/// A training run driven from code: the configuration `tern train` takes (its defaults are
/// `TrainConfig::default()`), each epoch's metrics handed to a callback instead of printed.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    config: TrainConfig,
    resume: Option<PathBuf>,
    restart: bool,
    stop_after: Option<usize>,
    /// The command line's flags (`tern train`): applied to a resumed run or refused.
    given: Vec<String>,
    /// Stop at the next step on SIGINT/SIGTERM with the last checkpoint kept (`tern train`).
    signals: bool,
}

impl<'g> Trainer<'g> {
    /// A new run; it writes to `config.out` (default `runs/<arch>-<quant>`), which must not hold
    /// one unless `restart`.
    pub fn new(gpu: &'g Gpu, config: TrainConfig) -> Trainer<'g> {
        Trainer {
            gpu,
            config,
            resume: None,
            restart: false,
            stop_after: None,
            given: Vec::new(),
            signals: false,
        }
    }

    /// Continue the run in `dir` from its last checkpoint, with its own configuration.
    pub fn resume(gpu: &'g Gpu, dir: impl AsRef<Path>) -> Trainer<'g> {
        Trainer { resume: Some(dir.as_ref().to_path_buf()), ..Trainer::new(gpu, TrainConfig::default()) }
    }

    /// `tern train`'s run: `args` as parsed from its command line (the flags given with
    /// `--resume` change the resumed run or are refused), SIGINT and SIGTERM handled.
    pub fn command(gpu: &'g Gpu, args: &TrainArgs, resume: Option<&Path>) -> Trainer<'g> {
        let resume = resume.map(Path::to_path_buf);
        Trainer { resume, given: args.given.clone(), signals: true, ..Trainer::new(gpu, args.config.clone()) }
    }

    /// Start over in an output directory that holds a run, replacing its outputs.
    pub fn restart(mut self) -> Trainer<'g> {
        self.restart = true;
        self
    }

    /// Return once this many epochs are complete (continue later with `resume`).
    pub fn stop_after(mut self, epochs: usize) -> Trainer<'g> {
        self.stop_after = Some(epochs);
        self
    }

    /// Train, calling `on_epoch` after every epoch with its metrics (as metrics.jsonl holds them).
    pub fn run(self, mut on_epoch: impl FnMut(&EpochMetrics)) -> Result<Summary, Error> {
        self.run_with(&mut Progress::Callback(&mut on_epoch))
    }

    /// Train, printing what `tern train` prints: each epoch's line, a progress bar, the layers.
    pub fn run_printed(self) -> Result<Summary, Error> {
        self.run_with(&mut Progress::Print)
    }

    fn run_with(self, progress: &mut Progress) -> Result<Summary, Error> {
        if self.resume.is_none() {
            self.config.validate().map_err(|e| Error::Invalid(format!("{e:#}")))?;
        }
        if self.signals {
            crate::interrupt::install();
        }
        let start = train::Start {
            resume: self.resume.as_deref(),
            restart: self.restart,
            stop_after: self.stop_after,
        };
        train::run(self.gpu, &self.config, &self.given, start, progress).map_err(Error::from_run)
    }
}
