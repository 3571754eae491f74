//! Live reload under load, against the real `stepgate serve` binary: 50
//! rewrites while a client loop runs, a broken file in the middle, SIGHUP,
//! and the reload counters on /metrics.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::kit::{Response, TestConfig, free_port, raw_request, try_send};

/// Generation `k` of the config. Rules `x-ok` and `y-no` swap places every
/// generation, so a request judged by one generation's router and another's
/// rule list would get the wrong answer: /x must always pass and /y always be
/// denied. `/gen/k` passes only in generation k, so the test sees each one land.
fn generation(k: u32, config: &TestConfig, port: u16, admin: u16) -> String {
    let x =
        "  - { name: x-ok, hosts: [app.localhost], paths: [/x], upstream: demo, policy: bypass }\n";
    let y = "  - { name: y-no, hosts: [app.localhost], paths: [/y], policy: deny }\n";
    let (first, second) = if k.is_multiple_of(2) { (x, y) } else { (y, x) };
    let head = config.yaml(
        ([127, 0, 0, 1], port).into(),
        Some(([127, 0, 0, 1], admin).into()),
    );
    format!(
        "{head}rules:\n{first}{second}  - {{ name: gen-{k}, hosts: [app.localhost], paths: [/gen/{k}], upstream: demo, policy: bypass }}\n"
    )
}

fn get(addr: SocketAddr, path: &str) -> Response {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\nHost: app.localhost\nConnection: close\n\n"),
    )
}

fn reload_count(admin: SocketAddr, result: &str) -> u64 {
    let m = raw_request(
        admin,
        "GET /metrics HTTP/1.1\nHost: localhost\nConnection: close\n\n",
    );
    let needle = format!("stepgate_config_reloads_total{{result=\"{result}\"}}");
    m.body
        .lines()
        .find(|l| l.starts_with(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn fifty_rewrites_under_load_never_fail_or_mix() {
    let base = TestConfig::new()
        .portal_on_listen_port("http://auth.localhost")
        .body("upstreams: { demo: \"builtin:whoami\" }\n");
    let (port, admin_port) = (free_port(), free_port());
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let config = base.dir().join("stepgate.yaml");
    std::fs::write(&config, generation(0, &base, port, admin_port)).unwrap();
    let child = crate::kit::binary::serve(&config);
    wait_until("the gateway to serve", || {
        status_of(addr, "app.localhost", "/x") == 200
    });
    wait_until("the admin listener", || {
        status_of(admin, "localhost", "/healthz") == 200
    });

    // The client loop: /x always 200 from the upstream, /y always 403.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let x = get(addr, "/x");
                let y = get(addr, "/y");
                if x.status != 200 || !x.body.starts_with("GET /x") || y.status != 403 {
                    bad.push((x.status, y.status));
                }
                sent.fetch_add(2, Ordering::Relaxed);
            }
            bad
        })
    };

    let ok_before = reload_count(admin, "ok");
    for k in 1..=50u32 {
        if k == 25 {
            // A broken file: the gateway keeps generation 24.
            let failed_before = reload_count(admin, "error");
            std::fs::write(
                &config,
                "rules:\n  - { name: broken, hosts: [app.localhost], policy: bypas }\n",
            )
            .unwrap();
            wait_until("the failed reload to be counted", || {
                reload_count(admin, "error") > failed_before
            });
            assert_eq!(
                get(addr, "/gen/24").status,
                200,
                "generation 24 must still serve"
            );
        }
        // Replace the file the way editors do: write a new file, rename it over.
        let tmp = base.dir().join(".stepgate.yaml.tmp");
        std::fs::write(&tmp, generation(k, &base, port, admin_port)).unwrap();
        std::fs::rename(&tmp, &config).unwrap();
        wait_until(&format!("generation {k}"), || {
            get(addr, &format!("/gen/{k}")).status == 200
        });
        assert_eq!(
            get(addr, &format!("/gen/{}", k - 1)).status,
            403,
            "generation {} is gone",
            k - 1
        );
    }
    let ok_after_writes = reload_count(admin, "ok");
    assert!(
        ok_after_writes - ok_before >= 50,
        "{ok_before} → {ok_after_writes}"
    );

    // SIGHUP reloads even an unchanged file.
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the SIGHUP reload", || {
        reload_count(admin, "ok") > ok_after_writes
    });

    stop.store(true, Ordering::Relaxed);
    let bad = client.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 100, "the client loop sent only {sent} requests");
    eprintln!("reload under load: {sent} requests, 50 rewrites, 1 broken file, 1 SIGHUP");
    assert!(
        bad.is_empty(),
        "{} of {sent} requests failed or saw a mix: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(reload_count(admin, "error") >= 1);
}

/// The status of a GET, or 0 when nothing answered (the server is still starting).
fn status_of(addr: SocketAddr, host: &str, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    try_send(addr, req.as_bytes()).map_or(0, |r| r.status)
}

/// The snapshot is one: reloads that swap the cookie key and the rule's name
/// together run in a loop while requests carry a cookie sealed with the
/// first generation's key. A request judged by one generation's rules with
/// the other's keys would be let in under the second rule's name; none is,
/// and both generations are seen to serve.
#[test]
fn no_request_sees_two_generations_of_rules_and_keys() {
    let g = crate::kit::TestGateway::start(TestConfig::new().body(
        "users: { alice: {} }\nupstreams: { demo: \"builtin:whoami\" }\nrules:\n  - { name: a, hosts: [app.home.lab], upstream: demo, policy: passkey }\n",
    ));
    let cookie = g.sign_in("alice", "app.home.lab", None, Vec::new());
    let first = g.gw.snapshot().config.clone();
    let other_key = g.dir.path().join("other");
    std::fs::create_dir_all(&other_key).unwrap_or_else(|e| panic!("{e}"));
    crate::kit::write_key(&other_key);
    let mut second = first.clone();
    second.rules[0].name = "b".into();
    second.cookie_keys = vec![other_key.join("cookie.key")];

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let reloader = {
        let (gw, stop, swaps) = (g.gw.clone(), stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for rt in [&second, &first] {
                    if let Err(e) = gw.apply(rt.clone()) {
                        panic!("apply: {e}");
                    }
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (mut let_in, mut sent_away) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && let_in + sent_away < 3000 {
        let r = g.get("app.home.lab", "/", &[("Cookie", &cookie)]);
        match r.status {
            200 => {
                assert_eq!(
                    r.echoed("stepgate-rule"),
                    vec!["a"],
                    "a mixed generation let the cookie in"
                );
                let_in += 1;
            }
            401 | 302 => sent_away += 1,
            _ => panic!("{r:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    if reloader.join().is_err() {
        panic!("the reload loop failed");
    }
    let swaps = swaps.load(Ordering::Relaxed);
    assert!(swaps > 100, "only {swaps} reloads");
    assert!(
        let_in > 0 && sent_away > 0,
        "both generations should have served: {let_in} let in, {sent_away} sent to sign in"
    );
}
