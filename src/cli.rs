//! What each `tern` subcommand does, one function per subcommand: open the adapter, run the flow,
//! print its result. `main.rs` parses the command line and calls exactly one of these.

use crate::data::{DatasetKind, FolderOptions};
use crate::gpu::{Family, Gpu, GpuOptions, Reductions};
use crate::{bench, export, import, infer, profile, train};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn train(gpu: &GpuOptions, args: &train::TrainArgs, start: train::Start) -> Result<()> {
    let gpu = Gpu::new(gpu)?;
    let mut trainer = crate::Trainer::command(&gpu, args, start.resume);
    if start.restart {
        trainer = trainer.restart();
    }
    if let Some(n) = start.stop_after {
        trainer = trainer.stop_after(n);
    }
    let summary = trainer.run_printed()?;
    // The training log is a view: the run is done whether or not stdout still takes it.
    showln!(
        "final test accuracy {:.2}% — checkpoints, metrics.jsonl and curves.png in {}",
        100.0 * summary.test.accuracy,
        summary.out.display()
    );
    Ok(())
}

pub fn eval(
    gpu: &GpuOptions,
    model: &Path,
    dataset: DatasetKind,
    data: Option<&Path>,
    batch_size: usize,
) -> Result<()> {
    check_batch_size(batch_size)?;
    crate::data::check_data_flag(dataset, data)?;
    let gpu = Gpu::new(gpu)?;
    let (m, meta) = infer::load_model(&gpu, model)?;
    let folder = FolderOptions { size: meta.spec.height, channels: meta.spec.in_channels };
    let test = std::sync::Arc::new(crate::data::load(dataset, data, folder)?.test);
    infer::check_compatible(model, &meta, &test)?;
    let graph = infer::eval_graph(&gpu, &m, batch_size.clamp(1, test.len()))?;
    let e = infer::evaluate(&gpu, &graph, &test, &meta.mean, &meta.std)?;
    outln!("test accuracy {:.2}% ({} images), loss {:.4}", 100.0 * e.accuracy, e.samples, e.loss)?;
    out!("{}", infer::confusion_table(&e, &meta.classes))?;
    Ok(())
}

pub fn profile(gpu: &GpuOptions, config: &profile::ProfileConfig) -> Result<()> {
    profile::profile(&Gpu::new(gpu)?, config)?;
    Ok(())
}

pub fn export(gpu: &GpuOptions, model: &Path, out: &Path) -> Result<()> {
    let report = export::export(&Gpu::new(gpu)?, model, out)?;
    out!("{}", export::size_table(&report))?;
    outln!("wrote {}", out.display())?;
    Ok(())
}

/// Prints one line (or JSON object) per classified image and one error line per image that
/// could not be read; fails (exit code 1) when any could not.
pub fn classify(
    gpu: &GpuOptions,
    model: Option<&Path>,
    top_k: usize,
    json: bool,
    batch_size: usize,
    images: &[PathBuf],
) -> Result<ExitCode> {
    check_batch_size(batch_size)?;
    if top_k == 0 {
        anyhow::bail!("--top-k must be at least 1");
    }
    let files = infer::collect_images(images)?;
    let gpu = Gpu::new(gpu)?;
    let model = crate::Model::load_batched(&gpu, model, batch_size.clamp(1, files.len().max(1)))?;
    let (c, h, w) = model.input_shape();
    let (mut decoded, mut pixels, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for f in &files {
        let image = crate::fault::catch(&format!("{}: decoding", f.display()), || {
            crate::data::folder::decode_image(f, c, h, w)
        });
        match image.and_then(|r| r) {
            Ok(px) => {
                decoded.push(f);
                pixels.push(px);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    /// One line of `--json`.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        file: String,
        top: Vec<crate::Class>,
        logits: &'a [f32],
    }
    for (f, logits) in decoded.iter().zip(model.logits_of_pixels(&pixels)?) {
        if logits.iter().any(|v| !v.is_finite()) {
            errors.push(format!(
                "{}: the model's outputs for this image are not finite (NaN or infinite)",
                f.display()
            ));
            continue;
        }
        let top = model.top(&logits, top_k);
        if json {
            outln!(
                "{}",
                serde_json::to_string(&Line { file: f.display().to_string(), top, logits: &logits })?
            )?;
        } else {
            let top: Vec<String> =
                top.iter().map(|t| format!("{} {:.1}%", t.label, 100.0 * t.probability)).collect();
            outln!("{}: {}", f.display(), top.join(", "))?;
        }
    }
    for e in &errors {
        errln!("error: {e}");
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    Ok(())
}

pub fn import_torch(gpu: &GpuOptions, file: &Path, opts: &import::ImportOptions, out: &Path) -> Result<()> {
    let model = import::import_torch_to(&Gpu::new(gpu)?, file, opts, out)?;
    outln!(
        "imported {} ({} parameters, {} classes) from {} to {}",
        opts.arch.name(),
        model.store.trainable_count(),
        model.spec.classes,
        file.display(),
        out.display()
    )?;
    Ok(())
}

/// Every kernel against the CPU reference and PyTorch's goldens on the chosen adapter, in every
/// kernel family (or the one `--kernels`/`TERN_KERNELS` names): a table per family, a one-line
/// verdict, and exit code 1 when any case is out of tolerance.
pub fn check(options: &GpuOptions) -> Result<ExitCode> {
    let gpu = Gpu::new(options)?;
    let named = match options.kernels {
        Some(k) => Some(k),
        None => crate::gpu::Kernels::from_env()?,
    };
    let families: Vec<Family> = match named {
        None | Some(crate::gpu::Kernels::Auto) => vec![Family::Blocked, Family::Tiled],
        Some(_) => vec![gpu.family()],
    };
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    for family in families {
        let gpu = gpu.with_family(family);
        outln!("{} kernels: {}", family.name(), gpu.describe_family())?;
        // Each case names its family and path in the kernels column.
        let cases = crate::check::all(&gpu)?;
        out!("{}", crate::check::table(&cases))?;
        all.extend(cases);
        // The fallback of the subgroup reductions, which adapters without subgroups run.
        if gpu.reductions() == Reductions::Subgroup {
            outln!("{} kernels, reductions in workgroup-memory trees:", family.name())?;
            let cases = crate::check::reductions(&gpu.with_reductions(Reductions::Tree))?;
            out!("{}", crate::check::table(&cases))?;
            all.extend(cases);
        }
    }
    outln!("{}", crate::check::verdict(&all, &gpu.describe()))?;
    outln!("checked in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(if all.iter().all(|c| c.passed()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn devices(gpu: &GpuOptions) -> Result<()> {
    for line in crate::gpu::adapter_summaries(gpu)? {
        outln!("{line}")?;
    }
    Ok(())
}

pub fn bench(
    gpu: &GpuOptions,
    suite: bench::Suite,
    batch_size: usize,
    reps: usize,
    arch: crate::nn::Arch,
) -> Result<()> {
    bench::run(&Gpu::new(gpu)?, suite, batch_size, reps, arch)
}

/// The command line's adapter flags (global to every subcommand), as `GpuOptions`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GpuArgs {
    /// Graphics API (default: best available; also WGPU_BACKEND)
    #[arg(long, global = true)]
    pub backend: Option<crate::gpu::Backend>,
    /// Adapter index as listed by `tern devices` (default: best available; also WGPU_ADAPTER_NAME)
    #[arg(long, global = true)]
    pub adapter: Option<usize>,
    /// Kernel family: auto (blocked on CPU adapters such as llvmpipe, tiled on GPUs), blocked or
    /// tiled (default: TERN_KERNELS, else auto)
    #[arg(long, global = true)]
    pub kernels: Option<crate::gpu::Kernels>,
    /// What ternary layers' forward convolutions and input gradients read in training: auto
    /// (packed with the blocked family's register-block kernels, which skip zero weights), packed
    /// bit masks or dense f32 weights
    /// (default: TERN_TERNARY_KERNELS, else auto)
    #[arg(long, global = true)]
    pub ternary_kernels: Option<crate::gpu::TernaryKernels>,
}

impl From<&GpuArgs> for GpuOptions {
    fn from(a: &GpuArgs) -> GpuOptions {
        GpuOptions {
            backend: a.backend,
            adapter: a.adapter,
            kernels: a.kernels,
            ternary_kernels: a.ternary_kernels,
        }
    }
}

/// The gpu module's named choices as clap values: their names and help, declared once there.
macro_rules! choice_values {
    ($($t:ty),*) => {$(
        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t as crate::gpu::Choice>::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                use crate::gpu::Choice;
                let value = clap::builder::PossibleValue::new(self.name());
                Some(if self.help().is_empty() { value } else { value.help(self.help()) })
            }
        }
    )*};
}

choice_values!(
    crate::gpu::Backend,
    crate::gpu::Kernels,
    crate::gpu::TernaryKernels,
    crate::gpu::profiler::TimingSource
);
