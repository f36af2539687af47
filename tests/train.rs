//! Training end to end on a tiny slice of Fashion-MNIST: learning happens, the outputs exist,
//! the full-precision warm-up hands over to TTQ, and a resumed run reproduces an uninterrupted one.

mod common;

use common::*;
use tern::internals::train::train;

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
    // metrics.jsonl traces the ternary layers' Wp, Wn and sparsity per epoch (none in the warm-up);
    // the last epoch's trace is the final model's.
    assert!(m[1].get("layers").is_none(), "full-precision epoch with layers: {}", m[1]);
    let traced: Vec<&str> =
        m[2]["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(traced, ["conv2", "conv3"]);
    let t = &m[2]["layers"][0];
    assert_eq!(t["wp"].as_f64().unwrap() as f32, conv2.wp.unwrap());
    assert_eq!(t["sparsity"].as_f64().unwrap(), conv2.sparsity.unwrap());
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
    let ckpt = tern::internals::checkpoint::Checkpoint::load(&out.join("last.safetensors")).unwrap();
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

/// --init from PyTorch's ResNet-20 state_dict on (made-up) CIFAR-10 batches with Adam, and from
/// this project's own full-precision checkpoint: the full-precision ends keep the given weights,
/// each TTQ layer starts from max|w| = 1 and Wp = Wn = 1.
#[test]
fn init_from_pytorch_and_own_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    let records = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                std::iter::once((i % 10) as u8).chain((0..3072).map(move |k| ((i * 31 + k * 7) % 256) as u8))
            })
            .collect()
    };
    std::fs::write(cifar.join("data_batch_1.bin"), records(32)).unwrap();
    std::fs::write(cifar.join("test_batch.bin"), records(16)).unwrap();
    let tensors =
        |path: &std::path::Path| tern::internals::checkpoint::Checkpoint::load(path).unwrap().tensors;
    let get = |t: &[tern::internals::params::HostTensor], n: &str| {
        t.iter().find(|t| t.name == n).unwrap().data.clone()
    };
    let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let torch_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/resnet20_torch.safetensors");
    let torch = tern::internals::import::read_state_dict(&torch_path).unwrap();
    // A learning rate so small that one Adam step moves no weight by more than 1e-6.
    let run = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "--dataset",
            "cifar10",
            "--data",
            cifar.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--fp-epochs",
            "0",
            "--batch-size",
            "32",
            "--optimizer",
            "adam",
            "--lr",
            "1e-6",
        ];
        args.extend_from_slice(extra);
        train(gpu(), &train_config(&args), None, None).unwrap()
    };
    let out = tmp.path().join("r20");
    let s = run(&out, &["--arch", "resnet20", "--init", torch_path.to_str().unwrap()]);
    let t = tensors(&out.join("last.safetensors"));
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(close(&get(&t, "conv1.weight"), &get(&torch, "conv1.weight")), "conv1 changed");
    assert!(close(&get(&t, "linear.bias"), &get(&torch, "linear.bias")), "linear changed");
    assert!((max_abs(&get(&t, "layer2.1.conv1.weight")) - 1.0).abs() < 1e-5);
    for l in s.layers.iter().filter(|l| l.name.starts_with("layer")) {
        assert!(
            (l.wp.unwrap() - 1.0).abs() < 1e-4 && (l.wn.unwrap() - 1.0).abs() < 1e-4,
            "{}: {:?} {:?}",
            l.name,
            l.wp,
            l.wn
        );
    }
    // This project's own full-precision checkpoint.
    let fp = tmp.path().join("fp");
    run(&fp, &["--quant", "fp"]);
    let ttq = tmp.path().join("ttq");
    run(&ttq, &["--init", fp.join("last.safetensors").to_str().unwrap()]);
    let (a, b) = (tensors(&fp.join("last.safetensors")), tensors(&ttq.join("last.safetensors")));
    assert!(close(&get(&a, "conv1.weight"), &get(&b, "conv1.weight")));
    assert!((max_abs(&get(&b, "conv3.weight")) - 1.0).abs() < 1e-5);
    assert!(get(&b, "conv3.wp")[0] > 0.99 && get(&b, "conv3.wp")[0] < 1.01);
}
