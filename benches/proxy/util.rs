//! What only the benchmark needs on top of the test kit: servers stopped
//! gently (profilers write their output on SIGINT) with their output in a log
//! file, commands run to completion, and a browser-ish client over the kit's
//! raw HTTP client.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use stepgate_kit::free_port;
use stepgate_kit::{Response, remember, send_bytes};

/// A child process, killed (and reaped) on drop, also when the bench panics.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    /// SIGINT first (servers stop fast and profilers write their output),
    /// SIGKILL after 15 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `cmd` with stdout and stderr going to `log` (a file, for post-mortems).
pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
    let out = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot dup log file: {e}"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; is it installed?"));
    Proc {
        name: name.to_string(),
        child,
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Wait until `port` accepts connections (60 s), checking that `proc` still runs.
pub fn wait_for_port(port: u16, proc: &mut Proc, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr(port), Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{} exited ({status}) before listening:\n{text}", proc.name);
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{} not listening on {port} after 60 s:\n{text}", proc.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Run a command to completion (30 s bound) and return its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A browser-ish client: one connection per request, a cookie jar per host.
pub struct Browser {
    /// Where every request is sent (the Host header says which site).
    pub port: u16,
    /// Each host's cookies.
    pub jar: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub fn new(port: u16) -> Self {
        Browser {
            port,
            jar: HashMap::new(),
        }
    }

    /// `url` is absolute (`http://host:port/path`); the request goes to 127.0.0.1:`port`.
    pub fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http URL: {url}"));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = authority.split(':').next().unwrap_or("").to_string();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        if let Some(c) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let pairs: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", pairs.join("; ")));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let resp = send_bytes(addr(self.port), &bytes);
        for (k, v) in &resp.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                remember(self.jar.entry(host.clone()).or_default(), v);
            }
        }
        resp
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.get(host)?.get(name).cloned()
    }
}
