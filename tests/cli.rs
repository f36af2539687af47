//! The real binary on tiny data: outputs, exit codes, and a one-line error naming the file and
//! the problem for every kind of bad input, with nothing overwritten.

mod common;

use common::tiny_fashion;
use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    /// stderr without the Vulkan loader's XDG_RUNTIME_DIR notices.
    stderr: String,
}

fn tern(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tern")).args(args).output().expect("run tern");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr }
}

/// Exit code 1 and exactly one stderr line, `error: ...` containing every `needle`.
#[track_caller]
fn assert_fails(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 1, "expected exit code 1, got {}: {}", r.code, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "expected one error line, got:\n{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "'{n}' not in: {}", r.stderr);
    }
}

fn train_tiny(data: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--fp-epochs",
        "0",
        "--batch-size",
        "32",
    ];
    args.extend_from_slice(extra);
    tern(&args)
}

#[test]
fn train_eval_and_devices_work_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 256, 64);
    let out = tmp.path().join("run");
    let r = train_tiny(&data, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("epoch   1/1 [ttq]") && r.stdout.contains("sparsity"), "{}", r.stdout);
    let ckpt = out.join("best.safetensors");
    let r = tern(&[
        "eval",
        "--model",
        ckpt.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("test accuracy") && r.stdout.contains("Ankle boot"), "{}", r.stdout);
    // The trained checkpoint classifies image files (channels converted, resized to 28×28).
    let image = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/images/pattern2.png");
    let r = tern(&["classify", "--model", ckpt.to_str().unwrap(), "--top-k", "2", image.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("pattern2.png: ") && r.stdout.matches('%').count() == 2, "{}", r.stdout);
    let r = tern(&["devices"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("0: "), "{}", r.stdout);
}

#[test]
fn missing_and_empty_dataset_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let r = train_tiny(&tmp.path().join("nowhere"), &out, &[]);
    assert_fails(&r, &["nowhere", "does not exist"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_fails(&train_tiny(&empty, &out, &[]), &["empty", "missing train-images-idx3-ubyte"]);
    assert!(!out.join("last.safetensors").exists());
}

#[test]
fn truncated_idx_and_out_of_range_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let images = data.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 100]).unwrap();
    let out = tmp.path().join("run");
    assert_fails(&train_tiny(&data, &out, &[]), &["train-images-idx3-ubyte", "truncated"]);
    std::fs::write(&images, &bytes).unwrap();
    let labels = data.join("t10k-labels-idx1-ubyte");
    let mut l = std::fs::read(&labels).unwrap();
    l[8 + 5] = 12;
    std::fs::write(&labels, &l).unwrap();
    assert_fails(
        &train_tiny(&data, &out, &[]),
        &["t10k-labels-idx1-ubyte", "label 12 of item 5 is out of range"],
    );
}

#[test]
fn truncated_cifar_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    std::fs::create_dir(&dir).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| (i % 251) as u8));
        r
    };
    let batch: Vec<u8> = (0..40).flat_map(|i| record(i % 10)).collect();
    std::fs::write(dir.join("data_batch_1.bin"), &batch).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &batch[..batch.len() - 7]).unwrap();
    let out = tmp.path().join("run");
    let r = tern(&[
        "train",
        "--dataset",
        "cifar10",
        "--data",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(&r, &["test_batch.bin", "truncated"]);
}

#[test]
fn image_that_does_not_decode_in_a_folder_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("folder");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..3 {
            let img =
                image::RgbImage::from_fn(10, 12, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, i * 40]));
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.join("dog").join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = tmp.path().join("run");
    let r = tern(&[
        "train",
        "--dataset",
        "folder",
        "--data",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(&r, &["broken.png", "does not decode"]);
}

#[test]
fn bad_checkpoints_are_named_and_nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let out = tmp.path().join("run");
    assert_eq!(train_tiny(&data, &out, &["--quant", "fp"]).code, 0);
    let ckpt = out.join("last.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    // The output directory already holds a run.
    assert_fails(&train_tiny(&data, &out, &[]), &["already holds a run", "--resume"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint was overwritten");
    // --init from a checkpoint of another architecture.
    let other = tmp.path().join("other");
    let r = train_tiny(&data, &other, &["--arch", "resnet20", "--init", ckpt.to_str().unwrap()]);
    assert_fails(&r, &["last.safetensors", "small-cnn", "resnet20"]);
    // Missing and misshaped tensors.
    let c = tern::checkpoint::Checkpoint::load(&ckpt).unwrap();
    let mut missing = tern::checkpoint::Checkpoint {
        tensors: c.tensors.clone(),
        ..tern::checkpoint::Checkpoint::load(&ckpt).unwrap()
    };
    missing.tensors.retain(|t| t.name != "bn2.running_var");
    let path = tmp.path().join("missing.safetensors");
    missing.save(&path).unwrap();
    let r = tern(&[
        "eval",
        "--model",
        path.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_fails(&r, &["missing.safetensors", "missing tensor 'bn2.running_var'"]);
    let mut misshaped = tern::checkpoint::Checkpoint::load(&ckpt).unwrap();
    let t = misshaped.tensors.iter_mut().find(|t| t.name == "conv2.weight").unwrap();
    t.shape = vec![t.data.len()];
    let path = tmp.path().join("misshaped.safetensors");
    misshaped.save(&path).unwrap();
    let r = tern(&[
        "eval",
        "--model",
        path.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_fails(&r, &["misshaped.safetensors", "'conv2.weight' has shape"]);
    // Not a safetensors file at all.
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"hello").unwrap();
    assert_fails(
        &tern(&["eval", "--model", junk.to_str().unwrap()]),
        &["junk.safetensors", "not a safetensors file"],
    );
}

#[test]
fn diverging_loss_stops_without_writing_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 128, 32);
    let out = tmp.path().join("run");
    let r = train_tiny(&data, &out, &["--lr", "1e30", "--quant", "fp", "--log-every", "1"]);
    assert_fails(&r, &["loss became", "last good checkpoint"]);
    assert!(!out.join("last.safetensors").exists());
}

#[test]
fn adapter_index_out_of_range() {
    let r = tern(&["--adapter", "99", "bench", "--suite", "conv", "--reps", "1"]);
    assert_fails(&r, &["adapter index 99 is out of range", "tern devices"]);
}

#[test]
fn no_adapter_names_the_fix() {
    // No Metal adapter exists on Linux (and none named like this anywhere).
    let backend = if cfg!(target_os = "macos") { "dx12" } else { "metal" };
    let r = tern(&["--backend", backend, "bench", "--suite", "conv", "--reps", "1"]);
    assert_fails(&r, &["no GPU adapter found", "mesa-vulkan-drivers"]);
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["bench", "--suite", "conv", "--reps", "1"])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WGPU_ADAPTER_NAME=no-such-adapter-anywhere"));
}

#[test]
fn ternary_activation_needs_a_resnet() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never-written");
    let r = tern(&["train", "--activation", "ternary", "--out", out.to_str().unwrap()]);
    assert_fails(&r, &["--activation ternary", "ResNet"]);
    assert!(!out.exists(), "the output directory was created");
}
