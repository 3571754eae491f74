//! Unit and property tests for the cookie codec.

use http::HeaderValue;
use proptest::prelude::*;

use super::*;
use crate::model::new_secret;

fn keys(seeds: &[u8]) -> CookieKeys {
    match CookieKeys::from_keys(seeds.iter().map(|s| vec![*s; 32]).collect()) {
        Some(k) => k,
        None => panic!("bad test keys"),
    }
}

fn sealed(k: &CookieKeys, kind: CookieKind, token: &str) -> String {
    match k.seal(kind, token) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn headers(lines: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for l in lines {
        if let Ok(v) = HeaderValue::from_str(l) {
            h.append(COOKIE, v);
        }
    }
    h
}

#[test]
fn seal_open_round_trip() {
    let k = keys(&[1]);
    let token = new_secret();
    let value = sealed(&k, CookieKind::App, &token);
    assert_eq!(value.len(), VALUE_LEN);
    assert_eq!(k.open(CookieKind::App, &value), Some(token.clone()));
    // A portal cookie is no app cookie and vice versa.
    assert_eq!(k.open(CookieKind::Portal, &value), None);
    // Fresh tokens give fresh values.
    assert_ne!(sealed(&k, CookieKind::App, &new_secret()), value);
}

#[test]
fn seal_rejects_tokens_that_are_not_ours() {
    let k = keys(&[1]);
    assert_eq!(k.seal(CookieKind::App, "short"), Err(BadToken));
    assert_eq!(k.seal(CookieKind::App, "not base64!!"), Err(BadToken));
    assert_eq!(k.seal(CookieKind::App, ""), Err(BadToken));
}

#[test]
fn keys_rotate_first_signs_all_verify() {
    let old = keys(&[1]);
    let rotated = keys(&[2, 1]);
    let token = new_secret();
    let by_old = sealed(&old, CookieKind::Portal, &token);
    assert_eq!(
        rotated.open(CookieKind::Portal, &by_old),
        Some(token.clone())
    );
    let by_new = sealed(&rotated, CookieKind::Portal, &token);
    assert_ne!(by_new, by_old, "the first key signs");
    assert_eq!(old.open(CookieKind::Portal, &by_new), None);
    // Once the old key is dropped, its cookies stop working.
    assert_eq!(keys(&[2]).open(CookieKind::Portal, &by_old), None);
}

#[test]
fn malformed_values_are_no_session() {
    let k = keys(&[7]);
    let value = sealed(&k, CookieKind::App, &new_secret());
    let cases = [
        String::new(),
        value[..VALUE_LEN - 1].to_string(),
        format!("{value}A"),
        format!("{value}="),
        value.replace(['-', '_'], "+"),
        format!("{}+", &value[..VALUE_LEN - 1]),
        format!("{}/", &value[..VALUE_LEN - 1]),
        format!("{}=", &value[..VALUE_LEN - 1]),
        "A".repeat(VALUE_LEN),
        format!(" {}", &value[1..]),
    ];
    for c in &cases {
        if c != &value {
            assert_eq!(k.open(CookieKind::App, c), None, "{c:?}");
        }
    }
    // Every single-character change breaks the tag or the encoding.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..VALUE_LEN {
        let mut b = value.clone().into_bytes();
        let cur = b[i];
        b[i] = alphabet.bytes().find(|&x| x != cur).unwrap_or(b'A');
        assert_eq!(k.open_bytes(CookieKind::App, &b), None, "position {i}");
    }
}

#[test]
fn cookie_is_found_once_or_not_at_all() {
    let k = keys(&[3]);
    let token = new_secret();
    let v = sealed(&k, CookieKind::App, &token);
    let one = headers(&[&format!("a=1; stepgate_app={v}; b=2")]);
    assert_eq!(
        k.token_from_headers(&one, CookieKind::App, false),
        Some(token.clone())
    );
    // Two cookies of the same name: ambiguous, no session (same line or two lines).
    let twice = headers(&[&format!("stepgate_app={v}; stepgate_app={v}")]);
    assert_eq!(k.token_from_headers(&twice, CookieKind::App, false), None);
    let two_lines = headers(&[
        &format!("stepgate_app={v}"),
        &format!("x=1; stepgate_app={v}"),
    ]);
    assert_eq!(
        k.token_from_headers(&two_lines, CookieKind::App, false),
        None
    );
    // Split over two header lines (HTTP/2) is fine.
    let split = headers(&["a=1", &format!("stepgate_app={v}")]);
    assert_eq!(
        k.token_from_headers(&split, CookieKind::App, false),
        Some(token.clone())
    );
    // Over https only the __Host- name counts: a plain one may come from a sibling host.
    assert_eq!(k.token_from_headers(&one, CookieKind::App, true), None);
    let host = headers(&[&format!("__Host-stepgate_app={v}")]);
    assert_eq!(
        k.token_from_headers(&host, CookieKind::App, true),
        Some(token)
    );
    assert_eq!(k.token_from_headers(&host, CookieKind::App, false), None);
    // Names are exact.
    let near = headers(&[&format!("Stepgate_App={v}; stepgate_app2={v}")]);
    assert_eq!(k.token_from_headers(&near, CookieKind::App, false), None);
    assert_eq!(
        k.token_from_headers(&HeaderMap::new(), CookieKind::App, false),
        None
    );
}

#[test]
fn set_cookie_lines() {
    let now = 1_000;
    let plain = set_cookie(CookieKind::Portal, false, "VALUE", now + 3600, now);
    assert_eq!(
        plain,
        "stepgate_portal=VALUE; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"
    );
    let secure = set_cookie(CookieKind::App, true, "VALUE", now + 60, now);
    assert_eq!(
        secure,
        "__Host-stepgate_app=VALUE; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
    assert!(!secure.to_ascii_lowercase().contains("domain"));
    // Never past the absolute expiry, even when it has passed.
    assert!(set_cookie(CookieKind::App, true, "V", now - 5, now).contains("Max-Age=0;"));
    assert_eq!(
        clear_cookie(CookieKind::App, true),
        "__Host-stepgate_app=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
    assert_eq!(
        clear_cookie(CookieKind::Portal, false),
        "stepgate_portal=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    );
}

#[test]
fn our_cookies_are_stripped_before_upstream() {
    let s = |v: &str| {
        strip_cookie_value(v.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    assert_eq!(
        s("a=1; stepgate_app=x; b=2;__Host-stepgate_portal=y; STEPGATE_PORTAL=z"),
        Some("a=1; b=2".to_string())
    );
    assert_eq!(s("stepgate_app=x; __Host-stepgate_app=y"), None);
    assert_eq!(
        s("stepgate_appx=1; session=2"),
        Some("stepgate_appx=1; session=2".to_string())
    );
    assert_eq!(s(""), None);
    assert_eq!(s("flag; stepgate_app"), Some("flag".to_string()));

    assert_eq!(
        s("__host-STEPGATE_state=1; stepgate_ceremony=2; c=3"),
        Some("c=3".to_string())
    );

    let h = headers(&["a=1; stepgate_app=x", "stepgate_portal=y", "b=2"]);
    let left: Vec<_> = cookies_without_ours(&h)
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(left, ["a=1", "b=2"]);
}

#[test]
fn key_files_load_or_fail_clearly() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        if let Err(e) = std::fs::write(&p, text) {
            panic!("{e}");
        }
        p
    };
    let mut generated = Vec::new();
    if let Err(e) = crate::commands::gen_key(&mut generated) {
        panic!("{e}");
    }
    let good = write("good.key", &String::from_utf8_lossy(&generated));
    let good2 = write("good2.key", &format!("{}\n", STANDARD.encode([9u8; 48])));
    let short = write("short.key", &format!("{}\n", STANDARD.encode([9u8; 16])));
    let junk = write("junk.key", "this is not a key\n");
    let empty = write("empty.key", "");
    let missing = dir.path().join("missing.key");

    let k = match CookieKeys::load(&[good.clone(), good2]) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    };
    let token = new_secret();
    assert_eq!(
        k.open(CookieKind::App, &sealed(&k, CookieKind::App, &token)),
        Some(token)
    );
    assert!(matches!(CookieKeys::load(&[]), Err(KeyError::NoKeys)));
    assert!(matches!(
        CookieKeys::load(&[good.clone(), missing]),
        Err(KeyError::Unreadable { .. })
    ));
    assert!(matches!(
        CookieKeys::load(std::slice::from_ref(&short)),
        Err(KeyError::TooShort { len: 16, .. })
    ));
    assert!(matches!(
        CookieKeys::load(&[junk]),
        Err(KeyError::NotBase64 { .. })
    ));
    assert!(matches!(
        CookieKeys::load(&[empty]),
        Err(KeyError::NotBase64 { .. })
    ));
    let msg = match CookieKeys::load(std::slice::from_ref(&short)) {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    assert!(
        msg.contains(&short.display().to_string()) && msg.contains("gen-key"),
        "{msg}"
    );
    assert_eq!(format!("{k:?}"), "CookieKeys(2 keys)");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_yield_a_session(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let k = keys(&[5]);
        prop_assert_eq!(k.open_bytes(CookieKind::App, &bytes), None);
        prop_assert_eq!(k.open_bytes(CookieKind::Portal, &bytes), None);
    }

    #[test]
    fn arbitrary_cookie_headers_never_yield_a_session(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        secure in any::<bool>(),
    ) {
        let k = keys(&[5]);
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            h.append(COOKIE, v.clone());
            prop_assert_eq!(k.token_from_headers(&h, CookieKind::App, secure), None);
            let _ = cookies_without_ours(&h);
        }
        let _ = strip_cookie_value(&bytes);
    }

    #[test]
    fn arbitrary_values_after_our_name_never_yield_a_session(value in "[A-Za-z0-9_=+/-]{0,80}") {
        let k = keys(&[5]);
        let h = headers(&[&format!("stepgate_app={value}")]);
        prop_assert_eq!(k.token_from_headers(&h, CookieKind::App, false), None);
    }

    #[test]
    fn flipping_any_bit_of_a_real_value_breaks_it(pos in 0..VALUE_LEN, bit in 0u8..8) {
        let k = keys(&[5]);
        let v = sealed(&k, CookieKind::App, &new_secret());
        let mut b = v.into_bytes();
        b[pos] ^= 1 << bit;
        prop_assert_eq!(k.open_bytes(CookieKind::App, &b), None);
    }
}

#[test]
fn minted_cookies_open_to_the_stored_hash() {
    let k = keys(&[4]);
    let m = k.mint(CookieKind::Portal);
    let token = k.open(CookieKind::Portal, &m.cookie_value);
    assert_eq!(
        token.as_deref().map(crate::model::token_hash),
        Some(m.token_hash.clone())
    );
    assert_ne!(k.mint(CookieKind::Portal), m);
    assert!(!format!("{m:?}").contains(&m.cookie_value));
}
