//! Image folders: one sub-folder per class, any format the image crate decodes. Images are
//! decoded once (in parallel), converted to the channel count and resized to the model input.
//! DIR/train and DIR/test when both exist; otherwise every 10th file of each class is the test set.

use super::Dataset;
use super::FolderOptions;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Decode one image to u8 [channels, height, width] (channels 1 = luma, 3 = RGB).
pub fn decode_image(path: &Path, channels: usize, height: usize, width: usize) -> Result<Vec<u8>> {
    crate::files::check_regular(path)?;
    let img = image::ImageReader::open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("{}: cannot read", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: does not decode as an image: {e}", path.display()))?;
    if channels != 1 && channels != 3 {
        bail!("{channels} image channels are not supported (1 or 3)");
    }
    Ok(pixels(&img, channels, height, width))
}

/// An image as the models take it: resized to height × width, converted to grey (1 channel) or
/// RGB (3), u8 planes [channels, height, width].
pub fn pixels(img: &image::DynamicImage, channels: usize, height: usize, width: usize) -> Vec<u8> {
    let filter = image::imageops::FilterType::Triangle;
    let img = img.resize_exact(width as u32, height as u32, filter);
    if channels == 1 {
        return img.to_luma8().into_raw();
    }
    let hw = height * width;
    let rgb = img.to_rgb8().into_raw();
    let mut planes = vec![0u8; 3 * hw];
    for (i, px) in rgb.chunks(3).enumerate() {
        for c in 0..3 {
            planes[c * hw + i] = px[c];
        }
    }
    planes
}

/// The entries directly inside `dir` that are not directories or hidden, sorted: the images,
/// and anything that cannot be one (a broken symbolic link, a FIFO), so that decoding reports
/// it by name instead of it being skipped without a word.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let path = entry.with_context(|| format!("{}: cannot list", dir.display()))?.path();
        if !path.is_dir() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    classes.sort();
    if classes.len() < 2 {
        bail!("{}: needs at least two class sub-folders, found {}", dir.display(), classes.len());
    }
    Ok(classes)
}

/// Decode `items` (path, label) on all cores, in order.
fn decode_all(items: &[(PathBuf, u32)], classes: &[String], opts: FolderOptions) -> Result<Dataset> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let decoded: Vec<Result<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(p, _)| {
                            crate::fault::catch(&format!("{}: decoding", p.display()), || {
                                decode_image(p, opts.channels, opts.size, opts.size)
                            })
                            .and_then(|r| r)
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(|v| v.concat())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("image decoder thread failed"))))
            .collect()
    });
    let mut pixels = Vec::with_capacity(items.len() * opts.channels * opts.size * opts.size);
    for part in decoded {
        pixels.extend(part?);
    }
    Ok(Dataset {
        channels: opts.channels,
        height: opts.size,
        width: opts.size,
        classes: classes.to_vec(),
        pixels,
        labels: items.iter().map(|(_, l)| *l).collect(),
    })
}

pub fn load_dir(dir: &Path, opts: FolderOptions) -> Result<(Dataset, Dataset)> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let classes: Vec<String>;
    if train_dir.is_dir() && test_dir.is_dir() {
        let tc = class_dirs(&train_dir)?;
        classes = tc.iter().map(|(n, _)| n.clone()).collect();
        for (label, (name, path)) in tc.iter().enumerate() {
            train.extend(image_files(path)?.into_iter().map(|p| (p, label as u32)));
            let test_class = test_dir.join(name);
            if test_class.is_dir() {
                test.extend(image_files(&test_class)?.into_iter().map(|p| (p, label as u32)));
            }
        }
        let extra: Vec<_> =
            class_dirs(&test_dir)?.into_iter().filter(|(n, _)| !classes.contains(n)).collect();
        if let Some((n, _)) = extra.first() {
            bail!("{}: class '{n}' has no training folder", test_dir.display());
        }
    } else {
        let cd = class_dirs(dir)?;
        classes = cd.iter().map(|(n, _)| n.clone()).collect();
        for (label, (_, path)) in cd.iter().enumerate() {
            for (i, p) in image_files(path)?.into_iter().enumerate() {
                if i % 10 == 9 { test.push((p, label as u32)) } else { train.push((p, label as u32)) }
            }
        }
    }
    if train.is_empty() {
        bail!("{}: no images found", dir.display());
    }
    let bytes = (train.len() + test.len()) as u64 * (opts.channels * opts.size * opts.size) as u64;
    super::check_memory(
        bytes,
        &format!(
            "{} images of {}x{}x{} in {}",
            train.len() + test.len(),
            opts.channels,
            opts.size,
            opts.size,
            dir.display()
        ),
    )?;
    Ok((decode_all(&train, &classes, opts)?, decode_all(&test, &classes, opts)?))
}
