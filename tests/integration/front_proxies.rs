//! Real front proxies in front of stepgate's forward-auth: Caddy
//! (`forward_auth`) and nginx (`auth_request`), each started on free ports with
//! the configs from `deploy/` (ports and paths templated into a temp copy),
//! carrying an allowed, a step-up and a denied request to an echoing upstream.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::gateway_util::{EchoUpstream, Response, TestGateway, raw_request, uv, wait_for_port};
use crate::util::{free_port, temp_dir};

fn deploy(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Replace `from` (which must be there, so the deploy files cannot drift from the test).
fn subst(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy file no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// stepgate with `deploy/stepgate.yaml`, listen/admin/paths templated.
fn stepgate() -> TestGateway {
    let dir = temp_dir();
    let d = dir.path().display().to_string();
    TestGateway::start_with(dir, &|listen: SocketAddr, admin: SocketAddr| {
        let t = deploy("stepgate.yaml");
        let t = subst(t, "listen: 127.0.0.1:9091", &format!("listen: {listen}"));
        let t = subst(
            t,
            "admin_listen: 127.0.0.1:9092",
            &format!("admin_listen: {admin}"),
        );
        let t = subst(t, "/etc/stepgate/cookie.key", &format!("{d}/cookie.key"));
        subst(
            t,
            "/var/lib/stepgate/stepgate.db",
            &format!("{d}/stepgate.db"),
        )
    })
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, what: &str) -> Proc {
    match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Proc(c),
        Err(e) => panic!("cannot start {what} (is it installed? .ci/run installs it): {e}"),
    }
}

struct Front {
    port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

fn caddy(sg: &TestGateway, echo: &EchoUpstream) -> Front {
    let dir = temp_dir();
    let port = free_port();
    let t = deploy("caddy/Caddyfile");
    let t = subst(t, "admin localhost:2019", "admin off");
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
    let t = subst(t, "127.0.0.1:9091", &sg.addr.to_string());
    let t = subst(t, "127.0.0.1:3000", &echo.addr.to_string());
    let file = dir.path().join("Caddyfile");
    if let Err(e) = std::fs::write(&file, t) {
        panic!("{e}");
    }
    let proc = spawn(
        Command::new("caddy")
            .arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path()),
        "caddy",
    );
    wait_for_port(([127, 0, 0, 1], port).into());
    Front {
        port,
        _proc: proc,
        _dir: dir,
    }
}

fn nginx(sg: &TestGateway, echo: &EchoUpstream) -> Front {
    let dir = temp_dir();
    let d = dir.path().display().to_string();
    let port = free_port();
    let t = deploy("nginx/stepgate.conf");
    let t = subst(t, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let t = subst(t, "127.0.0.1:9091", &sg.addr.to_string());
    let t = subst(t, "127.0.0.1:3000", &echo.addr.to_string());
    let site = dir.path().join("stepgate.conf");
    let main = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {};\n}}\n",
        site.display()
    );
    let conf = dir.path().join("nginx.conf");
    if let Err(e) = std::fs::write(&site, t).and_then(|_| std::fs::write(&conf, main)) {
        panic!("{e}");
    }
    let proc = spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log")),
        "nginx",
    );
    wait_for_port(([127, 0, 0, 1], port).into());
    Front {
        port,
        _proc: proc,
        _dir: dir,
    }
}

fn get(front: &Front, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: app.home.lab:{}\r\nConnection: close\r\n",
        front.port
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(([127, 0, 0, 1], front.port).into(), &req)
}

fn from_upstream(r: &Response) -> bool {
    r.body.contains("x-echo-body-length")
}

const HTML: (&str, &str) = ("Accept", "text/html");

/// One allowed, one step-up and one denied request (and a few more) through `front`.
fn carry(sg: &TestGateway, front: &Front, name: &str) {
    let spoof = [
        ("Remote-User", "mallory"),
        ("Remote_User", "mallory"),
        ("Remote.User", "mallory"),
        ("Stepgate-Rule", "app-admin"),
    ];
    // Allowed without sign-in (bypass): the upstream sees no identity at all.
    let r = get(front, "/public/page?x=1", &spoof);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert!(from_upstream(&r), "{name}: {r:?}");
    assert_eq!(
        r.echoed_request_line(),
        "GET /public/page?x=1 HTTP/1.1",
        "{name}"
    );
    for h in ["remote-user", "remote_user", "remote.user", "stepgate-rule"] {
        assert!(
            r.echoed(h).iter().all(|v| v.is_empty()),
            "{name}: client-sent {h} reached the upstream: {}",
            r.body
        );
    }
    // Allowed for a signed-in user: the upstream sees who.
    let cookie = sg.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(sg.now(), &[], false)),
        vec![],
    );
    let with_cookie = [&spoof[..], &[("Cookie", cookie.as_str())]].concat();
    let r = get(front, "/home", &with_cookie);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"], "{name}: {}", r.body);
    assert_eq!(r.echoed("remote-groups"), vec!["admins"], "{name}");
    assert_eq!(r.echoed("remote-email"), vec!["alice@home.lab"], "{name}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["app"], "{name}");
    // Step-up: a browser is sent to the portal, an API client gets 401.
    let r = get(front, "/admin/users", &[("Cookie", &cookie), HTML]);
    assert_eq!(r.status, 302, "{name}: {r:?}");
    assert!(!from_upstream(&r));
    let want = format!(
        "https://auth.home.lab/.stepgate/login?rd=http%3A%2F%2Fapp%2Ehome%2Elab%3A{}%2Fadmin%2Fusers",
        front.port
    );
    assert_eq!(r.header("location"), Some(want.as_str()), "{name}");
    let r = get(front, "/admin/users", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401, "{name}: {r:?}");
    assert!(!from_upstream(&r));
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("StepUp error=\"insufficient_user_authentication\", max_age=300"),
        "{name}: {www}"
    );
    // Denied.
    let r = get(front, "/private/x", &[("Cookie", &cookie), HTML]);
    assert_eq!(r.status, 403, "{name}: {r:?}");
    assert!(!from_upstream(&r));
    // The app host's /.stepgate/ goes to stepgate itself (here: a bad callback code).
    let r = get(front, "/.stepgate/callback?code=nope", &[HTML]);
    assert!(
        !from_upstream(&r),
        "{name}: /.stepgate/ reached the app: {r:?}"
    );
    assert_ne!(r.status, 502, "{name}: {r:?}");
}

#[test]
fn caddy_forward_auth_with_the_deploy_config() {
    let sg = stepgate();
    let echo = EchoUpstream::start();
    let front = caddy(&sg, &echo);
    carry(&sg, &front, "caddy");
}

#[test]
fn nginx_auth_request_with_the_deploy_config() {
    let sg = stepgate();
    let echo = EchoUpstream::start();
    let front = nginx(&sg, &echo);
    carry(&sg, &front, "nginx");
}

#[test]
fn every_yaml_in_config_and_deploy_passes_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["config", "deploy"] {
        let entries = match std::fs::read_dir(root.join(dir)) {
            Ok(e) => e,
            Err(e) => panic!("{dir}: {e}"),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            // Only stepgate configs (Traefik or compose files live there too).
            let is_stepgate = std::fs::read_to_string(&path)
                .is_ok_and(|t| t.lines().any(|l| l.starts_with("portal:")));
            if is_yaml && is_stepgate {
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let code = stepgate::commands::check(&path, &mut out, &mut err);
                assert!(
                    matches!(code, Ok(0)),
                    "{}: {}",
                    path.display(),
                    String::from_utf8_lossy(&err)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2);
}
