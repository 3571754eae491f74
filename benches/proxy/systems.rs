//! The systems under test, each started on free loopback ports in its own
//! temp dir: the nginx upstream, plain nginx, an nginx `return 200` stub (the
//! auth server of the forward-auth ceilings), stepgate (SQLite or Redis), and
//! the front proxies from `deploy/`: nginx + auth_request, Caddy +
//! forward_auth, Traefik + ForwardAuth, each asking either stepgate or the stub.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::passkey::{APP_HOST, PORTAL_HOST};
use crate::util::{Proc, free_port, run, spawn, wait_for_port, write};

/// Worker processes / threads for every server (nginx, Caddy's GOMAXPROCS, stepgate's default).
pub const WORKERS: usize = 2;

/// A started server.
pub struct Server {
    pub port: u16,
    pub proc: Proc,
}

fn subdir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    d
}

fn deploy(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replace `from`, which must be present (the deploy files must not drift from the bench).
fn subst(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy file no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// nginx in the foreground with `http_body` inside `http {}`.
fn nginx(root: &Path, name: &str, port: u16, http_body: &str) -> Server {
    let dir = subdir(root, name);
    let d = dir.display();
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes {WORKERS};\nworker_rlimit_nofile 8192;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {http_body}\n}}\n"
    );
    let file = dir.join("nginx.conf");
    write(&file, &conf);
    let log = dir.join("stderr.log");
    let mut proc = spawn(
        name,
        Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&file)
            .arg("-e")
            .arg(dir.join("error.log")),
        &log,
    );
    wait_for_port(port, &mut proc, &log);
    Server { port, proc }
}

/// Where the app's nginx says how many connections it accepted (asked directly, never through a proxy).
pub const APP_STATUS: &str = "/.bench-status";

/// How many connections the app has accepted so far: the proxies in front of
/// it should keep theirs alive, not open one per request.
pub fn app_accepts(app: u16) -> u64 {
    let url = format!("http://127.0.0.1:{app}{APP_STATUS}");
    let r = crate::util::Browser::new(app).request("GET", &url, &[], b"");
    // "Active connections: 1\nserver accepts handled requests\n 12 12 40\n…"
    r.body
        .lines()
        .nth(2)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("app status: {}", r.body))
}

/// The app: nginx answering every path with the same 1 KiB static file.
pub fn upstream(root: &Path) -> Server {
    let www = subdir(root, "www");
    write(
        &www.join("1k"),
        &"x".repeat(1023).chars().chain(['\n']).collect::<String>(),
    );
    let port = free_port();
    let body = format!(
        "server {{\n  listen 127.0.0.1:{port} backlog=4096;\n  keepalive_requests 1000000;\n  location / {{ root {}; default_type text/plain; try_files /1k =404; }}\n  location = {APP_STATUS} {{ stub_status; }}\n}}",
        www.display()
    );
    nginx(root, "upstream", port, &body)
}

/// Plain nginx reverse proxy (keep-alive to the app): the ceiling.
pub fn plain_nginx(root: &Path, app: u16) -> Server {
    let port = free_port();
    let body = format!(
        "upstream bench_app {{ server 127.0.0.1:{app}; keepalive 64; }}\n\
         server {{\n  listen 127.0.0.1:{port} backlog=4096;\n  location / {{\n\
         proxy_pass http://bench_app;\n    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n\
         proxy_set_header Host $http_host;\n    proxy_set_header X-Forwarded-For $remote_addr;\n  }}\n}}"
    );
    nginx(root, "nginx-plain", port, &body)
}

/// An auth server that allows everything: nginx answering `return 200` (no
/// body) on every path. A front proxy asking it is that front proxy's ceiling.
pub fn allow_stub(root: &Path) -> Server {
    let port = free_port();
    let body = format!(
        "server {{\n  listen 127.0.0.1:{port} backlog=4096;\n  keepalive_requests 100000;\n  location / {{ return 200; }}\n}}"
    );
    nginx(root, "allow-stub", port, &body)
}

/// nginx + auth_request → `auth` (stepgate or the stub), from `deploy/nginx/stepgate.conf`; the
/// app is reached through a keep-alive upstream block as in [`plain_nginx`]
/// (the deploy file's direct `proxy_pass` opens a connection per request).
pub fn nginx_auth_request(root: &Path, name: &str, port: u16, stepgate: u16, app: u16) -> Server {
    let t = deploy("nginx/stepgate.conf");
    let t = subst(t, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let t = subst(t, "127.0.0.1:9091", &format!("127.0.0.1:{stepgate}"));
    let t = subst(
        t,
        "proxy_pass http://127.0.0.1:3000;",
        "proxy_pass http://bench_app;\n        proxy_set_header Connection \"\";",
    );
    let body = format!("upstream bench_app {{ server 127.0.0.1:{app}; keepalive 64; }}\n{t}");
    nginx(root, name, port, &body)
}

/// Caddy + forward_auth → `auth` (stepgate or the stub), from `deploy/caddy/Caddyfile`.
pub fn caddy(root: &Path, name: &str, port: u16, stepgate: u16, app: u16) -> Server {
    let dir = subdir(root, name);
    let t = deploy("caddy/Caddyfile");
    let t = subst(t, "admin localhost:2019", "admin off\n\tauto_https off");
    let t = subst(
        t,
        "auth.home.lab {",
        &format!("http://auth.home.lab:{port} {{"),
    );
    let t = subst(
        t,
        "app.home.lab {",
        &format!("http://app.home.lab:{port} {{"),
    );
    let t = subst(t, "127.0.0.1:9091", &format!("127.0.0.1:{stepgate}"));
    let t = subst(t, "127.0.0.1:3000", &format!("127.0.0.1:{app}"));
    let file = dir.join("Caddyfile");
    write(&file, &t);
    let log = dir.join("stderr.log");
    let mut proc = spawn(
        "caddy",
        Command::new("caddy")
            .arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .env("GOMAXPROCS", WORKERS.to_string()),
        &log,
    );
    wait_for_port(port, &mut proc, &log);
    Server { port, proc }
}

/// Traefik + ForwardAuth → `auth` (stepgate or the stub), from
/// `deploy/traefik/dynamic.yml` on one plain-HTTP entry point (the routers'
/// `tls: {}` removed, as in the front-proxy tests).
pub fn traefik(root: &Path, name: &str, port: u16, auth: u16, app: u16) -> Server {
    let dir = subdir(root, name);
    let t = deploy("traefik/dynamic.yml");
    let t = subst(t, "127.0.0.1:9091", &format!("127.0.0.1:{auth}"));
    let t = subst(t, "127.0.0.1:3000", &format!("127.0.0.1:{app}"));
    let t = subst(t, "      tls: {}\n", "");
    let file = dir.join("dynamic.yml");
    write(&file, &t);
    let log = dir.join("stderr.log");
    let mut proc = spawn(
        "traefik",
        Command::new("traefik")
            .arg(format!("--entrypoints.web.address=127.0.0.1:{port}"))
            .arg(format!("--providers.file.filename={}", file.display()))
            .arg("--log.level=ERROR")
            .env("HOME", &dir)
            .env("GOMAXPROCS", WORKERS.to_string()),
        &log,
    );
    wait_for_port(port, &mut proc, &log);
    // The entry point listens before the file provider's routers are in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let url = format!("http://{APP_HOST}:{port}/1k");
        let r = crate::util::Browser::new(port).request("GET", &url, &[], b"");
        if r.status != 404 {
            break;
        }
        if std::time::Instant::now() > deadline {
            panic!("traefik did not load its routers within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Server { port, proc }
}

/// Which store a stepgate uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Store {
    Sqlite,
    Redis(u16),
}

/// A stepgate config in `dir` (made if needed): the `app-admin` step-up rule on
/// `/admin/**` and the `app` passkey rule on everything else of the app host,
/// both proxied to `app`; forward-auth is trusted from loopback.
pub fn stepgate_config(
    bin: &Path,
    dir: &Path,
    (port, admin): (u16, u16),
    app: u16,
    store: Store,
    threads: Option<usize>,
    served: &[u16],
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let d = dir.display();
    let key = dir.join("cookie.key");
    if !key.exists() {
        let k = run(Command::new(bin).arg("gen-key"));
        write(&key, &k);
    }
    let store = match store {
        Store::Sqlite => format!("sqlite: {{ path: \"{d}/stepgate.db\" }}"),
        Store::Redis(p) => {
            format!("redis: {{ url: \"redis://127.0.0.1:{p}/0\", prefix: \"bench:\" }}")
        }
    };
    let threads = threads
        .map(|n| format!("threads: {n}\n"))
        .unwrap_or_default();
    // (Only when asked: an older baseline binary knows no `served:`.)
    let served = if served.is_empty() {
        String::new()
    } else {
        format!("served: {{ ports: {served:?} }}\n")
    };
    let yaml = format!(
        r#"{threads}listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
trusted_proxies: [127.0.0.1/32]
{served}portal: {{ url: "http://{PORTAL_HOST}:{port}", rp_name: Bench }}
secrets: {{ cookie_keys: ["{d}/cookie.key"] }}
store: {{ {store} }}
users:
  alice: {{ name: Alice, email: alice@home.lab, groups: [admins] }}
upstreams:
  app: "http://127.0.0.1:{app}"
rules:
  - {{ name: app-public, hosts: [{APP_HOST}], paths: [/public/**], upstream: app, policy: bypass }}
  - name: app-admin
    hosts: [{APP_HOST}]
    paths: [/admin, /admin/**]
    allow: [group:admins]
    upstream: app
    policy: passkey
    step_up: {{ max_age: 1h, scope: rule }}
  - {{ name: app, hosts: [{APP_HOST}], upstream: app, policy: passkey }}
"#
    );
    let file = dir.join(format!("stepgate-{port}.yaml"));
    write(&file, &yaml);
    file
}

/// Copy the SQLite store and cookie key of the stepgate in `from` to `to`, so
/// another stepgate there accepts the same sessions without sharing the file.
pub fn copy_sqlite_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    std::fs::copy(from.join("cookie.key"), to.join("cookie.key"))
        .unwrap_or_else(|e| panic!("copy cookie.key: {e}"));
    let db = rusqlite::Connection::open(from.join("stepgate.db"))
        .unwrap_or_else(|e| panic!("open {}: {e}", from.display()));
    let copy = to.join("stepgate.db");
    db.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
        .unwrap_or_else(|e| panic!("copy the store to {}: {e}", copy.display()));
}

/// `stepgate serve` with `config` (listening on `port`).
pub fn stepgate(bin: &Path, config: &Path, port: u16, name: &str) -> Server {
    let dir = config
        .parent()
        .unwrap_or_else(|| panic!("config has no dir"))
        .to_path_buf();
    let log = dir.join(format!("{name}.log"));
    // STEPGATE_BENCH_WRAP (e.g. "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out")
    // runs the SQLite instance under a profiler.
    let wrap = std::env::var("STEPGATE_BENCH_WRAP").unwrap_or_default();
    let wrap: Vec<&str> = wrap.split_whitespace().collect();
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) if name == "stepgate-sqlite" => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    let mut proc = spawn(name, cmd.arg("serve").arg("-c").arg(config), &log);
    wait_for_port(port, &mut proc, &log);
    Server { port, proc }
}
