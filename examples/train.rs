//! A short training run on the Fashion-MNIST subset built into tern, driven from code: the small
//! CNN, one full-precision epoch then one TTQ epoch, each epoch's results as they come.
//!
//!     cargo run --release --example train -- [OUT_DIR]

fn run(out: &str) -> Result<(), tern::Error> {
    let gpu = tern::Gpu::new(&Default::default())?;
    let config = tern::TrainConfig { epochs: 2, fp_epochs: 1, out: Some(out.into()), ..Default::default() };
    let summary = tern::Trainer::new(&gpu, config).run(|m| {
        let quant = m.quant.name();
        println!("epoch {} [{quant}]: test accuracy {:.2} %", m.epoch, 100.0 * m.test_accuracy);
        for layer in &m.layers {
            println!(
                "  {} Wp {:.3} Wn {:.3}, {:.0} % zeros",
                layer.name,
                layer.wp,
                layer.wn,
                100.0 * layer.sparsity
            );
        }
    })?;
    println!(
        "final test accuracy {:.2} %, model in {}",
        100.0 * summary.test.accuracy,
        summary.out.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let out = std::env::args().nth(1).unwrap_or_else(|| "runs/example-train".into());
    match run(&out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
