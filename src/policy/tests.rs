//! Table tests for `decide`.

use super::*;
use crate::config::check_str;
use crate::model::AttestationProof;

fn runtime() -> Runtime {
    let yaml = r#"
portal: { url: https://auth.home.lab }
secrets: { cookie_keys: [k] }
users:
  alice: { groups: [admins] }
  bob: {}
rules:
  - { name: open, hosts: [open.home.lab], policy: bypass }
  - { name: closed, hosts: [closed.home.lab], policy: deny }
  - { name: app, hosts: [app.home.lab], policy: passkey }
"#;
    crate::config::test_runtime(yaml)
}

#[test]
fn no_rule_denies() {
    let rt = runtime();
    assert_eq!(
        decide(&rt, None, SessionState::None, 0),
        Decision::Deny(DenyReason::NoRule)
    );
}

#[test]
fn bypass_and_deny_ignore_the_store() {
    let rt = runtime();
    assert_eq!(
        decide(&rt, Some(&rt.rules[0]), SessionState::Unavailable, 0),
        Decision::Allow { identity: None }
    );
    assert_eq!(
        decide(&rt, Some(&rt.rules[1]), SessionState::Unavailable, 0),
        Decision::Deny(DenyReason::RuleDenies)
    );
    assert_eq!(
        decide(&rt, Some(&rt.rules[2]), SessionState::Unavailable, 0),
        Decision::Unavailable
    );
    assert_eq!(
        decide(&rt, Some(&rt.rules[2]), SessionState::None, 0),
        Decision::Login
    );
}

// ---------------------------------------------------------------------------
// The table: rule × session × grant × clock × user status.

const NOW: i64 = 1_900_000_000;

fn table_runtime() -> Runtime {
    let yaml = r#"
portal: { url: https://auth.home.lab }
secrets: { cookie_keys: [k] }
users:
  alice: { name: Alice, email: a@home.lab, groups: [admins] }
  bob: { groups: [staff] }
  guest: { groups: [staff], expires: 2030-01-01T00:00:00Z }
authenticators:
  yubikey5: { aaguids: [cb69481e-8ff7-4039-93ec-0a2729a154a8], ca_files: [/x.pem] }
  titan: { aaguids: [ee882879-721c-4913-9775-3dfcce97072a], ca_files: [/y.pem] }
rules:
  - { name: open, hosts: [h], paths: [/open], policy: bypass }
  - { name: closed, hosts: [h], paths: [/closed], policy: deny }
  - { name: plain, hosts: [h], paths: [/plain], policy: passkey }
  - { name: admins, hosts: [h], paths: [/admins], policy: passkey, allow: [group:admins] }
  - { name: bobonly, hosts: [h], paths: [/bob], policy: passkey, allow: [user:bob] }
  - { name: pin, hosts: [h], paths: [/pin], policy: passkey, step_up: { max_age: 5m, scope: rule } }
  - { name: sess, hosts: [h], paths: [/sess], policy: passkey, step_up: { max_age: 5m, scope: session } }
  - { name: anyage, hosts: [h], paths: [/anyage], policy: passkey, step_up: { scope: rule } }
  - { name: yubi, hosts: [h], paths: [/yubi], policy: passkey, step_up: { scope: session, authenticators: [yubikey5, titan] } }
  - { name: bound, hosts: [h], paths: [/bound], policy: passkey, step_up: { scope: session, device_bound: true } }
  - { name: strict, hosts: [h], paths: [/strict], policy: passkey, allow: [group:admins], step_up: { max_age: 1m, scope: rule, authenticators: [yubikey5], device_bound: true } }
"#;
    match check_str("t.yaml", yaml, NOW) {
        Ok(c) => c.runtime,
        Err(e) => panic!("{e}"),
    }
}

const YUBIKEY5: uuid::Uuid = uuid::uuid!("cb69481e-8ff7-4039-93ec-0a2729a154a8");
const TITAN: uuid::Uuid = uuid::uuid!("ee882879-721c-4913-9775-3dfcce97072a");

/// [`table_runtime`] with trust anchors: root `root-yubikey5` vouches for the
/// `yubikey5` set, `root-titan` for `titan` (as if loaded from their files).
fn trusted_runtime() -> Runtime {
    let mut rt = table_runtime();
    rt.trust = std::sync::Arc::new(TrustStore::for_tests(&[
        ("yubikey5", &[YUBIKEY5], "root-yubikey5"),
        ("titan", &[TITAN], "root-titan"),
    ]));
    rt
}

/// An assertion at `at` with a credential proven (packed, chained to the
/// set's root) to be of model `sets[0]`, if any, and the given backup
/// eligibility (registered and asserted alike).
fn ver(at: i64, sets: &[&str], backup_eligible: bool) -> Uv {
    let attestation = sets.first().map(|s| AttestationProof {
        format: "packed".into(),
        root: format!("root-{s}"),
        aaguid: if *s == "titan" { TITAN } else { YUBIKEY5 },
    });
    let id = format!("c{at}-{}-{backup_eligible}", sets.join("+"));
    Uv {
        v: Verification {
            at,
            credential_id: id.clone(),
            credential_label: "k".into(),
            aaguid: attestation.as_ref().map_or(uuid::Uuid::nil(), |a| a.aaguid),
            backup_eligible,
        },
        c: CredentialStanding {
            id,
            flagged: false,
            expires_at: None,
            backup_eligible,
            attestation,
        },
    }
}

/// An assertion and the standing of its credential.
#[derive(Clone)]
struct Uv {
    v: Verification,
    c: CredentialStanding,
}

/// A session of `user`; its credential standings are those of every assertion in it.
fn view(user: &str, last_uv: Option<Uv>, grants: &[(&str, Uv)]) -> AppView {
    use crate::model::{AppSession, Grant, PortalSession};
    let mut credentials: Vec<CredentialStanding> = Vec::new();
    for c in last_uv
        .iter()
        .chain(grants.iter().map(|(_, u)| u))
        .map(|u| &u.c)
    {
        if !credentials.iter().any(|k| k.id == c.id) {
            credentials.push(c.clone());
        }
    }
    AppView {
        app: AppSession {
            id: "a".into(),
            portal_id: "p".into(),
            user: user.into(),
            host: "h".into(),
            created_at: NOW - 3600,
            last_seen_at: NOW,
            expires_at: NOW + 3600,
        },
        portal: PortalSession {
            id: "p".into(),
            user: user.into(),
            created_at: NOW - 3600,
            last_seen_at: NOW,
            expires_at: NOW + 3600,
            signed_in_with: last_uv.as_ref().map(|u| u.v.credential_id.clone()),
            client: None,
            last_uv: last_uv.map(|u| u.v),
        },
        grants: grants
            .iter()
            .map(|(r, u)| Grant {
                rule: r.to_string(),
                verification: u.v.clone(),
            })
            .collect(),
        credentials,
    }
}

/// What a table row expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Allowed; `Some(t)`: with this verified_at; `None`: bypass (no identity).
    Allow(Option<Option<i64>>),
    Login,
    StepUp(StepUpReason),
    Deny(DenyReason),
    Unavailable,
}

fn check(rt: &Runtime, row: usize, rule: &str, session: SessionState<'_>, now: i64, want: Want) {
    let r = rt.rules.iter().find(|r| r.name == rule);
    let got = decide(rt, r, session, now);
    let ok = match (&got, want) {
        (Decision::Allow { identity: None }, Want::Allow(None)) => true,
        (Decision::Allow { identity: Some(id) }, Want::Allow(Some(at))) => {
            id.verified_at == at && id.rule == rule
        }
        (Decision::Login, Want::Login) => true,
        (Decision::StepUp { reason, .. }, Want::StepUp(w)) => *reason == w,
        (Decision::Deny(d), Want::Deny(w)) => *d == w,
        (Decision::Unavailable, Want::Unavailable) => true,
        _ => false,
    };
    assert!(
        ok,
        "row {row}: rule {rule} at {now}: got {got:?}, want {want:?}"
    );
}

#[test]
fn decision_table() {
    use DenyReason as D;
    use StepUpReason as S;
    let rt = trusted_runtime();
    let fresh = ver(NOW - 10, &[], true);
    let old = ver(NOW - 400, &[], true);
    let yk_bound = ver(NOW - 10, &["yubikey5"], false);
    let yk_old = ver(NOW - 120, &["yubikey5"], false);
    let titan_synced = ver(NOW - 10, &["titan"], true);
    let future = ver(NOW + 100, &[], false);

    let alice_signed = view("alice", Some(fresh.clone()), &[]);
    let alice_old = view("alice", Some(old.clone()), &[]);
    let alice_none = view("alice", None, &[]);
    let alice_pin = view("alice", None, &[("pin", fresh.clone())]);
    let alice_pin_old = view("alice", None, &[("pin", old.clone())]);
    let alice_other_grant = view("alice", Some(fresh.clone()), &[("sess", fresh.clone())]);
    let alice_grant_for_other = view("alice", None, &[("anyage", fresh.clone())]);
    let alice_yk = view(
        "alice",
        Some(yk_bound.clone()),
        &[("strict", yk_bound.clone())],
    );
    let alice_yk_old = view("alice", None, &[("strict", yk_old.clone())]);
    let alice_titan = view("alice", Some(titan_synced.clone()), &[]);
    let alice_two = view(
        "alice",
        Some(old.clone()),
        &[("pin", old.clone()), ("pin", fresh.clone())],
    );
    let alice_future = view("alice", None, &[("pin", future.clone())]);
    let bob = view("bob", Some(fresh.clone()), &[]);
    let bob_yk_synced = view("bob", Some(ver(NOW - 10, &["yubikey5"], true)), &[]);
    let guest = view("guest", Some(fresh.clone()), &[]);
    let ghost = view("ghost", Some(fresh.clone()), &[]);
    let expiry = 1_893_456_000; // guest expires 2030-01-01

    let rows: Vec<(&str, SessionState<'_>, i64, Want)> = vec![
        // bypass and deny never look at the session or the store
        ("open", SessionState::None, NOW, Want::Allow(None)),
        ("open", SessionState::Unavailable, NOW, Want::Allow(None)),
        ("open", SessionState::Live(&ghost), NOW, Want::Allow(None)),
        ("closed", SessionState::None, NOW, Want::Deny(D::RuleDenies)),
        (
            "closed",
            SessionState::Unavailable,
            NOW,
            Want::Deny(D::RuleDenies),
        ),
        (
            "closed",
            SessionState::Live(&alice_signed),
            NOW,
            Want::Deny(D::RuleDenies),
        ),
        // plain passkey
        ("plain", SessionState::None, NOW, Want::Login),
        ("plain", SessionState::Unavailable, NOW, Want::Unavailable),
        (
            "plain",
            SessionState::Live(&alice_signed),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "plain",
            SessionState::Live(&alice_old),
            NOW,
            Want::Allow(Some(Some(NOW - 400))),
        ),
        (
            "plain",
            SessionState::Live(&alice_none),
            NOW,
            Want::Allow(Some(None)),
        ),
        ("plain", SessionState::Live(&ghost), NOW, Want::Login),
        // user status: guest before and after expiry
        (
            "plain",
            SessionState::Live(&guest),
            expiry - 1,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "plain",
            SessionState::Live(&guest),
            expiry,
            Want::Deny(D::UserExpired),
        ),
        (
            "plain",
            SessionState::Live(&guest),
            expiry + 86400,
            Want::Deny(D::UserExpired),
        ),
        // allow lists are checked before step-up
        (
            "admins",
            SessionState::Live(&alice_signed),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "admins",
            SessionState::Live(&bob),
            NOW,
            Want::Deny(D::NotAllowed),
        ),
        ("admins", SessionState::None, NOW, Want::Login),
        (
            "bobonly",
            SessionState::Live(&bob),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "bobonly",
            SessionState::Live(&alice_signed),
            NOW,
            Want::Deny(D::NotAllowed),
        ),
        (
            "strict",
            SessionState::Live(&bob),
            NOW,
            Want::Deny(D::NotAllowed),
        ),
        // scope: rule with max_age 5m
        (
            "pin",
            SessionState::Live(&alice_signed),
            NOW,
            Want::StepUp(S::Missing),
        ),
        (
            "pin",
            SessionState::Live(&alice_other_grant),
            NOW,
            Want::StepUp(S::Missing),
        ),
        (
            "pin",
            SessionState::Live(&alice_pin),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "pin",
            SessionState::Live(&alice_pin),
            NOW + 290,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "pin",
            SessionState::Live(&alice_pin),
            NOW + 291,
            Want::StepUp(S::TooOld),
        ),
        (
            "pin",
            SessionState::Live(&alice_pin_old),
            NOW,
            Want::StepUp(S::TooOld),
        ),
        (
            "pin",
            SessionState::Live(&alice_two),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "pin",
            SessionState::Live(&alice_future),
            NOW,
            Want::StepUp(S::TooOld),
        ),
        ("pin", SessionState::Unavailable, NOW, Want::Unavailable),
        (
            "pin",
            SessionState::Live(&guest),
            expiry,
            Want::Deny(D::UserExpired),
        ),
        // scope: rule without max_age: any grant for this rule, but only for this rule
        (
            "anyage",
            SessionState::Live(&alice_grant_for_other),
            NOW + 86400,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "anyage",
            SessionState::Live(&alice_pin),
            NOW,
            Want::StepUp(S::Missing),
        ),
        // scope: session: the portal's newest ceremony or any grant counts
        (
            "sess",
            SessionState::Live(&alice_signed),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "sess",
            SessionState::Live(&alice_old),
            NOW,
            Want::StepUp(S::TooOld),
        ),
        (
            "sess",
            SessionState::Live(&alice_pin),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "sess",
            SessionState::Live(&alice_none),
            NOW,
            Want::StepUp(S::Missing),
        ),
        (
            "sess",
            SessionState::Live(&alice_signed),
            NOW + 291,
            Want::StepUp(S::TooOld),
        ),
        // authenticators: attested sets
        (
            "yubi",
            SessionState::Live(&alice_signed),
            NOW,
            Want::StepUp(S::WrongAuthenticator),
        ),
        (
            "yubi",
            SessionState::Live(&alice_yk),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "yubi",
            SessionState::Live(&alice_titan),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "yubi",
            SessionState::Live(&alice_none),
            NOW,
            Want::StepUp(S::Missing),
        ),
        // device_bound: backup-eligible credentials do not count
        (
            "bound",
            SessionState::Live(&alice_signed),
            NOW,
            Want::StepUp(S::NotDeviceBound),
        ),
        (
            "bound",
            SessionState::Live(&alice_yk),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "bound",
            SessionState::Live(&bob_yk_synced),
            NOW,
            Want::StepUp(S::NotDeviceBound),
        ),
        // everything at once
        (
            "strict",
            SessionState::Live(&alice_yk),
            NOW,
            Want::Allow(Some(Some(NOW - 10))),
        ),
        (
            "strict",
            SessionState::Live(&alice_yk),
            NOW + 51,
            Want::StepUp(S::TooOld),
        ),
        (
            "strict",
            SessionState::Live(&alice_yk_old),
            NOW,
            Want::StepUp(S::TooOld),
        ),
        (
            "strict",
            SessionState::Live(&alice_signed),
            NOW,
            Want::StepUp(S::Missing),
        ),
        (
            "strict",
            SessionState::Live(&alice_titan),
            NOW,
            Want::StepUp(S::Missing),
        ),
        ("strict", SessionState::None, NOW, Want::Login),
    ];
    assert!(rows.len() >= 40, "{} rows", rows.len());
    for (i, (rule, session, now, want)) in rows.into_iter().enumerate() {
        check(&rt, i, rule, session, now, want);
    }
}

#[test]
fn step_up_reports_max_age() {
    let rt = trusted_runtime();
    let v = view("alice", None, &[]);
    let r = rt.rules.iter().find(|r| r.name == "pin");
    assert_eq!(
        decide(&rt, r, SessionState::Live(&v), NOW),
        Decision::StepUp {
            reason: StepUpReason::Missing,
            max_age: Some(std::time::Duration::from_secs(300)),
        }
    );
}

/// Assertions count only while their credential stands, under the trust
/// anchors of the config `decide` is given (not those of ceremony time).
#[test]
fn a_credential_counts_only_while_it_stands() {
    use StepUpReason as S;
    use Want::*;
    let rt = trusted_runtime();
    let fresh = ver(NOW - 10, &[], false);
    let yk = ver(NOW - 10, &["yubikey5"], false);
    let other = ver(NOW - 20, &[], false);

    let ok = view("alice", Some(fresh.clone()), &[("pin", fresh.clone())]);
    check(
        &rt,
        0,
        "pin",
        SessionState::Live(&ok),
        NOW,
        Allow(Some(Some(NOW - 10))),
    );
    check(
        &rt,
        1,
        "plain",
        SessionState::Live(&ok),
        NOW,
        Allow(Some(Some(NOW - 10))),
    );

    // The credential was deleted, or flagged as a possible clone: the session is over.
    let mut gone = ok.clone();
    gone.credentials.clear();
    let mut flagged = ok.clone();
    flagged.credentials[0].flagged = true;
    for (i, v) in [&gone, &flagged].into_iter().enumerate() {
        check(&rt, 10 + i, "plain", SessionState::Live(v), NOW, Login);
        check(&rt, 12 + i, "pin", SessionState::Live(v), NOW, Login);
    }

    // Expired: its assertions stop counting; the session itself goes on.
    let mut expired = ok.clone();
    expired.credentials[0].expires_at = Some(NOW);
    check(
        &rt,
        20,
        "pin",
        SessionState::Live(&expired),
        NOW - 1,
        Allow(Some(Some(NOW - 10))),
    );
    check(
        &rt,
        21,
        "pin",
        SessionState::Live(&expired),
        NOW,
        StepUp(S::Missing),
    );
    check(
        &rt,
        22,
        "sess",
        SessionState::Live(&expired),
        NOW,
        StepUp(S::Missing),
    );
    check(
        &rt,
        23,
        "plain",
        SessionState::Live(&expired),
        NOW,
        Allow(Some(None)),
    );

    // A grant resting on another credential that is gone counts for nothing.
    let mut other_gone = view("alice", Some(fresh.clone()), &[("pin", other.clone())]);
    other_gone.credentials.retain(|c| c.id != other.c.id);
    check(
        &rt,
        30,
        "pin",
        SessionState::Live(&other_gone),
        NOW,
        StepUp(S::Missing),
    );
    check(
        &rt,
        31,
        "plain",
        SessionState::Live(&other_gone),
        NOW,
        Allow(Some(Some(NOW - 10))),
    );

    // A session made by registering: signed in, but no assertion to count.
    let mut registered = view("alice", None, &[]);
    registered.portal.signed_in_with = Some(fresh.c.id.clone());
    registered.credentials.push(fresh.c.clone());
    check(
        &rt,
        40,
        "plain",
        SessionState::Live(&registered),
        NOW,
        Allow(Some(None)),
    );
    check(
        &rt,
        41,
        "sess",
        SessionState::Live(&registered),
        NOW,
        StepUp(S::Missing),
    );
    check(
        &rt,
        42,
        "pin",
        SessionState::Live(&registered),
        NOW,
        StepUp(S::Missing),
    );
    check(
        &rt,
        43,
        "bound",
        SessionState::Live(&registered),
        NOW,
        StepUp(S::Missing),
    );
    registered.credentials.clear();
    check(
        &rt,
        44,
        "plain",
        SessionState::Live(&registered),
        NOW,
        Login,
    );

    // Set membership follows the trust anchors of the config in use.
    let yk_view = view("alice", Some(yk.clone()), &[]);
    check(
        &rt,
        50,
        "yubi",
        SessionState::Live(&yk_view),
        NOW,
        Allow(Some(Some(NOW - 10))),
    );
    let mut reloaded = table_runtime();
    reloaded.trust =
        std::sync::Arc::new(TrustStore::for_tests(&[("titan", &[TITAN], "root-titan")]));
    check(
        &reloaded,
        51,
        "yubi",
        SessionState::Live(&yk_view),
        NOW,
        StepUp(S::WrongAuthenticator),
    );
    let untrusted = table_runtime();
    check(
        &untrusted,
        52,
        "yubi",
        SessionState::Live(&yk_view),
        NOW,
        StepUp(S::WrongAuthenticator),
    );

    // A proof that signs no authenticator data, or pairs a root with another set's AAGUID.
    for (i, (format, root, aaguid)) in [
        ("fido-u2f", "root-yubikey5", YUBIKEY5),
        ("none", "root-yubikey5", YUBIKEY5),
        ("packed", "root-titan", YUBIKEY5),
        ("packed", "root-yubikey5", TITAN),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = yk_view.clone();
        v.credentials[0].attestation = Some(AttestationProof {
            format: format.into(),
            root: root.into(),
            aaguid,
        });
        check(
            &rt,
            60 + i,
            "yubi",
            SessionState::Live(&v),
            NOW,
            StepUp(S::WrongAuthenticator),
        );
    }

    // device_bound needs the assertion's signed flag and the registered one both clear.
    let mut asserted_synced = yk_view.clone();
    if let Some(v) = asserted_synced.portal.last_uv.as_mut() {
        v.backup_eligible = true;
    }
    check(
        &rt,
        70,
        "bound",
        SessionState::Live(&asserted_synced),
        NOW,
        StepUp(S::NotDeviceBound),
    );
    let mut registered_synced = yk_view.clone();
    registered_synced.credentials[0].backup_eligible = true;
    check(
        &rt,
        71,
        "bound",
        SessionState::Live(&registered_synced),
        NOW,
        StepUp(S::NotDeviceBound),
    );
    check(
        &rt,
        72,
        "bound",
        SessionState::Live(&yk_view),
        NOW,
        Allow(Some(Some(NOW - 10))),
    );
}
