//! Standard output and error without panics. `println!` panics when stdout is a closed pipe
//! (`tern classify … | head -1`) or a full disk, and `eprintln!` when stderr is; every command
//! writes through these instead:
//! - `outln!`/`out!`: a command's output. A failed write is an error (`StdoutError`): a closed
//!   pipe ends the command quietly with 141 (128 + SIGPIPE, what the shell reports for a
//!   process a closed pipe stopped), any other failure (a full disk) with one error line.
//! - `showln!`: the training log, a view of the run and not its point: a failed write turns
//!   the view off (one note on stderr) and training goes on.
//! - `errln!`: stderr; a failed write is ignored (there is nowhere left to report it).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Standard output could not be written: the command's output is gone.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output ({0})")]
pub struct StdoutError(pub std::io::Error);

impl StdoutError {
    /// The reader went away (a closed pipe), as opposed to a failed write (a full disk).
    pub fn closed(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// 128 + SIGPIPE: the exit code of a command whose reader closed the pipe.
pub const CLOSED_PIPE_EXIT: u8 = 141;

/// Write `args` to stdout and flush, so a failure surfaces here and not at exit.
pub fn write_stdout(args: fmt::Arguments) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|_| out.flush()).map_err(StdoutError)
}

/// Set once the training log's stdout has failed: later lines are dropped.
static VIEW_GONE: AtomicBool = AtomicBool::new(false);

/// A line of the training log: written while stdout takes it, dropped after it fails once.
pub fn show(args: fmt::Arguments) {
    if VIEW_GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = write_stdout(args) {
        VIEW_GONE.store(true, Ordering::Relaxed);
        write_stderr(format_args!(
            "note: standard output is gone ({}); training goes on without its log, every epoch is in the run's metrics.jsonl\n",
            e.0
        ));
    }
}

/// Write `args` to stderr, ignoring failure.
pub fn write_stderr(args: fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.flush());
}

/// `println!` for a command's output: evaluates to `Result<(), StdoutError>`.
#[macro_export]
macro_rules! outln {
    () => { $crate::internals::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::internals::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for a command's output: evaluates to `Result<(), StdoutError>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::internals::output::write_stdout(format_args!($($arg)*)) };
}

/// A line of the training log (`output::show`): never fails.
#[macro_export]
macro_rules! showln {
    ($($arg:tt)*) => { $crate::internals::output::show(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that ignores a failed write instead of panicking.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::internals::output::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The exit code for a command's error, and whether to print it: a closed stdout ends
/// quietly with 141; an interrupted run exits with 128 + its signal; anything else with 1.
pub fn exit_code(e: &anyhow::Error) -> (u8, bool) {
    if let Some(s) = e.chain().find_map(|c| c.downcast_ref::<StdoutError>())
        && s.closed()
    {
        return (CLOSED_PIPE_EXIT, false);
    }
    if let Some(crate::Error::Interrupted { signal, .. }) = e.downcast_ref::<crate::Error>() {
        return ((128 + signal) as u8, true);
    }
    (crate::interrupt::exit_code(e), true)
}
