//! idx files (MNIST, Fashion-MNIST), gzip-compressed or raw.

use super::{Dataset, check_labels};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Decompress if the bytes start with the gzip magic.
pub fn maybe_gunzip(bytes: Vec<u8>, file: &Path) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt or truncated gzip data", file.display()))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// (dims, payload) of an idx file of unsigned bytes with `rank` dimensions.
pub fn parse(bytes: &[u8], rank: usize, file: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        bail!("{}: truncated idx header ({} bytes)", file.display(), bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != rank {
        bail!("{}: not an idx{rank} file of unsigned bytes (magic {:02x?})", file.display(), &bytes[..4]);
    }
    let dims: Vec<usize> =
        (0..rank).map(|i| u32::from_be_bytes([0, 1, 2, 3].map(|k| bytes[4 + 4 * i + k])) as usize).collect();
    let body = &bytes[header..];
    let len = dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).unwrap_or(usize::MAX);
    if body.len() < len {
        bail!("{}: truncated: header promises {len} bytes of data, file has {}", file.display(), body.len());
    }
    Ok((dims, body[..len].to_vec()))
}

/// Images and labels from two idx files' bytes.
pub fn dataset(images: (&[u8], &Path), labels: (&[u8], &Path), classes: &[&str]) -> Result<Dataset> {
    let (dims, pixels) = parse(images.0, 3, images.1)?;
    let max = crate::checkpoint::MAX_IMAGE_SIZE;
    if dims[1..].iter().any(|d| !(1..=max).contains(d)) {
        bail!("{}: images of {}x{} pixels (each side 1 to {max})", images.1.display(), dims[1], dims[2]);
    }
    let (ldims, labels_u8) = parse(labels.0, 1, labels.1)?;
    if dims[0] != ldims[0] {
        bail!(
            "{} has {} images but {} has {} labels",
            images.1.display(),
            dims[0],
            labels.1.display(),
            ldims[0]
        );
    }
    let label_path = labels.1;
    let labels: Vec<u32> = labels_u8.iter().map(|&l| l as u32).collect();
    check_labels(&labels, classes.len(), label_path)?;
    Ok(Dataset {
        channels: 1,
        height: dims[1],
        width: dims[2],
        classes: classes.iter().map(|s| s.to_string()).collect(),
        pixels,
        labels,
    })
}

/// `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("{}: missing {name}[.gz]", dir.display())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    maybe_gunzip(crate::files::read(path)?, path)
}

/// The standard file names: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...
pub fn load_dir(dir: &Path, classes: &[&str]) -> Result<(Dataset, Dataset)> {
    let split = |prefix: &str| -> Result<(Dataset, PathBuf)> {
        let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        dataset((&read(&ip)?, &ip), (&read(&lp)?, &lp), classes).map(|d| (d, ip))
    };
    let ((train, train_images), (test, test_images)) = (split("train")?, split("t10k")?);
    if (test.height, test.width) != (train.height, train.width) {
        bail!(
            "{}: test images are {}x{}, the training images in {} {}x{}",
            test_images.display(),
            test.height,
            test.width,
            train_images.display(),
            train.height,
            train.width
        );
    }
    Ok((train, test))
}
