//! The `tern` command line: parses arguments, then calls one library function per subcommand.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tern::internals::cli;
use tern::internals::cli::GpuArgs;
use tern::internals::data::DatasetKind;
use tern::internals::gpu::GpuOptions;
use tern::internals::import::ImportOptions;

#[derive(Parser)]
#[command(name = "tern", version, about = "Train and run ternary-weight networks on any GPU (WGSL + wgpu)")]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: the small CNN with TTQ on the embedded Fashion-MNIST subset)
    Train {
        #[command(flatten)]
        args: Box<tern::internals::train::TrainArgs>,
        /// Continue the run in this output directory from its last checkpoint (or its best one,
        /// when the last is lost)
        #[arg(long, conflicts_with = "init")]
        resume: Option<PathBuf>,
        /// Start a new run in an --out that holds one, replacing its outputs (they stay until
        /// the new run's first epoch is saved)
        #[arg(long, conflicts_with = "resume")]
        restart: bool,
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
        config: tern::internals::profile::ProfileConfig,
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
    /// (default: the built-in Fashion-MNIST model)
    Classify {
        /// A checkpoint, packed model or imported model (default: the built-in model: ResNet-20
        /// with TTQ-ternary hidden convolutions, trained on all 60k Fashion-MNIST training
        /// images, 92.78 % test accuracy, 28×28 grey input; its 10 clothing classes and
        /// normalisation are in the file; see assets/model/README.md)
        #[arg(long)]
        model: Option<PathBuf>,
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
        arch: tern::internals::nn::Arch,
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
    /// Run every kernel against the CPU reference and PyTorch's goldens on this adapter (exit
    /// code 1 on any failure): run it before trusting a new GPU or driver
    Check,
    /// List the GPU adapters, in the order --adapter indexes them
    Devices,
    /// Benchmarks: conv2d GFLOP/s on ResNet-20 shapes; packed vs fp32 inference images/s
    Bench {
        #[arg(long, value_enum, default_value = "all")]
        suite: tern::internals::bench::Suite,
        /// Batch of the conv2d benchmark
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Architecture of the inference benchmark (CIFAR input 3x32x32)
        #[arg(long, value_enum, default_value = "resnet20")]
        arch: tern::internals::nn::Arch,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let gpu = &GpuOptions::from(&cli.gpu);
    let done = match cli.command {
        Command::Train { args, resume, restart, stop_after } => {
            let start = tern::internals::train::Start { resume: resume.as_deref(), restart, stop_after };
            cli::train(gpu, &args, start).map(|_| ExitCode::SUCCESS)
        }
        Command::Eval { model, dataset, data, batch_size } => {
            cli::eval(gpu, &model, dataset, data.as_deref(), batch_size).map(|_| ExitCode::SUCCESS)
        }
        Command::Profile { config } => cli::profile(gpu, &config).map(|_| ExitCode::SUCCESS),
        Command::Export { model, out } => cli::export(gpu, &model, &out).map(|_| ExitCode::SUCCESS),
        Command::Classify { model, top_k, json, batch_size, images } => {
            cli::classify(gpu, model.as_deref(), top_k, json, batch_size, &images)
        }
        Command::ImportTorch { file, arch, classes, size, mean, std, class_names, out } => {
            let opts = ImportOptions { arch, classes, size, mean, std, class_names };
            cli::import_torch(gpu, &file, &opts, &out).map(|_| ExitCode::SUCCESS)
        }
        Command::Check => cli::check(gpu),
        Command::Devices => cli::devices(gpu).map(|_| ExitCode::SUCCESS),
        Command::Bench { suite, batch_size, reps, arch } => {
            cli::bench(gpu, suite, batch_size, reps, arch).map(|_| ExitCode::SUCCESS)
        }
    };
    done.unwrap_or_else(|e| {
        let (code, report) = tern::internals::output::exit_code(&e);
        if report {
            tern::errln!("error: {e:#}");
        }
        ExitCode::from(code)
    })
}
