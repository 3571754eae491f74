//! The router: which rule a request falls under (first match in file order).
//!
//! Rules are indexed by host so that a lookup touches only the rules that can
//! match the request's host: exact names in a hash map, `*.suffix` patterns in a
//! second map probed once per label of the host, and `*` rules in a list. The
//! candidates of those three lists are merged in file order and the first one
//! whose paths, methods and networks also match wins. No match means deny.
//!
//! Paths match case-sensitively. A rule whose app folds case
//! ([`Matcher::fold_case`], from its upstream's `case_insensitive_paths`) is
//! re-checked with case ignored: when another rule would then take the request
//! first, that rule is the one the app effectively serves, and it is judged
//! instead if its app folds case too; otherwise the path means two things and
//! the route is [`AmbiguousCase`].

mod cover;
mod host;
mod path;

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

pub use cover::{hosts_cover, methods_cover, networks_cover, paths_cover, whole_space};
pub use host::{HostError, HostPattern, normalize_authority, normalize_host};
pub use path::{PathError, PathPattern, normalize_path};

/// HTTP and WebDAV method names a rule may list.
pub const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "MKCALENDAR",
    "ACL",
    "BIND",
    "UNBIND",
    "REBIND",
    "CHECKOUT",
    "CHECKIN",
    "UNCHECKOUT",
    "VERSION-CONTROL",
    "MKWORKSPACE",
    "UPDATE",
    "LABEL",
    "MERGE",
    "BASELINE-CONTROL",
    "MKACTIVITY",
    "ORDERPATCH",
];

/// The matching half of a rule: where it applies.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub hosts: Vec<HostPattern>,
    /// Empty: every path.
    pub paths: Vec<PathPattern>,
    /// `None`: every method.
    pub methods: Option<Vec<String>>,
    /// Empty: every client address.
    pub networks: Vec<IpNet>,
    /// The app behind this rule treats `/Admin` as `/admin`.
    pub fold_case: bool,
}

impl Matcher {
    /// Does this matcher take the request (its host already known to match)?
    /// `folded`: compare paths ignoring ASCII case.
    fn takes(&self, req: &RouteRequest<'_>, folded: bool) -> bool {
        let path_ok = |p: &PathPattern| {
            if folded {
                p.matches_folded(req.path)
            } else {
                p.matches(req.path)
            }
        };
        (self.paths.is_empty() || self.paths.iter().any(path_ok))
            && self
                .methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| m == req.method))
            && (self.networks.is_empty()
                || self.networks.iter().any(|n| n.contains(&req.client_ip)))
    }

    /// Does this matcher take the request, host included?
    pub fn matches(&self, req: &RouteRequest<'_>) -> bool {
        self.hosts.iter().any(|h| h.matches(req.host)) && self.takes(req, false)
    }
}

/// The facts the router looks at; host and path already normalised.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    pub client_ip: IpAddr,
}

/// The path matches one rule as written and another once case is ignored, and
/// the app that would serve it folds case: it cannot be judged without doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the path matches another rule when its case is ignored")]
pub struct AmbiguousCase;

/// Rule lookup by host, then first match in file order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    matchers: Vec<Matcher>,
    exact: HashMap<String, Vec<u32>>,
    suffix: HashMap<String, Vec<u32>>,
    any: Vec<u32>,
}

impl Router {
    /// Build the index; `matchers[i]` belongs to rule `i`.
    pub fn new(matchers: Vec<Matcher>) -> Self {
        let mut r = Router {
            matchers: Vec::new(),
            ..Default::default()
        };
        for (i, m) in matchers.iter().enumerate() {
            let i = i as u32;
            for h in &m.hosts {
                let list = match h {
                    HostPattern::Exact(name) => r.exact.entry(name.clone()).or_default(),
                    HostPattern::Suffix(s) => r.suffix.entry(s.clone()).or_default(),
                    HostPattern::Any => &mut r.any,
                };
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        r.matchers = matchers;
        r
    }

    /// The index of the rule the request falls under, if any; an error when
    /// case folding makes the path mean two things (see the module doc).
    pub fn route(&self, req: &RouteRequest<'_>) -> Result<Option<usize>, AmbiguousCase> {
        let Some(first) = self.first(req, false) else {
            return Ok(None);
        };
        if !self.folds(first) {
            return Ok(Some(first));
        }
        match self.first(req, true) {
            Some(folded) if folded == first || self.folds(folded) => Ok(Some(folded)),
            _ => Err(AmbiguousCase),
        }
    }

    fn folds(&self, i: usize) -> bool {
        self.matchers.get(i).is_some_and(|m| m.fold_case)
    }

    /// The index of the first rule that takes the request, if any.
    fn first(&self, req: &RouteRequest<'_>, folded: bool) -> Option<usize> {
        let mut lists: Vec<&[u32]> = Vec::with_capacity(4);
        if let Some(l) = self.exact.get(req.host) {
            lists.push(l);
        }
        if !self.suffix.is_empty() {
            let mut rest = req.host;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                if let Some(l) = self.suffix.get(rest) {
                    lists.push(l);
                }
            }
        }
        if !self.any.is_empty() {
            lists.push(&self.any);
        }
        // Merge the sorted candidate lists, smallest rule index first.
        loop {
            let mut best: Option<(usize, u32)> = None;
            for (li, l) in lists.iter().enumerate() {
                if let Some(&first) = l.first()
                    && best.is_none_or(|(_, b)| first < b)
                {
                    best = Some((li, first));
                }
            }
            let (li, idx) = best?;
            lists[li] = &lists[li][1..];
            if let Some(m) = self.matchers.get(idx as usize)
                && m.takes(req, folded)
            {
                return Some(idx as usize);
            }
        }
    }

    /// The matcher of rule `i`.
    pub fn matcher(&self, i: usize) -> Option<&Matcher> {
        self.matchers.get(i)
    }
}

#[cfg(test)]
mod tests;
