//! The test kit: everything the integration tests and the benchmarks share,
//! one home each.
//!
//! - [`config`]: the one builder of test configs ([`TestConfig`]).
//! - [`gateway`]: a real stepgate server on free ports ([`TestGateway`]) and
//!   sessions made through its store.
//! - [`http`]: the raw HTTP/1.1 client and response parser.
//! - [`echo`]: the echoing upstream.
//! - [`authenticator`]: the software-authenticator driver (`create`/`get`
//!   with a `clientDataJSON` the test controls, and the finish bodies).
//! - [`net_browser`]: a browser over HTTP (cookie jars, sign-in as a browser does it).
//! - [`portal`]: an in-process portal harness and browser (`portal::handle`).
//! - [`handmade`]: a hand-made authenticator for attestation formats.
//! - [`apps`]: real app clients and front proxies around the recipes.
//! - [`redis`], [`sentinel`]: private `redis-server`s; [`traffic`]: request
//!   loops; [`binary`]: the built `stepgate`; [`clock`]: a clock tests move.
//!
//! Below: temp dirs, free ports, waiting for a port, a runtime, child
//! processes, a cookie jar's rule.

pub mod apps;
pub mod authenticator;
pub mod binary;
pub mod clock;
pub mod config;
pub mod echo;
pub mod gateway;
pub mod handmade;
pub mod http;
pub mod net_browser;
pub mod portal;
pub mod redis;
pub mod sentinel;
pub mod traffic;

pub use config::*;
pub use echo::*;
pub use gateway::*;
pub use http::*;
pub use net_browser::*;
pub use redis::*;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh temporary directory, removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    match tempfile::Builder::new().prefix("stepgate-test-").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temp dir: {e}"),
    }
}

/// Bytes of a base64url text (padded or not); nothing for a text that is not.
pub fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_default()
}

/// The stepgate repository (the kit lives in its `tests/kit/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `stepgate` binary cargo built beside the running test or benchmark
/// binary (which lives in the same profile's `deps/`). Cargo builds a
/// package's binaries before its integration tests and benchmarks.
pub fn stepgate_exe() -> std::path::PathBuf {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => panic!("no path for the running binary: {e}"),
    };
    let mut dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("stepgate{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no stepgate binary at {} (cargo build)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot find a free port: {e}"),
    }
}

/// A current-thread tokio runtime for a synchronous test.
pub fn tokio_rt() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("tokio: {e}"),
    }
}

/// Wait until something accepts connections on `addr` (at most 10 s).
pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr}");
}

/// Ask `status` every 20 ms until it answers `ended`. Until then every answer
/// must be 200, and only for `within` after `since`: a change made at
/// `since` (a revocation, a sign-out, a flagged passkey) reaches the server
/// asked in time, and nothing but the old answer comes meanwhile.
pub fn until_status(
    ended: u16,
    since: Instant,
    within: Duration,
    what: &str,
    mut status: impl FnMut() -> u16,
) {
    loop {
        let s = status();
        if s == ended {
            return;
        }
        assert_eq!(s, 200, "{what}");
        assert!(
            since.elapsed() < within,
            "{what}: still answered 200 {within:?} after the change"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed when the test ends, even on a failed assert.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a browser's cookie jar for one host does with a `Set-Cookie` value:
/// keep the cookie, or forget it when it is cleared.
pub fn remember(jar: &mut std::collections::HashMap<String, String>, set_cookie: &str) {
    let first = set_cookie.split(';').next().unwrap_or("");
    if let Some((name, value)) = first.split_once('=') {
        if value.is_empty() || set_cookie.contains("Max-Age=0") {
            jar.remove(name);
        } else {
            jar.insert(name.to_string(), value.to_string());
        }
    }
}

/// Spawn `cmd` (no standard input or output) as a child killed on drop.
pub fn spawn(cmd: &mut Command, what: &str) -> ChildGuard {
    match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => ChildGuard(c),
        Err(e) => panic!("cannot start {what} (is it installed? .ci/run installs it): {e}"),
    }
}
