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
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        Conn {
            stream,
            pending: Vec::new(),
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

/// One complete response with a Content-Length body at the start of `data`.
fn parse_one(data: &[u8]) -> Option<(Response, usize)> {
    let end = find(data, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if data.len() < end + 4 + len {
        return None;
    }
    let r = parse_responses(&data[..end + 4 + len]).into_iter().next()?;
    Some((r, end + 4 + len))
}
