//! Child processes killed on drop, free ports, temp files, and a minimal
//! blocking HTTP/1.1 client (enough for the portal API and keep-alive probes).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
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

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Write a request on `stream` and read exactly one response (Content-Length,
/// chunked, or until EOF).
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> Resp {
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("write request: {e}"));
    read_response(stream)
}

pub fn read_response(stream: &mut TcpStream) -> Resp {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("read response: {e}"));
        if n == 0 {
            panic!(
                "connection closed before a full response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("read body: {e}"));
            if n == 0 {
                panic!("connection closed in the body");
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(len);
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("read chunked body: {e}"));
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body = dechunk(&body);
    } else if status >= 200 && status != 204 && status != 304 {
        let _ = stream.read_to_end(&mut body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..i]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

/// A browser-ish client: one connection per request, a cookie jar per host.
pub struct Browser {
    /// Where every request is sent (the Host header says which site).
    pub port: u16,
    pub jar: HashMap<String, Vec<(String, String)>>,
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
    ) -> Resp {
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
        let mut stream = TcpStream::connect(addr(self.port))
            .unwrap_or_else(|e| panic!("connect 127.0.0.1:{}: {e}", self.port));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let resp = exchange(&mut stream, &bytes);
        for (k, v) in &resp.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                let jar = self.jar.entry(host.clone()).or_default();
                jar.retain(|(n, _)| n != name);
                if !value.is_empty() && !v.contains("Max-Age=0") {
                    jar.push((name.to_string(), value.to_string()));
                }
            }
        }
        resp
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .get(host)?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}
