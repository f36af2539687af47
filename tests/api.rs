//! The front door's errors are told apart by kind: a missing adapter, a bad file, an invalid
//! setting.

use tern::{Error, Gpu, GpuOptions, Model, TrainConfig, Trainer};

fn gpu() -> Gpu {
    Gpu::new(&GpuOptions::default()).expect("an adapter")
}

#[test]
fn a_missing_adapter_is_an_adapter_error() {
    match Gpu::new(&GpuOptions { adapter: Some(999), ..Default::default() }) {
        Err(Error::Adapter(message)) => assert!(message.contains("999"), "{message}"),
        other => panic!("adapter 999: expected Error::Adapter, got {:?}", other.err()),
    }
}

#[test]
fn a_bad_model_file_is_a_file_error_naming_it() {
    let gpu = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("not-a-model.tern.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    for path in [bad, tmp.path().join("missing.tern.safetensors")] {
        match Model::load(&gpu, &path) {
            Err(Error::File { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains(&*path.to_string_lossy()), "{message}");
            }
            Err(e) => panic!("{}: expected Error::File, got {e:?}", path.display()),
            Ok(_) => panic!("{}: loaded", path.display()),
        }
    }
}

#[test]
fn invalid_settings_are_invalid_errors() {
    let gpu = gpu();
    assert!(matches!(Model::load_batched(&gpu, None, 0), Err(Error::Invalid(_))));
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig { momentum: 1.5, out: Some(tmp.path().join("run")), ..Default::default() };
    match Trainer::new(&gpu, config).run(|_| {}) {
        Err(Error::Invalid(message)) => assert!(message.contains("--momentum"), "{message}"),
        other => panic!("momentum 1.5: expected Error::Invalid, got {:?}", other.err()),
    }
    assert!(!tmp.path().join("run").exists(), "an invalid run wrote its directory");
}

#[test]
fn the_built_in_model_classifies_what_it_was_trained_on() {
    let gpu = gpu();
    let model = Model::builtin(&gpu).unwrap();
    assert_eq!(model.input_shape(), (1, 28, 28));
    assert_eq!(model.classes().len(), 10);
    let (_, test) = tern::internals::data::embedded::fashion_mnist().unwrap();
    let image =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(28, 28, test.image(0).to_vec()).unwrap());
    let top = &model.classify(&[image], 3).unwrap()[0];
    assert_eq!(top.len(), 3);
    assert_eq!(top[0].index, test.labels[0] as usize, "{top:?}");
    assert!(top.windows(2).all(|w| w[0].probability >= w[1].probability), "{top:?}");
}
