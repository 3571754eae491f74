//! Real app protocols with real clients: each endpoint of `kit::apps` talked
//! to directly (no stepgate in between), so a failure here is the harness's,
//! not the gateway's. Git smart HTTP with the `git` CLI, WebDAV with `rclone`,
//! CalDAV with Radicale's trusted-header sign-in, and a WebSocket upgrade.
//! Also: every app recipe under `docs/apps/` passes `stepgate check`.

use crate::kit::apps::{DavServer, EVENT, GitClient, GitServer, Radicale, Rclone, websocket_echo};
use crate::kit::{EchoUpstream, Response, raw_request};

#[test]
fn git_clones_and_pushes_over_smart_http() {
    let server = GitServer::start();
    let port = server.addr.port();
    let mut git = GitClient::installed();
    // App host names resolve to the loopback server, as they will through stepgate.
    git.resolve("git.test", port);
    let url = format!("http://git.test:{port}/demo.git");

    git.ok(".", &["clone", "-q", &url, "work"]);
    git.write("work/README", "hello from the harness\n");
    git.ok("work", &["add", "README"]);
    git.ok("work", &["commit", "-q", "-m", "first commit"]);
    // The web server hands `Remote-User` to git as REMOTE_USER: the push is
    // recorded under that name.
    git.ok(
        "work",
        &[
            "-c",
            "http.extraHeader=Remote-User: alice",
            "push",
            "-q",
            "origin",
            "main",
        ],
    );
    assert_eq!(server.log("%s", "main"), "first commit");
    assert!(
        server.reflog().starts_with("alice push"),
        "reflog: {}",
        server.reflog()
    );

    // Another client sees the pushed commit.
    git.ok(".", &["clone", "-q", &url, "again"]);
    let readme = std::fs::read_to_string(git.dir.path().join("again/README"));
    assert_eq!(readme.ok().as_deref(), Some("hello from the harness\n"));

    // An unknown repository is a clean failure, not a hang or a prompt.
    let out = git.run(
        ".",
        &[
            "clone",
            "-q",
            &format!("http://git.test:{port}/nope.git"),
            "nope",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn rclone_puts_lists_moves_and_deletes_over_webdav() {
    let server = DavServer::start();
    // The URL names an app host; requests reach the server through it as a
    // proxy, as they will reach stepgate.
    let mut rclone = Rclone::new("http://dav.test/dav/");
    rclone.through(server.addr);
    rclone.round_trip("dav body\n");
    let on_disk = std::fs::read_to_string(server.files.join("docs/moved.txt"));
    assert_eq!(on_disk.ok().as_deref(), Some("dav body\n"));
    rclone.ok(&["deletefile", ":webdav:docs/moved.txt"]);
    assert_eq!(rclone.ok(&["lsf", ":webdav:docs"]), "");
    assert!(!server.files.join("docs/moved.txt").exists());
}

fn dav(server: &Radicale, method: &str, path: &str, user: Option<&str>, body: &str) -> Response {
    let user = user.map_or(String::new(), |u| format!("X-Remote-User: {u}\n"));
    let depth = if method == "PROPFIND" {
        "Depth: 1\n"
    } else {
        ""
    };
    raw_request(
        server.addr,
        &format!(
            "{method} {path} HTTP/1.1\nHost: cal.test\n{user}{depth}\
             Content-Type: application/xml; charset=utf-8\nContent-Length: {}\n\
             Connection: close\n\n{body}",
            body.len()
        ),
    )
}

#[test]
fn radicale_signs_users_in_from_x_remote_user() {
    let server = Radicale::start();
    // A calendar made as alice lands in alice's collection.
    let r = dav(&server, "MKCALENDAR", "/alice/work/", Some("alice"), "");
    assert_eq!(r.status, 201, "{r:?}");
    assert!(server.collection("alice", "work").is_some());
    let r = raw_request(
        server.addr,
        &format!(
            "PUT /alice/work/dinner.ics HTTP/1.1\nHost: cal.test\nX-Remote-User: alice\n\
             Content-Type: text/calendar\nContent-Length: {}\nConnection: close\n\n{EVENT}",
            EVENT.len()
        ),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = dav(&server, "PROPFIND", "/alice/work/", Some("alice"), "");
    assert_eq!(r.status, 207, "{r:?}");
    assert!(r.body.contains("/alice/work/dinner.ics"), "{}", r.body);

    // Another user (or nobody) can neither read nor write it.
    let r = dav(&server, "PROPFIND", "/alice/work/", Some("bob"), "");
    assert_eq!(r.status, 403, "{r:?}");
    // Without the header Radicale sees an anonymous user, who owns nothing.
    let r = dav(&server, "PROPFIND", "/alice/work/", None, "");
    assert_eq!(r.status, 403, "{r:?}");
    let r = dav(&server, "MKCALENDAR", "/alice/bobs/", Some("bob"), "");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(server.collection("alice", "bobs").is_none());
    // Bob's own calendar is his.
    let r = dav(&server, "MKCALENDAR", "/bob/home/", Some("bob"), "");
    assert_eq!(r.status, 201, "{r:?}");
    assert!(server.collection("bob", "home").is_some());
}

#[test]
fn the_echo_upstream_answers_websocket_upgrades() {
    let echo = EchoUpstream::start();
    let ws = websocket_echo(echo.addr, "ws.test", "/socket", &[], b"frame bytes");
    assert_eq!(ws.status(), 101, "{}", ws.head);
    assert_eq!(ws.echoed, b"frame bytes");
}

/// Every recipe under docs/apps/ is a config `stepgate check` passes without a
/// warning, has its page, and is listed in the index.
#[test]
fn every_recipe_passes_check_and_has_a_page() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/apps");
    let index = match std::fs::read_to_string(dir.join("README.md")) {
        Ok(t) => t,
        Err(e) => panic!("docs/apps/README.md: {e}"),
    };
    let mut recipes: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    recipes.sort();
    assert_eq!(recipes.len(), 12, "one recipe per app: {recipes:?}");
    for yaml in &recipes {
        let out = match std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .arg("check")
            .arg("-c")
            .arg(yaml)
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("cannot run stepgate: {e}"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", yaml.display());
        assert!(!stderr.contains("warning"), "{}: {stderr}", yaml.display());
        let stem = yaml.file_stem().map(|s| s.to_string_lossy().into_owned());
        let stem = stem.unwrap_or_default();
        let page = format!("{stem}.md");
        assert!(dir.join(&page).is_file(), "{page} is missing");
        for link in [format!("({page})"), format!("({stem}.yaml)")] {
            assert!(
                index.contains(&link),
                "docs/apps/README.md does not link {link}"
            );
        }
    }
}

/// `stepgate explain` on a recipe says whether a token is accepted for a URL,
/// where it travels, and which headers the app is told the user in.
#[test]
fn explain_shows_where_a_token_is_accepted() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/apps/gitea.yaml");
    let explain = |url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(["explain", url, "-c"])
            .arg(&file)
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => panic!("cannot run stepgate: {e}"),
        }
    };
    let git = explain("https://git.home.lab/alice/demo.git/info/refs?service=git-upload-pack");
    assert!(git.contains("rule: gitea-git"), "{git}");
    assert!(
        git.contains("tokens: accepted from Authorization: Basic (any user name, the token as password); nothing else is accepted"),
        "{git}"
    );
    assert!(
        git.contains("token header: removed before proxying"),
        "{git}"
    );
    assert!(
        git.contains("identity headers: Remote-User and the rest, and x-webauth-user, x-webauth-email, x-webauth-fullname"),
        "{git}"
    );
    let api = explain("https://git.home.lab/api/v1/user");
    assert!(
        api.contains("tokens: accepted from Authorization: Bearer TOKEN; a request without one is judged by its browser session"),
        "{api}"
    );
    let web = explain("https://git.home.lab/explore");
    assert!(web.contains("tokens: not accepted"), "{web}");
}
