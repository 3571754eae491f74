//! Fixed-window rate limits for ceremony begin/finish, per client IP and per user.
//!
//! Counters live in memory (per gateway instance); a window is one minute.
//! Past the limit the caller answers 429 with `Retry-After` set to the
//! seconds left in the window.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::session::Timestamp;

const WINDOW: i64 = 60;
const MAX_KEYS: usize = 100_000;

/// One family of counters (e.g. per IP).
#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl Limiter {
    /// Count one hit for `key`; `Err(retry_after_secs)` when over `limit` per minute.
    pub fn hit(&self, key: &str, limit: u32, now: Timestamp) -> Result<(), u64> {
        let Ok(mut map) = self.windows.lock() else {
            // A poisoned lock: fail closed.
            return Err(WINDOW as u64);
        };
        if map.len() > MAX_KEYS {
            map.retain(|_, (start, _)| now - *start < WINDOW);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= WINDOW || now < entry.0 {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err((WINDOW - (now - entry.0)).max(1) as u64);
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The portal's limiters.
#[derive(Debug, Default)]
pub struct RateLimits {
    pub per_ip: Limiter,
    pub per_user: Limiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_a_window_then_resets() {
        let l = Limiter::default();
        for _ in 0..3 {
            assert!(l.hit("a", 3, 100).is_ok());
        }
        assert_eq!(l.hit("a", 3, 110), Err(50));
        assert!(l.hit("b", 3, 110).is_ok());
        assert!(l.hit("a", 3, 160).is_ok());
    }
}
