//! The default dataset, built into the binary: the first 10,000 training and 2,000 test images of
//! Fashion-MNIST (MIT licence, assets/fashion-mnist/LICENSE), as gzip'd idx files.

use super::{Dataset, idx};
use anyhow::Result;
use std::path::Path;

macro_rules! asset {
    ($name:literal) => {
        (
            &include_bytes!(concat!("../../assets/fashion-mnist/", $name))[..],
            Path::new(concat!("assets/fashion-mnist/", $name)),
        )
    };
}

pub fn fashion_mnist() -> Result<(Dataset, Dataset)> {
    fn load<'a>((bytes, path): (&[u8], &'a Path)) -> Result<(Vec<u8>, &'a Path)> {
        Ok((idx::maybe_gunzip(bytes.to_vec(), path)?, path))
    }
    let (ti, tip) = load(asset!("train-images-idx3-ubyte.gz"))?;
    let (tl, tlp) = load(asset!("train-labels-idx1-ubyte.gz"))?;
    let (ei, eip) = load(asset!("t10k-images-idx3-ubyte.gz"))?;
    let (el, elp) = load(asset!("t10k-labels-idx1-ubyte.gz"))?;
    let train = idx::dataset((&ti, tip), (&tl, tlp), &idx::FASHION_CLASSES)?;
    let test = idx::dataset((&ei, eip), (&el, elp), &idx::FASHION_CLASSES)?;
    Ok((train, test))
}
