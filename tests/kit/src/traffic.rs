//! A steady request loop on its own thread that records every answer, for
//! tests that break something underneath (a failover, a takeover) and then
//! judge each answer: connection errors are recorded, never panics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{Response, try_send};

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was sent.
    pub at: Instant,
    /// The response, or why there was none (connect, write or read error).
    pub outcome: Result<Response, String>,
}

/// A loop sending the same request to `addr` every `pause` until stopped (or
/// until `max` requests, so it always ends).
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

impl RequestLoop {
    pub fn start(addr: SocketAddr, request: String, pause: Duration, max: usize) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) && out.len() < max {
                let at = Instant::now();
                out.push(Sample {
                    at,
                    outcome: try_send(addr, request.as_bytes()),
                });
                std::thread::sleep(pause);
            }
            out
        });
        RequestLoop {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop and hand back every sample, in order.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(samples)) => samples,
            _ => panic!("request loop thread failed"),
        }
    }
}

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
