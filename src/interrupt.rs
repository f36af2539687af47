//! SIGINT and SIGTERM during training: the first one asks the run to stop at the next step
//! boundary (the step in flight finishes, the last committed checkpoint is kept, the error says
//! how to `--resume`, and the exit code is 128 + the signal: 130 or 143); a second one exits at
//! once. Only `tern train` installs the handler; other commands keep the default disposition.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};

pub const SIGINT: i32 = signal_hook::consts::SIGINT;
pub const SIGTERM: i32 = signal_hook::consts::SIGTERM;

/// The first signal received (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// What a second signal prints: where the last checkpoint is and how to resume.
static HINT: Mutex<String> = Mutex::new(String::new());

pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Catch SIGINT and SIGTERM from now on (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return; // no handler: the default disposition stays
        };
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if PENDING.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    let hint = HINT.lock().map(|h| h.clone()).unwrap_or_default();
                    errln!("error: {} again: stopped at once{hint}", name(signal));
                    signal_hook::low_level::exit(128 + signal);
                }
            }
        });
    });
}

/// The signal that asked the process to stop, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The tail of the message a second signal prints (e.g. "; resume with ...").
pub fn set_hint(hint: String) {
    if let Ok(mut h) = HINT.lock() {
        *h = hint;
    }
}

/// A run stopped by a signal; `message` says what was kept and how to continue.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Interrupted {
    pub signal: i32,
    pub message: String,
}

impl Interrupted {
    pub fn new(signal: i32, message: String) -> Interrupted {
        Interrupted { signal, message }
    }

    /// 128 + the signal number, as a shell reports a process killed by it.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal) as u8
    }
}

/// The process exit code for an error: 128 + signal for an interrupted run, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Interrupted>().map_or(1, Interrupted::exit_code)
}
