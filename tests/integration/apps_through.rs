//! Real clients through stepgate, each on an app recipe from `docs/apps/` as
//! written (only the upstream URLs point at the test servers):
//!
//! - `git` clones and pushes through the Gitea recipe with a token minted on
//!   the account page (`tokens: {from: basic}`), and is refused (401 Basic)
//!   without one, with a revoked one, and with a browser session's cookie;
//! - `rclone` lists, puts, moves and deletes over WebDAV through the WebDAV
//!   recipe (`tokens: {from: basic, sessions: true}`);
//! - Radicale signs users in from `X-Remote-User`, which the Radicale recipe
//!   maps the identity to: a calendar made with a browser session or a token
//!   lands in that user's collection, and a client's own `X-Remote-User` (in
//!   any spelling) changes nothing;
//! - a WebSocket opens through the Home Assistant recipe's bypass path and
//!   through the Paperless recipe's passkey path.

use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::apps::{
    DavServer, EVENT, GitClient, GitServer, Radicale, Rclone, basic, mint_token,
    revoke_on_account_page, start_recipe, websocket_echo,
};
use crate::kit::{EchoUpstream, NetBrowser, Response, TestGateway, uv};

/// Every `WWW-Authenticate` challenge of a response.
fn challenges(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `Cookie` header `b` sends to `host`.
fn cookie_for(b: &NetBrowser, host: &str) -> String {
    b.jar
        .get(host)
        .map(|jar| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A browser with alice's passkey enrolled and signed in at the portal.
fn alice(g: &TestGateway) -> (NetBrowser, SoftPasskey) {
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(g, &mut key);
    (b, key)
}

#[test]
fn git_clones_and_pushes_with_a_minted_token_and_nothing_else() {
    let server = GitServer::start_at("alice/demo.git");
    let g = start_recipe("gitea", &[("http://127.0.0.1:3000", server.addr)]);
    let port = g.addr.port();
    let (mut b, mut key) = alice(&g);
    let mut git = GitClient::installed();
    git.resolve("git.home.lab", port);
    let bare = format!("http://git.home.lab:{port}/alice/demo.git");

    // No token: 401 with a Basic challenge (never a redirect), and git fails.
    let refs = "/alice/demo.git/info/refs?service=git-upload-pack";
    let r = g.get("git.home.lab", refs, &[("Accept", "text/html")]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(challenges(&r)[0].starts_with("Basic realm="), "{r:?}");
    assert!(r.header("location").is_none() && r.header("set-cookie").is_none());
    assert!(
        !git.run(".", &["clone", "-q", &bare, "nope"])
            .status
            .success()
    );

    // A browser session: it opens the web UI, but its cookie does not let git in.
    b.sign_in(&mut key, "https://git.home.lab/explore");
    let cookie = cookie_for(&b, "git.home.lab");
    let web = g.get(
        "git.home.lab",
        "/explore",
        &[("Cookie", &cookie), ("X-Forwarded-Proto", "https")],
    );
    assert_eq!(
        web.status, 404,
        "proxied to the git server, which has no such page: {web:?}"
    );
    let with_cookie = git.run(
        ".",
        &[
            "-c",
            &format!("http.extraHeader=Cookie: {cookie}"),
            "-c",
            "http.extraHeader=X-Forwarded-Proto: https",
            "clone",
            "-q",
            &bare,
            "cookie",
        ],
    );
    assert!(!with_cookie.status.success(), "a browser cookie let git in");

    // A token minted with the passkey: clone, commit, push.
    let (id, secret) = mint_token(&mut b, &mut key, "laptop git", &["gitea-git"]);
    let with_token = format!("http://git:{secret}@git.home.lab:{port}/alice/demo.git");
    git.ok(".", &["clone", "-q", &with_token, "work"]);
    git.write("work/README", "pushed through stepgate\n");
    git.ok("work", &["add", "README"]);
    git.ok("work", &["commit", "-q", "-m", "through stepgate"]);
    git.ok("work", &["push", "-q", "origin", "main"]);
    assert_eq!(server.log("%s", "main"), "through stepgate");
    // The git server took the user from stepgate's Remote-User.
    assert!(
        server.reflog().starts_with("alice push"),
        "{}",
        server.reflog()
    );
    git.ok(".", &["clone", "-q", &with_token, "again"]);
    let readme = std::fs::read_to_string(git.dir.path().join("again/README"));
    assert_eq!(readme.ok().as_deref(), Some("pushed through stepgate\n"));

    // The token in the wrong place is no token.
    let bearer = format!("Bearer {secret}");
    let r = g.get("git.home.lab", refs, &[("Authorization", &bearer)]);
    assert_eq!(r.status, 401, "{r:?}");

    // Revoked on the account page: the very next request is refused.
    revoke_on_account_page(&mut b, &id);
    let fetch = git.run("work", &["fetch", "-q", "origin"]);
    assert!(!fetch.status.success(), "a revoked token still fetches");
    let r = g.get(
        "git.home.lab",
        refs,
        &[("Authorization", &basic("git", &secret))],
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(challenges(&r)[0].starts_with("Basic realm="), "{r:?}");
}

#[test]
fn rclone_works_a_webdav_share_with_a_token_and_a_browser_with_its_session() {
    let server = DavServer::start();
    let g = start_recipe("webdav", &[("http://127.0.0.1:8090", server.addr)]);
    let (mut b, mut key) = alice(&g);
    let (_, secret) = mint_token(&mut b, &mut key, "rclone", &["files"]);

    let mut rclone = Rclone::new("http://files.home.lab/dav/");
    rclone.through(g.addr);
    // Without a token rclone gets nowhere.
    assert!(!rclone.run(&["lsf", ":webdav:"]).status.success());
    rclone.login("alice", &secret);
    rclone.round_trip("through stepgate\n");
    let on_disk = std::fs::read_to_string(server.files.join("docs/moved.txt"));
    assert_eq!(on_disk.ok().as_deref(), Some("through stepgate\n"));

    let propfind = |headers: &[(&str, &str)]| {
        let mut h = vec![("Depth", "1")];
        h.extend_from_slice(headers);
        g.request("PROPFIND", "files.home.lab", "/dav/docs/", &h, "")
    };
    // Neither token nor session: 401 telling both kinds of client what to do.
    let r = propfind(&[]);
    assert_eq!(r.status, 401, "{r:?}");
    let c = challenges(&r);
    assert!(c.iter().any(|c| c.starts_with("Basic realm=")), "{c:?}");
    assert!(c.iter().any(|c| c.starts_with("StepUp ")), "{c:?}");
    // This rule takes sessions too: a browser's session lists the share...
    let cookie = g.sign_in(
        "alice",
        "files.home.lab",
        Some(uv(g.now(), &[], true)),
        vec![],
    );
    let r = propfind(&[("Cookie", &cookie)]);
    assert_eq!(r.status, 207, "{r:?}");
    assert!(r.body.contains("moved.txt"), "{}", r.body);
    // ...but a request carrying a token is judged by the token alone.
    let forged = basic("alice", &format!("sgt_{}", "A".repeat(43)));
    let r = propfind(&[("Cookie", &cookie), ("Authorization", &forged)]);
    assert_eq!(r.status, 401, "{r:?}");
}

/// A client's own claims to be bob, in every spelling a server might fold.
const SPOOFED: [(&str, &str); 5] = [
    ("X-Remote-User", "bob"),
    ("x-remote-user", "bob"),
    ("X_Remote_User", "bob"),
    ("X.Remote.User", "bob"),
    ("Remote-User", "bob"),
];

#[test]
fn radicale_files_calendars_under_the_signed_in_user_whatever_the_client_claims() {
    let server = Radicale::start();
    let g = start_recipe("radicale", &[("http://127.0.0.1:5232", server.addr)]);
    let (mut b, mut key) = alice(&g);

    // A browser session (as the web UI's requests carry it) makes a calendar,
    // claiming to be bob in every spelling: it is alice's.
    let cookie = g.sign_in(
        "alice",
        "dav.home.lab",
        Some(uv(g.now(), &[], true)),
        vec![],
    );
    let mut headers = vec![("Cookie", cookie.as_str())];
    headers.extend_from_slice(&SPOOFED);
    let r = g.request("MKCALENDAR", "dav.home.lab", "/alice/work/", &headers, "");
    assert_eq!(r.status, 201, "{r:?}");
    assert!(server.collection("alice", "work").is_some());
    // Writing into bob's collection is refused by Radicale: it sees alice.
    let r = g.request("MKCALENDAR", "dav.home.lab", "/bob/stolen/", &headers, "");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(server.collection("bob", "stolen").is_none());

    // A calendar app with a token: same user, same refusal of the claim.
    let (_, secret) = mint_token(&mut b, &mut key, "phone calendar", &["radicale"]);
    let auth = basic("calendar-app", &secret);
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/calendar"),
    ];
    headers.extend_from_slice(&SPOOFED);
    let r = g.request(
        "PUT",
        "dav.home.lab",
        "/alice/work/dinner.ics",
        &headers,
        EVENT,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let h = [("Authorization", auth.as_str()), ("Depth", "1")];
    let r = g.request("PROPFIND", "dav.home.lab", "/alice/work/", &h, "");
    assert_eq!(r.status, 207, "{r:?}");
    assert!(r.body.contains("/alice/work/dinner.ics"), "{}", r.body);
    let r = g.request("MKCALENDAR", "dav.home.lab", "/bob/home/", &headers, "");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(server.collection("bob", "home").is_none());

    // Nothing at all: 401, and Radicale is never asked.
    let r = g.request("PROPFIND", "dav.home.lab", "/bob/", &SPOOFED, "");
    assert_eq!(r.status, 401, "{r:?}");
}

#[test]
fn websockets_open_through_a_bypass_path_and_a_passkey_path() {
    let echo = EchoUpstream::start();
    let ha = start_recipe("home-assistant", &[("http://127.0.0.1:8123", echo.addr)]);
    // Home Assistant's WebSocket API: bypass (the apps sign in to it themselves).
    let ws = websocket_echo(ha.addr, "ha.home.lab", "/api/websocket", &[], b"auth frame");
    assert_eq!(ws.status(), 101, "{}", ws.head);
    assert_eq!(ws.echoed, b"auth frame");
    // The frontend is behind the passkey: no upgrade without a session.
    let ws = websocket_echo(ha.addr, "ha.home.lab", "/ws-anything", &[], b"x");
    assert_eq!(ws.status(), 401, "{}", ws.head);

    let paperless = start_recipe("paperless", &[("http://127.0.0.1:8000", echo.addr)]);
    let ws = websocket_echo(
        paperless.addr,
        "paperless.home.lab",
        "/ws/status/",
        &[],
        b"x",
    );
    assert_eq!(ws.status(), 401, "{}", ws.head);
    let cookie = paperless.sign_in(
        "alice",
        "paperless.home.lab",
        Some(uv(paperless.now(), &[], true)),
        vec![],
    );
    let ws = websocket_echo(
        paperless.addr,
        "paperless.home.lab",
        "/ws/status/",
        &[("Cookie", &cookie)],
        b"status frame",
    );
    assert_eq!(ws.status(), 101, "{}", ws.head);
    assert_eq!(ws.echoed, b"status frame");
}
