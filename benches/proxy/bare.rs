//! The inline ceiling: a bare pingora proxy (a `ProxyHttp` with only
//! `upstream_peer`), built into the bench binary with the same allocator and
//! profile as stepgate, and started as a child process of the bench (the bench
//! runs its own executable with `STEPGATE_BENCH_BARE_PROXY` set).
//!
//! It does what any pingora proxy must and nothing else: one peer, made once,
//! and pingora's default listener settings. Everything stepgate adds on top
//! (request facts, routing, the session check, header hygiene, metrics) is
//! what its rows pay beyond this one.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};

use crate::systems::Server as Started;
use crate::util::{free_port, spawn, wait_for_port};

/// The environment variable that turns the bench binary into the bare proxy:
/// `LISTEN_PORT UPSTREAM_PORT THREADS`.
const MODE: &str = "STEPGATE_BENCH_BARE_PROXY";

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// When this process was started as the bare proxy: serve until SIGINT/SIGTERM
/// and exit; otherwise return at once.
pub fn serve_if_asked() {
    let Ok(spec) = std::env::var(MODE) else {
        return;
    };
    let n: Vec<u64> = spec
        .split_whitespace()
        .map(|x| x.parse().unwrap_or_else(|_| panic!("{MODE}={spec}")))
        .collect();
    let [listen, upstream, threads] = n[..] else {
        panic!("{MODE}={spec}: want LISTEN_PORT UPSTREAM_PORT THREADS");
    };
    let conf = ServerConf {
        threads: threads as usize,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let bare = Bare {
        upstream: SocketAddr::from(([127, 0, 0, 1], upstream as u16)),
    };
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, bare, "bare");
    proxy.add_tcp(&format!("127.0.0.1:{listen}"));
    server.add_service(proxy);
    server.run_forever();
}

/// Start the bare proxy in front of the app on `app`, with `threads` threads.
pub fn start(root: &Path, app: u16, threads: usize) -> Started {
    start_under(root, app, threads, &[])
}

/// [`start`], run under `wrap` (e.g. `valgrind --tool=callgrind …`) when not empty.
pub fn start_under(root: &Path, app: u16, threads: usize, wrap: &[String]) -> Started {
    let port = free_port();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let log = root.join(format!("bare-pingora-{port}.log"));
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut proc = spawn(
        "bare pingora",
        cmd.env(MODE, format!("{port} {app} {threads}")),
        &log,
    );
    wait_for_port(port, &mut proc, &log);
    Started { port, proc }
}
