//! Dataset decoding: real Fashion-MNIST idx files (when the Debian package is installed, as in
//! CI), CIFAR-10 binary batches and image folders made here, augmentation and the loader.

use std::sync::Arc;
use tern::internals::data::augment::{Augment, sample_rng};
use tern::internals::data::loader::{Loader, LoaderOptions, shuffled};
use tern::internals::data::{DatasetKind, FolderOptions, load};

const FOLDER: FolderOptions = FolderOptions { size: 8, channels: 3 };

#[test]
fn embedded_subset_matches_the_debian_fashion_mnist_files() {
    let dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    let embedded = load(DatasetKind::Embedded, None, FOLDER).unwrap();
    assert_eq!((embedded.train.len(), embedded.test.len()), (10_000, 2_000));
    assert_eq!((embedded.train.channels, embedded.train.height, embedded.train.width), (1, 28, 28));
    if !dir.is_dir() {
        panic!("{} missing: install dataset-fashion-mnist (.ci/run does)", dir.display());
    }
    let full = load(DatasetKind::FashionMnist, Some(dir), FOLDER).unwrap();
    assert_eq!((full.train.len(), full.test.len()), (60_000, 10_000));
    assert_eq!(&full.train.pixels[..10_000 * 784], &embedded.train.pixels[..]);
    assert_eq!(&full.test.labels[..2_000], &embedded.test.labels[..]);
    // Every class is present in the embedded subset.
    for c in 0..10 {
        assert!(embedded.train.labels.iter().filter(|l| **l == c).count() > 800);
    }
}

fn cifar_dir(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    // Record i: label i % 10, red plane = i, green = 2i, blue = 3i (mod 256).
    let batch = |first: usize, n: usize| -> Vec<u8> {
        (first..first + n)
            .flat_map(|i| {
                let mut r = vec![(i % 10) as u8];
                for k in [1, 2, 3] {
                    r.extend(std::iter::repeat_n((i * k % 256) as u8, 1024));
                }
                r
            })
            .collect()
    };
    std::fs::write(dir.join("data_batch_1.bin"), batch(0, 30)).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), batch(30, 20)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), batch(100, 10)).unwrap();
}

#[test]
fn cifar_batches_decode_in_order_with_planes_and_labels() {
    let tmp = tempfile::tempdir().unwrap();
    cifar_dir(tmp.path());
    let s = load(DatasetKind::Cifar10, Some(tmp.path()), FOLDER).unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.train.channels, s.train.height), (50, 10, 3, 32));
    assert_eq!(s.train.classes[3], "cat");
    let img = s.train.image(37);
    assert_eq!((img[0], img[1024], img[2048], s.train.labels[37]), (37, 74, 111, 7));
    assert_eq!(s.test.labels[4], 4);
    assert_eq!(s.mean.len(), 3);
    std::fs::write(tmp.path().join("batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n").unwrap();
    assert_eq!(load(DatasetKind::Cifar10, Some(tmp.path()), FOLDER).unwrap().train.classes[0], "a");
}

#[test]
fn image_folders_split_train_and_test_and_resize() {
    let tmp = tempfile::tempdir().unwrap();
    for (class, value) in [("cats", 40u8), ("dogs", 200u8)] {
        let dir = tmp.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..12 {
            let img = image::RgbImage::from_pixel(20 + i, 11, image::Rgb([value, value / 2, 7]));
            let ext = if i % 2 == 0 { "png" } else { "bmp" };
            img.save(dir.join(format!("{i:02}.{ext}"))).unwrap();
        }
    }
    let s = load(DatasetKind::Folder, Some(tmp.path()), FOLDER).unwrap();
    // Every 10th file of each class is held out.
    assert_eq!((s.train.len(), s.test.len()), (22, 2));
    assert_eq!(s.train.classes, vec!["cats", "dogs"]);
    assert_eq!((s.train.height, s.train.width, s.train.image_len()), (8, 8, 3 * 64));
    let dog = s.train.image(s.train.labels.iter().position(|l| *l == 1).unwrap());
    assert_eq!((dog[0], dog[64], dog[128]), (200, 100, 7));
    // Statistics come from the training images for folders.
    assert!((s.mean[0] - (11.0 * 40.0 + 11.0 * 200.0) / 22.0 / 255.0).abs() < 1e-3, "{:?}", s.mean);
}

#[test]
fn loader_is_deterministic_for_any_worker_count_and_augments() {
    let s = load(DatasetKind::Embedded, None, FOLDER).unwrap();
    let data = Arc::new(s.test);
    let aug = Augment { pad: 4, flip: true, mean: vec![0.286], std: vec![0.353] };
    let batches = |workers| {
        let opts = LoaderOptions {
            batch: 64,
            drop_last: true,
            augment: aug.clone(),
            random: Some((7, 3)),
            workers,
            prefetch: 2,
        };
        Loader::new(data.clone(), shuffled(data.len(), 7, 3), opts)
            .map(|b| b.map(|b| (b.images, b.labels)).unwrap())
            .collect::<Vec<_>>()
    };
    let one = batches(1);
    assert_eq!(one.len(), 2000 / 64);
    assert_eq!(one, batches(3));
    // Without randomness the first image is its normalised pixels.
    let padded = LoaderOptions { batch: 64, drop_last: false, ..plain_opts() };
    let b = Loader::new(data.clone(), (0..data.len()).collect(), padded).last().unwrap().unwrap();
    assert_eq!(b.valid, 2000 % 64);
    let first = Loader::new(data.clone(), (0..data.len()).collect(), plain_opts()).next().unwrap().unwrap();
    let want = (data.image(0)[300] as f32 / 255.0 - 0.286) / 0.353;
    assert!((first.images[300] - want).abs() < 1e-5);
    // Augmentation moves pixels: crops and flips differ from the plain image for most samples.
    let mut rng = sample_rng(1, 2, 3);
    let mut out = vec![0f32; 784];
    let changed = (0..50)
        .filter(|&i| {
            aug.apply(data.image(i), 1, 28, 28, Some(&mut rng), &mut out);
            out.iter().zip(data.image(i)).any(|(a, p)| (a - (*p as f32 / 255.0 - 0.286) / 0.353).abs() > 1e-4)
        })
        .count();
    assert!(changed > 40, "{changed}");
}

fn plain_opts() -> LoaderOptions {
    LoaderOptions {
        batch: 8,
        drop_last: true,
        augment: Augment::eval(&[0.286], &[0.353]),
        random: None,
        workers: 2,
        prefetch: 1,
    }
}
