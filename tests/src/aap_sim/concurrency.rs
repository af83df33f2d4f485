//! How many requests the simulator is handling at once, and the most it ever was: what
//! a client's bound on requests in flight is checked against.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrency {
    /// Counts a request until the guard is dropped: when it is answered, or when the
    /// client goes away first and the server drops the handler.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Starts a new high-water mark from the requests in flight now.
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.now(), Ordering::SeqCst);
    }
}

pub(crate) struct InFlight<'a>(&'a Concurrency);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_the_most_at_once_and_survives_the_requests() {
        let c = Concurrency::default();
        let a = c.enter();
        let b = c.enter();
        drop(a);
        let d = c.enter();
        assert_eq!((c.now(), c.peak()), (2, 2));
        let e = c.enter();
        assert_eq!(c.peak(), 3);
        drop((b, d, e));
        assert_eq!((c.now(), c.peak()), (0, 3));
        c.reset_peak();
        assert_eq!(c.peak(), 0);
    }
}
