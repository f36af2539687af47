//! The `tern` command line: parses arguments, then calls one library function per subcommand.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tern::data::{DatasetKind, FolderOptions};
use tern::gpu::{Gpu, GpuOptions};

#[derive(Parser)]
#[command(name = "tern", version, about = "Train and run ternary-weight networks on any GPU (WGSL + wgpu)")]
struct Cli {
    #[command(flatten)]
    gpu: GpuOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: the small CNN with TTQ on the embedded Fashion-MNIST subset)
    Train {
        #[command(flatten)]
        args: Box<tern::train::TrainArgs>,
        /// Continue the run in this output directory from its last checkpoint
        #[arg(long, conflicts_with = "init")]
        resume: Option<PathBuf>,
        /// Stop once this many epochs are complete (continue later with --resume)
        #[arg(long)]
        stop_after: Option<usize>,
    },
    /// Test accuracy and confusion matrix of a checkpoint
    Eval {
        #[arg(long)]
        model: PathBuf,
        /// Dataset (default: the embedded Fashion-MNIST subset)
        #[arg(long, value_enum, default_value = "embedded")]
        dataset: DatasetKind,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
    },
    /// Per-kernel GPU times of training or inference steps, host/GPU split, optional trace
    Profile {
        #[command(flatten)]
        config: tern::profile::ProfileConfig,
    },
    /// Pack a trained model: ternary layers as 2-bit masks, batch norm folded
    Export {
        #[arg(long)]
        model: PathBuf,
        /// Output file, conventionally MODEL.tern.safetensors
        #[arg(long)]
        out: PathBuf,
    },
    /// Classify image files (or the images in directories) with a checkpoint or a packed model
    Classify {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// One JSON object per image: file, top (label, index, probability), logits
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Convert a PyTorch CIFAR-ResNet state_dict (safetensors) into a native checkpoint
    ImportTorch {
        /// The state_dict, saved with safetensors.torch.save_file
        file: PathBuf,
        #[arg(long, value_enum)]
        arch: tern::nn::Arch,
        /// Number of classes (checked against linear.weight)
        #[arg(long)]
        classes: Option<usize>,
        /// Input size the model is used at (square)
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Per-channel normalisation mean, comma-separated (default: CIFAR-10's for 3 channels)
        #[arg(long, value_delimiter = ',')]
        mean: Option<Vec<f32>>,
        #[arg(long, value_delimiter = ',')]
        std: Option<Vec<f32>>,
        /// Class names, comma-separated (default: CIFAR-10's for 10 classes and 3 channels)
        #[arg(long, value_delimiter = ',')]
        class_names: Option<Vec<String>>,
        #[arg(long)]
        out: PathBuf,
    },
    /// List the GPU adapters, in the order --adapter indexes them
    Devices,
    /// Benchmarks: conv2d GFLOP/s on ResNet-20 shapes; packed vs fp32 inference images/s
    Bench {
        #[arg(long, value_enum, default_value = "all")]
        suite: BenchSuite,
        /// Batch of the conv2d benchmark
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Architecture of the inference benchmark (CIFAR input 3x32x32)
        #[arg(long, value_enum, default_value = "resnet20")]
        arch: tern::nn::Arch,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchSuite {
    /// conv2d GFLOP/s on ResNet-20 shapes
    Conv,
    /// packed ternary vs fp32 inference, images/s
    Infer,
    /// cost of profiling a training step
    Profiler,
    /// ternary activations: bit-plane popcount vs float-activation packed kernels
    Bitplane,
    All,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(tern::interrupt::exit_code(&e));
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train { args, resume, stop_after } => {
            let gpu = Gpu::new(&cli.gpu)?;
            let summary = tern::train::command(&gpu, &args, resume.as_deref(), stop_after)?;
            println!(
                "final test accuracy {:.2}% — checkpoints, metrics.jsonl and curves.png in {}",
                100.0 * summary.test.accuracy,
                summary.out.display()
            );
        }
        Command::Eval { model, dataset, data, batch_size } => {
            let gpu = Gpu::new(&cli.gpu)?;
            let (m, meta) = tern::infer::load_model(&gpu, &model)?;
            let folder = FolderOptions { size: meta.spec.height, channels: meta.spec.in_channels };
            let splits = tern::data::load(dataset, data.as_deref(), folder)?;
            let test = std::sync::Arc::new(splits.test);
            let s = &meta.spec;
            if (test.channels, test.height, test.width) != (s.in_channels, s.height, s.width) {
                anyhow::bail!(
                    "{}: the model takes {}x{}x{} images, the dataset has {}x{}x{}",
                    model.display(),
                    s.in_channels,
                    s.height,
                    s.width,
                    test.channels,
                    test.height,
                    test.width
                );
            }
            if test.classes.len() != s.classes {
                anyhow::bail!(
                    "{}: the model has {} classes, the dataset {}",
                    model.display(),
                    s.classes,
                    test.classes.len()
                );
            }
            let graph = tern::infer::eval_graph(&gpu, &m, batch_size.clamp(1, test.len()))?;
            let e = tern::infer::evaluate(&gpu, &graph, &test, &meta.mean, &meta.std)?;
            println!("test accuracy {:.2}% ({} images), loss {:.4}", 100.0 * e.accuracy, e.samples, e.loss);
            print!("{}", tern::infer::confusion_table(&e, &meta.classes));
        }
        Command::Profile { config } => {
            let gpu = Gpu::new(&cli.gpu)?;
            tern::profile::profile(&gpu, &config)?;
        }
        Command::Export { model, out } => {
            let gpu = Gpu::new(&cli.gpu)?;
            let report = tern::export::export(&gpu, &model, &out)?;
            print!("{}", tern::export::size_table(&report));
            println!("wrote {}", out.display());
        }
        Command::Classify { model, top_k, json, batch_size, images } => {
            let files = tern::infer::collect_images(&images)?;
            let gpu = Gpu::new(&cli.gpu)?;
            let (runner, meta) =
                tern::infer::load_runner(&gpu, &model, batch_size.clamp(1, files.len().max(1)))?;
            let (preds, errors) = tern::infer::classify(&gpu, &runner, &meta, &files, top_k)?;
            for p in &preds {
                if json {
                    println!("{}", serde_json::to_string(p)?);
                } else {
                    let top: Vec<String> =
                        p.top.iter().map(|t| format!("{} {:.1}%", t.label, 100.0 * t.probability)).collect();
                    println!("{}: {}", p.file, top.join(", "));
                }
            }
            for e in &errors {
                eprintln!("error: {e}");
            }
            if !errors.is_empty() {
                std::process::exit(1);
            }
        }
        Command::ImportTorch { file, arch, classes, size, mean, std, class_names, out } => {
            if out.exists() {
                anyhow::bail!("{} already exists; choose another --out", out.display());
            }
            let gpu = Gpu::new(&cli.gpu)?;
            let opts = tern::import::ImportOptions { arch, classes, size, mean, std, class_names };
            let (model, ckpt) = tern::import::import_torch(&gpu, &file, &opts)?;
            ckpt.save(&out)?;
            println!(
                "imported {} ({} parameters, {} classes) from {} to {}",
                arch.name(),
                model.store.trainable_count(),
                model.spec.classes,
                file.display(),
                out.display()
            );
        }
        Command::Devices => {
            for line in tern::gpu::adapter_summaries(&cli.gpu) {
                println!("{line}");
            }
        }
        Command::Bench { suite, batch_size, reps, arch } => {
            let gpu = Gpu::new(&cli.gpu)?;
            if matches!(suite, BenchSuite::Conv | BenchSuite::All) {
                tern::bench::conv_bench(&gpu, batch_size, reps)?;
            }
            if matches!(suite, BenchSuite::Infer | BenchSuite::All) {
                tern::bench::infer_bench(&gpu, arch, 3, 32, reps)?;
            }
            if matches!(suite, BenchSuite::Bitplane | BenchSuite::All) {
                tern::bench::bitplane_bench(&gpu, arch, reps)?;
            }
            if matches!(suite, BenchSuite::Profiler | BenchSuite::All) {
                tern::bench::profiler_bench(&gpu, 100)?;
            }
        }
    }
    Ok(())
}
