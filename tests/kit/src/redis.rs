//! A private `redis-server` on a free 127.0.0.1 port in its own temp dir,
//! killed on drop: every test that needs Redis starts its own.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir};

/// A private `redis-server` on 127.0.0.1, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// `appendfsync` of the append-only file; `None`: no persistence.
    appendfsync: Option<&'static str>,
    /// More `redis-server` arguments (e.g. `--replicaof`).
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Start one with no persistence in a temp dir.
    pub fn start() -> RedisServer {
        Self::start_with(None, &[])
    }

    /// Start one with `extra` arguments, writing an append-only file when
    /// `appendfsync` (`always`, `everysec`) is given.
    pub fn start_with(appendfsync: Option<&'static str>, extra: &[&str]) -> RedisServer {
        let tmp = temp_dir();
        let dir = tmp.path().to_path_buf();
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            dir,
            appendfsync,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            _tmp: Some(tmp),
        };
        s.spawn();
        s
    }

    /// Start one that writes an append-only file (fsync always) in a temp dir,
    /// so that it can be killed and restarted with its data.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(Some("always"), &[])
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--protected-mode")
            .arg("yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match self.appendfsync {
            Some(sync) => cmd.args(["--appendonly", "yes", "--appendfsync", sync]),
            None => cmd.args(["--appendonly", "no"]),
        };
        cmd.args(&self.extra);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server not found: apt-get install redis-server")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if Instant::now() > deadline {
                panic!("redis-server did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kill it hard (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop (`STOP`) or resume (`CONT`) it with a signal: a paused server keeps
    /// its connections open but answers nothing, like a stalled replica.
    pub fn signal(&self, name: &str) {
        let Some(c) = &self.child else { return };
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(c.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} redis-server failed");
    }

    /// Start it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
    }
}
