//! CIFAR-10 binary version: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
//! Training: every data_batch_*.bin in the directory (sorted); test: test_batch.bin.
//! Class names from batches.meta.txt when present.

use super::{Dataset, check_labels};
use anyhow::{Context, Result, bail};
use std::path::Path;

pub const RECORD: usize = 1 + 3 * 32 * 32;
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub fn parse(bytes: &[u8], file: &Path, classes: usize, into: &mut Dataset) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        bail!(
            "{}: truncated: {} bytes is not a whole number of {RECORD}-byte CIFAR records",
            file.display(),
            bytes.len()
        );
    }
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    for rec in bytes.chunks(RECORD) {
        labels.push(rec[0] as u32);
        into.pixels.extend_from_slice(&rec[1..]);
    }
    check_labels(&labels, classes, file)?;
    into.labels.extend(labels);
    Ok(())
}

pub fn load_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    let meta = dir.join("batches.meta.txt");
    let classes: Vec<String> = if meta.exists() {
        let text = String::from_utf8(crate::files::read(&meta)?)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", meta.display()))?;
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
    } else {
        CLASSES.iter().map(|s| s.to_string()).collect()
    };
    if !(2..=256).contains(&classes.len()) {
        bail!("{}: {} class names; CIFAR labels are bytes, 2 to 256 classes", meta.display(), classes.len());
    }
    let empty = || Dataset {
        channels: 3,
        height: 32,
        width: 32,
        classes: classes.clone(),
        pixels: vec![],
        labels: vec![],
    };
    let mut train_files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
        })
        .collect();
    train_files.sort();
    if train_files.is_empty() {
        bail!("{}: no CIFAR-10 training batches (data_batch_*.bin)", dir.display());
    }
    let test_file = dir.join("test_batch.bin");
    if !test_file.is_file() {
        bail!("{}: missing test_batch.bin", dir.display());
    }
    let (mut train, mut test) = (empty(), empty());
    for f in &train_files {
        parse(&crate::files::read(f)?, f, classes.len(), &mut train)?;
    }
    let bytes = crate::files::read(&test_file)?;
    parse(&bytes, &test_file, classes.len(), &mut test)?;
    Ok((train, test))
}
