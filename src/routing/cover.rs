//! Coverage: does one rule's matcher take every request another one could take?
//!
//! `check` uses this to find rules that can never match and bypass rules that
//! open what a later passkey rule means to guard. It is judged from what the
//! patterns match, not from how they are written, and it only ever answers
//! "covers" when that is certain:
//!
//! - hosts: `*` covers every host, `*.s` covers names below `s` and `*.t.s`,
//!   an exact name covers itself;
//! - paths: an absent `paths` is every path; each pattern is read as a list of
//!   segments (`/**` at the end is "one or more segments", `**` elsewhere "any
//!   number", `*` "any one segment", other globs within one segment are opaque:
//!   they cover a literal segment they match or the same glob text). A later
//!   pattern must be covered by one earlier pattern; a pattern covered only by
//!   several of them together, or a glob segment covered by a different glob
//!   segment (`/*.php` and `/a*.php`), is not judged covered. A glob with
//!   `{…}` or `[…]` is judged as covering only its own text and, as a later
//!   pattern, as if it were every path;
//! - methods: an absent list is every method;
//! - networks: the union of the CIDRs, exactly (`0.0.0.0/1` with
//!   `128.0.0.0/1` is all of IPv4); an absent list is every address.

use std::net::IpAddr;

use globset::GlobBuilder;
use ipnet::IpNet;

use super::{HostPattern, Matcher, PathPattern};

impl Matcher {
    /// Does this matcher take every request `later` could take (hosts, paths,
    /// methods and networks)?
    pub fn covers(&self, later: &Matcher) -> bool {
        self.covers_places(later)
            && methods_cover(self.methods.as_deref(), later.methods.as_deref())
            && networks_cover(&self.networks, &later.networks)
    }

    /// Does this matcher take every host and path of `later`, whatever the
    /// method and client address?
    pub fn covers_places(&self, later: &Matcher) -> bool {
        hosts_cover(&self.hosts, &later.hosts) && paths_cover(&self.paths, &later.paths)
    }
}

/// Every host of `later` is matched by some pattern of `earlier`.
pub fn hosts_cover(earlier: &[HostPattern], later: &[HostPattern]) -> bool {
    !later.is_empty()
        && later
            .iter()
            .all(|l| earlier.iter().any(|e| host_covers(e, l)))
}

fn host_covers(earlier: &HostPattern, later: &HostPattern) -> bool {
    match (earlier, later) {
        (HostPattern::Any, _) => true,
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Suffix(_), HostPattern::Exact(b)) => earlier.matches(b),
        (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a == b || earlier.matches(b),
        _ => false,
    }
}

/// Every path of `later` (empty: every path) is matched by one pattern of `earlier`.
pub fn paths_cover(earlier: &[PathPattern], later: &[PathPattern]) -> bool {
    if earlier.is_empty() {
        return true;
    }
    let earlier: Vec<Segments> = earlier.iter().map(Segments::of).collect();
    let later: Vec<Segments> = if later.is_empty() {
        vec![Segments::every_path()]
    } else {
        later.iter().map(Segments::of).collect()
    };
    later.iter().all(|l| earlier.iter().any(|e| e.covers(l)))
}

/// Every method of `later` (`None`: every method) is one of `earlier`'s.
pub fn methods_cover(earlier: Option<&[String]>, later: Option<&[String]>) -> bool {
    match (earlier, later) {
        (None, _) => true,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
        (Some(_), None) => false,
    }
}

/// Every address of `later` (empty: every address) is in the union of `earlier`.
pub fn networks_cover(earlier: &[IpNet], later: &[IpNet]) -> bool {
    if earlier.is_empty() {
        return true;
    }
    let union = IpNet::aggregate(&earlier.to_vec());
    let within = |n: &IpNet| union.iter().any(|u| u.contains(n));
    if later.is_empty() {
        return whole_space(earlier) == (true, true);
    }
    later.iter().all(within)
}

/// Does the union of `nets` span all of IPv4, and all of IPv6?
pub fn whole_space(nets: &[IpNet]) -> (bool, bool) {
    let union = IpNet::aggregate(&nets.to_vec());
    let all = |addr: IpAddr| {
        union
            .iter()
            .any(|n| n.prefix_len() == 0 && n.contains(&addr))
    };
    (
        all(IpAddr::from([0, 0, 0, 0])),
        all(IpAddr::from([0u16; 8])),
    )
}

/// One segment of a path pattern, as coverage reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Exactly this text.
    Lit(String),
    /// Any one segment (`*`).
    Star,
    /// A glob within one segment (`*.php`).
    Glob(String),
    /// Any number of segments, none included (`**`).
    Any,
}

/// A path pattern as segments, or its text when it cannot be read so.
#[derive(Debug, Clone)]
enum Segments {
    List(Vec<Seg>),
    Opaque(String),
}

impl Segments {
    fn every_path() -> Self {
        Segments::List(vec![Seg::Star, Seg::Any])
    }

    fn of(p: &PathPattern) -> Self {
        match p {
            PathPattern::Exact(path) => Segments::List(
                path.strip_prefix('/')
                    .unwrap_or(path)
                    .split('/')
                    .map(|s| Seg::Lit(s.to_string()))
                    .collect(),
            ),
            PathPattern::Subtree(prefix) => {
                // `/a/` + anything: the segment after `a/` and any number more.
                let mut segs: Vec<Seg> = prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| Seg::Lit(s.to_string()))
                    .collect();
                segs.extend([Seg::Star, Seg::Any]);
                Segments::List(segs)
            }
            PathPattern::Glob(raw, ..) => glob_segments(raw),
        }
    }

    /// Does every path this matches, `later` matching it, also match `self`? Only "yes" when sure.
    fn covers(&self, later: &Segments) -> bool {
        match (self, later) {
            (Segments::List(e), Segments::List(l)) => covers_from(&canonical(e), &canonical(l)),
            (Segments::Opaque(a), Segments::Opaque(b)) => a == b,
            (Segments::List(e), Segments::Opaque(_)) => covers_from(e, &[Seg::Star, Seg::Any]),
            (Segments::Opaque(_), Segments::List(_)) => false,
        }
    }
}

fn glob_segments(raw: &str) -> Segments {
    if raw.contains(['{', '[']) {
        return Segments::Opaque(raw.to_string());
    }
    let parts: Vec<&str> = raw.strip_prefix('/').unwrap_or(raw).split('/').collect();
    let mut segs = Vec::with_capacity(parts.len() + 1);
    for (i, s) in parts.iter().enumerate() {
        match *s {
            // `/**` at the end needs at least the segment after the slash.
            "**" if i + 1 == parts.len() => segs.extend([Seg::Star, Seg::Any]),
            "**" => segs.push(Seg::Any),
            "*" => segs.push(Seg::Star),
            s if s.contains(['*', '?']) => segs.push(Seg::Glob(s.to_string())),
            s => segs.push(Seg::Lit(s.to_string())),
        }
    }
    Segments::List(segs)
}

/// The same segments with each run of `*` and `**` written as its `*`s then
/// one `**` (`**/*` and `*/**` both mean "one segment or more").
fn canonical(segs: &[Seg]) -> Vec<Seg> {
    let mut out = Vec::with_capacity(segs.len());
    let mut run_any = false;
    for s in segs {
        match s {
            Seg::Star => out.push(Seg::Star),
            Seg::Any => run_any = true,
            other => {
                if std::mem::take(&mut run_any) {
                    out.push(Seg::Any);
                }
                out.push(other.clone());
            }
        }
    }
    if run_any {
        out.push(Seg::Any);
    }
    out
}

/// Is every sequence `l` matches also matched by `e`? (Sound, not complete.)
fn covers_from(e: &[Seg], l: &[Seg]) -> bool {
    match (e.first(), l.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        // `**` takes none of `l`'s segments here, or one more of them.
        (Some(Seg::Any), _) => {
            covers_from(&e[1..], l) || (!l.is_empty() && covers_from(e, &l[1..]))
        }
        (Some(_), None) | (Some(_), Some(Seg::Any)) => false,
        (Some(es), Some(ls)) => seg_covers(es, ls) && covers_from(&e[1..], &l[1..]),
    }
}

fn seg_covers(e: &Seg, l: &Seg) -> bool {
    match (e, l) {
        (Seg::Star, _) => true,
        (Seg::Lit(a), Seg::Lit(b)) => a == b,
        (Seg::Glob(a), Seg::Glob(b)) => a == b,
        (Seg::Glob(g), Seg::Lit(text)) => GlobBuilder::new(g)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(text)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(list: &[&str]) -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn path_coverage_table() {
        // (earlier, later, covers)
        let table: &[(&[&str], &[&str], bool)] = &[
            (&[], &[], true),
            (&[], &["/admin"], true),
            (&["/**"], &[], true),
            (&["/**/*"], &[], true),
            (&["/*/**", "/*"], &["/a/b/c", "/", "/x/"], true),
            (&["/*/**"], &[], false),
            (&["/*"], &[], false),
            (&["/*"], &["/admin", "/"], true),
            (&["/*"], &["/admin/"], false),
            (&["/*"], &["/admin/**"], false),
            (
                &["/admin/**"],
                &["/admin/x", "/admin/", "/admin/*/y", "/admin/**"],
                true,
            ),
            (&["/admin/**"], &["/admin"], false),
            (&["/admin/**"], &["/adminx/**"], false),
            (&["/*/**"], &["/admin/**"], true),
            (
                &["/a/**/b"],
                &["/a/b", "/a/x/b", "/a/*/*/b", "/a/**/b"],
                true,
            ),
            (&["/a/**/b"], &["/a/b/c"], false),
            (&["/*.php"], &["/index.php"], true),
            (&["/*.php"], &["/a*.php"], false),
            (&["/*.php"], &["/*.php"], true),
            (&["/{a,b}/**"], &["/a/x"], false),
            (&["/**"], &["/{a,b}/**"], true),
            (&["/*"], &["/{a,b}"], false),
            (&["/a/*"], &["/a/**"], false),
        ];
        for (earlier, later, want) in table {
            assert_eq!(
                paths_cover(&pats(earlier), &pats(later)),
                *want,
                "{earlier:?} covers {later:?}"
            );
        }
    }

    /// Whatever coverage claims, the patterns themselves confirm on sample paths.
    #[test]
    fn claimed_coverage_holds_on_samples() {
        let patterns = [
            "/", "/*", "/**", "/**/*", "/*/**", "/a", "/a/", "/a/**", "/a/*", "/a/**/b", "/*.php",
            "/a/*/b", "/*/*",
        ];
        let samples = [
            "/", "/a", "/a/", "/a/b", "/a/b/", "/a/x/b", "/a/b/c", "/x.php", "/a/x.php", "/b",
        ];
        for e in patterns {
            for l in patterns {
                if !paths_cover(&pats(&[e]), &pats(&[l])) {
                    continue;
                }
                let (ep, lp) = (&pats(&[e])[0], &pats(&[l])[0]);
                for s in samples {
                    assert!(
                        !lp.matches(s) || ep.matches(s),
                        "{e} claimed to cover {l}, not {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn host_and_network_coverage() {
        let hosts = |l: &[&str]| -> Vec<HostPattern> {
            l.iter().map(|h| HostPattern::parse(h).unwrap()).collect()
        };
        assert!(hosts_cover(&hosts(&["*"]), &hosts(&["a.lab", "*.b.lab"])));
        assert!(hosts_cover(
            &hosts(&["*.lab"]),
            &hosts(&["a.lab", "*.b.lab"])
        ));
        assert!(!hosts_cover(&hosts(&["*.lab"]), &hosts(&["lab"])));
        assert!(!hosts_cover(&hosts(&["a.lab"]), &hosts(&["*"])));
        let nets = |l: &[&str]| -> Vec<IpNet> { l.iter().map(|n| n.parse().unwrap()).collect() };
        assert!(networks_cover(
            &nets(&["0.0.0.0/1", "128.0.0.0/1"]),
            &nets(&["10.0.0.0/8"])
        ));
        assert!(networks_cover(
            &nets(&["10.0.0.0/9", "10.128.0.0/9"]),
            &nets(&["10.0.0.0/8"])
        ));
        assert!(!networks_cover(&nets(&["0.0.0.0/1", "128.0.0.0/1"]), &[]));
        assert!(networks_cover(&nets(&["0.0.0.0/0", "::/0"]), &[]));
        assert!(!networks_cover(
            &nets(&["10.0.0.0/9"]),
            &nets(&["10.0.0.0/8"])
        ));
        assert_eq!(
            whole_space(&nets(&["0.0.0.0/1", "128.0.0.0/1"])),
            (true, false)
        );
        assert_eq!(whole_space(&nets(&["::/1", "8000::/1"])), (false, true));
        assert_eq!(whole_space(&nets(&["0.0.0.0/1"])), (false, false));
    }
}
