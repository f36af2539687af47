//! A run's output directory: held by an exclusive lock for the run's whole life, its epoch
//! outputs committed as one unit, and whatever a killed run left half done repaired on resume.
//!
//! - Lock: `OUT/.tern-lock` is locked exclusively (`flock`) and holds the holder's pid. The OS
//!   releases the lock when the process ends in any way, so a killed run never blocks the next;
//!   a second run on the same directory stops with an error naming the holder.
//! - Commit order per epoch: `last.safetensors` (the commit point: it holds the full training
//!   state and history), then `best.safetensors`, `metrics.jsonl` and `curves.png`, each written
//!   atomically (temporary file, fsync, rename). A kill before the commit point loses the epoch,
//!   which `--resume` redoes; a kill after it leaves the other outputs one epoch behind, and
//!   `--resume` restores them from `last.safetensors` (`repair`).
//! - Temporary files (`.NAME.tmp`) left by a killed run are removed when the directory is locked.

use super::{EpochMetrics, TrainState};
use crate::checkpoint::{Checkpoint, temp_path, write_atomic};
use crate::fault::crash_point;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK: &str = ".tern-lock";
pub const LAST: &str = "last.safetensors";
pub const BEST: &str = "best.safetensors";
pub const METRICS: &str = "metrics.jsonl";
pub const CURVES: &str = "curves.png";
/// curves.png is drawn by file name extension, so its temporary file keeps ".png".
const CURVES_TMP: &str = ".curves.tmp.png";

pub(crate) struct OutDir {
    pub path: PathBuf,
    /// Holds the lock until dropped (or the process ends).
    _lock: std::fs::File,
    /// This run created the directory.
    created: bool,
    /// The directory held a run's outputs when it was locked.
    pub had_run: bool,
    /// This run has committed an epoch.
    committed: bool,
}

impl OutDir {
    /// Lock `path` for this run, creating it when `create` (else it must exist), and remove
    /// temporary files a killed run left.
    pub fn open(path: &Path, create: bool) -> Result<OutDir> {
        let p = path.display();
        let mut created = false;
        if !path.is_dir() {
            if path.exists() {
                bail!("{p}: not a directory");
            }
            if !create {
                bail!("{p}: no such run directory");
            }
            std::fs::create_dir_all(path).map_err(|e| anyhow::anyhow!("{p}: cannot create ({e})"))?;
            created = true;
        }
        let lock_path = path.join(LOCK);
        if let Ok(m) = std::fs::metadata(&lock_path)
            && !m.is_file()
        {
            let what = if m.is_dir() { "a directory" } else { "not a regular file" };
            bail!(
                "{}: {what}, where tern keeps its lock file: remove it, or choose another --out",
                lock_path.display()
            );
        }
        let opened =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path);
        let mut lock = match opened {
            Ok(f) => f,
            Err(e) => {
                if created {
                    let _ = std::fs::remove_dir(path);
                }
                bail!("{p}: cannot write in this directory ({e})");
            }
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "its pid not yet recorded".to_string(),
                    h => h.to_string(),
                };
                bail!(
                    "{p} is in use by another tern run ({holder}); wait for it to end, or choose another --out"
                );
            }
            Err(std::fs::TryLockError::Error(e)) => bail!("{}: cannot lock ({e})", lock_path.display()),
        }
        lock.set_len(0)
            .and_then(|_| writeln!(lock, "pid {}", std::process::id()))
            .and_then(|_| lock.sync_all())
            .map_err(|e| anyhow::anyhow!("{p}: cannot write in this directory ({e})"))?;
        for name in [LAST, BEST, METRICS, "profile.json"] {
            remove_stale(&temp_path(&path.join(name))?)?;
        }
        remove_stale(&path.join(CURVES_TMP))?;
        let had_run = [LAST, BEST, METRICS].iter().any(|f| path.join(f).exists());
        Ok(OutDir { path: path.to_path_buf(), _lock: lock, created, had_run, committed: false })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Commit one epoch: `last.safetensors` first (the commit point), then the outputs derived
    /// from it. `TERN_FAULT=after-last-checkpoint` etc. abort between the steps (test hook).
    pub fn commit_epoch(&mut self, ckpt: &Checkpoint, st: &TrainState, best: bool) -> Result<()> {
        let bytes = ckpt.to_bytes()?;
        write_atomic(&self.file(LAST), &bytes)?;
        self.committed = true;
        crash_point("after-last-checkpoint", Some(st.epoch));
        if best {
            write_atomic(&self.file(BEST), &bytes)?;
            crash_point("after-best-checkpoint", Some(st.epoch));
        }
        write_atomic(&self.file(METRICS), metrics_text(&st.history)?.as_bytes())?;
        crash_point("after-metrics", Some(st.epoch));
        self.curves(&st.history)
    }

    fn curves(&self, history: &[EpochMetrics]) -> Result<()> {
        let tmp = self.file(CURVES_TMP);
        draw_curves(&tmp, history)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("{}: write failed", tmp.display()))?;
        crate::checkpoint::replace(&tmp, &self.file(CURVES))
    }

    /// Bring the outputs derived from `last.safetensors` (whose bytes are `last`, holding `st`)
    /// up to date after a kill: the metrics lines, `best.safetensors` when the last epoch is the
    /// best, and the curves. Returns what was restored, for the log.
    pub fn repair(&self, st: &TrainState, last: &[u8]) -> Result<Vec<String>> {
        let mut restored = Vec::new();
        let metrics = metrics_text(&st.history)?;
        if std::fs::read_to_string(self.file(METRICS)).ok().as_deref() != Some(metrics.as_str()) {
            write_atomic(&self.file(METRICS), metrics.as_bytes())?;
            restored.push(format!("{METRICS} ({} epochs)", st.history.len()));
        }
        if let Some(best) = st.best_epoch() {
            let have = best_epoch_of(&self.file(BEST));
            if have != Some(best) {
                if best == st.epoch {
                    write_atomic(&self.file(BEST), last)?;
                    restored.push(format!("{BEST} (epoch {best})"));
                } else {
                    errln!(
                        "note: {} does not hold epoch {best}, the best, and cannot be restored from {LAST}",
                        self.file(BEST).display()
                    );
                }
            }
        }
        if !st.history.is_empty() {
            self.curves(&st.history)?;
        }
        Ok(restored)
    }
}

impl Drop for OutDir {
    /// A run that fails or is stopped before its first commit leaves nothing behind: the lock
    /// file goes, and the directory too when this run created it.
    fn drop(&mut self) {
        if !self.committed && !self.had_run {
            let _ = std::fs::remove_file(self.file(LOCK));
            if self.created {
                let _ = std::fs::remove_dir(&self.path);
            }
        }
    }
}

/// OUT/curves.png: loss and accuracy (%) against epoch, train and test.
fn draw_curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    use crate::plot::{Panel, Series};
    let series = |name: &str, f: fn(&EpochMetrics) -> f64| Series {
        name: name.into(),
        points: history.iter().map(|m| (m.epoch as f64, f(m))).collect(),
    };
    let mut panels = vec![
        Panel {
            title: "loss",
            series: vec![series("train", |m| m.train_loss), series("test", |m| m.test_loss)],
        },
        Panel {
            title: "accuracy (%)",
            series: vec![
                series("train", |m| 100.0 * m.train_accuracy),
                series("test", |m| 100.0 * m.test_accuracy),
            ],
        },
    ];
    // The ternary layers, as in TTQ's figure: Wp above zero, -Wn below, and the zero fraction.
    let names: Vec<&str> = history
        .iter()
        .rev()
        .find(|m| !m.layers.is_empty())
        .map_or(Vec::new(), |m| m.layers.iter().map(|l| l.name.as_str()).collect());
    if !names.is_empty() {
        let layer = |name: &str, f: &dyn Fn(&super::LayerTrace) -> f64| -> Vec<(f64, f64)> {
            let at =
                |m: &EpochMetrics| m.layers.iter().find(|l| l.name == name).map(|l| (m.epoch as f64, f(l)));
            history.iter().filter_map(at).collect()
        };
        let mut scales = Vec::new();
        for name in &names {
            scales.push(Series { name: name.to_string(), points: layer(name, &|l| l.wp as f64) });
        }
        for name in &names {
            scales.push(Series { name: String::new(), points: layer(name, &|l| -l.wn as f64) });
        }
        let sparsity =
            names.iter().map(|n| Series { name: n.to_string(), points: layer(n, &|l| 100.0 * l.sparsity) });
        panels.push(Panel { title: "Wp and -Wn per ternary layer", series: scales });
        panels.push(Panel { title: "zero weights per ternary layer (%)", series: sparsity.collect() });
    }
    crate::plot::panels(path, "epoch", &panels)
}

fn remove_stale(tmp: &Path) -> Result<()> {
    if tmp.exists() {
        std::fs::remove_file(tmp)
            .with_context(|| format!("{}: cannot remove stale temporary file", tmp.display()))?;
    }
    Ok(())
}

/// metrics.jsonl: one JSON line per epoch.
fn metrics_text(history: &[EpochMetrics]) -> Result<String> {
    let mut s = String::new();
    for m in history {
        s += &serde_json::to_string(m)?;
        s.push('\n');
    }
    Ok(s)
}

/// The epoch a checkpoint file was saved at (None: missing or unreadable).
fn best_epoch_of(path: &Path) -> Option<usize> {
    let ckpt = Checkpoint::load(path).ok()?;
    let st: TrainState = serde_json::from_str(ckpt.training.as_deref()?).ok()?;
    Some(st.epoch)
}
