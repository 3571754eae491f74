//! Live reload: on a file change or SIGHUP, check the file and swap the new
//! runtime in whole, or keep the running one and log every error.
//!
//! What cannot change while running ([`crate::config::Boot`]: listeners,
//! threads, the store, the portal, the log format) keeps its old value and
//! is logged as "restart required", naming each key.
//! Users removed from the file lose their sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::{Runtime, Severity, check_file};
use crate::gateway::Gateway;

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Human lines: "rule added: x", "user removed: bob", ...
    pub changes: Vec<String>,
    /// Settings that differ but only apply at the next start.
    pub restart_required: Vec<String>,
    /// Users no longer in the file; their sessions must end.
    pub removed_users: Vec<String>,
}

/// The result of one reload attempt.
#[derive(Debug)]
pub enum ReloadOutcome {
    Applied(ReloadReport),
    /// Nothing changed; each line is one error in the `check` format.
    Rejected(Vec<String>),
}

/// Keep what cannot change live from `old`, and describe the differences.
pub fn merge(old: &Runtime, mut new: Runtime) -> (Runtime, ReloadReport) {
    let mut r = ReloadReport {
        restart_required: keep_fixed(old, &mut new),
        ..ReloadReport::default()
    };
    rule_changes(old, &new, &mut r.changes);
    for (name, user) in &new.users {
        match old.users.get(name) {
            None => r.changes.push(format!("user added: {name}")),
            Some(u) if u != user => r.changes.push(format!("user changed: {name}")),
            Some(_) => {}
        }
    }
    for name in old.users.keys() {
        if !new.users.contains_key(name) {
            r.changes.push(format!("user removed: {name}"));
            r.removed_users.push(name.clone());
        }
    }
    for (what, differs) in [
        ("upstreams", old.upstreams != new.upstreams),
        ("authenticators", old.authenticators != new.authenticators),
        (
            "trusted_proxies",
            old.trusted_proxies != new.trusted_proxies,
        ),
        ("session", old.session != new.session),
        (
            "session.token_max_lifetime",
            old.token_max_lifetime != new.token_max_lifetime,
        ),
        ("served", old.served != new.served),
        ("tls", old.tls != new.tls),
        ("rate_limit", old.rate_limit != new.rate_limit),
        ("secrets.cookie_keys", old.cookie_keys != new.cookie_keys),
    ] {
        if differs {
            r.changes.push(format!("{what} changed"));
        }
    }
    (new, r)
}

/// Give `new` the running [`Boot`](crate::config::Boot) (what only applies
/// at the next start); returns the keys that differed.
fn keep_fixed(old: &Runtime, new: &mut Runtime) -> Vec<String> {
    let changed = old.boot.changed_keys(&new.boot);
    new.boot = old.boot.clone();
    changed.into_iter().map(str::to_string).collect()
}

/// "rule added/changed/removed: NAME" lines (a rule that moved changed).
fn rule_changes(old: &Runtime, new: &Runtime, changes: &mut Vec<String>) {
    for (name, rule) in new.rules.iter().enumerate().map(|(i, r)| (&r.name, (i, r))) {
        match old.rules.iter().position(|o| &o.name == name) {
            None => changes.push(format!("rule added: {name}")),
            Some(j) => {
                let same_rule = old.rules[j] == *rule.1;
                let same_match = signature(old, j) == signature(new, rule.0);
                if !same_rule || !same_match || j != rule.0 {
                    changes.push(format!("rule changed: {name}"));
                }
            }
        }
    }
    for o in &old.rules {
        if !new.rules.iter().any(|n| n.name == o.name) {
            changes.push(format!("rule removed: {}", o.name));
        }
    }
}

/// A comparable form of rule `i`'s matching half.
fn signature(rt: &Runtime, i: usize) -> Option<String> {
    let m = rt.router.matcher(i)?;
    let paths: Vec<String> = m.paths.iter().map(|p| p.as_written()).collect();
    Some(format!(
        "{:?}|{paths:?}|{:?}|{:?}",
        m.hosts, m.methods, m.networks
    ))
}

/// Check `path` against the running config `current`; when it is valid, hand
/// the merged runtime to `install` (which loads keys and trust anchors and
/// swaps it in, or refuses it and changes nothing).
pub fn reload_once(
    path: &Path,
    current: &Runtime,
    now: i64,
    install: impl FnOnce(Runtime) -> Result<(), String>,
) -> ReloadOutcome {
    let outcome = match check_file(path, now) {
        Ok(checked) => {
            for w in &checked.warnings {
                tracing::warn!("config warning: {w}");
            }
            let (runtime, report) = merge(current, checked.runtime);
            match install(runtime) {
                Ok(()) => ReloadOutcome::Applied(report),
                Err(e) => ReloadOutcome::Rejected(vec![format!("{}: {e}", path.display())]),
            }
        }
        Err(e) => ReloadOutcome::Rejected(
            e.0.iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| d.to_string())
                .collect(),
        ),
    };
    crate::telemetry::metrics().reload(matches!(outcome, ReloadOutcome::Applied(_)));
    outcome
}

/// Reload once and act on it: log the outcome, end removed users' sessions, audit.
pub async fn reload_and_apply(path: &Path, gw: &Gateway, trigger: &str) {
    let current = gw.snapshot();
    match reload_once(path, &current.config, gw.now(), |rt| {
        gw.apply(rt).map_err(|e| e.to_string())
    }) {
        ReloadOutcome::Applied(report) => {
            for what in &report.restart_required {
                tracing::warn!(setting = %what, "config changed but needs a restart to apply; keeping the running value");
            }
            crate::audit::reload(trigger, true, &report.changes, None);
            for user in &report.removed_users {
                match gw.store.revoke_user_sessions(user).await {
                    Ok(n) => crate::audit::revocation(
                        "config_reload",
                        Some(user),
                        "all_sessions",
                        &format!("{n} session(s)"),
                        true,
                    ),
                    // The policy already refuses a user who is not configured; the sessions die at their next request.
                    Err(e) => {
                        tracing::warn!(%user, error = %e, "could not end a removed user's sessions now; they are refused at their next request")
                    }
                }
            }
        }
        ReloadOutcome::Rejected(errors) => {
            for line in &errors {
                tracing::error!("config reload: {line}");
            }
            crate::audit::reload(trigger, false, &[], Some(errors.len()));
        }
    }
}

/// Watch `path` (through its directory, so editors that replace the file are
/// seen) and listen for SIGHUP; reload on either until the process ends.
pub async fn watch(path: PathBuf, gw: Arc<Gateway>) -> Result<(), notify::Error> {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let file_name = path.file_name().map(|f| f.to_os_string());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|f| f.to_os_string()) == file_name);
            if ours && !ev.kind.is_access() {
                let _ = file_tx.send("file change");
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    #[cfg(unix)]
    {
        let hup_tx = tx.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if hup_tx.send("SIGHUP").is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only")
            }
        }
    }
    drop(tx);
    let mut last_text = std::fs::read(&path).ok();
    while let Some(trigger) = rx.recv().await {
        // Editors write in several steps: let them finish, then take every queued event at once.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while rx.try_recv().is_ok() {}
        let text = std::fs::read(&path).ok();
        if trigger != "SIGHUP" && text.is_some() && text == last_text {
            continue;
        }
        last_text = text;
        reload_and_apply(&path, &gw, trigger).await;
    }
    drop(watcher);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_str;
    use arc_swap::ArcSwap;

    fn rt(extra: &str) -> Runtime {
        let text = format!(
            "listen: 127.0.0.1:8080\nportal: {{ url: https://auth.home.lab }}\nsecrets: {{ cookie_keys: [k] }}\n{extra}"
        );
        check_str("t.yaml", &text, 0)
            .map(|c| c.runtime)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn merge_reports_rules_and_users() {
        let old = rt(
            "users: { alice: {}, bob: {} }\nrules:\n  - { name: a, hosts: [a.lab], policy: passkey }\n  - { name: b, hosts: [b.lab], policy: passkey }\n",
        );
        let new = rt(
            "users: { alice: { groups: [x] }, carol: {} }\nrules:\n  - { name: a, hosts: [a.lab], paths: [/x], policy: passkey }\n  - { name: c, hosts: [c.lab], policy: deny }\n",
        );
        let (_, r) = merge(&old, new);
        for want in [
            "rule changed: a",
            "rule added: c",
            "rule removed: b",
            "user changed: alice",
            "user added: carol",
            "user removed: bob",
        ] {
            assert!(
                r.changes.iter().any(|c| c == want),
                "missing {want}: {:?}",
                r.changes
            );
        }
        assert_eq!(r.removed_users, vec!["bob".to_string()]);
        assert!(r.restart_required.is_empty());
    }

    #[test]
    fn restart_only_settings_keep_their_old_value() {
        let old = rt("rules: []");
        let text = "listen: 127.0.0.1:9999\nthreads: 3\nportal: { url: https://other.home.lab }\nsecrets: { cookie_keys: [k] }\nstore: { redis: { url: \"redis://127.0.0.1:1/0\" } }\nlog: { format: json }\nsession: { token_max_lifetime: 2h }\nrules: []";
        let new = check_str("t.yaml", text, 0)
            .map(|c| c.runtime)
            .unwrap_or_else(|e| panic!("{e}"));
        let (merged, r) = merge(&old, new);
        assert_eq!(merged.boot, old.boot);
        assert_eq!(
            r.restart_required,
            vec!["listen", "threads", "store", "portal", "log.format"]
        );
        // What reloads is taken, and said.
        assert_eq!(merged.token_max_lifetime.as_secs(), 7200);
        assert!(
            r.changes
                .contains(&"session.token_max_lifetime changed".to_string()),
            "{:?}",
            r.changes
        );
    }

    #[test]
    fn a_bad_file_keeps_the_running_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("stepgate.yaml");
        let old = rt("rules:\n  - { name: a, hosts: [a.lab], policy: bypass }\n");
        let target = ArcSwap::from_pointee(old);
        let install = |rt: Runtime| {
            target.store(Arc::new(rt));
            Ok(())
        };
        std::fs::write(&path, "portal: { url: https://auth.home.lab }\nsecrets: { cookie_keys: [k] }\nrules:\n  - { name: b, hosts: [b.lab], policy: bypas }\n").unwrap();
        let ReloadOutcome::Rejected(e) = reload_once(&path, &target.load_full(), 0, install) else {
            panic!("accepted a bad file")
        };
        assert!(e[0].contains("rules[0].policy"), "{e:?}");
        assert_eq!(target.load().rules[0].name, "a");
        std::fs::write(&path, "listen: 127.0.0.1:8080\nportal: { url: https://auth.home.lab }\nsecrets: { cookie_keys: [k] }\nrules:\n  - { name: b, hosts: [b.lab], policy: bypass }\n").unwrap();
        let ReloadOutcome::Applied(r) = reload_once(&path, &target.load_full(), 0, install) else {
            panic!("rejected a good file")
        };
        assert_eq!(target.load().rules[0].name, "b");
        assert!(r.changes.contains(&"rule added: b".to_string()));
    }
}
