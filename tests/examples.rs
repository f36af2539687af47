//! The examples run as a user runs them: `cargo test` builds examples/ (target/<profile>/examples),
//! and these tests run the binaries and check what they print.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/<name>, next to this test's own binary in target/<profile>/deps.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let path = deps.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples (not `--test` alone)",
        path.display()
    );
    path
}

#[test]
fn classify_example_prints_top5_from_the_built_in_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, test) = tern::internals::data::embedded::fashion_mnist().unwrap();
    let file = tmp.path().join("first.png");
    image::GrayImage::from_raw(28, 28, test.image(0).to_vec()).unwrap().save(&file).unwrap();
    let out = Command::new(example("classify")).arg(&file).output().unwrap();
    assert!(out.status.success(), "classify example failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().unwrap();
    assert_eq!(line.matches('%').count(), 5, "not 5 classes: {line}");
    let first = line.split(": ").nth(1).unwrap();
    assert!(first.starts_with(&test.classes[test.labels[0] as usize]), "{line}");
}

#[test]
fn classify_example_names_a_missing_model() {
    let out = Command::new(example("classify"))
        .args(["--model", "no/such.tern.safetensors", "x.png"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such.tern.safetensors"), "{err}");
}

#[test]
fn train_example_trains_two_epochs_and_reports_each() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = Command::new(example("train")).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "train example failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("epoch 1 [fp]") && text.contains("epoch 2 [ttq]"), "{text}");
    assert!(text.contains("conv2 Wp"), "no ternary layer reported: {text}");
    assert!(out_dir.join("last.safetensors").exists() && out_dir.join("metrics.jsonl").exists());
    // The library prints nothing of its own: every line is the example's.
    assert!(
        text.lines().all(|l| l.starts_with("epoch") || l.starts_with("  ") || l.starts_with("final")),
        "{text}"
    );
    // A second run on the same directory is refused with a typed error, one line.
    let again = Command::new(example("train")).arg(&out_dir).output().unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.lines().filter(|l| l.starts_with("error:") && !l.contains("XDG_RUNTIME_DIR")).count() == 1
            && err.contains("already holds a run"),
        "{err}"
    );
}
