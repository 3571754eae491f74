//! Load: `wrk` runs (closed loop, or throttled with a Lua `delay()`), and
//! the idle keep-alive connection probe for stepgate's memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Proc, addr, write};
use stepgate_kit::Conn;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Responses that were not 2xx/3xx.
    pub bad_status: u64,
    /// Connections the app accepted during the run (keep-alive to the upstream).
    pub upstream_conns: u64,
}

/// One wrk load.
pub struct Load<'a> {
    pub port: u16,
    pub host: &'a str,
    pub path: &'a str,
    pub cookie: Option<&'a str>,
    pub threads: usize,
    pub connections: usize,
    pub seconds: u64,
    /// Per-connection pause before each request (ms): throttled, open-ish loop.
    pub delay_ms: Option<u64>,
}

/// Run wrk once; panics if wrk fails or does not stop in time.
pub fn wrk(dir: &Path, load: &Load) -> Sample {
    let mut lua = format!("wrk.headers[\"Host\"] = \"{}\"\n", load.host);
    if let Some(c) = load.cookie {
        lua.push_str(&format!("wrk.headers[\"Cookie\"] = \"{c}\"\n"));
    }
    if let Some(d) = load.delay_ms {
        lua.push_str(&format!("function delay() return {d} end\n"));
    }
    lua.push_str(
        r#"function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH-RESULT %d %d %.1f %.1f %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#,
    );
    let script = dir.join(format!("load-{}.lua", load.port));
    write(&script, &lua);
    let child = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .arg("--timeout")
        .arg("2s")
        .arg("-s")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}{}", load.port, load.path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start wrk (apt-get install wrk): {e}"));
    let mut proc = Proc {
        name: "wrk".into(),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(load.seconds + 15);
    loop {
        match proc.child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("wrk did not stop within {} s", load.seconds + 15),
        }
    }
    let mut out = String::new();
    if let Some(mut s) = proc.child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
    }
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("BENCH-RESULT "))
        .unwrap_or_else(|| panic!("no result from wrk: {out}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    if f.len() != 6 {
        panic!("bad wrk result line: {line}");
    }
    Sample {
        requests: f[0] as u64,
        rps: f[0] / (f[1] / 1e6),
        p50_ms: f[2] / 1000.0,
        p99_ms: f[3] / 1000.0,
        socket_errors: f[4] as u64,
        bad_status: f[5] as u64,
        upstream_conns: 0,
    }
}

/// Memory of a process from /proc/PID/status, in MiB: (VmRSS, VmHWM).
pub fn memory(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Open `n` keep-alive connections to `port`, each carrying one authenticated
/// request (read to the end of its response), and keep them open.
pub fn hold_connections(port: u16, host: &str, path: &str, cookie: &str, n: usize) -> Vec<Conn> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n");
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Conn::open_waiting(addr(port), Duration::from_secs(10));
        let r = c.exchange(req.as_bytes());
        if r.status != 200 {
            panic!("connection {i}: status {} {}", r.status, r.body);
        }
        held.push(c);
    }
    held
}

/// How many of `held` are still open (a peek that would block means open).
pub fn still_open(held: &[Conn]) -> usize {
    held.iter()
        .map(Conn::stream)
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 1];
            let open =
                matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            let _ = s.set_nonblocking(false);
            open
        })
        .count()
}
