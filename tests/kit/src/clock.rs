//! A clock tests move by hand: the system clock plus an offset.

use std::sync::atomic::{AtomicI64, Ordering};

use stepgate::clock::{Clock, SystemClock};

/// Runs with the system clock plus an offset a test can change.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    /// Move the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset.load(Ordering::SeqCst) * 1000
    }
}
