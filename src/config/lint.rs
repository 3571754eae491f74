//! Warnings about a config that compiles but does not do what it seems to say.
//!
//! Rules are judged by what they cover ([`crate::routing`]'s coverage), not by
//! how they are written:
//!
//! - a rule that an earlier rule covers entirely can never match; when the
//!   earlier one is a bypass rule and the later one a passkey rule, what the
//!   passkey rule guards is open — also when the bypass rule covers its hosts
//!   and paths for only some methods or client networks;
//! - `networks` whose union is a whole address space (`0.0.0.0/0`, `::/0`, or
//!   `0.0.0.0/1` with `128.0.0.0/1`) limit nothing for that address family;
//! - a `step_up.max_age` longer than `session.max_lifetime` never asks again;
//! - a `step_up` with `scope: rule` on a rule that takes no GET can never be
//!   given to a browser: sign-in comes back to the page with a GET, and the
//!   grant is recorded for the rule that GET reaches;
//! - two upstreams at one address (scheme, host, port) with different
//!   `identity_headers`: through the one without a mapping, a client's own
//!   copy of the mapped header would reach the app unless stripped elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::diag::Diagnostics;
use super::duration::Formatted;
use super::file::RuleFile;
use super::runtime::{IdentityHeaders, Policy, Rule, Scope, SessionLimits, Upstream};
use crate::routing::{Matcher, whole_space};

/// What the lints look at: the compiled rules beside what routes to them.
pub struct Lint<'a> {
    /// The file's rules; compiled rules are the parsed ones, in order.
    pub raw: &'a [Option<RuleFile>],
    pub rules: &'a [Rule],
    pub matchers: &'a [Matcher],
    pub session: &'a SessionLimits,
    pub upstreams: &'a BTreeMap<String, Upstream>,
    pub identity: &'a BTreeMap<String, Arc<IdentityHeaders>>,
}

impl Lint<'_> {
    /// Report every warning into `diags`.
    pub fn run(&self, diags: &mut Diagnostics) {
        let paths: Vec<String> = self
            .raw
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_some())
            .map(|(i, _)| format!("rules[{i}]"))
            .collect();
        for (j, (rule, m)) in self.rules.iter().zip(self.matchers).enumerate() {
            let Some(p) = paths.get(j) else { continue };
            self.shadowed(diags, p, j);
            open_networks(diags, p, rule, m);
            self.step_up(diags, p, rule, m);
        }
        self.shared_upstreams(diags);
    }

    /// Rule `j` at `p` behind an earlier rule that takes its requests.
    fn shadowed(&self, diags: &mut Diagnostics, p: &str, j: usize) {
        let (Some(later), Some(lm)) = (self.rules.get(j), self.matchers.get(j)) else {
            return;
        };
        let earlier = self.rules[..j].iter().zip(&self.matchers[..j]);
        for (rule, m) in earlier {
            let opens = rule.policy == Policy::Bypass && later.policy == Policy::Passkey;
            if m.covers(lm) {
                let message = if opens {
                    format!(
                        "passkey rule \"{}\" can never match: bypass rule \"{}\" above covers \
                         all of its hosts and paths and lets every request through without a \
                         passkey",
                        later.name, rule.name
                    )
                } else {
                    format!(
                        "rule \"{}\" can never match: rule \"{}\" above takes all of its requests",
                        later.name, rule.name
                    )
                };
                diags.warn(p, message);
                return;
            }
            if opens && m.covers_places(lm) {
                diags.warn(
                    p,
                    format!(
                        "bypass rule \"{}\" above covers all hosts and paths of passkey rule \
                         \"{}\" and lets its requests through without a passkey whenever \
                         they are of its methods and from its networks",
                        rule.name, later.name
                    ),
                );
                return;
            }
        }
    }

    /// A `step_up` that asks too little or can never be given.
    fn step_up(&self, diags: &mut Diagnostics, p: &str, rule: &Rule, m: &Matcher) {
        let Some(s) = &rule.step_up else { return };
        let lifetime = self.session.max_lifetime;
        if let Some(age) = s.max_age
            && age > lifetime
        {
            diags.warn(
                &format!("{p}.step_up.max_age"),
                format!(
                    "rule \"{}\": max_age {} is longer than session.max_lifetime {}: no sign-in \
                     lives that long, so this never asks for a fresh check",
                    rule.name,
                    Formatted(age),
                    Formatted(lifetime)
                ),
            );
        }
        let browsers = rule.tokens.as_ref().is_none_or(|t| t.sessions);
        let takes_get = m
            .methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == "GET"));
        if s.scope == Scope::Rule && browsers && !takes_get {
            diags.warn(
                &format!("{p}.methods"),
                format!(
                    "rule \"{}\": its step_up can never be given to a browser: sign-in comes \
                     back with a GET, which this rule (methods: {}) never takes, so the check \
                     is never recorded for it; add GET to methods or use scope: session",
                    rule.name,
                    m.methods.as_deref().unwrap_or_default().join(", ")
                ),
            );
        }
    }

    /// Upstreams at one address whose `identity_headers` differ.
    fn shared_upstreams(&self, diags: &mut Diagnostics) {
        let mut seen: Vec<(&str, (bool, String))> = Vec::new();
        let none = Arc::new(IdentityHeaders::default());
        for (name, u) in self.upstreams {
            let Upstream::Http { address, tls, .. } = u else {
                continue;
            };
            let key = (*tls, address_key(address));
            let map = self.identity.get(name).unwrap_or(&none);
            for (other, other_key) in &seen {
                if *other_key != key {
                    continue;
                }
                let other_map = self.identity.get(*other).unwrap_or(&none);
                if other_map == map {
                    continue;
                }
                let scheme = if *tls { "https" } else { "http" };
                let mut names: Vec<&str> = other_map
                    .names()
                    .chain(map.names())
                    .map(|h| h.as_str())
                    .collect();
                names.sort_unstable();
                names.dedup();
                diags.warn(
                    &format!("upstreams.{name}"),
                    format!(
                        "upstreams \"{other}\" and \"{name}\" reach the same app \
                         ({scheme}://{address}) with different identity_headers ({}): a rule \
                         through the one that does not set a header passes a client's own copy \
                         of it to the app, unless every mapped name is removed from every \
                         request; give both the same identity_headers",
                        names.join(", ")
                    ),
                );
            }
            seen.push((name, key));
        }
    }
}

/// `host:port` compared without case and without a trailing dot on the name.
fn address_key(address: &str) -> String {
    match address.rsplit_once(':') {
        Some((host, port)) => format!("{}:{port}", host.trim_end_matches('.').to_ascii_lowercase()),
        None => address.to_ascii_lowercase(),
    }
}

/// `networks` that span a whole address family.
fn open_networks(diags: &mut Diagnostics, p: &str, rule: &Rule, m: &Matcher) {
    if m.networks.is_empty() {
        return;
    }
    let family = match whole_space(&m.networks) {
        (true, true) => "every IPv4 and IPv6 address",
        (true, false) => "every IPv4 address",
        (false, true) => "every IPv6 address",
        (false, false) => return,
    };
    diags.warn(
        &format!("{p}.networks"),
        format!(
            "rule \"{}\": networks together cover {family}, so they limit nothing: for those \
             clients the rule is open to any network",
            rule.name
        ),
    );
}

#[cfg(test)]
mod tests {
    use crate::config::test_warnings as warnings;

    fn rules(list: &[&str]) -> String {
        let mut s = String::from("rules:\n");
        for r in list {
            s.push_str(&format!("  - {r}\n"));
        }
        s
    }

    const PASSKEY: &str =
        "{ name: admin, hosts: [git.home.lab], paths: [/admin, /admin/**], policy: passkey }";

    #[test]
    fn bypass_rules_that_cover_a_later_passkey_rule_are_named() {
        let opens = [
            "{ name: open, hosts: [\"*\"], policy: bypass }",
            "{ name: open, hosts: [\"*\"], paths: [/**], policy: bypass }",
            "{ name: open, hosts: [\"*.home.lab\"], paths: [\"/**/*\"], policy: bypass }",
            "{ name: open, hosts: [git.home.lab], paths: [\"/*\", /admin/**], policy: bypass }",
            "{ name: open, hosts: [git.home.lab], paths: [\"/*/**\", \"/*\"], policy: bypass }",
            "{ name: open, hosts: [\"*\"], networks: [0.0.0.0/1, 128.0.0.0/1, \"::/0\"], policy: bypass }",
        ];
        for open in opens {
            let w = warnings(&rules(&[open, PASSKEY]));
            let want =
                "rules[1]: passkey rule \"admin\" can never match: bypass rule \"open\" above";
            assert!(w.iter().any(|m| m.starts_with(want)), "{open}: {w:?}");
        }
        let partly = [
            "{ name: open, hosts: [\"*\"], methods: [GET], policy: bypass }",
            "{ name: open, hosts: [\"*\"], networks: [0.0.0.0/0], policy: bypass }",
        ];
        for open in partly {
            let w = warnings(&rules(&[open, PASSKEY]));
            let want = "rules[1]: bypass rule \"open\" above covers all hosts and paths of passkey rule \"admin\"";
            assert!(w.iter().any(|m| m.starts_with(want)), "{open}: {w:?}");
        }
    }

    #[test]
    fn bypass_rules_that_leave_part_of_a_passkey_rule_say_nothing() {
        let narrow = [
            "{ name: pub, hosts: [git.home.lab], paths: [\"/*\"], policy: bypass }",
            "{ name: pub, hosts: [git.home.lab], paths: [/admin/public/**], policy: bypass }",
            "{ name: pub, hosts: [other.home.lab], policy: bypass }",
            "{ name: pub, hosts: [\"*.sub.home.lab\"], policy: bypass }",
            "{ name: pub, hosts: [git.home.lab], paths: [\"/*/x/**\"], policy: bypass }",
            "{ name: pub, hosts: [git.home.lab], paths: [\"/{admin,x}/**\"], policy: bypass }",
        ];
        for pub_rule in narrow {
            let w = warnings(&rules(&[pub_rule, PASSKEY]));
            assert!(
                !w.iter().any(|m| m.contains("\"pub\"")),
                "{pub_rule}: {w:?}"
            );
        }
        // A bypass rule below the passkey rule opens nothing of it.
        let w = warnings(&rules(&[
            PASSKEY,
            "{ name: open, hosts: [\"*\"], policy: bypass }",
        ]));
        assert!(!w.iter().any(|m| m.contains("\"open\"")), "{w:?}");
    }

    #[test]
    fn networks_that_span_an_address_family() {
        let cases = [
            ("[0.0.0.0/0]", Some("every IPv4 address")),
            ("[\"::/0\"]", Some("every IPv6 address")),
            ("[0.0.0.0/1, 128.0.0.0/1]", Some("every IPv4 address")),
            (
                "[0.0.0.0/2, 64.0.0.0/2, 128.0.0.0/1, \"::/1\", \"8000::/1\"]",
                Some("every IPv4 and IPv6 address"),
            ),
            ("[0.0.0.0/1, 128.0.0.0/2]", None),
            ("[192.168.0.0/16, 10.0.0.0/8]", None),
        ];
        for (nets, want) in cases {
            let w = warnings(&rules(&[&format!(
                "{{ name: lan, hosts: [x.lab], networks: {nets}, policy: bypass }}"
            )]));
            let found = w
                .iter()
                .find(|m| m.starts_with("rules[0].networks: rule \"lan\""));
            match want {
                Some(family) => assert!(found.is_some_and(|m| m.contains(family)), "{nets}: {w:?}"),
                None => assert!(found.is_none(), "{nets}: {w:?}"),
            }
        }
    }

    #[test]
    fn step_up_that_asks_too_little_or_can_never_be_given() {
        let long = warnings(&format!(
            "session: {{ max_lifetime: 7d }}\n{}",
            rules(&["{ name: pin, hosts: [x.lab], policy: passkey, step_up: { max_age: 30d } }"])
        ));
        assert!(
            long.iter().any(|m| m.starts_with(
                "rules[0].step_up.max_age: rule \"pin\": max_age 30d is longer than session.max_lifetime 7d"
            )),
            "{long:?}"
        );
        let post = warnings(&rules(&[
            "{ name: pin, hosts: [x.lab], methods: [POST], policy: passkey, step_up: { max_age: 5m } }",
        ]));
        assert!(
            post.iter().any(|m| m.starts_with(
                "rules[0].methods: rule \"pin\": its step_up can never be given to a browser: sign-in comes back with a GET"
            )),
            "{post:?}"
        );
        let fine = [
            "{ name: pin, hosts: [x.lab], methods: [GET, POST], policy: passkey, step_up: { max_age: 7d } }",
            "{ name: pin, hosts: [x.lab], methods: [POST], policy: passkey, step_up: { scope: session } }",
            "{ name: pin, hosts: [x.lab], methods: [POST], policy: passkey, step_up: { max_age: 5m }, tokens: { from: bearer } }",
        ];
        for rule in fine {
            let w = warnings(&rules(&[rule]));
            assert!(!w.iter().any(|m| m.contains("\"pin\"")), "{rule}: {w:?}");
        }
    }

    #[test]
    fn upstreams_at_one_address_with_different_identity_headers() {
        let cases = [
            (
                "{ url: \"http://127.0.0.1:3000\", identity_headers: { user: X-WEBAUTH-USER } }",
                "\"http://127.0.0.1:3000/\"",
                true,
            ),
            (
                "{ url: \"http://127.0.0.1:3000\", identity_headers: { user: X-WEBAUTH-USER } }",
                "{ url: \"http://127.0.0.1:3000/\", identity_headers: { user: x-webauth-user } }",
                false,
            ),
            (
                "{ url: \"http://App.Lab.:80\", identity_headers: { user: X-User } }",
                "\"http://app.lab\"",
                true,
            ),
            (
                "{ url: \"http://127.0.0.1:3000\", identity_headers: { user: X-WEBAUTH-USER } }",
                "\"https://127.0.0.1:3000\"",
                false,
            ),
            (
                "{ url: \"http://127.0.0.1:3000\", identity_headers: { user: X-WEBAUTH-USER } }",
                "\"http://127.0.0.1:3001\"",
                false,
            ),
        ];
        for (a, b, warn) in cases {
            let w = warnings(&format!(
                "upstreams:\n  gitea: {a}\n  gitea-public: {b}\nrules: []\n"
            ));
            let found = w.iter().any(|m| {
                m.starts_with("upstreams.gitea-public: upstreams \"gitea\" and \"gitea-public\" reach the same app")
            });
            assert_eq!(found, warn, "{a} / {b}: {w:?}");
        }
    }
}
