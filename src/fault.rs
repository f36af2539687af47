//! Faults: panics of worker threads caught as one-line errors, and the test-only fault-injection
//! hook.
//!
//! **Test hook**: the environment variable `TERN_FAULT=POINT[@EPOCH]` makes the process fail at a
//! named point, so the tests can check that a crash there loses nothing:
//! - `after-last-checkpoint`, `after-best-checkpoint`, `after-metrics`: abort (as a kill would)
//!   right after that output of an epoch is committed (at every epoch, or only at epoch EPOCH,
//!   counted from 1);
//! - `before-rename:FILE`: abort after FILE's temporary file is written and synced, before it is
//!   renamed over FILE;
//! - `loader-panic`: a data-loader worker panics while building its second batch;
//! - `check-wrong-result`: `tern check` reads conv2d/forward's first output with its sign flipped
//!   (a kernel gone wrong, to test the failure path);
//! - `slow-steps`: every training step takes 300 ms longer, and stopping after a signal 2 s
//!   longer (a slow device: the window the signal tests need).
//!
//! Unset (always, outside tests), every hook is a no-op.

use anyhow::{Result, anyhow};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Once, OnceLock};

/// The `TERN_FAULT` setting, read once: (point, epoch).
fn setting() -> Option<&'static (String, Option<usize>)> {
    static FAULT: OnceLock<Option<(String, Option<usize>)>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let v = std::env::var("TERN_FAULT").ok().filter(|v| !v.is_empty())?;
            Some(match v.rsplit_once('@') {
                Some((point, epoch)) => (point.to_string(), epoch.parse().ok()),
                None => (v, None),
            })
        })
        .as_ref()
}

/// Whether the test hook names `point` (at `epoch`, when the hook names one).
pub fn armed(point: &str, epoch: Option<usize>) -> bool {
    match setting() {
        Some((p, at)) => p == point && (at.is_none() || *at == epoch),
        None => false,
    }
}

/// Abort the process here when the test hook names `point`: no destructor, flush or rename runs,
/// as when the process is killed.
pub fn crash_point(point: &str, epoch: Option<usize>) {
    if armed(point, epoch) {
        errln!("TERN_FAULT={point}: aborting");
        std::process::abort();
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, turning a panic into an error ("`what` failed: message") without the default panic
/// report on stderr, so the caller can report it as one line.
pub fn catch<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        anyhow!("{what} failed: {}", msg.lines().next().unwrap_or(""))
    })
}
