//! Training end to end on a tiny slice of Fashion-MNIST: learning happens, the outputs exist,
//! the full-precision warm-up hands over to TTQ, and a resumed run reproduces an uninterrupted one.

mod common;

use common::*;
use tern::train::train;

fn metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn small_cnn_learns_and_writes_checkpoints_metrics_and_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 1024, 256);
    let out = tmp.path().join("run");
    let cfg = train_config(&[
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "3",
        "--fp-epochs",
        "2",
        "--batch-size",
        "32",
        "--log-every",
        "8",
    ]);
    let s = train(gpu(), &cfg, None, None).unwrap();
    let m = metrics(&out);
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["quant"], "fp");
    assert_eq!(m[2]["quant"], "ttq");
    let loss: Vec<f64> = m.iter().map(|e| e["train_loss"].as_f64().unwrap()).collect();
    assert!(loss[2] < loss[0] * 0.8, "training loss did not fall: {loss:?}");
    // Ten classes: chance is 10 %; 1k images for 3 epochs must do far better.
    assert!(s.test.accuracy > 0.55, "test accuracy {}", s.test.accuracy);
    for f in ["last.safetensors", "best.safetensors", "curves.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 1000, "{f} missing or empty");
    }
    // The hidden layers are ternary with trained scales; the ends stay full precision.
    let conv2 = s.layers.iter().find(|l| l.name == "conv2").unwrap();
    assert!(conv2.sparsity.unwrap() > 0.0 && conv2.wp.unwrap() > 0.0 && conv2.bits_per_weight < 2.1);
    assert_eq!(s.layers.iter().find(|l| l.name == "conv1").unwrap().bits_per_weight, 32.0);
}

#[test]
fn resumed_run_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 512, 128);
    let args = |out: &str| {
        train_config(&[
            "--dataset",
            "fashion-mnist",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out,
            "--epochs",
            "3",
            "--fp-epochs",
            "1",
            "--batch-size",
            "32",
            "--log-every",
            "4",
            "--augment",
            "on",
        ])
    };
    let whole = tmp.path().join("whole");
    let parts = tmp.path().join("parts");
    train(gpu(), &args(whole.to_str().unwrap()), None, None).unwrap();
    // Interrupted after the first (full-precision) epoch, then resumed twice across the TTQ switch.
    train(gpu(), &args(parts.to_str().unwrap()), None, Some(1)).unwrap();
    assert_eq!(metrics(&parts).len(), 1);
    train(gpu(), &args("ignored"), Some(&parts), Some(2)).unwrap();
    train(gpu(), &args("ignored"), Some(&parts), None).unwrap();
    let (a, b) = (metrics(&whole), metrics(&parts));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        for key in ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"] {
            assert_eq!(x[key], y[key], "epoch {}: {key} differs after resume", x["epoch"]);
        }
    }
}

#[test]
fn sttn_keeps_latent_kernels_in_range_and_ternary_activation_resnet_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 256, 64);
    let out = tmp.path().join("sttn");
    let cfg = train_config(&[
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
        "--quant",
        "sttn",
        "--lr",
        "1000",
    ]);
    train(gpu(), &cfg, None, None).unwrap();
    let ckpt = tern::checkpoint::Checkpoint::load(&out.join("last.safetensors")).unwrap();
    for name in ["conv2.weight", "conv2.weight2", "conv3.weight", "conv3.weight2"] {
        let t = ckpt.tensors.iter().find(|t| t.name == name).unwrap();
        let max = t.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max <= 1.0, "{name}: max |w| = {max} after clamping");
        assert!(t.data.iter().any(|v| v.abs() == 1.0), "{name}: a large learning rate should hit the clamp");
    }
    // STTN's ResNet layout with ternary activations trains end to end.
    let out = tmp.path().join("resnet");
    let cfg = train_config(&[
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
        "--arch",
        "resnet20",
        "--quant",
        "sttn",
        "--activation",
        "ternary",
        "--lr",
        "0.05",
    ]);
    let s = train(gpu(), &cfg, None, None).unwrap();
    assert!(s.history[0].train_loss.is_finite());
    assert!(s.layers.iter().any(|l| l.name == "layer3.2.conv2" && l.sparsity.is_some()));
}
