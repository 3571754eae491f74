//! The raw HTTP/1.1 client and response parser: send exact bytes (so a test
//! can write requests no library would), read what comes back, parse every
//! response (Content-Length or chunked); a kept-alive [`Conn`] for pipelining.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Lines of a whoami / echo body whose header name matches `name` (case-insensitively).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.body
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The request line an echoing upstream saw.
    pub fn echoed_request_line(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// Assert `r` sends the browser to `login` (the portal's login URL with its
/// `rd`) carrying the app host's browser binding, and return that binding.
pub fn assert_login_redirect(r: &Response, login: &str) -> String {
    let location = r.header("location").unwrap_or_default();
    let state = location
        .strip_prefix(login)
        .and_then(|rest| rest.strip_prefix("&state="))
        .unwrap_or_else(|| panic!("expected a redirect to {login}&state=…, got {location:?}"));
    assert_eq!(state.len(), 32, "a browser binding: {state:?}");
    state.to_string()
}

/// Send raw text (`\n` turned into CRLF) and read one response; the connection is closed after.
pub fn raw_request(addr: SocketAddr, text: &str) -> Response {
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    send_bytes(addr, text.as_bytes())
}

/// Send bytes, read until the server closes, parse the first response.
pub fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> Response {
    try_send(addr, bytes).unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// Send one request (the server closes after it) and parse the answer.
pub fn try_send(addr: SocketAddr, bytes: &[u8]) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(bytes).map_err(|e| format!("write: {e}"))?;
    let mut all = Vec::new();
    if let Err(e) = s.read_to_end(&mut all)
        && all.is_empty()
    {
        return Err(format!("read: {e}"));
    }
    parse_responses(&all)
        .into_iter()
        .next()
        .ok_or_else(|| format!("no response ({} bytes)", all.len()))
}

/// Send bytes and read everything until the server closes (or 5 s of silence).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if let Err(e) = s.write_all(bytes) {
        panic!("write: {e}");
    }
    let mut all = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    all
}

/// Parse every complete response in `data` (Content-Length or chunked bodies).
pub fn parse_responses(mut data: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut rest = &data[end + 4..];
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body: Vec<u8>;
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut b = Vec::new();
            while let Some(le) = find(rest, b"\r\n") {
                let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..le]).trim(), 16)
                    .unwrap_or(0);
                rest = &rest[le + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or(&[]);
                    break;
                }
                let take = size.min(rest.len());
                b.extend_from_slice(&rest[..take]);
                rest = rest.get(take + 2..).unwrap_or(&[]);
            }
            body = b;
        } else {
            let n = get("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(if status == 304 || status == 204 {
                    0
                } else {
                    rest.len()
                });
            let n = n.min(rest.len());
            body = rest[..n].to_vec();
            rest = &rest[n..];
        }
        out.push(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        });
        data = rest;
    }
    out
}

pub fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A kept-alive client connection: send a request, read exactly one response.
pub struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    /// Connect, waiting at most 5 s for each response.
    pub fn open(addr: SocketAddr) -> Conn {
        Self::open_waiting(addr, Duration::from_secs(5))
    }

    /// Connect, waiting at most `wait` for each response (a server under a
    /// profiler answers slowly).
    pub fn open_waiting(addr: SocketAddr, wait: Duration) -> Conn {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = stream.set_read_timeout(Some(wait));
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    /// The connection itself (to peek whether the server still holds it).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Send `bytes` and read the one response they ask for.
    pub fn exchange(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        match self.read_response() {
            Some(r) => r,
            None => panic!("the server closed the connection before answering"),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("write: {e}");
        }
    }

    /// The next complete response, or `None` when the server closed first.
    pub fn read_response(&mut self) -> Option<Response> {
        let mut buf = [0u8; 16384];
        loop {
            if let Some((r, used)) = parse_one(&self.pending) {
                self.pending.drain(..used);
                return Some(r);
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// One complete response (Content-Length or chunked body) at the start of
/// `data`, and how many bytes it took.
fn parse_one(data: &[u8]) -> Option<(Response, usize)> {
    let end = find(data, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let body = &data[end + 4..];
    let len = if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        // Complete once the last (empty) chunk and the blank line are in.
        if body.starts_with(b"0\r\n\r\n") {
            5
        } else {
            find(body, b"\r\n0\r\n\r\n")? + 7
        }
    } else {
        header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    if body.len() < len {
        return None;
    }
    let r = parse_responses(&data[..end + 4 + len]).into_iter().next()?;
    Some((r, end + 4 + len))
}
