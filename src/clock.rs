//! Where the time comes from: the gateway, the portal and the stores read the
//! wall clock only through a [`Clock`], so a test can move one clock for all.

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Unix seconds (a `session::Timestamp`).
    fn now(&self) -> i64;

    /// Unix milliseconds (for short expiries kept to the millisecond).
    fn now_ms(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn now_ms(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }
}
