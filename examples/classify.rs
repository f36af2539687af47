//! Top-5 classes of each image, from the model built into tern or from `--model FILE`:
//!
//!     cargo run --release --example classify -- [--model FILE] IMAGE...

use std::error::Error;

fn run(mut args: Vec<String>) -> Result<(), Box<dyn Error>> {
    let model_file = match args.iter().position(|a| a == "--model") {
        Some(i) if i + 1 < args.len() => Some(args.drain(i..i + 2).nth(1).unwrap_or_default()),
        Some(_) => return Err("--model needs a file".into()),
        None => None,
    };
    if args.is_empty() {
        return Err("usage: classify [--model FILE] IMAGE...".into());
    }
    let gpu = tern::Gpu::new(&Default::default())?;
    let model = match &model_file {
        Some(file) => tern::Model::load(&gpu, file)?,
        None => tern::Model::builtin(&gpu)?,
    };
    let images = args.iter().map(image::open).collect::<Result<Vec<_>, _>>()?;
    for (file, top) in args.iter().zip(model.classify(&images, 5)?) {
        let classes: Vec<String> =
            top.iter().map(|c| format!("{} {:.1}%", c.label, 100.0 * c.probability)).collect();
        println!("{file}: {}", classes.join(", "));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
