//! The quick start's one command, `stepgate serve -c config/example.yaml`, on a
//! fresh directory: the cookie key and the data directory are made, the key
//! (mode 0600) is logged once and kept on the next start; with Redis a missing
//! key stays an error.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::kit::binary::Process;
use crate::kit::try_send;
use crate::kit::wait_for_port;
use crate::kit::{free_port, temp_dir};

/// `config/example.yaml` with its ports moved to free ones; returns the proxy address.
fn example_in(dir: &Path) -> std::net::SocketAddr {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml");
    let text = match std::fs::read_to_string(example) {
        Ok(t) => t,
        Err(e) => panic!("{example}: {e}"),
    };
    let (port, admin) = (free_port(), free_port());
    assert!(
        text.contains("listen: 127.0.0.1:8080") && text.contains("admin_listen: 127.0.0.1:9090")
    );
    let text = text
        .replace(
            "listen: 127.0.0.1:8080",
            &format!("listen: 127.0.0.1:{port}"),
        )
        .replace(
            "admin_listen: 127.0.0.1:9090",
            &format!("admin_listen: 127.0.0.1:{admin}"),
        );
    if let Err(e) = std::fs::create_dir_all(dir.join("config"))
        .and_then(|()| std::fs::write(dir.join("config/example.yaml"), text))
    {
        panic!("write the example: {e}");
    }
    ([127, 0, 0, 1], port).into()
}

fn public_page(addr: std::net::SocketAddr) -> u16 {
    let req = "GET /public HTTP/1.1\r\nHost: app.localhost:8080\r\nConnection: close\r\n\r\n";
    try_send(addr, req.as_bytes()).map_or(0, |r| r.status)
}

/// Start `serve` on the example in `dir`, check the public page answers, stop it.
fn run_once(dir: &Path, addr: std::net::SocketAddr, log: &str) -> String {
    let mut p = Process::start(dir, &["serve", "-c", "config/example.yaml"], dir.join(log));
    wait_for_port(addr);
    assert_eq!(public_page(addr), 200, "log:\n{}", p.log_text());
    p.signal("INT");
    assert!(
        p.wait_exit(Duration::from_secs(20)).is_some(),
        "serve did not stop"
    );
    p.log_text()
}

#[test]
fn first_run_makes_the_key_and_data_dir_and_keeps_them() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let addr = example_in(dir);
    assert!(!dir.join("data").exists());

    let log = run_once(dir, addr, "first.log");
    let key = dir.join("data/cookie.key");
    let text = std::fs::read_to_string(&key).unwrap_or_default();
    assert_eq!(text.trim().len(), 44, "a base64 256-bit key: {text:?}");
    let mode = std::fs::metadata(&key).map_or(0, |m| m.permissions().mode() & 0o777);
    assert_eq!(mode, 0o600);
    assert!(
        dir.join("data/stepgate.db").exists(),
        "the SQLite file and its directory"
    );
    assert_eq!(
        log.matches("created a new cookie signing key").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("no passkey is registered yet"),
        "the enrollment link: {log}"
    );

    // The next start keeps the key and says nothing about it.
    let log = run_once(dir, addr, "second.log");
    assert_eq!(std::fs::read_to_string(&key).unwrap_or_default(), text);
    assert!(!log.contains("created a new cookie signing key"), "{log}");
}

#[test]
fn with_redis_a_missing_key_stays_an_error() {
    let tmp = temp_dir();
    let dir = tmp.path();
    example_in(dir);
    let path = dir.join("config/example.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_default().replace(
        "sqlite: { path: ./data/stepgate.db }",
        "redis: { url: \"redis://127.0.0.1:1/0\" }",
    );
    assert!(
        text.contains("redis:"),
        "the example's store line moved: update this test"
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let mut p = Process::start(
        dir,
        &["serve", "-c", "config/example.yaml"],
        dir.join("serve.log"),
    );
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(1));
    let log = p.log_text();
    assert!(
        log.contains("cookie key file ./data/cookie.key does not exist; with the Redis store every instance must sign with the same key"),
        "{log}"
    );
    assert!(!dir.join("data/cookie.key").exists());
}
