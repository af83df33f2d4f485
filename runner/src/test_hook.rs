//! A pause point for end-to-end tests only: with `CLOUDKIT_TEST_STOP_AT=<point>` the runner
//! stops itself (SIGSTOP) the first time it reaches `<point>`, so a test can freeze a leader
//! at an exact step, let its lease expire, let a standby act, and resume it with SIGCONT.
//! Unset (as in every deployment) it does nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Right after a status write that recorded a new intent.
    AfterIntentWrite,
    /// Right before a status write that records a launched job's id.
    BeforeLaunchRecord,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Self::AfterIntentWrite => "after-intent-write",
            Self::BeforeLaunchRecord => "before-launch-record",
        }
    }
}

/// Stops the process here once, if the test asked for `point`.
pub fn reached(point: Point) {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    static DONE: AtomicBool = AtomicBool::new(false);
    let wanted = WANTED.get_or_init(|| std::env::var("CLOUDKIT_TEST_STOP_AT").ok());
    if wanted.as_deref() == Some(point.name()) && !DONE.swap(true, Ordering::SeqCst) {
        tracing::warn!(point = point.name(), "test hook: stopping (SIGSTOP)");
        // SAFETY: raise(2) only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
    }
}
