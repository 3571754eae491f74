//! Table tests for config compile: defaults, warnings, and errors found together.

use super::*;
use crate::trust::{CaFile, MdsSource};

use super::{TEST_BASE as BASE, test_warnings as warnings};

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
    assert_eq!(rt.boot.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(rt.boot.portal.rp_id, "auth.home.lab");
    assert_eq!(rt.boot.portal.origin, "https://auth.home.lab");
    assert_eq!(rt.session.idle_timeout.as_secs(), 8 * 3600);
    assert_eq!(rt.session.max_lifetime.as_secs(), 7 * 86400);
    assert_eq!(
        rt.boot.store,
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
    assert!(rt.boot.admin_listen.is_none() && rt.trusted_proxies.is_empty());
    assert_eq!(rt.boot.threads, compile::DEFAULT_THREADS);
}

#[test]
fn threads_are_bounded() {
    let c = check_str("t.yaml", &format!("{BASE}threads: 4\nrules: []"), 0).unwrap();
    assert_eq!(c.runtime.boot.threads, 4);
    for bad in ["0", "257"] {
        let e = errors(&format!("{BASE}threads: {bad}\nrules: []"));
        assert_eq!(
            e,
            vec![format!(
                "threads: {bad} is not between 1 and 256 worker threads"
            )]
        );
    }
    assert_eq!(errors(&format!("{BASE}threads: -1\nrules: []")).len(), 1);
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
    // A pattern vouches for no name by itself: anyone can make one up.
    assert!(!rt.vouches_for_host("x.apps.lab"));
    assert!(!rt.vouches_for_host("apps.lab"));
    assert!(!rt.vouches_for_host("evil.lab"));
    assert!(!rt.vouches_for_host("anything.example"));
    let listed = format!("{text}served: {{ hosts: [x.apps.lab], ports: [9000] }}\n");
    let rt = check_str("t.yaml", &listed, 0).unwrap().runtime;
    assert!(rt.vouches_for_host("x.apps.lab"));
    assert!(!rt.vouches_for_host("y.apps.lab"));
    assert!(rt.vouches_for_origin("x.apps.lab", true, None));
    assert!(rt.vouches_for_origin("x.apps.lab", true, Some(9000)));
    assert!(!rt.vouches_for_origin("x.apps.lab", true, Some(8443)));
}

#[test]
fn served_names_must_sit_under_a_pattern_and_patterns_alone_warn() {
    let text = format!(
        "{BASE}served: {{ hosts: [x.apps.lab, other.lab, \"*.apps.lab\"], ports: [0] }}\nrules:\n  - {{ name: a, hosts: [\"*.apps.lab\"], policy: passkey }}\n  - {{ name: b, hosts: [\"*.more.lab\"], policy: passkey }}\n"
    );
    let joined = errors(&text).join("\n");
    assert!(
        joined.contains("served.hosts[1]: \"other.lab\" is under no"),
        "{joined}"
    );
    assert!(joined.contains("served.hosts[2]"), "{joined}");
    assert!(
        joined.contains("served.ports[0]: 0 is not a port"),
        "{joined}"
    );
    assert!(!joined.contains("served.hosts[0]"), "{joined}");
    let ok = format!(
        "{BASE}served: {{ hosts: [x.apps.lab] }}\nrules:\n  - {{ name: a, hosts: [\"*.apps.lab\"], policy: passkey }}\n  - {{ name: b, hosts: [\"*.more.lab\"], policy: passkey }}\n"
    );
    let w: Vec<String> = check_str("t.yaml", &ok, 0)
        .unwrap()
        .warnings
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert!(
        w.iter()
            .any(|w| w.contains("rule \"b\": sign-in never returns")),
        "{w:?}"
    );
    assert!(!w.iter().any(|w| w.contains("rule \"a\"")), "{w:?}");
}

#[test]
fn redis_sentinel_form_compiles() {
    let text = format!(
        "{BASE}store:\n  redis:\n    sentinels: [10.0.0.1:26379, \"sentinel-b:26380\", \"[fd00::3]:26379\"]\n    master_name: gate\n    username: stepgate\n    password: s3cret\n    sentinel_password: other\n    db: 2\n    tls: true\n    prefix: \"sg:\"\n"
    );
    let rt = check_str("t.yaml", &text, 0).unwrap().runtime;
    let StoreSettings::Redis {
        target: RedisTarget::Sentinel(s),
        prefix,
    } = rt.boot.store
    else {
        panic!("not the sentinel form: {:?}", rt.boot.store)
    };
    assert_eq!(prefix, "sg:");
    assert_eq!(
        s.sentinels,
        vec![
            ("10.0.0.1".to_string(), 26379),
            ("sentinel-b".to_string(), 26380),
            ("fd00::3".to_string(), 26379)
        ]
    );
    assert_eq!((s.master_name.as_str(), s.db, s.tls), ("gate", 2, true));
    assert_eq!(s.redis_auth.username.as_deref(), Some("stepgate"));
    assert_eq!(s.redis_auth.password, Some(Secret("s3cret".into())));
    assert_eq!(s.sentinel_auth.username, None);
    assert_eq!(s.sentinel_auth.password, Some(Secret("other".into())));
    // Passwords never show in Debug output (logs, panics).
    assert!(!format!("{s:?}").contains("s3cret"));
    let url = check_str(
        "t.yaml",
        &format!("{BASE}store: {{ redis: {{ url: \"rediss://u:p@r:6380/1\" }} }}\n"),
        0,
    )
    .unwrap()
    .runtime;
    assert_eq!(
        url.boot.store,
        StoreSettings::Redis {
            target: RedisTarget::Url("rediss://u:p@r:6380/1".into()),
            prefix: "stepgate:".into()
        }
    );
}

#[test]
fn redis_section_errors_come_together() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{ url: \"redis://r\", sentinels: [\"s:1\"], master_name: m }",
            &["store.redis: give either url (one Redis) or sentinels"],
        ),
        ("{ prefix: x }", &["store.redis: name the server"]),
        (
            "{ sentinels: [\"nope\", \"h:0\", \"h:70000\", \":5\"], db: -1 }",
            &[
                "store.redis.sentinels[0]: \"nope\" is not host:port",
                "store.redis.sentinels[1]: \"h:0\" is not host:port",
                "store.redis.sentinels[2]: \"h:70000\" is not host:port",
                "store.redis.sentinels[3]: \":5\" is not host:port",
                "store.redis.master_name: missing",
                "store.redis.db: must be 0 or more",
            ],
        ),
        (
            "{ sentinels: [], master_name: m }",
            &["store.redis.sentinels: list at least one sentinel"],
        ),
        (
            "{ url: \"redis://r\", password: p, master_name: m }",
            &[
                "store.redis.password: belongs to the Sentinel form",
                "store.redis.master_name: belongs to the Sentinel form",
            ],
        ),
        (
            "{ cluster: [\"a:7000\", \"b:7001\"], url: \"redis://a:7000\" }",
            &[
                "store.redis.cluster: Redis Cluster is not supported: ceremony states are taken with one single-read GETDEL",
            ],
        ),
    ];
    for (redis, wants) in cases {
        let e = errors(&format!("{BASE}store: {{ redis: {redis} }}\n"));
        for want in *wants {
            assert!(
                e.iter().any(|m| m.starts_with(want)),
                "{redis}: missing {want:?} in {e:?}"
            );
        }
    }
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

#[test]
fn identity_headers_and_tokens_compile() {
    let text = format!(
        "{BASE}session: {{ token_max_lifetime: 30d }}\nupstreams:\n  gitea: {{ url: \"http://127.0.0.1:3000\", identity_headers: {{ user: X-WEBAUTH-USER, email: X-WEBAUTH-EMAIL }} }}\n  plain: \"http://127.0.0.1:3001\"\nrules:\n  - {{ name: git, hosts: [g.lab], paths: [/x/**], upstream: gitea, policy: passkey, tokens: {{ from: basic }} }}\n  - {{ name: api, hosts: [g.lab], paths: [/api/**], upstream: plain, policy: passkey, tokens: {{ from: {{ header: X-Stepgate-Token }}, keep: true, sessions: true }} }}\n  - {{ name: web, hosts: [g.lab], upstream: gitea, policy: passkey }}\n"
    );
    let rt = check_str("t.yaml", &text, 0).unwrap().runtime;
    assert_eq!(rt.token_max_lifetime.as_secs(), 30 * 86_400);
    let git = &rt.rules[0];
    let mapped = git.identity_headers.as_deref().unwrap();
    assert_eq!(
        mapped.user.as_ref().map(|h| h.as_str()),
        Some("x-webauth-user")
    );
    assert!(mapped.contains("x-webauth-email") && mapped.name.is_none());
    assert_eq!(
        git.tokens,
        Some(TokenRule {
            from: TokenFrom::Basic,
            keep: false,
            sessions: false
        })
    );
    assert!(rt.rules[1].identity_headers.is_none());
    assert_eq!(
        rt.rules[1].tokens,
        Some(TokenRule {
            from: TokenFrom::Header(http::HeaderName::from_static("x-stepgate-token")),
            keep: true,
            sessions: true
        })
    );
    assert!(rt.rules[2].identity_headers.is_some() && rt.rules[2].tokens.is_none());
    let defaults = check_str("t.yaml", &format!("{BASE}rules: []"), 0).unwrap();
    assert_eq!(defaults.runtime.token_max_lifetime.as_secs(), 90 * 86_400);
}

/// A mapping to a hop-by-hop, framing or forwarding header, and tokens in the
/// wrong place, are refused all at once, each at its own line and column.
#[test]
fn reserved_identity_and_token_headers_are_refused_with_their_place() {
    let text = r#"portal: { url: https://auth.home.lab }
secrets: { cookie_keys: [k] }
session: { token_max_lifetime: 10m }
upstreams:
  a:
    url: http://127.0.0.1:3000
    identity_headers:
      user: Host
      email: Content-Length
      name: Transfer-Encoding
      groups: Connection
  b: { url: "http://127.0.0.1:3001", identity_headers: { user: Cookie, email: X_User, name: Proxy-Authorization, groups: X-Forwarded-User } }
  c: { url: "http://127.0.0.1:3002", identity_headers: { user: X-User, email: X-User, name: Remote-User, groups: "bad name" } }
rules:
  - { name: t1, hosts: [h], paths: [/a], upstream: c, policy: passkey, tokens: { from: { header: X-User } } }
  - { name: t2, hosts: [h], paths: [/b], policy: bypass, tokens: { from: bearer } }
  - { name: t3, hosts: [h], paths: [/c], policy: passkey, tokens: { from: { header: Authorization } } }
  - { name: t4, hosts: [h], paths: [/d], policy: passkey, tokens: { from: cookie } }
  - { name: t5, hosts: [h], paths: [/e], policy: passkey, tokens: { from: basic, keeps: true } }
"#;
    let e = match check_str("t.yaml", text, 0) {
        Ok(_) => panic!("passed"),
        Err(e) => e,
    };
    let found: Vec<String> = e
        .errors()
        .map(|d| format!("{}:{}: {}: {}", d.line, d.col, d.path, d.message))
        .collect();
    for want in [
        "8:13: upstreams.a.identity_headers.user: \"Host\" cannot be used: is a hop-by-hop, framing or credential header",
        "9:14: upstreams.a.identity_headers.email: \"Content-Length\" cannot be used",
        "10:13: upstreams.a.identity_headers.name: \"Transfer-Encoding\" cannot be used",
        "11:15: upstreams.a.identity_headers.groups: \"Connection\" cannot be used",
        "upstreams.b.identity_headers.user: \"Cookie\" cannot be used",
        "upstreams.b.identity_headers.email: \"X_User\" cannot be used: header names with '_' or '.'",
        "upstreams.b.identity_headers.name: \"Proxy-Authorization\" cannot be used",
        "upstreams.b.identity_headers.groups: \"X-Forwarded-User\" cannot be used: is a forwarding header",
        "upstreams.c.identity_headers.email: \"X-User\" already carries another part of the identity",
        "upstreams.c.identity_headers.name: \"Remote-User\" cannot be used: is one of stepgate's own identity headers",
        "upstreams.c.identity_headers.groups: \"bad name\" is not a header name",
        "rules[0].tokens.from.header: \"X-User\" is one of this rule's upstream identity_headers",
        "rules[1].tokens: tokens only apply to policy: passkey rules",
        "rules[2].tokens.from.header: \"Authorization\" cannot be used",
        "rules[3].tokens.from: invalid value: string \"cookie\", expected basic, bearer or a mapping {header: NAME}",
        "rules[4].tokens.keeps: unknown key \"keeps\"",
    ] {
        assert!(
            found
                .iter()
                .any(|m| m.starts_with(want) || m.contains(&format!(": {want}"))),
            "missing {want:?} in {found:#?}"
        );
    }
    assert!(
        found
            .iter()
            .any(|m| m.contains("session.token_max_lifetime: must be at least 1h")),
        "{found:#?}"
    );
}
