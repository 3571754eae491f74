//! Building and running the pingora server: the proxy listener (HTTP, plus
//! TLS when configured) and the admin listener (`/metrics`, `/healthz`, `/readyz`).
//!
//! [`run`] blocks until shutdown. `stepgate serve` stops on signals (SIGTERM:
//! graceful, in-flight requests finish; SIGINT: fast); tests start a server in
//! a thread with [`spawn`] and stop it with [`ServerHandle::stop`].
//!
//! Zero-downtime restart (pingora's graceful upgrade): a new process started
//! with [`ServeOptions::upgrade`] waits on the upgrade socket; SIGQUIT to the
//! running one makes it hand over its listening sockets (proxy, TLS, admin)
//! there. Both accept from the same sockets for a few seconds, so no connection
//! is refused; then the old one stops accepting, lets in-flight requests and open
//! WebSockets run for the drain timeout, and exits. Each process tells systemd
//! (`NOTIFY_SOCKET`) `MAINPID` and `READY=1` once it holds its sockets.

pub mod reload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::Notify;

use crate::gateway::Gateway;
use crate::proxy::Proxy;
use crate::telemetry::metrics;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS listener on {addr}: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "upgrade socket {path}: its directory is writable by other users, who could take the listening sockets; use --upgrade-sock in a private directory"
    )]
    UpgradeSocket { path: PathBuf },
}

/// How a running server is told to stop.
pub enum Stop {
    /// Unix signals: SIGTERM graceful, SIGINT fast, SIGQUIT graceful upgrade.
    Signals,
    /// A notification from [`ServerHandle::stop`] (fast shutdown).
    Notify(Arc<Notify>),
}

/// Tuning that differs between production and tests.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads per listener service.
    pub threads: usize,
    /// After SIGTERM or a handover: how long in-flight requests and open
    /// WebSockets get before runtimes stop (whole seconds).
    pub grace_period: Duration,
    /// The Unix socket where listening sockets are handed over on SIGQUIT.
    pub upgrade_sock: PathBuf,
    /// Take the listening sockets over from the process running now (which is
    /// then sent SIGQUIT) instead of binding them.
    pub upgrade: bool,
}

/// The drain timeout `serve` uses unless told otherwise.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            threads: crate::config::compile::DEFAULT_THREADS,
            grace_period: DEFAULT_GRACE_PERIOD,
            upgrade_sock: PathBuf::from(DEFAULT_UPGRADE_SOCK),
            upgrade: false,
        }
    }
}

/// Where the listening sockets are handed over, relative to the working directory.
pub const DEFAULT_UPGRADE_SOCK: &str = "stepgate-upgrade.sock";

struct NotifyStop(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for NotifyStop {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// Run the gateway until it is told to stop.
pub fn run(gw: Arc<Gateway>, opts: ServeOptions, stop: Stop) -> Result<(), ServeError> {
    check_upgrade_dir(&opts.upgrade_sock)?;
    let server = build(gw, &opts)?;
    let args = match stop {
        Stop::Signals => RunArgs::default(),
        Stop::Notify(n) => RunArgs {
            shutdown_signal: Box::new(NotifyStop(n)),
        },
    };
    // This process holds its sockets now: systemd (Type=notify) tracks it from here,
    // also when it took them over from the process systemd started.
    let pid = std::process::id();
    if let Err(e) = sd_notify::notify(&[
        sd_notify::NotifyState::MainPid(pid),
        sd_notify::NotifyState::Ready,
    ]) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
    server.run(args);
    Ok(())
}

/// A server running in a background thread.
pub struct ServerHandle {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl ServerHandle {
    /// Stop the server and wait for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Start the gateway in a background thread; listeners are bound (or the
/// error reported) before this returns.
pub fn spawn(gw: Arc<Gateway>, opts: ServeOptions) -> Result<ServerHandle, ServeError> {
    let stop = Arc::new(Notify::new());
    let server = build(gw, &opts)?;
    let n = stop.clone();
    let thread = std::thread::Builder::new()
        .name("stepgate-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(NotifyStop(n)),
            });
            Ok(())
        })
        .map_err(ServeError::Thread)?;
    Ok(ServerHandle {
        stop,
        thread: Some(thread),
    })
}

/// The listening sockets go to whoever listens on the upgrade socket: refuse a
/// directory where other users could put theirs (world-writable, like /tmp).
fn check_upgrade_dir(sock: &std::path::Path) -> Result<(), ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match sock.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o002 != 0 => Err(ServeError::UpgradeSocket {
            path: sock.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Read buffering for plain-HTTP downstream connections: none.
///
/// pingora gives every accepted connection a 64 KiB L4 read buffer by default,
/// held for the connection's whole life: 1,000 idle keep-alive connections cost
/// about 64 MiB for it alone. The HTTP/1 parser reads request heads into its own
/// buffer (4 KiB, grown on demand) and bodies into a body buffer, so on plain
/// TCP the extra layer mostly adds a copy. TLS listeners keep pingora's default
/// (TLS reads 16 KiB records, where buffering saves syscalls).
const PLAIN_L4_READ_BUFFER: usize = 0;

/// The plain-HTTP proxy listener on `addr`.
fn plain_listener(addr: SocketAddr) -> ListenerConfig {
    ListenerConfig::tcp(addr.to_string())
        .l4_buffer(L4BufferSettings::default().read(PLAIN_L4_READ_BUFFER))
}

/// Check that an address can be bound, so a taken port is a clear error
/// rather than a failure inside pingora's listener setup.
fn probe(addr: SocketAddr) -> Result<(), ServeError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| ServeError::Bind { addr, source })
}

fn build(gw: Arc<Gateway>, opts: &ServeOptions) -> Result<Server, ServeError> {
    let snapshot = gw.snapshot();
    let boot = &snapshot.config.boot;
    let conf = ServerConf {
        threads: opts.threads.max(1),
        grace_period_seconds: Some(opts.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: opts.upgrade_sock.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    if opts.upgrade {
        tracing::info!(socket = %opts.upgrade_sock.display(), "waiting for the running stepgate's listening sockets (send it SIGQUIT)");
    }
    // On upgrade: receive the sockets (the process exits if none come within 5 s).
    server.bootstrap();
    // Addresses taken over are in use by design; fresh ones must be free.
    let probe = |addr| if opts.upgrade { Ok(()) } else { probe(addr) };

    probe(boot.listen)?;
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(gw.clone()),
        "stepgate proxy",
    );
    proxy.add_listener(plain_listener(boot.listen));
    if let Some(addr) = boot.tls_listen {
        probe(addr)?;
        let settings = crate::tls::settings(gw.certificates()).map_err(|e| ServeError::Tls {
            addr,
            message: e.to_string(),
        })?;
        proxy.add_tls_with_settings(&addr.to_string(), None, settings);
    }
    server.add_service(proxy);

    if let Some(admin_addr) = boot.admin_listen {
        probe(admin_addr)?;
        let mut admin = Service::new("stepgate admin".to_string(), Admin { gw: gw.clone() });
        admin.add_tcp(&admin_addr.to_string());
        server.add_service(admin);
    }
    tracing::info!(listen = %boot.listen, tls = ?boot.tls_listen, admin = ?boot.admin_listen, "stepgate serving");
    Ok(server)
}

/// The admin listener.
struct Admin {
    gw: Arc<Gateway>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = match path.as_str() {
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics().render().into_bytes(),
            ),
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let started = std::time::Instant::now();
                let ping = tokio::time::timeout(READY_TIMEOUT, self.gw.store.ping()).await;
                let ok = matches!(ping, Ok(Ok(())));
                metrics().store_call("ping", ok, started.elapsed());
                if ok {
                    (200, "text/plain", b"ready\n".to_vec())
                } else {
                    (503, "text/plain", b"store unavailable\n".to_vec())
                }
            }
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        let len = body.len();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
