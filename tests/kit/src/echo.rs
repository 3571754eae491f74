//! The echoing upstream: a small HTTP/1.1 server on 127.0.0.1:0 that answers
//! every request with what it received (request line, headers, body length),
//! counts connections and keeps every request line, and answers WebSocket
//! upgrades (then echoes bytes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::http::find;

/// A small HTTP/1.1 upstream on 127.0.0.1:0 that answers every request with
/// its request line, headers and body length (keep-alive, Content-Length).
/// `101` is answered to WebSocket upgrades, then bytes are echoed.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    /// How many TCP connections it accepted (to see upstream keep-alive).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Every request line it received, in order (to see what was smuggled).
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl EchoUpstream {
    /// The request lines received so far.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn start() -> EchoUpstream {
        Self::start_with(false)
    }

    /// One that answers 403 to a WebSocket upgrade instead of 101.
    pub fn start_refusing_upgrades() -> EchoUpstream {
        Self::start_with(true)
    }

    fn start_with(refuse_upgrades: bool) -> EchoUpstream {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let counter = connections.clone();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let seen = seen.clone();
                std::thread::spawn(move || serve_echo(conn, &seen, refuse_upgrades));
            }
        });
        EchoUpstream {
            addr,
            connections,
            requests,
        }
    }
}

fn serve_echo(mut conn: TcpStream, seen: &std::sync::Mutex<Vec<String>>, refuse_upgrades: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Read a request head.
        let end = loop {
            if let Some(e) = find(&buf, b"\r\n\r\n") {
                break e;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        if let Ok(mut s) = seen.lock() {
            s.push(head.lines().next().unwrap_or("").to_string());
        }
        let lower = head.to_ascii_lowercase();
        let content_length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = lower
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let upgrade = lower
            .lines()
            .any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
        // Read the body.
        let mut body_len = 0usize;
        if let Some(n) = content_length {
            while buf.len() < n {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            buf.drain(..n);
            body_len = n;
        } else if chunked {
            loop {
                let Some(le) = find(&buf, b"\r\n") else {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    continue;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&buf[..le])
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim(),
                    16,
                )
                .unwrap_or(0);
                while buf.len() < le + 2 + size + 2 {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                buf.drain(..le + 2 + size + 2);
                body_len += size;
                if size == 0 {
                    break;
                }
            }
        }
        if upgrade && !refuse_upgrades {
            let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n";
            if conn.write_all(resp.as_bytes()).is_err() {
                return;
            }
            if !buf.is_empty() && conn.write_all(&buf).is_err() {
                return;
            }
            loop {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let body = format!("{head}\r\nx-echo-body-length: {body_len}\r\n");
        let status = if upgrade { "403 Forbidden" } else { "200 OK" };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
