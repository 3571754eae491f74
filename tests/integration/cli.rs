//! The admin CLI (`invite`, `credentials`, `sessions`, `tokens`) run as a real process on
//! a temp config and SQLite file, while the test holds the same store open (as a
//! running `serve` would).

use std::path::{Path, PathBuf};
use std::process::Command;

use stepgate::model::token_hash;
use stepgate::store::sqlite::SqliteStore;
use stepgate::store::{CredentialStore, EphemeralStore, SessionStore, TokenStore};

use crate::kit::{self, TestConfig};
use crate::store::{app, client_token, credential, portal};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

fn setup() -> Setup {
    let base = TestConfig::new().portal("https://auth.home.lab");
    let db = base.path("data").join("stepgate.db");
    let base = base.sqlite(&db).body(
        r#"users:
  alice: { groups: [admins] }
  bob: {}
  old: { expires: 2020-01-01T00:00:00Z }
upstreams:
  demo: builtin:whoami
rules:
  - { name: app, hosts: [app.home.lab], upstream: demo, policy: passkey }
"#,
    );
    let config = base.path("stepgate.yaml");
    if let Err(e) = std::fs::write(&config, base.yaml(([127, 0, 0, 1], 0).into(), None)) {
        panic!("{e}");
    }
    let dir = base.into_dir();
    Setup { dir, config, db }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn stepgate(dir: &Path, args: &[&str]) -> Run {
    let out = match Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("STEPGATE_CONFIG")
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run stepgate: {e}"),
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn open(db: &Path) -> SqliteStore {
    match SqliteStore::open(db) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn ok<T>(r: Result<T, stepgate::store::StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn invite_prints_only_the_enrollment_url() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    let r = stepgate(
        s.dir.path(),
        &[
            "invite",
            "alice",
            "-c",
            &cfg,
            "--ttl",
            "1h",
            "--credential-ttl",
            "24h",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", r.stdout);
    let prefix = "https://auth.home.lab/.stepgate/enroll?token=";
    let Some(token) = lines[0].strip_prefix(prefix) else {
        panic!("not an enrollment URL: {}", lines[0])
    };
    assert_eq!(token.len(), 22);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(!r.stderr.contains(token), "the token is only on stdout");

    // The store (created by the CLI, directory included) holds it, single use.
    let store = open(&s.db);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let inv = ok(store.take_invite(&token_hash(token), now).await);
    let Some(inv) = inv else {
        panic!("invite not stored")
    };
    assert_eq!(inv.user, "alice");
    assert_eq!(inv.credential_ttl, Some(86_400));
    assert!((inv.expires_at - (now + 3600)).abs() <= 5);
    assert_eq!(ok(store.take_invite(&token_hash(token), now).await), None);

    // Defaults: 1 h link, passkey until revoked; -c before the subcommand works too.
    let r = stepgate(s.dir.path(), &["-c", &cfg, "invite", "bob"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = r.stdout.trim().trim_start_matches(prefix).to_string();
    let inv = ok(store.take_invite(&token_hash(&token), now).await);
    assert_eq!(
        inv.map(|i| (i.user, i.credential_ttl)),
        Some(("bob".to_string(), None))
    );
}

#[test]
fn invite_refuses_unknown_and_expired_users() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    for user in ["mallory", "old"] {
        let r = stepgate(s.dir.path(), &["invite", user, "-c", &cfg]);
        assert_eq!(r.code, 1);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(r.stderr.contains(user), "{}", r.stderr);
    }
    let r = stepgate(
        s.dir.path(),
        &["invite", "alice", "-c", &cfg, "--ttl", "soon"],
    );
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty());
    // Durations take one form: `5M` is no "five months", `1y` and `1.5h` are refused.
    for (flag, value) in [
        ("--ttl", "5M"),
        ("--ttl", "1y"),
        ("--ttl", "1.5h"),
        ("--ttl", "300"),
        ("--credential-ttl", "300000000s"),
        ("--credential-ttl", "8hrs"),
    ] {
        let r = stepgate(s.dir.path(), &["invite", "alice", "-c", &cfg, flag, value]);
        assert_ne!(r.code, 0, "{flag} {value}");
        assert!(r.stdout.is_empty(), "{flag} {value}: {}", r.stdout);
        assert!(
            r.stderr.contains("like 90s, 5m, 1h30m or 7d") || r.stderr.contains("366d"),
            "{flag} {value}: {}",
            r.stderr
        );
    }
    // A broken config: its errors, exit 1.
    let bad = s.dir.path().join("bad.yaml");
    if let Err(e) = std::fs::write(&bad, "listen: [\n") {
        panic!("{e}");
    }
    let r = stepgate(
        s.dir.path(),
        &["invite", "alice", "-c", &bad.to_string_lossy()],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("error"), "{}", r.stderr);
}

#[tokio::test]
async fn credentials_list_and_revoke() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    let store = open(&s.db);
    ok(store
        .add_credential(&credential("cred-alice-1", "alice"))
        .await);
    ok(store
        .add_credential(&credential("cred-alice-2", "alice"))
        .await);
    ok(store.add_credential(&credential("cred-bob-1", "bob")).await);
    let p = portal("sess-a", "alice", Some("cred-alice-1"));
    ok(store.add_portal_session("tok-a", &p).await);
    ok(store
        .add_app_session("atok-a", &app("app-a", &p, "app.home.lab"), &[])
        .await);

    let r = stepgate(s.dir.path(), &["credentials", "list", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for id in ["cred-alice-1", "cred-alice-2", "cred-bob-1"] {
        assert!(r.stdout.contains(id), "{}", r.stdout);
    }
    assert!(r.stdout.starts_with("ID "));
    let r = stepgate(s.dir.path(), &["credentials", "list", "bob", "-c", &cfg]);
    assert!(
        r.stdout.contains("cred-bob-1") && !r.stdout.contains("cred-alice"),
        "{}",
        r.stdout
    );

    let r = stepgate(
        s.dir.path(),
        &["credentials", "revoke", "cred-alice-1", "-c", &cfg],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("cred-alice-1"));
    // The running server's handle sees it at once: credential gone, its session ended.
    assert_eq!(ok(store.credential("cred-alice-1").await), None);
    assert_eq!(ok(store.portal_session("tok-a").await), None);
    assert_eq!(ok(store.app_session("atok-a").await), None);
    assert!(ok(store.credential("cred-alice-2").await).is_some());

    let r = stepgate(
        s.dir.path(),
        &["credentials", "revoke", "cred-alice-1", "-c", &cfg],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no credential"), "{}", r.stderr);
}

#[tokio::test]
async fn sessions_list_and_revoke() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    let store = open(&s.db);
    let a1 = portal("aaaa000000000001", "alice", Some("k1"));
    let a2 = portal("aaaa000000000002", "alice", None);
    let b1 = portal("bbbb000000000001", "bob", None);
    ok(store.add_portal_session("secret-token-hash-a1", &a1).await);
    ok(store.add_portal_session("secret-token-hash-a2", &a2).await);
    ok(store.add_portal_session("secret-token-hash-b1", &b1).await);
    ok(store
        .add_app_session("secret-app-hash-1", &app("app1", &a1, "git.home.lab"), &[])
        .await);
    ok(store
        .add_app_session("secret-app-hash-2", &app("app2", &a1, "wiki.home.lab"), &[])
        .await);

    let r = stepgate(s.dir.path(), &["sessions", "list", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for id in [&a1.id, &a2.id, &b1.id] {
        assert!(r.stdout.contains(id.as_str()), "{}", r.stdout);
    }
    assert!(
        r.stdout.contains("git.home.lab,wiki.home.lab"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("secret"),
        "no token hash is printed: {}",
        r.stdout
    );
    let r = stepgate(s.dir.path(), &["sessions", "list", "bob", "-c", &cfg]);
    assert!(
        r.stdout.contains(&b1.id) && !r.stdout.contains(&a1.id),
        "{}",
        r.stdout
    );

    let r = stepgate(s.dir.path(), &["sessions", "revoke", &a1.id, "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ok(store.portal_session("secret-token-hash-a1").await), None);
    assert_eq!(ok(store.app_session("secret-app-hash-1").await), None);
    assert!(ok(store.portal_session("secret-token-hash-a2").await).is_some());
    let r = stepgate(s.dir.path(), &["sessions", "revoke", &a1.id, "-c", &cfg]);
    assert_eq!(r.code, 1);

    let r = stepgate(
        s.dir.path(),
        &["-c", &cfg, "sessions", "revoke", "--user", "alice"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "revoked 1 session(s) of alice");
    assert_eq!(ok(store.portal_session("secret-token-hash-a2").await), None);
    assert!(ok(store.portal_session("secret-token-hash-b1").await).is_some());

    let r = stepgate(s.dir.path(), &["sessions", "list", "alice", "-c", &cfg]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("no sessions"));
}

/// The store key of a made-up token secret (the CLI never sees secrets).
fn secret(id: &str) -> String {
    token_hash(&format!("sgt_secret_{id}"))
}

/// Two tokens of alice (`a1` for git and dav, `a2`) and one of bob (`b1`).
async fn seed_tokens(store: &SqliteStore) {
    for (id, user, rules) in [
        ("tok0000000000a1", "alice", &["git", "dav"][..]),
        ("tok0000000000a2", "alice", &["git"][..]),
        ("tok0000000000b1", "bob", &["caldav"][..]),
    ] {
        ok(store
            .add_token(&secret(id), &client_token(id, user, "cred-1", rules))
            .await);
    }
}

#[tokio::test]
async fn tokens_list_shows_no_secret() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    let store = open(&s.db);
    let r = stepgate(s.dir.path(), &["tokens", "list", "-c", &cfg]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert!(r.stderr.contains("no tokens"), "{}", r.stderr);

    seed_tokens(&store).await;
    let r = stepgate(s.dir.path(), &["tokens", "list", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(lines[0].starts_with("ID "), "{}", lines[0]);
    for col in ["USER", "LABEL", "RULES", "CREATED", "EXPIRES", "PASSKEY"] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    assert!(lines[1].starts_with("tok0000000000a1 "), "{}", lines[1]);
    assert!(lines[1].contains("git,dav") && lines[1].contains("cred-1 key"));
    assert!(
        !r.stdout.contains(&secret("tok0000000000a1")),
        "no hash is printed"
    );
    let r = stepgate(s.dir.path(), &["tokens", "list", "bob", "-c", &cfg]);
    assert!(
        r.stdout.contains("tok0000000000b1") && !r.stdout.contains("tok0000000000a"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn tokens_revoke_by_id_and_by_user() {
    let s = setup();
    let cfg = s.config.to_string_lossy().into_owned();
    let store = open(&s.db);
    seed_tokens(&store).await;
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-c", cfg.as_str()]);
        stepgate(s.dir.path(), &all)
    };

    // Revoked by id: the running server's handle misses it at once.
    let r = run(&["tokens", "revoke", "tok0000000000a1"]);
    let want = (0, "revoked token tok0000000000a1");
    assert_eq!((r.code, r.stdout.trim()), want, "{}", r.stderr);
    assert_eq!(ok(store.token(&secret("tok0000000000a1")).await), None);
    assert!(ok(store.token(&secret("tok0000000000a2")).await).is_some());
    let r = run(&["tokens", "revoke", "tok0000000000a1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no token tok0000000000a1"),
        "{}",
        r.stderr
    );

    // Every token of a user; the other user's stays.
    let r = run(&["tokens", "revoke", "--user", "alice"]);
    let want = (0, "revoked 1 token(s) of alice");
    assert_eq!((r.code, r.stdout.trim()), want, "{}", r.stderr);
    assert_eq!(ok(store.token(&secret("tok0000000000a2")).await), None);
    assert!(ok(store.token(&secret("tok0000000000b1")).await).is_some());

    // An id and --user together, or neither, is a usage error that revokes nothing.
    assert_ne!(run(&["tokens", "revoke", "x", "--user", "bob"]).code, 0);
    assert_ne!(run(&["tokens", "revoke"]).code, 0);
    assert!(ok(store.token(&secret("tok0000000000b1")).await).is_some());
}

/// The same commands on a Redis store: what the CLI writes, a gateway instance
/// on that Redis reads, and the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_works_on_redis() {
    let server = kit::RedisServer::start();
    let s = setup();
    let yaml = match std::fs::read_to_string(&s.config) {
        Ok(y) => y,
        Err(e) => panic!("{e}"),
    };
    let start = yaml.find("store:").unwrap_or(0);
    let end = yaml.find("users:").unwrap_or(yaml.len());
    let yaml = format!(
        "{}store:\n  redis: {{ url: \"{}\", prefix: \"cli:\" }}\n{}",
        &yaml[..start],
        server.url(),
        &yaml[end..]
    );
    if let Err(e) = std::fs::write(&s.config, yaml) {
        panic!("{e}");
    }
    let cfg = s.config.to_string_lossy().into_owned();
    let store = match stepgate::store::redis::RedisStore::open(&server.url(), "cli:") {
        Ok(st) => st,
        Err(e) => panic!("{e}"),
    };

    let r = stepgate(s.dir.path(), &["invite", "alice", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = r
        .stdout
        .trim()
        .trim_start_matches("https://auth.home.lab/.stepgate/enroll?token=")
        .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let inv = ok(store.take_invite(&token_hash(&token), now).await);
    assert_eq!(inv.map(|i| i.user), Some("alice".to_string()));

    ok(store
        .add_credential(&credential("redis-cred", "alice"))
        .await);
    let p = portal("redis-sess-0001", "alice", Some("redis-cred"));
    ok(store.add_portal_session("rtok", &p).await);
    let r = stepgate(s.dir.path(), &["credentials", "list", "-c", &cfg]);
    assert!(r.stdout.contains("redis-cred"), "{} {}", r.stdout, r.stderr);
    let r = stepgate(s.dir.path(), &["sessions", "list", "-c", &cfg]);
    assert!(
        r.stdout.contains("redis-sess-0001"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = stepgate(
        s.dir.path(),
        &["credentials", "revoke", "redis-cred", "-c", &cfg],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ok(store.portal_session("rtok").await), None);
    assert_eq!(ok(store.credential("redis-cred").await), None);

    ok(store
        .add_token("rth", &client_token("redis-tok-1", "alice", "k", &["app"]))
        .await);
    let r = stepgate(s.dir.path(), &["tokens", "list", "-c", &cfg]);
    assert!(
        r.stdout.contains("redis-tok-1"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = stepgate(
        s.dir.path(),
        &["tokens", "revoke", "redis-tok-1", "-c", &cfg],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ok(store.token("rth").await), None);
}

/// A store that cannot be reached: a clear error and exit 1, within seconds.
#[test]
fn cli_reports_an_unreachable_redis() {
    let s = setup();
    let yaml = match std::fs::read_to_string(&s.config) {
        Ok(y) => y,
        Err(e) => panic!("{e}"),
    };
    let start = yaml.find("store:").unwrap_or(0);
    let end = yaml.find("users:").unwrap_or(yaml.len());
    let yaml = format!(
        "{}store:\n  redis: {{ url: \"redis://127.0.0.1:{}/0\" }}\n{}",
        &yaml[..start],
        kit::free_port(),
        &yaml[end..]
    );
    if let Err(e) = std::fs::write(&s.config, yaml) {
        panic!("{e}");
    }
    let started = std::time::Instant::now();
    let r = stepgate(
        s.dir.path(),
        &["sessions", "list", "-c", &s.config.to_string_lossy()],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("store unavailable"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
