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
