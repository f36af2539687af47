use clap::{Parser, Subcommand};
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
    /// List the GPU adapters, in the order --adapter indexes them
    Devices,
    /// Micro-benchmark: conv2d GFLOP/s on ResNet-20 shapes
    Bench {
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices => {
            for line in tern::gpu::adapter_summaries(&cli.gpu) {
                println!("{line}");
            }
        }
        Command::Bench { batch_size, reps } => {
            let gpu = Gpu::new(&cli.gpu)?;
            tern::bench::conv_bench(&gpu, batch_size, reps)?;
        }
    }
    Ok(())
}
