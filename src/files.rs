//! Reading input files: only regular files (a FIFO, socket or device named as a model, image or
//! dataset file would block forever or never end), with errors that name the file.

use anyhow::{Result, bail};
use std::path::Path;

/// `path` exists and is a regular file (symbolic links followed).
pub fn check_regular(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => bail!("{}: is a directory, not a file", path.display()),
        Ok(_) => bail!("{}: not a regular file (a FIFO, socket or device)", path.display()),
        Err(e) => match std::fs::read_link(path) {
            Ok(target) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "{}: a broken symbolic link (to {}, which does not exist)",
                    path.display(),
                    target.display()
                )
            }
            _ => bail!("{}: cannot read ({e})", path.display()),
        },
    }
}

/// The bytes of a regular file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read ({e})", path.display()))
}
