//! A run's output directory: held by an exclusive lock for the run's whole life, its epoch
//! outputs committed as one unit, and whatever a killed run left half done repaired on resume.
//!
//! - Lock: `OUT/.tern-lock` is locked exclusively (`flock`) and holds the holder's pid and run
//!   id. The OS releases the lock when the process ends in any way, so a killed run never blocks
//!   the next; a second run on the same directory stops with an error naming the holder.
//! - Identity: a lock follows its directory when the directory is renamed, and a new run can
//!   then lock a new directory under the old name. So before every write the run checks that the
//!   path still leads to the directory it locked (device and inode) and to its own lock file,
//!   and stops with an error otherwise: two runs never write into one directory.
//! - Commit order per epoch: `last.safetensors` (the commit point: it holds the full training
//!   state and history, with the run's id), then `best.safetensors`, `metrics.jsonl` and
//!   `curves.png`, each written atomically (temporary file, fsync, rename). A kill before the
//!   commit point loses the epoch, which `--resume` redoes; a kill after it leaves the other
//!   outputs one epoch behind, and `--resume` restores them from `last.safetensors` (`repair`).
//! - `best.safetensors` is always this run's best epoch: on resume, one that belongs to another
//!   run or disagrees with the history in `last.safetensors` is moved aside (never deleted) and
//!   rebuilt from `last.safetensors` when that is the best epoch.
//! - Temporary files (`.NAME.tmp`) left by a killed run are removed when the directory is locked.

use super::{EpochMetrics, TrainState};
use crate::checkpoint::{Checkpoint, temp_path, write_atomic};
use crate::fault::crash_point;
use anyhow::{Context, Result, bail};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK: &str = ".tern-lock";
pub const LAST: &str = "last.safetensors";
pub const BEST: &str = "best.safetensors";
pub const METRICS: &str = "metrics.jsonl";
pub const CURVES: &str = "curves.png";
pub const PROFILE: &str = "profile.json";
/// curves.png is drawn by file name extension, so its temporary file keeps ".png".
const CURVES_TMP: &str = ".curves.tmp.png";

/// What a directory holds of an earlier run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// last.safetensors: a run to resume.
    Last,
    /// best.safetensors without last.safetensors: a run to resume from its best epoch.
    Best,
    /// metrics.jsonl or curves.png without a checkpoint: nothing to resume.
    Outputs,
}

impl Held {
    pub fn of(path: &Path) -> Option<Held> {
        if path.join(LAST).exists() {
            Some(Held::Last)
        } else if path.join(BEST).exists() {
            Some(Held::Best)
        } else if [METRICS, CURVES].iter().any(|f| path.join(f).exists()) {
            Some(Held::Outputs)
        } else {
            None
        }
    }

    /// The refusal of a new run in `out`, naming the ways out.
    pub fn refusal(self, out: &Path) -> String {
        let o = out.display();
        match self {
            Held::Last => format!(
                "{o} already holds a run: resume it with `tern train --resume {o}`, start it over with --restart (its outputs are replaced), or choose another --out"
            ),
            Held::Best => format!(
                "{o} already holds a run whose {LAST} is missing: resume it from its {BEST} with `tern train --resume {o}`, start it over with --restart (its outputs are replaced), or choose another --out"
            ),
            Held::Outputs => format!(
                "{o} already holds a run's outputs but no checkpoint to resume: start it over with --restart (its outputs are replaced), or choose another --out"
            ),
        }
    }
}

/// A file's identity (device, inode); None where the platform has none to offer.
type FileId = Option<(u64, u64)>;

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> FileId {
    None
}

fn id_of(path: &Path) -> FileId {
    std::fs::metadata(path).ok().and_then(|m| file_id(&m))
}

pub(crate) struct OutDir {
    pub path: PathBuf,
    /// Holds the lock until dropped (or the process ends).
    lock: std::fs::File,
    /// The directory's and the lock file's identity when locked.
    dir_id: FileId,
    lock_id: FileId,
    /// The directory itself, held open: where it went if it is moved.
    handle: Option<std::fs::File>,
    /// This run created the directory.
    created: bool,
    /// What the directory held of an earlier run when it was locked.
    pub held: Option<Held>,
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
                let holder = match holder.lines().next().unwrap_or("").trim() {
                    "" => "its pid not yet recorded".to_string(),
                    h => h.to_string(),
                };
                bail!(
                    "{p} is in use by another tern run ({holder}); wait for it to end, or choose another --out"
                );
            }
            Err(std::fs::TryLockError::Error(e)) => bail!("{}: cannot lock ({e})", lock_path.display()),
        }
        write_lock(&mut lock, None)
            .map_err(|e| anyhow::anyhow!("{p}: cannot write in this directory ({e})"))?;
        for name in [LAST, BEST, METRICS, PROFILE] {
            remove_stale(&temp_path(&path.join(name))?)?;
        }
        remove_stale(&path.join(CURVES_TMP))?;
        let held = Held::of(path);
        let dir_id = id_of(path);
        let lock_id = lock.metadata().ok().and_then(|m| file_id(&m));
        let handle = std::fs::File::open(path).ok();
        Ok(OutDir {
            path: path.to_path_buf(),
            lock,
            dir_id,
            lock_id,
            handle,
            created,
            held,
            committed: false,
        })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Record the run's id in the lock file, beside the pid.
    pub fn claim(&mut self, run: &str) -> Result<()> {
        write_lock(&mut self.lock, Some(run))
            .map_err(|e| anyhow::anyhow!("{}: cannot write ({e})", self.file(LOCK).display()))
    }

    /// Fail unless the path still leads to the directory this run locked, holding this run's
    /// lock file; `what` names what was about to be written, `completed` the epochs this run
    /// has committed.
    pub fn check_ours(&self, what: &str, completed: usize) -> Result<()> {
        let p = self.path.display();
        if self.dir_id.is_none() {
            return Ok(());
        }
        if id_of(&self.path) != self.dir_id {
            let now = self.now_at();
            let (how, kept) = match &now {
                Some(to) if !to.ends_with(" (deleted)") => (
                    format!("it was moved to {to}"),
                    if completed > 0 {
                        format!(
                            "; this run's {LAST} (epoch {completed}) is in {to}: continue it with `tern train --resume {to}`"
                        )
                    } else {
                        String::new()
                    },
                ),
                Some(_) => ("it was removed".to_string(), String::new()),
                None => ("it was moved, removed or replaced".to_string(), String::new()),
            };
            bail!(
                "{p} is no longer the directory this run locked ({how} while the run went on): stopped before writing {what}, so nothing went into another directory{kept}"
            );
        }
        if id_of(&self.file(LOCK)) != self.lock_id {
            bail!(
                "{p}/{LOCK} is no longer this run's lock (it was removed or replaced while the run went on, and another run may write in {p}): stopped before writing {what}"
            );
        }
        Ok(())
    }

    /// Where the locked directory is now (Linux: its open handle's path; "... (deleted)" once
    /// removed).
    fn now_at(&self) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.handle.as_ref()?.as_raw_fd();
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            Some(link.display().to_string())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = &self.handle;
            None
        }
    }

    /// Commit one epoch: `last.safetensors` first (the commit point), then the outputs derived
    /// from it. `TERN_FAULT=after-last-checkpoint` etc. abort between the steps (test hook).
    /// Each write first checks that the directory is still this run's.
    pub fn commit_epoch(&mut self, ckpt: &Checkpoint, st: &TrainState, best: bool) -> Result<()> {
        let what = format!("epoch {}'s outputs", st.epoch);
        let done = st.epoch - 1;
        let bytes = ckpt.to_bytes()?;
        self.check_ours(&what, done)?;
        write_atomic(&self.file(LAST), &bytes)?;
        let first = !self.committed;
        self.committed = true;
        crash_point("after-last-checkpoint", Some(st.epoch));
        if best {
            self.check_ours(&what, st.epoch)?;
            write_atomic(&self.file(BEST), &bytes)?;
            crash_point("after-best-checkpoint", Some(st.epoch));
        }
        self.check_ours(&what, st.epoch)?;
        write_atomic(&self.file(METRICS), metrics_text(&st.history)?.as_bytes())?;
        crash_point("after-metrics", Some(st.epoch));
        if first && self.held.is_some() && st.epoch == 1 {
            // A run started over (--restart: the only new run in a directory that held one)
            // keeps nothing of the run it replaces.
            let stale = self.file(PROFILE);
            if stale.exists() {
                std::fs::remove_file(&stale)
                    .with_context(|| format!("{}: cannot remove the replaced run's file", stale.display()))?;
            }
        }
        self.check_ours(&what, st.epoch)?;
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

    /// Bring the outputs derived from the checkpoint a run resumes from (whose bytes are
    /// `source`, holding `st`) up to date: `last.safetensors` when it is lost, the metrics
    /// lines, `best.safetensors` (this run's best epoch, or nothing: another file there is moved
    /// aside), and the curves. Returns what was restored, for the log; notes go to stderr.
    pub fn repair(&self, st: &TrainState, source: &[u8]) -> Result<Vec<String>> {
        self.check_ours("the repaired outputs", st.epoch)?;
        let mut restored = Vec::new();
        if !self.file(LAST).exists() {
            write_atomic(&self.file(LAST), source)?;
            restored.push(format!("{LAST} (epoch {})", st.epoch));
        }
        let metrics = metrics_text(&st.history)?;
        if std::fs::read_to_string(self.file(METRICS)).ok().as_deref() != Some(metrics.as_str()) {
            write_atomic(&self.file(METRICS), metrics.as_bytes())?;
            restored.push(format!("{METRICS} ({} epochs)", st.history.len()));
        }
        if let Some(best) = st.best_epoch() {
            self.repair_best(st, best, source, &mut restored)?;
        }
        if !st.history.is_empty() {
            self.curves(&st.history)?;
        }
        Ok(restored)
    }

    /// `best.safetensors` must hold epoch `best` of this run: the same run id (where both have
    /// one; checkpoints of older versions have none) and the same history up to that epoch.
    fn repair_best(
        &self,
        st: &TrainState,
        best: usize,
        source: &[u8],
        restored: &mut Vec<String>,
    ) -> Result<()> {
        let path = self.file(BEST);
        let shown = path.display();
        let have = if path.exists() { Some(read_state(&path)) } else { None };
        let restorable = best == st.epoch;
        let lost = format!(
            "this run's best epoch ({best}) is in no file now, and {BEST} is written again when an epoch beats it"
        );
        let aside = |label: &str| -> Result<PathBuf> {
            let mut to = self.file(&format!("best.{label}.safetensors"));
            let mut n = 2;
            while to.exists() {
                to = self.file(&format!("best.{label}-{n}.safetensors"));
                n += 1;
            }
            std::fs::rename(&path, &to).with_context(|| format!("{shown}: cannot move aside"))?;
            Ok(to)
        };
        match have {
            None if restorable => {}
            None => {
                errln!(
                    "note: {shown} is missing and cannot be restored from {LAST} (epoch {}): {lost}",
                    st.epoch
                );
                return Ok(());
            }
            Some(Ok(h)) if st.owns(&h) => {
                if h.epoch == best {
                    return Ok(());
                }
                // This run's own, left behind by a kill: replaced when the best can be restored.
                if !restorable {
                    let to = aside(&format!("epoch-{}", h.epoch))?;
                    errln!(
                        "note: {shown} holds epoch {} of this run, not its best; moved it to {}: {lost}",
                        h.epoch,
                        to.display()
                    );
                    return Ok(());
                }
            }
            Some(Ok(h)) => {
                let run = h.run.as_deref().filter(|r| valid_run_id(r));
                let label = match run {
                    Some(r) => format!("run-{r}-epoch-{}", h.epoch),
                    None => format!("other-run-epoch-{}", h.epoch),
                };
                let to = aside(&label)?;
                let whose = run.map_or("another run".to_string(), |r| format!("another run (run {r})"));
                let then = if restorable { String::new() } else { format!(": {lost}") };
                errln!(
                    "note: {shown} is epoch {} of {whose}, not of the run in {LAST}; moved it to {}{then}",
                    h.epoch,
                    to.display()
                );
            }
            Some(Err(e)) => {
                let to = aside("unreadable")?;
                let then = if restorable { String::new() } else { format!(": {lost}") };
                errln!(
                    "note: {shown} is not a checkpoint of this run ({e:#}); moved it to {}{then}",
                    to.display()
                );
            }
        }
        if restorable {
            write_atomic(&path, source)?;
            restored.push(format!("{BEST} (epoch {best})"));
        }
        Ok(())
    }
}

/// The lock file's text: the holder's pid, then its run id once known.
fn write_lock(lock: &mut std::fs::File, run: Option<&str>) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.rewind()?;
    match run {
        Some(r) => write!(lock, "pid {}\nrun {r}\n", std::process::id())?,
        None => writeln!(lock, "pid {}", std::process::id())?,
    }
    lock.sync_all()
}

/// A run id as this version writes them (also what may go into a file name).
pub fn valid_run_id(run: &str) -> bool {
    (1..=64).contains(&run.len()) && run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A new run's id: random (the standard library's hash keys come from the OS), with the time
/// and pid mixed in.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Drop for OutDir {
    /// A run that fails or is stopped before its first commit leaves nothing behind: the lock
    /// file goes, and the directory too when this run created it.
    fn drop(&mut self) {
        // Only while the path is still this run's directory: never another run's files.
        if !self.committed && self.held.is_none() && self.check_ours("", 0).is_ok() {
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

/// The training state of a checkpoint file.
fn read_state(path: &Path) -> Result<TrainState> {
    let ckpt = Checkpoint::load(path)?;
    let text = ckpt.training.as_deref().context("no training state")?;
    Ok(serde_json::from_str(text)?)
}
