//! Datasets: decoding (idx, CIFAR-10 binary, image folders, the embedded Fashion-MNIST subset),
//! augmentation and the prefetching batch loader.
//!
//! Every dataset is held as u8 pixels [n, c, h, w] plus u32 labels; normalisation to f32 happens
//! per batch on the loader threads.

pub mod augment;
pub mod cifar;
pub mod embedded;
pub mod folder;
pub mod idx;
pub mod loader;

use anyhow::{Result, bail};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// The Fashion-MNIST subset built into the binary (10k train / 2k test).
    Embedded,
    /// idx files (gzip or raw) in --data.
    FashionMnist,
    Mnist,
    /// CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin) in --data.
    Cifar10,
    /// One sub-folder per class (DIR/train and DIR/test, or every 10th file held out).
    Folder,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: Vec<String>,
    /// u8 pixels, [n, channels, height, width].
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.image_len()..(i + 1) * self.image_len()]
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let hw = self.height * self.width;
        let (mut sum, mut sq) = (vec![0f64; self.channels], vec![0f64; self.channels]);
        for img in self.pixels.chunks(self.image_len()) {
            for (c, plane) in img.chunks(hw).enumerate() {
                for &p in plane {
                    let v = p as f64 / 255.0;
                    sum[c] += v;
                    sq[c] += v * v;
                }
            }
        }
        let n = (self.len() * hw).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(1e-12)).sqrt() as f32).collect();
        (mean.iter().map(|m| *m as f32).collect(), std)
    }
}

/// Train and test splits with the normalisation the model is trained with.
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Horizontal flips make sense for this data (not for digits).
    pub flip: bool,
}

/// Options for `--dataset folder`: the size and channel count images are converted to.
#[derive(Clone, Copy, Debug)]
pub struct FolderOptions {
    pub size: usize,
    pub channels: usize,
}

pub fn load(kind: DatasetKind, dir: Option<&Path>, folder: FolderOptions) -> Result<Splits> {
    let need_dir = || match dir {
        Some(d) if d.is_dir() => Ok(d),
        Some(d) if d.exists() => {
            bail!(
                "dataset directory {} is not a directory: --data names the directory holding the files",
                d.display()
            )
        }
        Some(d) => bail!("dataset directory {} does not exist", d.display()),
        None => bail!("--dataset {kind:?} needs --data DIR"),
    };
    let (train, test, stats, flip) = match kind {
        DatasetKind::Embedded => {
            let (train, test) = embedded::fashion_mnist()?;
            (train, test, Some((vec![0.2860], vec![0.3530])), true)
        }
        DatasetKind::FashionMnist => {
            let (train, test) = idx::load_dir(need_dir()?, &idx::FASHION_CLASSES)?;
            (train, test, Some((vec![0.2860], vec![0.3530])), true)
        }
        DatasetKind::Mnist => {
            let (train, test) = idx::load_dir(need_dir()?, &idx::DIGIT_CLASSES)?;
            (train, test, Some((vec![0.1307], vec![0.3081])), false)
        }
        DatasetKind::Cifar10 => {
            let (train, test) = cifar::load_dir(need_dir()?)?;
            (train, test, Some((vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616])), true)
        }
        DatasetKind::Folder => {
            let (train, test) = folder::load_dir(need_dir()?, folder)?;
            (train, test, None, true)
        }
    };
    for (split, d) in [("train", &train), ("test", &test)] {
        if d.is_empty() {
            bail!("the {split} split of {kind:?} is empty");
        }
    }
    let (mean, std) = stats.unwrap_or_else(|| train.channel_stats());
    Ok(Splits { train, test, mean, std, flip })
}

/// `--data DIR` with `--dataset embedded` (the default): the embedded set reads no directory,
/// so DIR would be ignored; refuse it, naming the flag that is missing.
pub fn check_data_flag(kind: DatasetKind, dir: Option<&Path>) -> Result<()> {
    if let (DatasetKind::Embedded, Some(d)) = (kind, dir) {
        bail!(
            "--data {} is given but --dataset is embedded (the default), which reads no directory: name the data's format with --dataset fashion-mnist, mnist, cifar10 or folder",
            d.display()
        );
    }
    Ok(())
}

/// Refuse to hold `bytes` in host memory when that is more than half the memory available
/// (`MemAvailable` on Linux; 8 GiB assumed elsewhere). `what` names the data.
pub fn check_memory(bytes: u64, what: &str) -> Result<()> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(8 << 30, |kib| kib * 1024);
    if bytes > available / 2 {
        bail!(
            "{what} need {:.1} GB of memory, more than half the {:.1} GB available: use a smaller --image-size",
            bytes as f64 / 1e9,
            available as f64 / 1e9
        );
    }
    Ok(())
}

/// Labels must index the class list: name the file and the first bad label.
pub fn check_labels(labels: &[u32], classes: usize, file: &Path) -> Result<()> {
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        bail!("{}: label {l} of item {i} is out of range (0..{classes})", file.display());
    }
    Ok(())
}
