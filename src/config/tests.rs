//! Table tests for config compile: defaults, warnings, and errors found together.

use super::*;

const BASE: &str = "portal: { url: https://auth.home.lab }\nsecrets: { cookie_keys: [k] }\n";

fn warnings(extra: &str) -> Vec<String> {
    match check_str("t.yaml", &format!("{BASE}{extra}"), 1_000_000) {
        Ok(c) => c
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect(),
        Err(e) => panic!("{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match check_str("t.yaml", text, 1_000_000) {
        Ok(_) => panic!("passed: {text}"),
        Err(e) => e
            .errors()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
    }
}

#[test]
fn defaults_fill_in() {
    let c = check_str("t.yaml", &format!("{BASE}rules: []"), 0).unwrap();
    let rt = c.runtime;
    assert_eq!(rt.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(rt.portal.rp_id, "auth.home.lab");
    assert_eq!(rt.portal.origin, "https://auth.home.lab");
    assert_eq!(rt.session.idle_timeout.as_secs(), 8 * 3600);
    assert_eq!(rt.session.max_lifetime.as_secs(), 7 * 86400);
    assert_eq!(
        rt.store,
        StoreSettings::Sqlite {
            path: "./data/stepgate.db".into()
        }
    );
    assert_eq!(
        rt.rate_limit,
        RateLimit {
            per_ip_per_minute: 120,
            per_user_per_minute: 30
        }
    );
    assert!(rt.admin_listen.is_none() && rt.trusted_proxies.is_empty());
}

#[test]
fn warnings_are_reported_apart() {
    let cases: &[(&str, &str)] = &[
        ("rules: []", "rules: no rules"),
        (
            "trusted_proxies: [0.0.0.0/0]\nrules: []",
            "trusted_proxies[0]: \"0.0.0.0/0\" trusts forwarded headers from every address",
        ),
        (
            "users: { g: { expires: 1970-01-02T00:00:00Z } }\nrules: []",
            "users.g.expires: user \"g\" expired",
        ),
        (
            "rules:\n  - { name: a, hosts: [\"*\"], policy: passkey }",
            "rules[0].hosts: passkey rule on \"*\" with no allow",
        ),
        (
            "rules:\n  - { name: a, hosts: [\"*.home.lab\"], policy: passkey }\n  - { name: b, hosts: [git.home.lab], paths: [/x], policy: bypass }",
            "rules[1]: rule \"b\" can never match: rule \"a\" above",
        ),
        (
            "rules:\n  - { name: a, hosts: [x.lab], allow: [group:nobody], policy: passkey }",
            "rules[0].allow[0]: no configured user is in group \"nobody\"",
        ),
    ];
    for (extra, want) in cases {
        let w = warnings(extra);
        assert!(w.iter().any(|m| m.starts_with(want)), "{extra}: {w:?}");
    }
    let http = check_str(
        "t.yaml",
        "portal: { url: http://auth.localhost:8080 }\nsecrets: { cookie_keys: [k] }\nrules: []",
        0,
    )
    .unwrap();
    assert!(
        http.warnings
            .iter()
            .any(|w| w.message.starts_with("plain-http portal"))
    );
}

#[test]
fn narrower_earlier_rules_do_not_shadow() {
    let w = warnings(
        "rules:\n  - { name: a, hosts: [git.home.lab], paths: [/admin], policy: passkey }\n  - { name: b, hosts: [git.home.lab], policy: passkey }",
    );
    assert!(!w.iter().any(|m| m.contains("never match")), "{w:?}");
}

#[test]
fn errors_from_every_section_come_together() {
    let text = "listen: nope\nportal: { url: ftp://x }\nsecrets: { cookie_keys: [] }\nsession: { idle_timeout: 10s }\nstore: {}\nrate_limit: { per_ip_per_minute: 0 }\nupstreams: { a: builtin:nope, b: \"http://x:1/path\" }\nrules:\n  - { name: r, hosts: [], policy: deny, allow: [group:g] }\n";
    let e = errors(text);
    for want in [
        "listen: \"nope\" is not an address:port",
        "portal.url: scheme \"ftp\" is not allowed",
        "secrets.cookie_keys: at least one key file is required",
        "session.idle_timeout: must be at least 1m",
        "store: name a backend",
        "rate_limit.per_ip_per_minute: must be at least 1",
        "upstreams.a: unknown built-in upstream \"nope\"",
        "upstreams.b: \"http://x:1/path\" must not carry a path",
        "rules[0].hosts: list at least one host",
        "rules[0].allow: allow only applies to policy: passkey",
    ] {
        assert!(
            e.iter().any(|m| m.starts_with(want)),
            "missing {want:?} in {e:?}"
        );
    }
}

#[test]
fn rp_id_must_cover_the_portal_host() {
    let e = errors(
        "portal: { url: https://auth.home.lab, rp_id: other.lab }\nsecrets: { cookie_keys: [k] }\n",
    );
    assert!(
        e[0].starts_with("portal.rp_id: \"other.lab\" must be the portal host"),
        "{e:?}"
    );
    let ok = check_str(
        "t.yaml",
        "portal: { url: https://auth.home.lab, rp_id: home.lab }\nsecrets: { cookie_keys: [k] }\n",
        0,
    );
    assert!(ok.is_ok());
}

#[test]
fn vouching_for_redirect_hosts() {
    let text = format!(
        "{BASE}rules:\n  - {{ name: a, hosts: [app.home.lab, \"*.apps.lab\"], policy: passkey }}\n  - {{ name: b, hosts: [evil.lab], policy: deny }}\n  - {{ name: c, hosts: [\"*\"], paths: [/x], policy: bypass }}\n"
    );
    let rt = check_str("t.yaml", &text, 0).unwrap().runtime;
    assert!(rt.vouches_for_host("auth.home.lab"));
    assert!(rt.vouches_for_host("app.home.lab"));
    assert!(rt.vouches_for_host("x.apps.lab"));
    assert!(!rt.vouches_for_host("apps.lab"));
    assert!(!rt.vouches_for_host("evil.lab"));
    assert!(!rt.vouches_for_host("anything.example"));
}

#[test]
fn ca_files_take_a_path_or_a_root_with_its_aaguids() {
    let yk = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    let other = "ee882879-721c-4913-9775-3dfcce97072a";
    let text = format!(
        "{BASE}authenticators:\n  keys:\n    aaguids: [{yk}]\n    ca_files:\n      - /a.pem\n      - {{ file: /b.pem, aaguids: [{yk}, {other}] }}\n    mds_file: /m.jwt\n    mds_root: /r.pem\nrules: []\n"
    );
    let c = check_str("t.yaml", &text, 0).unwrap();
    let set = &c.runtime.authenticators["keys"];
    let yk = uuid::Uuid::parse_str(yk).unwrap();
    let other = uuid::Uuid::parse_str(other).unwrap();
    assert_eq!(
        set.ca_files,
        vec![
            CaFile {
                path: "/a.pem".into(),
                aaguids: None
            },
            CaFile {
                path: "/b.pem".into(),
                aaguids: Some(vec![yk, other])
            },
        ]
    );
    assert_eq!(
        set.mds,
        Some(MdsSource {
            blob: "/m.jwt".into(),
            root: "/r.pem".into()
        })
    );
    // A root vouching for a model the set does not list admits nothing with it.
    let w: Vec<String> = c
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    assert_eq!(
        w[0],
        format!(
            "authenticators.keys.ca_files[1].aaguids[1]: {other} is not in this set's aaguids, so this root admits nothing with it"
        )
    );
    // Nothing is read at compile time: no root is trusted until the files are loaded.
    assert!(c.runtime.trust.roots_of("keys").is_empty());
}
