//! Real app protocol endpoints and real clients for the app tests, each started
//! on free 127.0.0.1 ports in a temp dir and killed on drop:
//!
//! - [`GitServer`]: `git http-backend` (smart HTTP) behind `fcgiwrap` and nginx,
//!   with one bare repository that accepts pushes; [`GitClient`] runs the `git` CLI.
//! - [`DavServer`]: nginx's WebDAV module (with the `dav_ext` module for
//!   PROPFIND); [`Rclone`] runs `rclone` against it as a `webdav` remote.
//! - [`Radicale`]: the CalDAV/CardDAV server, signing users in from the
//!   `X-Remote-User` header (`[auth] type = http_x_remote_user`).
//!
//! WebSockets need nothing here: [`super::EchoUpstream`] answers upgrades.
//! For the tests through stepgate: [`start_recipe`] runs an app recipe from
//! `docs/apps/` against these servers, [`mint_token`] mints a client token
//! through the account page's API.
//! A missing program stops the test with the Debian package that provides it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::authenticator::{Client, assertion};
use super::{
    ChildGuard, NetBrowser, TestConfig, TestGateway, csrf_of, free_port, spawn, temp_dir,
    wait_for_port,
};

/// The WebDAV PROPFIND module of Debian's nginx (`libnginx-mod-http-dav-ext`).
const DAV_EXT_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

/// The path of `program` on `PATH`, or a panic naming the Debian `package`.
pub fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => {
            panic!("`{program}` is not installed: apt-get install {package} (.ci/run installs it)")
        }
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("write {}: {e}", path.display());
    }
}

/// Run a command to completion (for set-up steps that must succeed).
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {what}: {e}"),
    };
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// nginx in the foreground (one process, as root) with the given `server` blocks.
pub struct Nginx {
    pub port: u16,
    _child: ChildGuard,
}

impl Nginx {
    /// Start nginx in `dir` with `servers` (which may use `{port}` for its port),
    /// loading the dynamic `modules` (absolute paths) first.
    pub fn start(dir: &Path, servers: &str, modules: &[&str]) -> Nginx {
        require("nginx", "nginx-light");
        let port = free_port();
        let d = dir.display();
        let mut conf = String::new();
        for m in modules {
            conf.push_str(&format!("load_module {m};\n"));
        }
        conf.push_str(&format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
            servers.replace("{port}", &port.to_string())
        ));
        let file = dir.join("nginx.conf");
        write(&file, &conf);
        let child = spawn(
            Command::new("nginx")
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&file)
                .arg("-e")
                .arg(dir.join("nginx-error.log")),
            "nginx",
        );
        wait_for_port(([127, 0, 0, 1], port).into());
        Nginx {
            port,
            _child: child,
        }
    }
}

/// `git http-backend` behind fcgiwrap and nginx, serving bare repositories
/// under `/` (e.g. `http://127.0.0.1:PORT/demo.git`). Pushes are accepted;
/// nginx hands the request's `Remote-User` header to git as `REMOTE_USER`, so a
/// push through stepgate is recorded under the signed-in user.
pub struct GitServer {
    pub addr: SocketAddr,
    /// The directory holding the bare repositories.
    pub root: PathBuf,
    /// The repository's path under `root` (`demo.git`, `alice/demo.git`).
    repo: String,
    _nginx: Nginx,
    _fcgiwrap: ChildGuard,
    _dir: tempfile::TempDir,
}

impl GitServer {
    /// Start with one empty bare repository, `demo.git` (default branch `main`).
    pub fn start() -> GitServer {
        Self::start_at("demo.git")
    }

    /// Start with one empty bare repository at `repo` under the root
    /// (`alice/demo.git` is served as `/alice/demo.git`, as Gitea names them).
    pub fn start_at(repo_path: &str) -> GitServer {
        require("git", "git");
        require("fcgiwrap", "fcgiwrap");
        let backend = git_http_backend();
        let dir = temp_dir();
        let root = dir.path().join("repos");
        let repo = root.join(repo_path);
        run_ok(
            Command::new("git")
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&repo),
            "git init --bare",
        );
        for setting in ["http.receivepack", "core.logAllRefUpdates"] {
            run_ok(
                Command::new("git")
                    .arg("-C")
                    .arg(&repo)
                    .args(["config", setting, "true"]),
                "git config",
            );
        }
        let socket = dir.path().join("fcgiwrap.sock");
        let fcgiwrap = spawn(
            Command::new("fcgiwrap")
                .args(["-c", "2", "-s"])
                .arg(format!("unix:{}", socket.display())),
            "fcgiwrap",
        );
        wait_for_file(&socket, "fcgiwrap's socket");
        let server = format!(
            "server {{\n  listen 127.0.0.1:{{port}};\n  client_max_body_size 0;\n  location / {{\n\
             fastcgi_pass unix:{sock};\n\
             fastcgi_param SCRIPT_FILENAME {backend};\n\
             fastcgi_param GIT_PROJECT_ROOT {root};\n\
             fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
             fastcgi_param PATH_INFO $uri;\n\
             fastcgi_param QUERY_STRING $query_string;\n\
             fastcgi_param REQUEST_METHOD $request_method;\n\
             fastcgi_param CONTENT_TYPE $content_type;\n\
             fastcgi_param CONTENT_LENGTH $content_length;\n\
             fastcgi_param REMOTE_ADDR $remote_addr;\n\
             fastcgi_param REMOTE_USER $http_remote_user;\n\
             fastcgi_param SERVER_PROTOCOL $server_protocol;\n  }}\n}}\n",
            sock = socket.display(),
            backend = backend.display(),
            root = root.display(),
        );
        let nginx = Nginx::start(dir.path(), &server, &[]);
        GitServer {
            addr: ([127, 0, 0, 1], nginx.port).into(),
            root,
            repo: repo_path.to_string(),
            _nginx: nginx,
            _fcgiwrap: fcgiwrap,
            _dir: dir,
        }
    }

    /// The bare repository.
    pub fn repo(&self) -> PathBuf {
        self.root.join(&self.repo)
    }

    /// `git log -1 --format=FORMAT REF` in the bare repository, trimmed.
    pub fn log(&self, format: &str, rev: &str) -> String {
        let out = run_ok(
            Command::new("git").arg("-C").arg(self.repo()).args([
                "log",
                "-1",
                &format!("--format={format}"),
                rev,
            ]),
            "git log",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The reflog entries of `main` in the bare repository (who pushed, when
    /// `core.logAllRefUpdates` is on), newest first.
    pub fn reflog(&self) -> String {
        let out = run_ok(
            Command::new("git").arg("-C").arg(self.repo()).args([
                "reflog",
                "show",
                "--format=%gn %gs",
                "main",
            ]),
            "git reflog",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `git-http-backend` of the `git` on `PATH`.
fn git_http_backend() -> PathBuf {
    let out = run_ok(Command::new("git").arg("--exec-path"), "git --exec-path");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("git-http-backend");
    assert!(
        path.is_file(),
        "{} is missing: apt-get install git",
        path.display()
    );
    path
}

fn wait_for_file(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} did not appear at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `git` CLI with a private `HOME` and no system config; it never prompts.
pub struct GitClient {
    pub dir: tempfile::TempDir,
    /// Extra `-c key=value` settings for every command (e.g. `http.curloptResolve`).
    pub settings: Vec<String>,
}

impl GitClient {
    /// A git client in a fresh directory (the test fails when git is missing).
    pub fn installed() -> GitClient {
        require("git", "git");
        GitClient {
            dir: temp_dir(),
            settings: vec![
                "user.name=Test User".into(),
                "user.email=test@home.lab".into(),
                "init.defaultBranch=main".into(),
            ],
        }
    }

    /// Resolve `host:port` to 127.0.0.1, so URLs may name app hosts.
    pub fn resolve(&mut self, host: &str, port: u16) {
        self.settings
            .push(format!("http.curloptResolve={host}:{port}:127.0.0.1"));
    }

    /// Run `git ARGS` in `cwd` (relative to the client's dir); the output, whatever the exit.
    pub fn run(&self, cwd: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("git");
        for s in &self.settings {
            cmd.arg("-c").arg(s);
        }
        let out = cmd
            .args(args)
            .current_dir(self.dir.path().join(cwd))
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => o,
            Err(e) => panic!("cannot run git: {e}"),
        }
    }

    /// [`GitClient::run`] that must succeed; its stdout.
    pub fn ok(&self, cwd: &str, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write `text` to `path` under the client's dir.
    pub fn write(&self, path: &str, text: &str) {
        write(&self.dir.path().join(path), text);
    }
}

/// nginx's WebDAV module serving a directory under `/dav/` (PUT, DELETE, MKCOL,
/// COPY, MOVE, and PROPFIND/OPTIONS from `dav_ext`).
pub struct DavServer {
    pub addr: SocketAddr,
    /// What `/dav/` serves.
    pub files: PathBuf,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
}

impl DavServer {
    pub fn start() -> DavServer {
        require("nginx", "nginx-light");
        assert!(
            Path::new(DAV_EXT_MODULE).is_file(),
            "nginx's PROPFIND module {DAV_EXT_MODULE} is missing: \
             apt-get install libnginx-mod-http-dav-ext (.ci/run installs it)"
        );
        let dir = temp_dir();
        let files = dir.path().join("www").join("dav");
        if let Err(e) = std::fs::create_dir_all(&files) {
            panic!("{e}");
        }
        let server = format!(
            "server {{\n  listen 127.0.0.1:{{port}};\n  root {www};\n  client_max_body_size 0;\n\
             location /dav/ {{\n    dav_methods PUT DELETE MKCOL COPY MOVE;\n\
             dav_ext_methods PROPFIND OPTIONS;\n    create_full_put_path on;\n\
             dav_access user:rw group:r all:r;\n  }}\n}}\n",
            www = dir.path().join("www").display()
        );
        let nginx = Nginx::start(dir.path(), &server, &[DAV_EXT_MODULE]);
        DavServer {
            addr: ([127, 0, 0, 1], nginx.port).into(),
            files,
            _nginx: nginx,
            _dir: dir,
        }
    }
}

/// `rclone` with an empty private config, talking to one WebDAV URL.
pub struct Rclone {
    pub dir: tempfile::TempDir,
    /// Backend flags for every command (`--webdav-url`, credentials…).
    pub flags: Vec<String>,
    /// An HTTP proxy every request goes through (see [`Rclone::through`]).
    proxy: Option<SocketAddr>,
}

impl Rclone {
    /// A client for the WebDAV collection at `url` (a vendor-neutral server).
    pub fn new(url: &str) -> Rclone {
        require("rclone", "rclone");
        Rclone {
            dir: temp_dir(),
            flags: vec![
                format!("--webdav-url={url}"),
                "--webdav-vendor=other".into(),
            ],
            proxy: None,
        }
    }

    /// Send every request to `proxy` in absolute form (`PROPFIND http://dav.test/…`,
    /// `Host: dav.test`). rclone has no way to resolve a host name to a chosen
    /// address, and drops a `Host` given with `--header`; through a proxy, a URL
    /// may name an app host that only the proxy (stepgate) knows.
    pub fn through(&mut self, proxy: SocketAddr) {
        self.proxy = Some(proxy);
    }

    /// Run `rclone ARGS` where `:webdav:` names the remote; the output, whatever the exit.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("rclone");
        if let Some(p) = self.proxy {
            cmd.env("HTTP_PROXY", format!("http://{p}"))
                .env("NO_PROXY", "");
        }
        let out = cmd
            .args(args)
            .args(&self.flags)
            .args([
                "--retries",
                "1",
                "--low-level-retries",
                "1",
                "--contimeout",
                "5s",
            ])
            .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"))
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => o,
            Err(e) => panic!("cannot run rclone: {e}"),
        }
    }

    /// [`Rclone::run`] that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rclone {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sign in to the WebDAV server as `user` with `password` (obscured, as
    /// rclone wants it on the command line).
    pub fn login(&mut self, user: &str, password: &str) {
        let obscured = self.ok(&["obscure", password]);
        self.flags.push(format!("--webdav-user={user}"));
        self.flags
            .push(format!("--webdav-pass={}", obscured.trim()));
    }

    /// A local file under the client's dir.
    pub fn local(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Make `docs/`, put `notes.txt` holding `text` there, list it, move it to
    /// `moved.txt`, list and read it back (MKCOL, PUT, PROPFIND, MOVE, GET).
    pub fn round_trip(&self, text: &str) {
        write(&self.local("notes.txt"), text);
        self.ok(&["mkdir", ":webdav:docs"]);
        self.ok(&[
            "copyto",
            &self.local("notes.txt").to_string_lossy(),
            ":webdav:docs/notes.txt",
        ]);
        assert_eq!(self.ok(&["lsf", ":webdav:docs"]), "notes.txt\n");
        self.ok(&["moveto", ":webdav:docs/notes.txt", ":webdav:docs/moved.txt"]);
        assert_eq!(self.ok(&["lsf", ":webdav:docs"]), "moved.txt\n");
        assert_eq!(self.ok(&["cat", ":webdav:docs/moved.txt"]), text);
    }
}

/// One calendar event (an iCalendar object Radicale accepts in a calendar).
pub const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//stepgate//test//EN\r\n\
BEGIN:VEVENT\r\nUID:event-1@stepgate\r\nDTSTAMP:20261201T100000Z\r\n\
DTSTART:20261224T180000Z\r\nDTEND:20261224T200000Z\r\nSUMMARY:Dinner\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

/// Radicale (CalDAV/CardDAV) taking the user from `X-Remote-User`, each user
/// owning only their own collections (`[rights] type = owner_only`).
pub struct Radicale {
    pub addr: SocketAddr,
    /// Where collections live on disk: `collection-root/USER/NAME/`.
    pub collections: PathBuf,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Radicale {
    pub fn start() -> Radicale {
        require("radicale", "radicale");
        let dir = temp_dir();
        let port = free_port();
        let storage = dir.path().join("collections");
        let config = dir.path().join("radicale.conf");
        write(
            &config,
            &format!(
                "[server]\nhosts = 127.0.0.1:{port}\n\n\
                 [auth]\ntype = http_x_remote_user\n\n\
                 [rights]\ntype = owner_only\n\n\
                 [storage]\nfilesystem_folder = {}\n\n\
                 [web]\ntype = none\n",
                storage.display()
            ),
        );
        let child = spawn(
            Command::new("radicale")
                .arg("--config")
                .arg(&config)
                .env("HOME", dir.path()),
            "radicale",
        );
        wait_for_port(([127, 0, 0, 1], port).into());
        Radicale {
            addr: ([127, 0, 0, 1], port).into(),
            collections: storage.join("collection-root"),
            _child: child,
            _dir: dir,
        }
    }

    /// The directory of `user`'s collection `name`, if it exists.
    pub fn collection(&self, user: &str, name: &str) -> Option<PathBuf> {
        let p = self.collections.join(user).join(name);
        p.is_dir().then_some(p)
    }
}

/// What a WebSocket upgrade got: the response head, and the bytes echoed back
/// after sending `payload` (empty unless the answer was `101`).
pub struct WsExchange {
    pub head: String,
    pub echoed: Vec<u8>,
}

impl WsExchange {
    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Open a WebSocket on `addr` for `host` and `path` (with `headers`), and on
/// `101` send `payload` and read as many bytes back (an echoing upstream).
pub fn websocket_echo(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> WsExchange {
    use std::io::{Read, Write};
    let mut s = match std::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        panic!("write: {e}");
    }
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break got.len(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut echoed = got[end..].to_vec();
    if head.starts_with("HTTP/1.1 101") {
        if let Err(e) = s.write_all(payload) {
            panic!("write: {e}");
        }
        while echoed.len() < payload.len() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => echoed.extend_from_slice(&buf[..n]),
            }
        }
    }
    WsExchange { head, echoed }
}

/// A gateway running the recipe `docs/apps/NAME.yaml` as written — its users,
/// upstreams and rules — with each upstream URL in `urls` pointed at a test
/// server, a portal at `https://auth.test` and a trusted proxy (127.0.0.1)
/// that says https, as [`NetBrowser`] talks to it.
pub fn start_recipe(name: &str, urls: &[(&str, SocketAddr)]) -> TestGateway {
    let file = crate::repo_root().join(format!("docs/apps/{name}.yaml"));
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", file.display()),
    };
    let Some(start) = text.find("\nusers:") else {
        panic!("{}: no users: section", file.display());
    };
    let mut body = text[start..].to_string();
    for (url, addr) in urls {
        assert!(body.contains(url), "{name}.yaml does not name {url}");
        body = body.replace(url, &format!("http://{addr}"));
    }
    start_behind_proxy(&body)
}

/// A gateway whose config is `rest` after a head with a portal at
/// `https://auth.test` (as [`NetBrowser`] talks to it), a trusted proxy
/// (127.0.0.1) that says https, and a SQLite store in its temp dir.
pub fn start_behind_proxy(rest: &str) -> TestGateway {
    TestGateway::start(TestConfig::behind_proxy().body(rest))
}

/// Mint a client token on the account page's API as `b`'s signed-in user,
/// with the assertion `key` makes for it; returns the token's id and secret.
pub fn mint_token(
    b: &mut NetBrowser,
    key: &mut SoftPasskey,
    label: &str,
    rules: &[&str],
) -> (String, String) {
    let begun = b.api(
        "tokens/begin",
        &json!({ "label": label, "rules": rules, "days": 30 }),
    );
    let done = b.api("tokens/finish", &assertion(key, &begun, &Client::default()));
    let id = done["id"].as_str().unwrap_or_default().to_string();
    let secret = done["token"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("sgt_") && !id.is_empty(), "{done}");
    (id, secret)
}

/// Revoke token `id` on the account page as `b`'s user (the form's CSRF token
/// read from the page, as a browser would send it).
pub fn revoke_on_account_page(b: &mut NetBrowser, id: &str) {
    let page = b.get("https://auth.test/.stepgate/account");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains(id),
        "the page lists the token: {}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let form = format!("csrf={csrf}&id={id}");
    let r = b.request(
        "POST",
        "https://auth.test/.stepgate/account/revoke-token",
        &form,
        "application/x-www-form-urlencoded",
    );
    assert_eq!(r.status, 303, "{r:?}");
}

/// `Authorization: Basic` for `user` and `password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}
