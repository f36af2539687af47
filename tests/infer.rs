//! Packed inference: the packed kernels give the training graph's eval-mode logits for every
//! architecture and quantizer; the export format's size bound; an imported PyTorch ResNet-20
//! gives PyTorch's logits through `tern classify`; bad models and images are named.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use tern::internals::check::{self, assert_close, assert_close_to_scale};
use tern::internals::checkpoint::Meta;
use tern::internals::nn::{Activation, Arch, Model, ModelSpec};
use tern::internals::packed::{PackedModel, PackedWeightsHost};
use tern::internals::params::{Role, Slot};
use tern::internals::quant::QuantKind;

/// A model whose every tensor (batch-norm statistics included) holds random values.
fn random_model(arch: Arch, quant: QuantKind, channels: usize, size: usize, seed: u64) -> Model {
    random_model_with(arch, quant, channels, size, seed, Activation::Relu)
}

fn random_model_with(
    arch: Arch,
    quant: QuantKind,
    channels: usize,
    size: usize,
    seed: u64,
    activation: Activation,
) -> Model {
    let spec = ModelSpec {
        arch,
        in_channels: channels,
        height: size,
        width: size,
        classes: 10,
        quant,
        threshold: 0.05,
        quantize_ends: quant != QuantKind::Fp && seed % 2 == 1,
        activation,
    };
    let model = Model::new(gpu(), spec, seed).unwrap();
    let mut values = model.store.read(gpu(), Slot::Values).unwrap();
    for (i, t) in values.iter_mut().enumerate() {
        let r = check::values(t.data.len(), seed * 1000 + i as u64);
        // TTQ scales of the order of the Kaiming-initialised weights, so activations stay O(1).
        if t.name.ends_with(".wp") || t.name.ends_with(".wn") {
            t.data.iter_mut().zip(r).for_each(|(v, x)| *v = 0.1 + 0.1 * x.abs() as f32);
            continue;
        }
        let is_bn = t.name.contains("bn");
        if model.store.spec(&t.name).is_some_and(|s| s.role == Role::State) {
            continue;
        }
        for (v, x) in t.data.iter_mut().zip(r) {
            *v = if is_bn {
                0.3 * x as f32 + if t.name.ends_with(".weight") { 1.0 } else { 0.0 }
            } else if t.name.ends_with(".weight") {
                *v + 0.05 * x as f32
            } else {
                0.1 * x as f32
            };
        }
    }
    model.store.write(gpu(), Slot::Values, &values).unwrap();
    // Running statistics as after training: momentum updates from batches of random images.
    let g = model.graph(gpu(), 4, tern::internals::nn::Mode::Train).unwrap();
    let images = check::to_f32(&check::values(g.input.numel(), seed + 99));
    gpu().write(&g.input, &images).unwrap();
    for _ in 0..15 {
        gpu().run(&[&g.forward]).unwrap();
    }
    model
}

fn meta(model: &Model) -> Meta {
    let c = model.spec.in_channels;
    Meta {
        spec: model.spec.clone(),
        mean: vec![0.0; c],
        std: vec![1.0; c],
        classes: (0..10).map(|i| i.to_string()).collect(),
    }
}

#[test]
fn packed_logits_match_the_training_graph_for_every_architecture_and_quantizer() {
    let gpu = gpu();
    let cases = [
        (Arch::SmallCnn, 1, 28),
        (Arch::SmallCnn, 3, 32),
        (Arch::Resnet20, 1, 28),
        (Arch::Resnet20, 3, 32),
        (Arch::Resnet32, 3, 16),
        (Arch::Resnet44, 1, 12),
        (Arch::Resnet56, 3, 4),
    ];
    for (i, &(arch, channels, size)) in cases.iter().enumerate() {
        for quant in [QuantKind::Ttq, QuantKind::Twn, QuantKind::Ttn, QuantKind::Sttn, QuantKind::Fp] {
            let model = random_model(arch, quant, channels, size, i as u64 + 1);
            let batch = 3;
            let images: Vec<f32> = check::to_f32(&check::values(batch * channels * size * size, 77));
            let graph = tern::internals::infer::eval_graph(gpu, &model, batch).unwrap();
            let want = tern::internals::infer::logits(gpu, &graph, &images, batch).unwrap();
            let packed = PackedModel::from_model(gpu, &model, &meta(&model)).unwrap();
            let runner = tern::internals::infer::Runner::Packed(Box::new(packed.graph(gpu, batch).unwrap()));
            let got = runner.logits(gpu, &images, batch).unwrap();
            let what = format!("{} {channels}x{size}x{size} {}", arch.name(), quant.name());
            assert_close_to_scale(&what, &check::to_f64(&got), &check::to_f64(&want), 1e-4);
            for l in &packed.layers {
                if let PackedWeightsHost::Ternary { wp, wn, .. } = &l.weights {
                    // 2 bits per weight, at most 62 bits of padding, and the scales: two per
                    // layer, or per output channel (stored once when Wn = Wp).
                    let scales = if wp == wn { wp.len() } else { 2 * wp.len() } as f64;
                    let (n, bits) = (l.numel() as f64, 8.0 * l.weight_bytes() as f64 / l.numel() as f64);
                    assert!(
                        bits <= 2.0 + (62.0 + 32.0 * scales) / n,
                        "{what} {}: {bits} bits per weight",
                        l.name
                    );
                    assert!(
                        n < 1152.0 || wp.len() > 1 || bits <= 2.06,
                        "{what} {}: {bits} bits per weight",
                        l.name
                    );
                }
            }
        }
    }
}

#[test]
fn packed_model_round_trips_through_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_model(Arch::Resnet20, QuantKind::Ttq, 3, 8, 9);
    let packed = PackedModel::from_model(gpu(), &model, &meta(&model)).unwrap();
    let path = tmp.path().join("m.tern.safetensors");
    packed.save(&path).unwrap();
    let loaded = PackedModel::load(&path).unwrap();
    assert_eq!(loaded.layers, packed.layers);
    assert_eq!(loaded.meta, packed.meta);
}

fn tern(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tern")).args(args).output().unwrap();
    let err: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .map(String::from)
        .collect();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), err.join("\n"))
}

fn golden_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name).display().to_string()
}

/// PyTorch's ResNet-20 → import-torch → classify (checkpoint and packed) gives PyTorch's logits.
#[test]
fn imported_pytorch_resnet20_matches_pytorch_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("r20.safetensors");
    let c = ckpt.to_str().unwrap();
    let (code, _, err) =
        tern(&["import-torch", &golden_path("resnet20_torch.safetensors"), "--arch", "resnet20", "--out", c]);
    assert_eq!(code, 0, "{err}");
    let packed = tmp.path().join("r20.tern.safetensors");
    let (code, stdout, err) = tern(&["export", "--model", c, "--out", packed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("layer1.0.conv1") && stdout.contains("f32"), "{stdout}");
    let want = golden("resnet20_logits.safetensors").values("logits").unwrap();
    let images: Vec<String> = (0..4).map(|i| golden_path(&format!("images/pattern{i}.png"))).collect();
    for model in [c, packed.to_str().unwrap()] {
        let mut args = vec!["classify", "--model", model, "--json", "--batch-size", "3"];
        args.extend(images.iter().map(String::as_str));
        let (code, stdout, err) = tern(&args);
        assert_eq!(code, 0, "{err}");
        let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 4);
        let got: Vec<f64> = rows
            .iter()
            .flat_map(|r| r["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_close(&format!("ResNet-20 logits via {model}"), &got, &want, 1e-3);
        let top = &rows[0]["top"][0];
        assert!(
            top["label"].is_string() && top["index"].is_u64() && top["probability"].as_f64().unwrap() > 0.0
        );
        assert!(rows[0]["file"].as_str().unwrap().ends_with("pattern0.png"));
    }
}

#[test]
fn classify_reports_bad_images_and_classifies_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_model(Arch::SmallCnn, QuantKind::Ttq, 1, 28, 3);
    let path = tmp.path().join("m.tern.safetensors");
    PackedModel::from_model(gpu(), &model, &meta(&model)).unwrap().save(&path).unwrap();
    let p = path.to_str().unwrap();
    let bad = tmp.path().join("bad.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let good = golden_path("images/pattern1.png");
    let (code, stdout, err) = tern(&["classify", "--model", p, "--top-k", "3", &good, bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("pattern1.png:") && stdout.matches('%').count() == 3, "{stdout}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("bad.jpg") && err.contains("does not decode"),
        "{err}"
    );
    // An empty directory.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = tern(&["classify", "--model", p, empty.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("empty") && err.contains("no images"), "{err}");
}

#[test]
fn truncated_foreign_and_inconsistent_models_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_model(Arch::SmallCnn, QuantKind::Ttq, 1, 28, 5);
    let path = tmp.path().join("m.tern.safetensors");
    PackedModel::from_model(gpu(), &model, &meta(&model)).unwrap().save(&path).unwrap();
    let image = golden_path("images/pattern0.png");
    let classify = |m: &Path| tern(&["classify", "--model", m.to_str().unwrap(), &image]);
    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = tmp.path().join("truncated.tern.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = classify(&truncated);
    assert_eq!(code, 1);
    assert!(err.contains("truncated.tern.safetensors") && err.contains("not a safetensors file"), "{err}");
    // Foreign: a PyTorch state_dict.
    let (code, _, err) = classify(Path::new(&golden_path("resnet20_torch.safetensors")));
    assert_eq!(code, 1);
    assert!(err.contains("resnet20_torch.safetensors") && err.contains("import-torch"), "{err}");
    // Tensors that do not match the metadata: conv3's masks cut short.
    let mut packed = PackedModel::load(&path).unwrap();
    if let PackedWeightsHost::Ternary { pos, .. } = &mut packed.layers[2].weights {
        pos.truncate(3);
    }
    let broken = tmp.path().join("broken.tern.safetensors");
    packed.save(&broken).unwrap();
    let (code, _, err) = classify(&broken);
    assert_eq!(code, 1);
    assert!(err.contains("broken.tern.safetensors") && err.contains("'conv3.pos'"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn eval_of_an_imported_model_needs_matching_data() {
    // import-torch rejects a state_dict whose classes disagree with --classes.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.safetensors");
    let (code, _, err) = tern(&[
        "import-torch",
        &golden_path("resnet20_torch.safetensors"),
        "--arch",
        "resnet20",
        "--classes",
        "100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--classes 100") && err.contains("10 outputs"), "{err}");
    let (code, _, err) = tern(&[
        "import-torch",
        &golden_path("resnet20_torch.safetensors"),
        "--arch",
        "resnet32",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("missing tensor 'layer1.3.conv1.weight'"), "{err}");
}

/// STTN's ResNet with ternary activations: the float-activation packed path and the bit-plane
/// popcount path both give the training graph's logits, in one quad of images and in two.
#[test]
fn ternary_activation_resnet_packed_and_bitplane_paths_match() {
    let gpu = gpu();
    for (quant, channels, size) in [(QuantKind::Sttn, 3, 16), (QuantKind::Ttq, 1, 12), (QuantKind::Fp, 3, 8)]
    {
        let model = random_model_with(Arch::Resnet20, quant, channels, size, 4, Activation::Ternary);
        let packed = PackedModel::from_model(gpu, &model, &meta(&model)).unwrap();
        // The training graph's logits of a batch of 3 (one quad of images) and 6 (two).
        let [small, large] = [3, 6].map(|batch| {
            let images = check::to_f32(&check::values(batch * channels * size * size, 78));
            let graph = tern::internals::infer::eval_graph(gpu, &model, batch).unwrap();
            let want = check::to_f64(&tern::internals::infer::logits(gpu, &graph, &images, batch).unwrap());
            (batch, images, want)
        });
        for ((batch, images, want), bitplanes) in [(&small, false), (&small, true), (&large, true)] {
            let batch = *batch;
            let g = packed.graph_with(gpu, batch, bitplanes).unwrap();
            let uses_bitplanes = g.forward.dispatches.iter().any(|d| d.kernel.name.ends_with("/bitplane"));
            assert_eq!(uses_bitplanes, bitplanes && quant != QuantKind::Fp, "{quant:?}");
            let got = check::to_f64(
                &tern::internals::infer::Runner::Packed(Box::new(g)).logits(gpu, images, batch).unwrap(),
            );
            assert_close_to_scale(
                &format!("ternary-activation resnet20 {quant:?} batch {batch} bitplanes {bitplanes}"),
                &got,
                want,
                1e-4,
            );
        }
        let (batch, images, want) = small;
        // And through the file: what `tern classify` runs uses bit-planes from 4 images a batch.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.safetensors");
        packed.save(&path).unwrap();
        assert_eq!(PackedModel::load(&path).unwrap().layers, packed.layers);
        for (runner_batch, bitplanes) in [(3, false), (4, true)] {
            let (runner, _) = tern::internals::infer::load_runner(gpu, &path, runner_batch).unwrap();
            let tern::internals::infer::Runner::Packed(g) = &runner else { panic!("not packed") };
            let uses_bitplanes = g.forward.dispatches.iter().any(|d| d.kernel.name.ends_with("/bitplane"));
            assert_eq!(uses_bitplanes, bitplanes && quant != QuantKind::Fp, "{quant:?} batch {runner_batch}");
            let got = check::to_f64(&runner.logits(gpu, &images, batch).unwrap());
            assert_close_to_scale(&format!("classify {quant:?} batch {runner_batch}"), &got, &want, 1e-4);
        }
    }
}

/// The test device in each kernel family (blocked, tiled).
fn families() -> [&'static tern::internals::gpu::Gpu; 2] {
    use tern::internals::gpu::Family;
    static TILED: std::sync::OnceLock<tern::internals::gpu::Gpu> = std::sync::OnceLock::new();
    [gpu(), TILED.get_or_init(|| gpu().with_family(Family::Tiled))]
}

/// Under the tiled family the packed kernels (float activations and bit-planes) give the
/// training graph's eval-mode logits, and both equal the blocked family's.
#[test]
fn packed_logits_match_the_training_graph_under_the_tiled_family() {
    use tern::internals::checkpoint::Meta;
    use tern::internals::nn::{Activation, Arch, Mode, Model, ModelSpec};
    use tern::internals::packed::PackedModel;
    use tern::internals::quant::QuantKind;
    let [_, gpu] = families();
    let cases = [
        (Arch::SmallCnn, QuantKind::Ttq, Activation::Relu, 1, 28),
        (Arch::Resnet20, QuantKind::Ttq, Activation::Relu, 3, 16),
        (Arch::Resnet20, QuantKind::Sttn, Activation::Ternary, 3, 16),
    ];
    for (i, &(arch, quant, activation, channels, size)) in cases.iter().enumerate() {
        let spec = ModelSpec {
            arch,
            in_channels: channels,
            height: size,
            width: size,
            classes: 10,
            quant,
            threshold: 0.05,
            quantize_ends: false,
            activation,
        };
        let model = Model::new(gpu, spec.clone(), i as u64).unwrap();
        // Running statistics as after training: momentum updates from random batches.
        let g = model.graph(gpu, 4, Mode::Train).unwrap();
        gpu.write(&g.input, &check::to_f32(&check::values(g.input.numel(), 50 + i as u64))).unwrap();
        for _ in 0..10 {
            gpu.run(&[&g.forward]).unwrap();
        }
        let batch = 3;
        let images = check::to_f32(&check::values(batch * channels * size * size, 77));
        let meta = Meta { spec, mean: vec![0.0; channels], std: vec![1.0; channels], classes: vec![] };
        let packed = PackedModel::from_model(gpu, &model, &meta).unwrap();
        let what = format!("{} {} {channels}x{size}x{size}", arch.name(), quant.name());
        let mut logits = Vec::new();
        for gpu in families() {
            let graph = tern::internals::infer::eval_graph(gpu, &model, batch).unwrap();
            let want = check::to_f64(&tern::internals::infer::logits(gpu, &graph, &images, batch).unwrap());
            for bitplanes in [false, true] {
                let pg = packed.graph_with(gpu, batch, bitplanes).unwrap();
                let got =
                    tern::internals::infer::Runner::Packed(Box::new(pg)).logits(gpu, &images, batch).unwrap();
                let path = format!("{} packed (bit-planes {bitplanes}) {what}", gpu.family().name());
                assert_close_to_scale(&path, &check::to_f64(&got), &want, 1e-4);
            }
            logits.push(want);
        }
        assert_close_to_scale(&format!("tiled vs blocked logits {what}"), &logits[1], &logits[0], 1e-4);
    }
}

/// Ternary layers trained on bit masks (`--ternary-kernels packed`: forward convolution and
/// input gradient) give the dense kernels' logits, per-sample loss and every parameter gradient
/// within float reassociation (1e-4 of each tensor's scale), in both kernel families, and the
/// same bits when the step is replayed. Odd seeds quantize the first convolution too.
#[test]
fn packed_ternary_training_matches_dense() {
    use tern::internals::gpu::TernaryKernels;
    use tern::internals::nn::Mode;
    let cases = [(Arch::SmallCnn, 1, 12, 1), (Arch::Resnet20, 3, 8, 2), (Arch::Resnet20, 3, 8, 3)];
    for &(arch, channels, size, seed) in &cases {
        for quant in [QuantKind::Ttq, QuantKind::Twn, QuantKind::Ttn, QuantKind::Sttn] {
            let model = random_model(arch, quant, channels, size, seed);
            let batch = 3;
            let images = check::to_f32(&check::values(batch * channels * size * size, 78));
            for family in families() {
                let what = format!("{} {} {} seed {seed}", family.family().name(), arch.name(), quant.name());
                let step = |ternary: TernaryKernels| {
                    let gpu = family.with_ternary(ternary);
                    let g = model.graph(&gpu, batch, Mode::Train).unwrap();
                    gpu.write(&g.input, &images).unwrap();
                    gpu.write_u32(&g.labels, &[3, 0, 7]).unwrap();
                    let run = || {
                        gpu.run(&[&g.forward, &g.backward]).unwrap();
                        [&g.logits, &g.loss, &model.store.grads].map(|t| gpu.read(t).unwrap())
                    };
                    let first = run();
                    let bits =
                        |r: &[Vec<f32>; 3]| r.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&run()),
                        bits(&first),
                        "{what} {ternary:?}: a replayed step changed its results"
                    );
                    first
                };
                let (dense, packed) = (step(TernaryKernels::Dense), step(TernaryKernels::Packed));
                for (name, d, p) in ["logits", "loss", "gradients"]
                    .iter()
                    .zip(&dense)
                    .zip(&packed)
                    .map(|((n, d), p)| (n, d, p))
                {
                    assert_close_to_scale(
                        &format!("{what} {name}"),
                        &check::to_f64(p),
                        &check::to_f64(d),
                        1e-4,
                    );
                }
            }
        }
    }
}

/// `tern classify` without `--model` answers with the model built into the binary: the first 20
/// test images of Fashion-MNIST (from the embedded subset, written as PNGs) are classified as
/// their labels, all but at most two, in one line per image.
#[test]
fn classify_without_model_uses_the_built_in_model() {
    let (_, test) = tern::internals::data::embedded::fashion_mnist().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let n = 20;
    for i in 0..n {
        let img = image::GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
        img.save(tmp.path().join(format!("{i:02}.png"))).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["classify", "--json", "--top-k", "1"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "classify failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), n);
    let right = (0..n).filter(|&i| lines[i]["top"][0]["index"] == test.labels[i] as u64).count();
    assert!(right >= n - 2, "the built-in model classified {right} of {n} test images right");
    assert_eq!(lines[0]["top"][0]["label"].as_str().unwrap(), test.classes[test.labels[0] as usize]);
}
