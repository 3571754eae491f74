//! The systems under test, each started on free loopback ports in its own
//! temp dir: the nginx upstream, plain nginx, stepgate (SQLite or Redis),
//! nginx + auth_request and Caddy + forward_auth (both from `deploy/`).

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

/// The app: nginx answering every path with the same 1 KiB static file.
pub fn upstream(root: &Path) -> Server {
    let www = subdir(root, "www");
    write(
        &www.join("1k"),
        &"x".repeat(1023).chars().chain(['\n']).collect::<String>(),
    );
    let port = free_port();
    let body = format!(
        "server {{\n  listen 127.0.0.1:{port} backlog=4096;\n  location / {{ root {}; default_type text/plain; try_files /1k =404; }}\n}}",
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

/// nginx + auth_request → stepgate, from `deploy/nginx/stepgate.conf`; the
/// app is reached through a keep-alive upstream block as in [`plain_nginx`]
/// (the deploy file's direct `proxy_pass` opens a connection per request).
pub fn nginx_auth_request(root: &Path, stepgate: u16, app: u16) -> Server {
    let port = free_port();
    let t = deploy("nginx/stepgate.conf");
    let t = subst(t, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let t = subst(t, "127.0.0.1:9091", &format!("127.0.0.1:{stepgate}"));
    let t = subst(
        t,
        "proxy_pass http://127.0.0.1:3000;",
        "proxy_pass http://bench_app;\n        proxy_set_header Connection \"\";",
    );
    let body = format!("upstream bench_app {{ server 127.0.0.1:{app}; keepalive 64; }}\n{t}");
    nginx(root, "nginx-auth-request", port, &body)
}

/// Caddy + forward_auth → stepgate, from `deploy/caddy/Caddyfile`.
pub fn caddy(root: &Path, stepgate: u16, app: u16) -> Server {
    let dir = subdir(root, "caddy");
    let port = free_port();
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

/// A private redis-server without persistence.
pub fn redis(root: &Path) -> Server {
    let dir = subdir(root, "redis");
    let port = free_port();
    let log = dir.join("stderr.log");
    let mut proc = spawn(
        "redis-server",
        Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no"),
        &log,
    );
    wait_for_port(port, &mut proc, &log);
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
    port: u16,
    admin: u16,
    app: u16,
    store: Store,
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
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
trusted_proxies: [127.0.0.1/32]
portal: {{ url: "http://{PORTAL_HOST}:{port}", rp_name: Bench }}
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
