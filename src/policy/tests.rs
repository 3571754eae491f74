//! Table tests for `decide`.

use super::*;
use crate::config::check_str;

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
    match check_str("t.yaml", yaml, 0) {
        Ok(c) => c.runtime,
        Err(e) => panic!("{e}"),
    }
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
