//! Table tests for `decide` on rules that take client tokens: a token is a
//! session whose only ceremony is the mint, scoped to the rules it names.

use super::*;
use crate::client_token::ClientToken;
use crate::config::check_str;
use crate::model::{AppSession, AttestationProof, PortalSession};

const NOW: i64 = 1_900_000_000;
const YUBIKEY5: uuid::Uuid = uuid::uuid!("cb69481e-8ff7-4039-93ec-0a2729a154a8");

fn runtime() -> Runtime {
    let yaml = r#"
portal: { url: https://auth.home.lab }
secrets: { cookie_keys: [k] }
users:
  alice: { name: Alice, email: a@home.lab, groups: [admins] }
  bob: { groups: [staff] }
  guest: { expires: 2030-01-01T00:00:00Z }
authenticators:
  yubikey5: { aaguids: [cb69481e-8ff7-4039-93ec-0a2729a154a8], ca_files: [/x.pem] }
rules:
  - { name: git, hosts: [h], paths: [/git/**], policy: passkey, tokens: { from: basic } }
  - { name: dav, hosts: [h], paths: [/dav/**], policy: passkey, tokens: { from: basic, sessions: true } }
  - { name: admins, hosts: [h], paths: [/admins/**], policy: passkey, allow: [group:admins], tokens: { from: bearer } }
  - name: fresh
    hosts: [h]
    paths: [/fresh/**]
    policy: passkey
    tokens: { from: bearer }
    step_up: { max_age: 5m, scope: rule }
  - name: yubi
    hosts: [h]
    paths: [/yubi/**]
    policy: passkey
    tokens: { from: bearer }
    step_up: { scope: session, authenticators: [yubikey5], device_bound: true }
  - { name: web, hosts: [h], policy: passkey }
"#;
    let mut rt = match check_str("t.yaml", yaml, NOW) {
        Ok(c) => c.runtime,
        Err(e) => panic!("{e}"),
    };
    rt.trust = std::sync::Arc::new(TrustStore::for_tests(&[(
        "yubikey5",
        &[YUBIKEY5],
        "root-yubikey5",
    )]));
    rt
}

/// A token of `user` for `rules`, minted at `at` with a credential that is
/// attested as a YubiKey 5 or not, and synced or not.
fn token(user: &str, rules: &[&str], at: i64, yubikey: bool, synced: bool) -> TokenView {
    let credential = CredentialStanding {
        id: "cred".into(),
        flagged: false,
        expires_at: None,
        backup_eligible: synced,
        attestation: yubikey.then(|| AttestationProof {
            format: "packed".into(),
            root: "root-yubikey5".into(),
            aaguid: YUBIKEY5,
        }),
    };
    TokenView {
        token: ClientToken {
            id: "t1".into(),
            user: user.into(),
            label: "laptop git".into(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            created_at: at,
            expires_at: at + 30 * 86_400,
            verification: Verification {
                at,
                credential_id: "cred".into(),
                credential_label: "key".into(),
                aaguid: if yubikey { YUBIKEY5 } else { uuid::Uuid::nil() },
                backup_eligible: synced,
            },
        },
        credential: Some(credential),
    }
}

/// A live browser session of alice, signed in just now.
fn session() -> AppView {
    let v = Verification {
        at: NOW - 10,
        credential_id: "web".into(),
        credential_label: "laptop".into(),
        aaguid: uuid::Uuid::nil(),
        backup_eligible: true,
    };
    AppView {
        app: AppSession {
            id: "a".into(),
            portal_id: "p".into(),
            user: "alice".into(),
            host: "h".into(),
            created_at: NOW - 60,
            last_seen_at: NOW,
            expires_at: NOW + 3600,
        },
        portal: PortalSession {
            id: "p".into(),
            user: "alice".into(),
            created_at: NOW - 60,
            last_seen_at: NOW,
            expires_at: NOW + 3600,
            signed_in_with: Some("web".into()),
            client: None,
            last_uv: Some(v),
        },
        grants: vec![],
        credentials: vec![CredentialStanding {
            id: "web".into(),
            flagged: false,
            expires_at: None,
            backup_eligible: true,
            attestation: None,
        }],
    }
}

fn decide_on(rt: &Runtime, rule: &str, state: SessionState<'_>, now: i64) -> Decision {
    decide(rt, rt.rules.iter().find(|r| r.name == rule), state, now)
}

fn allowed_as(d: &Decision) -> Option<(&str, Option<i64>, &str)> {
    match d {
        Decision::Allow { identity: Some(id) } => {
            Some((id.user.as_str(), id.verified_at, id.rule.as_str()))
        }
        _ => None,
    }
}

#[test]
fn a_token_is_judged_like_a_session_whose_only_ceremony_is_the_mint() {
    use TokenReason as T;
    let rt = runtime();
    let minted = NOW - 3600;
    let git = token("alice", &["git", "dav"], minted, false, true);
    let d = decide_on(&rt, "git", SessionState::Token(Some(&git)), NOW);
    assert_eq!(allowed_as(&d), Some(("alice", Some(minted), "git")));
    let d = decide_on(&rt, "dav", SessionState::Token(Some(&git)), NOW);
    assert_eq!(allowed_as(&d), Some(("alice", Some(minted), "dav")));

    let refused = |rule: &str, state: SessionState<'_>, now: i64| decide_on(&rt, rule, state, now);
    let cases: Vec<(&str, &str, SessionState<'_>, i64, Decision)> = vec![
        (
            "no token at all",
            "git",
            SessionState::None,
            NOW,
            Decision::TokenRefused(T::Missing),
        ),
        (
            "unknown token",
            "git",
            SessionState::Token(None),
            NOW,
            Decision::TokenRefused(T::Invalid),
        ),
        (
            "expired by the gateway's clock",
            "git",
            SessionState::Token(Some(&git)),
            minted + 30 * 86_400,
            Decision::TokenRefused(T::Invalid),
        ),
        (
            "minted for other rules",
            "admins",
            SessionState::Token(Some(&git)),
            NOW,
            Decision::TokenRefused(T::OtherRule),
        ),
        (
            "store down",
            "git",
            SessionState::Unavailable,
            NOW,
            Decision::Unavailable,
        ),
    ];
    for (what, rule, state, now, want) in cases {
        assert_eq!(refused(rule, state, now), want, "{what}");
    }
}

#[test]
fn a_session_alone_does_not_open_a_token_rule_unless_it_takes_sessions() {
    let rt = runtime();
    let s = session();
    assert_eq!(
        decide_on(&rt, "git", SessionState::Live(&s), NOW),
        Decision::TokenRefused(TokenReason::Missing)
    );
    let d = decide_on(&rt, "dav", SessionState::Live(&s), NOW);
    assert_eq!(allowed_as(&d), Some(("alice", Some(NOW - 10), "dav")));
    assert_eq!(
        decide_on(&rt, "dav", SessionState::None, NOW),
        Decision::Login
    );
    // With sessions: true a presented token still decides alone.
    assert_eq!(
        decide_on(&rt, "dav", SessionState::Token(None), NOW),
        Decision::TokenRefused(TokenReason::Invalid)
    );
    // A rule without tokens: never judged by one.
    let t = token("alice", &["web"], NOW, false, true);
    assert_eq!(
        decide_on(&rt, "web", SessionState::Token(Some(&t)), NOW),
        Decision::Login
    );
}

#[test]
fn a_token_never_beats_freshness_model_or_binding() {
    use StepUpReason as S;
    use TokenReason as T;
    let rt = runtime();
    let young = token("alice", &["fresh"], NOW - 299, false, true);
    let old = token("alice", &["fresh"], NOW - 301, false, true);
    let future = token("alice", &["fresh"], NOW + 60, false, true);
    assert!(
        allowed_as(&decide_on(
            &rt,
            "fresh",
            SessionState::Token(Some(&young)),
            NOW
        ))
        .is_some()
    );
    for (t, why) in [
        (&old, "older than max_age"),
        (&future, "minted in the future"),
    ] {
        assert_eq!(
            decide_on(&rt, "fresh", SessionState::Token(Some(t)), NOW),
            Decision::TokenRefused(T::StepUp(S::TooOld)),
            "{why}"
        );
    }
    let yk_bound = token("alice", &["yubi"], NOW - 86_400, true, false);
    let yk_synced = token("alice", &["yubi"], NOW - 86_400, true, true);
    let plain_bound = token("alice", &["yubi"], NOW - 86_400, false, false);
    let cases = [
        (&yk_bound, None),
        (&yk_synced, Some(S::NotDeviceBound)),
        (&plain_bound, Some(S::WrongAuthenticator)),
    ];
    for (t, want) in cases {
        let d = decide_on(&rt, "yubi", SessionState::Token(Some(t)), NOW);
        match want {
            None => assert!(allowed_as(&d).is_some(), "{d:?}"),
            Some(r) => assert_eq!(d, Decision::TokenRefused(T::StepUp(r))),
        }
    }
}

#[test]
fn a_token_stands_only_while_its_passkey_and_user_do() {
    use TokenReason as T;
    let rt = runtime();
    let base = token("alice", &["git", "admins"], NOW - 60, false, true);
    let mut gone = base.clone();
    gone.credential = None;
    let mut flagged = base.clone();
    if let Some(c) = &mut flagged.credential {
        c.flagged = true;
    }
    let mut expired = base.clone();
    if let Some(c) = &mut expired.credential {
        c.expires_at = Some(NOW);
    }
    let mut other_cred = base.clone();
    if let Some(c) = &mut other_cred.credential {
        c.id = "another".into();
    }
    for (t, why) in [
        (&gone, "passkey revoked"),
        (&flagged, "passkey flagged"),
        (&expired, "passkey expired"),
        (&other_cred, "standing of another passkey"),
    ] {
        assert_eq!(
            decide_on(&rt, "git", SessionState::Token(Some(t)), NOW),
            Decision::TokenRefused(T::CredentialGone),
            "{why}"
        );
    }
    let ghost = token("ghost", &["git"], NOW - 60, false, true);
    assert_eq!(
        decide_on(&rt, "git", SessionState::Token(Some(&ghost)), NOW),
        Decision::TokenRefused(T::Invalid)
    );
    let guest = token("guest", &["git"], NOW - 60, false, true);
    assert_eq!(
        decide_on(&rt, "git", SessionState::Token(Some(&guest)), 1_893_456_000),
        Decision::Deny(DenyReason::UserExpired)
    );
    let bob = token("bob", &["admins"], NOW - 60, false, true);
    assert_eq!(
        decide_on(&rt, "admins", SessionState::Token(Some(&bob)), NOW),
        Decision::Deny(DenyReason::NotAllowed)
    );
}
