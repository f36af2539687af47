//! The real binary on tiny data: outputs, exit codes, and a one-line error naming the file and
//! the problem for every kind of bad input, with nothing overwritten.

mod common;
#[path = "common/process.rs"]
mod process;

use common::tiny_fashion;
use process::{Tensors, assert_fails, classify, eval, eval_with, fixture, tern, train_tiny};
use std::process::Command;

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
    let c = tern::internals::checkpoint::Checkpoint::load(&ckpt).unwrap();
    let mut missing = tern::internals::checkpoint::Checkpoint {
        tensors: c.tensors.clone(),
        ..tern::internals::checkpoint::Checkpoint::load(&ckpt).unwrap()
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
    let mut misshaped = tern::internals::checkpoint::Checkpoint::load(&ckpt).unwrap();
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
    assert_fails(&r, &["loss became", "before any epoch was complete, so nothing is saved", "a lower --lr"]);
    assert!(!out.exists(), "a run that saved nothing left its directory");
    // After a complete epoch, the message names the checkpoint kept and how to go on.
    let out = tmp.path().join("later");
    let r = train_tiny(&data, &out, &["--quant", "fp", "--epochs", "2", "--stop-after", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let o = out.display();
    let r = tern(&["train", "--resume", out.to_str().unwrap(), "--lr", "1e30", "--log-every", "1"]);
    assert_fails(
        &r,
        &[
            "loss became",
            "at epoch 2 step",
            &format!(
                "{o}/last.safetensors (epoch 1) is kept: resume it with a lower learning rate, `tern train --resume {o} --lr LR`"
            ),
        ],
    );
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

/// A folder dataset of two classes with three small PNGs each.
fn folder_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..3 {
            let img =
                image::RgbImage::from_fn(10, 12, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, i * 40]));
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    dir.to_path_buf()
}

/// Issue 10, point 4: a zero or absurd --image-size, or one whose activations exceed the
/// adapter's buffer limits, is refused before any image is decoded or anything is written.
#[test]
fn image_sizes_that_cannot_work_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let data = folder_dataset(&tmp.path().join("folder"));
    let out = tmp.path().join("run");
    let train = |size: &str| {
        let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
        tern(&["train", "--dataset", "folder", "--data", d, "--out", o, "--image-size", size])
    };
    assert_fails(&train("0"), &["--image-size must be between 4 and 4096, got 0"]);
    assert_fails(&train("100000"), &["--image-size must be between 4 and 4096, got 100000"]);
    let r = train("4096");
    assert_fails(&r, &["--batch-size 64 with 3x4096x4096 images", "over this adapter's", "--image-size"]);
    assert!(!out.exists(), "the output directory was created");
}

/// The fixture's checkpoint with its "tern" metadata edited.
fn with_meta(
    dir: &std::path::Path,
    name: &str,
    f: impl FnOnce(&mut serde_json::Value),
) -> std::path::PathBuf {
    let mut t = Tensors::read(&fixture().ckpt);
    t.edit_json("tern", f);
    let path = dir.join(name);
    t.write(&path);
    path
}

/// Issue 10, point 5: metadata is validated as a whole when a model is loaded, by every command
/// that loads one (eval, classify, export, profile --model, train --init and --resume).
#[test]
fn bad_model_metadata_is_refused_by_every_command() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            with_meta(tmp.path(), "short-classes.safetensors", |m| {
                m["classes"].as_array_mut().unwrap().truncate(3)
            }),
            "3 class names for 10 classes",
        ),
        (
            with_meta(tmp.path(), "empty-mean.safetensors", |m| {
                m["mean"] = serde_json::json!([]);
                m["std"] = serde_json::json!([]);
            }),
            "normalisation mean and std have 0 and 0 values for 1 input channels",
        ),
        (
            with_meta(tmp.path(), "huge-classes.safetensors", |m| {
                m["spec"]["classes"] = serde_json::json!(1u64 << 62)
            }),
            "4611686018427387904 classes",
        ),
    ];
    let data = f.data.to_str().unwrap();
    for (path, message) in &cases {
        let p = path.to_str().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let needles = [name, *message];
        assert_fails(&eval(path), &needles);
        assert_fails(&classify(path), &needles);
        let packed = tmp.path().join("never.tern.safetensors");
        assert_fails(&tern(&["export", "--model", p, "--out", packed.to_str().unwrap()]), &needles);
        assert!(!packed.exists());
        assert_fails(&tern(&["profile", "--model", p, "--steps", "1"]), &needles);
        let out = tmp.path().join("init-run");
        assert_fails(&train_tiny(&f.data, &out, &["--quant", "fp", "--init", p]), &needles);
        assert!(!out.exists());
        let run = tmp.path().join("resume-run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::copy(path, run.join("last.safetensors")).unwrap();
        let before = std::fs::read(run.join("last.safetensors")).unwrap();
        let r = tern(&["train", "--resume", run.to_str().unwrap(), "--data", data]);
        assert_fails(&r, &["last.safetensors", message]);
        assert_eq!(std::fs::read(run.join("last.safetensors")).unwrap(), before);
        std::fs::remove_dir_all(&run).unwrap();
    }
    // The packed model's metadata goes through the same check.
    let mut t = Tensors::read(&f.packed);
    t.edit_json("tern", |m| m["classes"].as_array_mut().unwrap().truncate(3));
    let packed = tmp.path().join("short.tern.safetensors");
    t.write(&packed);
    assert_fails(&classify(&packed), &["short.tern.safetensors", "3 class names for 10 classes"]);
    // A stored epoch beyond the configured epochs, resumed with --stop-after.
    let run = tmp.path().join("epoch-run");
    std::fs::create_dir_all(&run).unwrap();
    let mut t = Tensors::read(&f.ckpt);
    t.edit_json("training", |s| s["epoch"] = serde_json::json!(5));
    t.write(&run.join("last.safetensors"));
    let r = tern(&["train", "--resume", run.to_str().unwrap(), "--stop-after", "2"]);
    assert_fails(&r, &["last.safetensors", "the training state is at epoch 5 of 1"]);
}

/// Issue 10, point 6.
#[test]
fn bench_with_zero_repetitions() {
    assert_fails(&tern(&["bench", "--suite", "conv", "--reps", "0"]), &["--reps must be at least 1"]);
    assert_fails(&tern(&["bench", "--suite", "infer", "--reps", "0"]), &["--reps must be at least 1"]);
    assert_fails(&tern(&["bench", "--suite", "roofline", "--reps", "0"]), &["--reps must be at least 1"]);
}

/// Issue 10, point 7: NaN, infinite or out-of-range values are refused at load, naming the
/// tensor; nothing is classified with NaN probabilities.
#[test]
fn non_finite_and_out_of_range_values_are_refused_at_load() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    for (tensor, value, shown) in [
        ("conv2.scale", f32::NAN, "NaN"),
        ("conv3.wp", f32::INFINITY, "inf"),
        ("linear.weight", f32::NEG_INFINITY, "-inf"),
    ] {
        let mut t = Tensors::read(&f.packed);
        t.set_f32(tensor, 0, value);
        let path = tmp.path().join(format!("{tensor}.tern.safetensors"));
        t.write(&path);
        let r = classify(&path);
        assert_fails(
            &r,
            &[
                path.file_name().unwrap().to_str().unwrap(),
                &format!("'{tensor}' holds the non-finite value {shown}"),
            ],
        );
        assert!(!r.stdout.contains("NaN"), "{}", r.stdout);
    }
    for (tensor, value, message) in [
        ("bn1.running_mean", f32::NAN, "'bn1.running_mean' holds the non-finite value NaN"),
        ("bn2.running_var", f32::INFINITY, "'bn2.running_var' holds the non-finite value inf"),
        ("bn3.running_var", -0.5, "'bn3.running_var' holds the negative variance -0.5"),
        ("optimizer.moment2.conv2.weight", -1.0, "'optimizer.moment2.conv2.weight' holds -1"),
    ] {
        let mut t = Tensors::read(&f.ckpt);
        t.set_f32(tensor, 0, value);
        let path = tmp.path().join(format!("{tensor}.safetensors"));
        t.write(&path);
        assert_fails(&eval(&path), &[path.file_name().unwrap().to_str().unwrap(), message]);
    }
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 3] = [
        (
            "zero-std",
            |m| m["std"] = serde_json::json!([0.0]),
            "normalisation std 0 is not positive and finite",
        ),
        ("negative-std", |m| m["std"] = serde_json::json!([-1.0]), "normalisation std -1 is not positive"),
        ("threshold", |m| m["spec"]["threshold"] = serde_json::json!(5.0), "threshold 5 is outside [0, 1)"),
    ];
    for (name, edit, message) in cases {
        let path = with_meta(tmp.path(), &format!("{name}.safetensors"), edit);
        assert_fails(&eval(&path), &[&format!("{name}.safetensors"), message]);
        assert_fails(&classify(&path), &[&format!("{name}.safetensors"), message]);
    }
    // Finite weights that overflow on the way through the network.
    let mut t = Tensors::read(&f.ckpt);
    for i in 0..8 {
        t.set_f32("conv1.weight", i, 3e38);
    }
    let path = tmp.path().join("overflow.safetensors");
    t.write(&path);
    assert_fails(&classify(&path), &["overflow.safetensors", "outputs are not finite"]);
    assert_fails(&eval(&path), &["overflow.safetensors", "outputs are not finite"]);
}

/// Issue 10, point 9: test images of another size than the training images, and an unwritable
/// --out, are found before the first training step.
#[test]
fn data_shape_and_unwritable_out_are_checked_before_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let test_images = data.join("t10k-images-idx3-ubyte");
    let mut bytes = vec![0, 0, 8, 3];
    for v in [32u32, 20, 20] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend(vec![7u8; 32 * 400]);
    std::fs::write(&test_images, bytes).unwrap();
    let out = tmp.path().join("run");
    let r = train_tiny(&data, &out, &[]);
    assert_fails(
        &r,
        &[
            "t10k-images-idx3-ubyte: test images are 20x20, the training images in",
            "train-images-idx3-ubyte 28x28",
        ],
    );
    assert!(!r.stdout.contains("epoch"), "{}", r.stdout);
    assert!(!out.exists(), "the output directory was created");
    let data = tiny_fashion(&tmp.path().join("data2"), 64, 32);
    // A directory no one may create files in, even root.
    let r = train_tiny(&data, std::path::Path::new("/proc/1"), &[]);
    assert_fails(&r, &["/proc/1: cannot write in this directory"]);
    assert!(!r.stdout.contains("epoch"), "{}", r.stdout);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let r = train_tiny(&data, &file.join("run"), &[]);
    assert_fails(&r, &["a-file/run: cannot create"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// Issue 10, point 10 (training flags): each error says what is wrong, up front, and writes
/// nothing.
#[test]
fn training_flags_out_of_range_fail_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let out = tmp.path().join("run");
    for (flags, message) in [
        (&["--batch-size", "100000"][..], "--batch-size 100000 is larger than the 64 training images"),
        (&["--stop-after", "0"][..], "--stop-after must be at least 1"),
        (&["--warmup-epochs", "nan"][..], "--warmup-epochs must be finite and not negative, got NaN"),
        (&["--momentum=-5"][..], "--momentum must be in [0, 1), got -5"),
        (&["--weight-decay", "inf"][..], "--weight-decay must be finite and not negative, got inf"),
        (&["--channels", "2"][..], "--channels must be 1 or 3, got 2"),
    ] {
        assert_fails(&train_tiny(&data, &out, flags), &[message]);
        assert!(!out.exists(), "{flags:?}: the output directory was created");
    }
    let f = fixture();
    assert_fails(
        &tern(&["classify", "--model", f.ckpt.to_str().unwrap(), "--top-k", "0", f.image.to_str().unwrap()]),
        &["--top-k must be at least 1"],
    );
}

/// Issue 10, point 10 (--resume): --data is stored absolute, so a run resumes from any working
/// directory; flags that may change (--epochs, --lr) are applied and stored, the others refused.
#[test]
fn resume_from_another_directory_with_changed_and_refused_flags() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_fashion(&tmp.path().join("data"), 64, 32);
    let r = process::tern_in(
        tmp.path(),
        &[
            "train",
            "--dataset",
            "fashion-mnist",
            "--data",
            "data",
            "--out",
            "run",
            "--epochs",
            "2",
            "--fp-epochs",
            "0",
            "--batch-size",
            "32",
            "--stop-after",
            "1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = tmp.path().join("run");
    let before = std::fs::read(run.join("last.safetensors")).unwrap();
    for (flags, message) in [
        (&["--batch-size", "16"][..], "--batch-size 16 would change the run in"),
        (&["--seed", "7"][..], "--seed 7 would change the run in"),
        (&["--quant", "fp"][..], "--quant fp would change the run in"),
        (&["--epochs", "0"][..], "--epochs must be at least 1"),
        (&["--out", "/elsewhere"][..], "--out: --resume"),
    ] {
        let mut args = vec!["train", "--resume", run.to_str().unwrap()];
        args.extend_from_slice(flags);
        assert_fails(&tern(&args), &[message]);
        assert_eq!(std::fs::read(run.join("last.safetensors")).unwrap(), before, "{flags:?} wrote");
    }
    // From another working directory (the stored --data is absolute), with a longer run and a
    // new learning rate; the same --batch-size as the run's is no change and is accepted.
    let elsewhere = tempfile::tempdir().unwrap();
    let r = process::tern_in(
        elsewhere.path(),
        &["train", "--resume", run.to_str().unwrap(), "--epochs", "3", "--lr", "0.1", "--batch-size", "32"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("with --epochs 3 (was 2), --lr 0.1 (was 0.3)"), "{}", r.stdout);
    let ckpt = Tensors::read(&run.join("last.safetensors"));
    let st: serde_json::Value = serde_json::from_str(&ckpt.metadata["training"]).unwrap();
    assert_eq!(st["epoch"], 3);
    assert_eq!(st["config"]["epochs"], 3);
    assert!((st["config"]["lr"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert!(std::path::Path::new(st["config"]["data"].as_str().unwrap()).is_absolute());
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 3);
}

/// Issue 10, point 10 (models): eval on a packed model, a packed model without a ternary
/// layer's mask, a checkpoint without its "tern" metadata and one with optimizer state for a
/// tensor the model lacks: each error names the file and the real problem.
#[test]
fn model_errors_name_the_file_and_the_real_problem() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let r = eval(&f.packed);
    assert_fails(&r, &["model.tern.safetensors", "a packed model from `tern export`", "tern classify"]);
    let mut t = Tensors::read(&f.packed);
    t.tensors.retain(|t| t.0 != "conv2.pos");
    let path = tmp.path().join("no-pos.tern.safetensors");
    t.write(&path);
    assert_fails(&classify(&path), &["no-pos.tern.safetensors", "missing tensor 'conv2.pos'"]);
    let mut t = Tensors::read(&f.ckpt);
    t.metadata.remove("tern");
    let path = tmp.path().join("no-meta.safetensors");
    t.write(&path);
    assert_fails(&eval(&path), &["no-meta.safetensors: missing \"tern\" metadata"]);
    let mut t = Tensors::read(&f.ckpt);
    t.tensors.push(("optimizer.moment1.conv6.wn".into(), safetensors::Dtype::F32, vec![1], vec![0; 4]));
    let path = tmp.path().join("extra-moment.safetensors");
    t.write(&path);
    assert_fails(
        &eval(&path),
        &["extra-moment.safetensors", "unexpected tensor 'optimizer.moment1.conv6.wn'"],
    );
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(&path, run.join("last.safetensors")).unwrap();
    let r = tern(&["train", "--resume", run.to_str().unwrap()]);
    assert_fails(&r, &["last.safetensors", "unexpected tensor 'optimizer.moment1.conv6.wn'"]);
}

fn run_tern(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let r = process::tern_env(args, env);
    (r.code, r.stdout, r.stderr)
}

/// `--kernels` and `TERN_KERNELS` pick the family `tern devices` reports; auto picks blocked on
/// CPU adapters (llvmpipe) and tiled elsewhere; the tiled family reduces with subgroup operations
/// where the adapter has subgroups; a bad TERN_KERNELS is a one-line error.
#[test]
fn kernels_flag_and_environment_select_the_family() {
    let family = |line: &str| line.split("kernels: ").nth(1).unwrap_or_default().to_string();
    let trees = "reductions by workgroup-memory trees";
    let (code, auto, err) = run_tern(&["devices"], &[]);
    assert_eq!(code, 0, "{err}");
    for line in auto.lines() {
        let cpu = line.contains("Cpu,");
        let want = if cpu { "blocked," } else { "tiled," };
        assert!(family(line).starts_with(want), "auto: {line}");
    }
    let (_, tiled, _) = run_tern(&["--kernels", "tiled", "devices"], &[]);
    assert!(!tiled.is_empty(), "no adapters");
    for line in tiled.lines() {
        let lanes = line.contains(" subgroups ");
        let want = if lanes { "reductions by subgroup operations" } else { trees };
        assert_eq!(family(line), format!("tiled, {want}"), "{line}");
    }
    let (_, blocked, _) = run_tern(&["devices"], &[("TERN_KERNELS", "blocked")]);
    assert!(blocked.lines().all(|l| family(l) == format!("blocked, {trees}")), "{blocked}");
    let (_, flag_wins, _) = run_tern(&["devices", "--kernels", "tiled"], &[("TERN_KERNELS", "blocked")]);
    assert!(flag_wins.lines().all(|l| family(l).starts_with("tiled,")), "{flag_wins}");
    let (code, _, err) = run_tern(&["devices"], &[("TERN_KERNELS", "fast")]);
    assert_eq!(code, 1);
    assert!(err.contains("TERN_KERNELS: 'fast' is not a kernel family (auto, blocked or tiled)"), "{err}");
}

/// `tern check` runs every kernel of both families against the reference and the goldens and
/// passes on this adapter; a kernel gone wrong (the test hook) fails it with exit code 1 and a
/// verdict naming the case.
#[test]
fn check_passes_here_and_fails_on_a_wrong_result() {
    let r = tern(&["check"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("blocked kernels:") && r.stdout.contains("tiled kernels:"), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l.starts_with("PASS: all ")), "{}", r.stdout);
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
    let r = process::tern_env(&["--kernels", "blocked", "check"], &[("TERN_FAULT", "check-wrong-result")]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("tiled kernels:"), "--kernels names one family: {}", r.stdout);
    let verdict = r.stdout.lines().find(|l| l.starts_with("FAIL: ")).expect("a FAIL verdict");
    // The first awkward shape, 3×3: the lanes kernels where subgroups have 8 lanes (llvmpipe).
    assert!(verdict.contains("conv2d/forward blocked ") && verdict.contains(" case 0 "), "{verdict}");
    assert!(verdict.contains("tensor y differs at [0, 0, 0, 0]"), "{verdict}");
}

/// `--ternary-kernels` and `TERN_TERNARY_KERNELS` choose what ternary layers train on; `tern
/// profile` says which, the flag wins over the variable, and a bad value is a one-line error.
#[test]
fn ternary_kernels_flag_and_environment_select_masks_or_dense_weights() {
    let profile = ["profile", "--quant", "ttq", "--steps", "1", "--batch-size", "8"];
    let first_line = |args: &[&str], env: &[(&str, &str)]| {
        let (code, out, err) = run_tern(&[&profile[..], args].concat(), env);
        assert_eq!(code, 0, "{err}");
        out.lines().next().unwrap_or_default().to_string()
    };
    assert!(
        first_line(&["--ternary-kernels", "packed"], &[]).ends_with("ternary layers: bit masks (packed)")
    );
    let dense = first_line(&[], &[("TERN_TERNARY_KERNELS", "dense")]);
    assert!(dense.ends_with("ternary layers: dense f32 weights (dense)"), "{dense}");
    let flag_wins = first_line(&["--ternary-kernels", "packed"], &[("TERN_TERNARY_KERNELS", "dense")]);
    assert!(flag_wins.ends_with("(packed)"), "{flag_wins}");
    assert!(first_line(&[], &[]).contains("(auto)"));
    let (code, _, err) = run_tern(&profile, &[("TERN_TERNARY_KERNELS", "sparse")]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    assert!(err.contains("TERN_TERNARY_KERNELS: 'sparse' is not a choice of ternary kernels"), "{err}");
}

/// Issue 26, point 5: each message names what is at fault: WGPU_BACKEND naming a backend that
/// is absent or none at all, an import-torch flag (not the state_dict), a file given as --data,
/// a .tern-lock that is a directory.
#[test]
fn messages_name_the_setting_at_fault() {
    let bench = ["bench", "--suite", "conv", "--reps", "1"];
    let r = process::tern_env(&bench, &[("WGPU_BACKEND", "metal")]);
    assert_fails(
        &r,
        &["no GPU adapter found for WGPU_BACKEND=metal, set in the environment (unset it to use any backend"],
    );
    let r = process::tern_env(&["devices"], &[("WGPU_BACKEND", "metal")]);
    assert_fails(&r, &["WGPU_BACKEND=metal"]);
    let r = process::tern_env(&bench, &[("WGPU_BACKEND", "vulkn")]);
    assert_fails(&r, &["WGPU_BACKEND=vulkn, which names no backend (vulkan, metal, dx12 or gl"]);

    let tmp = tempfile::tempdir().unwrap();
    let state_dict =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/resnet20_torch.safetensors");
    let out = tmp.path().join("imported.safetensors");
    let import = |flags: &[&str]| {
        let mut args = vec![
            "import-torch",
            state_dict.to_str().unwrap(),
            "--arch",
            "resnet20",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        tern(&args)
    };
    for (flags, message) in [
        (&["--mean", "0,0,0", "--std", "nan,1,1"][..], "--std NaN is not positive and finite"),
        (&["--mean", "0,inf,0", "--std", "1,1,1"][..], "--mean inf is not finite"),
        (&["--size", "2"][..], "--size must be between 4 and 4096, got 2"),
    ] {
        let r = import(flags);
        assert_fails(&r, &[message]);
        assert!(!r.stderr.contains("resnet20_torch"), "{flags:?} blames the file: {}", r.stderr);
        assert!(!out.exists());
    }

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let run = tmp.path().join("run");
    assert_fails(&train_tiny(&file, &run, &[]), &["a-file is not a directory: --data names the directory"]);
    assert!(!run.exists());

    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    std::fs::create_dir_all(run.join(".tern-lock")).unwrap();
    let r = train_tiny(&data, &run, &[]);
    assert_fails(
        &r,
        &[&format!("{}/.tern-lock: a directory, where tern keeps its lock file: remove it", run.display())],
    );
}

/// Issue 26, point 6: `tern export` writes the same bytes for the same model, run after run
/// (the metadata keys in a fixed order).
#[test]
fn export_writes_the_same_bytes_every_time() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let out = tmp.path().join(format!("{i}.tern.safetensors"));
            let r = tern(&["export", "--model", f.ckpt.to_str().unwrap(), "--out", out.to_str().unwrap()]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            std::fs::read(&out).unwrap()
        })
        .collect();
    assert!(files.iter().all(|b| *b == files[0]), "exports of one model differ");
    assert_eq!(files[0], std::fs::read(&f.packed).unwrap(), "differs from the fixture's export");
    // And it is still a packed model classify runs.
    assert_eq!(classify(&tmp.path().join("0.tern.safetensors")).code, 0);
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Issue 26, point 4: input that used to be ignored is refused with one line, or reported while
/// the rest is done: --data without --dataset (train, eval, train --resume of an embedded run),
/// a broken symbolic link or a FIFO in a directory given to classify (the images beside them are
/// still classified) or in a folder dataset, and --batch-size 0.
#[test]
fn input_that_would_be_ignored_is_refused_or_reported() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let d = f.data.to_str().unwrap();
    let r = tern(&["train", "--data", d, "--out", out.to_str().unwrap()]);
    assert_fails(
        &r,
        &[&format!("--data {d} is given but --dataset is embedded (the default)"), "--dataset fashion-mnist"],
    );
    assert!(!out.exists(), "the output directory was created");
    let r = tern(&["eval", "--model", f.ckpt.to_str().unwrap(), "--data", d]);
    assert_fails(&r, &["--dataset is embedded (the default), which reads no directory"]);
    let embedded = tmp.path().join("embedded");
    std::fs::create_dir(&embedded).unwrap();
    let mut t = Tensors::read(&f.ckpt);
    t.edit_json("training", |s| {
        s["config"]["dataset"] = serde_json::json!("embedded");
        s["config"]["data"] = serde_json::Value::Null;
    });
    t.write(&embedded.join("last.safetensors"));
    let r = tern(&["train", "--resume", embedded.to_str().unwrap(), "--data", d]);
    assert_fails(&r, &["--data: the run in", "trains on the embedded dataset, which reads no directory"]);

    // classify DIR: each entry that is not an image is reported by name, the others classified.
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(&f.image, images.join("good.png")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone.png"), images.join("broken.png")).unwrap();
    mkfifo(&images.join("pipe.png"));
    let r = tern(&["classify", "--model", f.ckpt.to_str().unwrap(), images.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("{}: ", images.join("good.png").display())), "{}", r.stdout);
    let errors: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", r.stderr);
    assert!(
        errors[0].starts_with("error: ") && errors[0].contains("broken.png: a broken symbolic link (to "),
        "{}",
        errors[0]
    );
    assert!(errors[0].ends_with("gone.png, which does not exist)"), "{}", errors[0]);
    assert!(errors[1].contains("pipe.png: not a regular file (a FIFO, socket or device)"), "{}", errors[1]);
    // A broken link in a folder dataset stops training before it starts.
    let folder = tmp.path().join("folder");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..3 {
            std::fs::copy(&f.image, folder.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::os::unix::fs::symlink(tmp.path().join("gone.png"), folder.join("dog/broken.png")).unwrap();
    let r = tern(&[
        "train",
        "--dataset",
        "folder",
        "--data",
        folder.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(&r, &["dog/broken.png: a broken symbolic link"]);
    assert!(!out.exists());
    // --batch-size 0.
    let r = tern(&[
        "classify",
        "--model",
        f.ckpt.to_str().unwrap(),
        "--batch-size",
        "0",
        f.image.to_str().unwrap(),
    ]);
    assert_fails(&r, &["--batch-size must be at least 1"]);
    assert_fails(&eval_with(&f.ckpt, &["--batch-size", "0"]), &["--batch-size must be at least 1"]);
}
