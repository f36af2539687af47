//! How a run stops and continues: the checkpoint `--resume` reads, the hint an interruption
//! prints, and the one-line errors of an interruption or a diverged loss.

use super::TrainState;
use super::outdir::{self, OutDir};
use crate::checkpoint::Checkpoint;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The checkpoint a resumed run continues from: `last.safetensors`, or `best.safetensors` when
/// that is lost (a run is deterministic, so the epochs after the best are trained again as they
/// were); errors name the way out when neither can continue it.
pub(super) fn resume_from(dir: &OutDir) -> Result<(PathBuf, Checkpoint)> {
    let d = dir.path.display();
    let last = dir.file(outdir::LAST);
    if last.exists() {
        return Ok((last.clone(), Checkpoint::load(&last)?));
    }
    let best = dir.file(outdir::BEST);
    if best.exists() {
        let restart = format!(
            "start it over with `tern train --restart --out {d}` and its flags, or choose another --out"
        );
        let ckpt = Checkpoint::load(&best)
            .map_err(|e| anyhow::anyhow!("{e:#}; {d} has no {}: {restart}", outdir::LAST))?;
        if ckpt.training.is_none() {
            bail!(
                "{}: no training state to resume (and {d} has no {}): {restart}",
                best.display(),
                outdir::LAST
            );
        }
        return Ok((best, ckpt));
    }
    match dir.held {
        Some(_) => bail!(
            "{d}: no {} or {} to resume from: start the run over with `tern train --restart --out {d}` and its flags, or choose another --out",
            outdir::LAST,
            outdir::BEST
        ),
        None => bail!(
            "{d}: no {} to resume from (a run stopped before its first epoch ends leaves none): start it again",
            outdir::LAST
        ),
    }
}

/// How to continue after a stop: what the last checkpoint holds and the command.
pub(super) fn resume_hint(out: &Path, completed: usize) -> String {
    if completed == 0 {
        "; no epoch was complete, nothing is saved: start the run again".into()
    } else {
        format!(
            "; {} (epoch {completed}) is kept: continue with `tern train --resume {}`",
            out.join(outdir::LAST).display(),
            out.display()
        )
    }
}

/// The loss is no longer finite: the run cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("loss became {loss} at epoch {epoch} step {step}")]
pub(super) struct Diverged {
    pub loss: f32,
    pub epoch: usize,
    pub step: usize,
}

/// An interruption during `epoch` (0-based) or a diverged loss as the one-line error the user
/// sees, saying what is kept; other errors pass unchanged.
pub(super) fn stop_error(
    e: anyhow::Error,
    out: &Path,
    st: &TrainState,
    epoch: usize,
    epochs: usize,
) -> anyhow::Error {
    let e = match e.downcast::<Diverged>() {
        Ok(d) if st.epoch == 0 => {
            return anyhow::anyhow!(
                "{d}: training stopped before any epoch was complete, so nothing is saved; start again with a lower --lr"
            );
        }
        Ok(d) => {
            return anyhow::anyhow!(
                "{d}: training stopped; {} (epoch {}) is kept: resume it with a lower learning rate, `tern train --resume {} --lr LR`",
                out.join(outdir::LAST).display(),
                st.epoch,
                out.display()
            );
        }
        Err(e) => e,
    };
    match e.downcast::<crate::interrupt::Interrupted>() {
        Ok(i) => {
            let at = if i.message.starts_with("after epoch") {
                i.message.clone()
            } else {
                format!("in epoch {}/{epochs} ({})", epoch + 1, i.message)
            };
            let message = format!(
                "interrupted by {} {at}{}",
                crate::interrupt::name(i.signal),
                resume_hint(out, st.epoch)
            );
            crate::interrupt::Interrupted::new(i.signal, message).into()
        }
        Err(e) => e,
    }
}
