//! `stepgate invite`, `stepgate credentials …`, `stepgate sessions …` and
//! `stepgate tokens …`: admin commands on the store named in the config, safe
//! to run while `serve` runs.
//!
//! Each loads the config with [`config::check_file`], opens the configured store
//! and prints a result. Normal output goes to `out`, problems to `err`; the
//! return value is the exit code. No token or cookie value is ever printed,
//! except the enrollment URL of `invite`, which is its whole point.

use crate::audit;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SystemClock;
use crate::config::{self, Runtime};
use crate::model::{Invite, Timestamp, new_secret, token_hash};
use crate::policy::Unadmitted;
use crate::reserved::PortalRoute;
use crate::store::{self, Store};

use super::exit;

fn now() -> Timestamp {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Arguments of `stepgate invite`.
#[derive(Debug, Clone)]
pub struct InviteArgs {
    pub user: String,
    /// How long the enrollment link works.
    pub ttl: Duration,
    /// Lifetime of the passkey enrolled with it (`None`: until revoked).
    pub credential_ttl: Option<Duration>,
}

/// The config and its store, or the exit code after reporting why not.
async fn open(
    config_path: &Path,
    err: &mut dyn Write,
) -> std::io::Result<Result<(Runtime, Arc<dyn Store>), u8>> {
    let runtime = match config::check_file(config_path, now()) {
        Ok(c) => c.runtime,
        Err(e) => {
            for d in e.errors() {
                writeln!(err, "error: {d}")?;
            }
            return Ok(Err(exit::FAILED));
        }
    };
    match store::open(&runtime.boot.store, Arc::new(SystemClock)) {
        Ok(s) => Ok(Ok((runtime, s))),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(Err(exit::FAILED))
        }
    }
}

macro_rules! open_or_exit {
    ($path:expr, $err:expr) => {
        match open($path, $err).await? {
            Ok(x) => x,
            Err(code) => return Ok(code),
        }
    };
}

macro_rules! store_or_exit {
    ($call:expr, $err:expr) => {
        match $call.await {
            Ok(x) => x,
            Err(e) => {
                writeln!($err, "error: {e}")?;
                return Ok(exit::FAILED);
            }
        }
    };
}

/// Unix seconds as `2026-11-28T14:00:00Z`.
fn when(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `stepgate invite USER`: print the enrollment URL, nothing else, on `out`.
pub async fn invite(
    config_path: &Path,
    args: &InviteArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (rt, store) = open_or_exit!(config_path, err);
    let t = now();
    match crate::policy::admit(&rt, &args.user, None, t) {
        Err(Unadmitted::Unknown) => {
            writeln!(
                err,
                "error: no user \"{}\" in {} (add it under users: first)",
                args.user,
                config_path.display()
            )?;
            return Ok(exit::FAILED);
        }
        Err(_) => {
            writeln!(
                err,
                "error: user \"{}\" has expired (users.{}.expires)",
                args.user, args.user
            )?;
            return Ok(exit::FAILED);
        }
        Ok(_) => {}
    }
    if args.ttl.as_secs() == 0 {
        writeln!(err, "error: --ttl must be at least one second")?;
        return Ok(exit::FAILED);
    }
    if args.credential_ttl.is_some_and(|d| d.as_secs() == 0) {
        writeln!(err, "error: --credential-ttl must be at least one second")?;
        return Ok(exit::FAILED);
    }
    let token = new_secret();
    let invite = Invite {
        user: args.user.clone(),
        credential_ttl: args.credential_ttl.map(|d| d.as_secs()),
        expires_at: t.saturating_add(secs(args.ttl)),
    };
    store_or_exit!(store.add_invite(&token_hash(&token), &invite), err);
    writeln!(
        out,
        "{}",
        PortalRoute::Enroll.url_with(&rt.boot.portal, &[("token", &token)])
    )?;
    let lifetime = match args.credential_ttl {
        Some(d) => format!(
            "the passkey will work for {}",
            crate::config::duration::Formatted(d)
        ),
        None => "the passkey will work until revoked".to_string(),
    };
    writeln!(
        err,
        "invite for {} valid until {} (single use); {lifetime}",
        args.user,
        when(invite.expires_at)
    )?;
    Ok(exit::OK)
}

/// Print rows as left-aligned columns under a header.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Print `rows` under `header`, or `empty` on `err` when there are none.
fn listing(
    out: &mut dyn Write,
    err: &mut dyn Write,
    empty: &str,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<u8> {
    if rows.is_empty() {
        writeln!(err, "{empty}")?;
    } else {
        table(out, header, rows)?;
    }
    Ok(exit::OK)
}

/// `stepgate credentials list [USER]`.
pub async fn credentials_list(
    config_path: &Path,
    user: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let creds = store_or_exit!(store.credentials(user), err);
    let t = now();
    let rows: Vec<Vec<String>> = creds
        .iter()
        .map(|c| {
            let status = if c.flagged {
                "flagged (counter went back)"
            } else if !c.is_usable(t) {
                "expired"
            } else {
                "ok"
            };
            vec![
                c.id.clone(),
                c.user.clone(),
                c.label.clone(),
                c.aaguid.to_string(),
                if c.attestation.is_some() { "yes" } else { "no" }.to_string(),
                if c.backup_eligible {
                    "synced"
                } else {
                    "device-bound"
                }
                .to_string(),
                when(c.created_at),
                c.last_used_at.map_or("never".to_string(), when),
                c.expires_at.map_or("never".to_string(), when),
                status.to_string(),
            ]
        })
        .collect();
    listing(
        out,
        err,
        "no credentials",
        &[
            "ID",
            "USER",
            "LABEL",
            "AAGUID",
            "ATTESTED",
            "KIND",
            "CREATED",
            "LAST USED",
            "EXPIRES",
            "STATUS",
        ],
        &rows,
    )
}

/// `stepgate credentials revoke ID`: the credential and every session resting on it end.
pub async fn credentials_revoke(
    config_path: &Path,
    id: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let ok = store_or_exit!(store.revoke_credential(id), err);
    let done = format!(
        "revoked credential {id}; sessions signed in or stepped up with it, and tokens minted with it, have ended"
    );
    revoked("credential", id, ok, &done, out, err)
}

/// Audit and report a revocation by id: `done` on `out`, or "no KIND ID" on `err`.
fn revoked(
    kind: &str,
    id: &str,
    ok: bool,
    done: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    audit::revocation("cli", None, kind, id, ok);
    if ok {
        writeln!(out, "{done}")?;
        Ok(exit::OK)
    } else {
        writeln!(err, "error: no {kind} {id}")?;
        Ok(exit::FAILED)
    }
}

/// Audit and report that `n` things (`noun`s) of `user` were revoked.
fn revoked_all(
    what: &str,
    noun: &str,
    user: &str,
    n: u64,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    audit::revocation("cli", Some(user), what, &format!("{n} {noun}(s)"), true);
    writeln!(out, "revoked {n} {noun}(s) of {user}")?;
    Ok(exit::OK)
}

/// `stepgate sessions list [USER]`: portal sessions with their app hosts.
pub async fn sessions_list(
    config_path: &Path,
    user: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let sessions = store_or_exit!(store.portal_sessions(user), err);
    let mut rows = Vec::with_capacity(sessions.len());
    for s in &sessions {
        let apps = store_or_exit!(store.app_sessions(&s.id), err);
        let mut hosts: Vec<&str> = apps.iter().map(|a| a.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        rows.push(vec![
            s.id.clone(),
            s.user.clone(),
            when(s.created_at),
            when(s.last_seen_at),
            when(s.expires_at),
            s.last_uv.as_ref().map_or("-".to_string(), |v| {
                format!("{} ({})", when(v.at), v.credential_label)
            }),
            if hosts.is_empty() {
                "-".to_string()
            } else {
                hosts.join(",")
            },
        ]);
    }
    listing(
        out,
        err,
        "no sessions",
        &[
            "ID",
            "USER",
            "CREATED",
            "LAST SEEN",
            "EXPIRES",
            "LAST VERIFIED",
            "APPS",
        ],
        &rows,
    )
}

/// `stepgate sessions revoke ID`: a portal session and its app sessions end.
pub async fn sessions_revoke(
    config_path: &Path,
    id: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let ok = store_or_exit!(store.revoke_session(id), err);
    let done = format!("revoked session {id} and its app sessions");
    revoked("session", id, ok, &done, out, err)
}

/// `stepgate sessions revoke --user USER`: every session of the user ends.
pub async fn sessions_revoke_user(
    config_path: &Path,
    user: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let n = store_or_exit!(store.revoke_user_sessions(user), err);
    revoked_all("all_sessions", "session", user, n, out)
}

/// `stepgate tokens list [USER]`: live client tokens (never their secrets).
pub async fn tokens_list(
    config_path: &Path,
    user: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let tokens = store_or_exit!(store.tokens(user), err);
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.user.clone(),
                t.label.clone(),
                t.rules.join(","),
                when(t.created_at),
                when(t.expires_at),
                t.verification.credential_label.clone(),
            ]
        })
        .collect();
    listing(
        out,
        err,
        "no tokens",
        &[
            "ID", "USER", "LABEL", "RULES", "CREATED", "EXPIRES", "PASSKEY",
        ],
        &rows,
    )
}

/// `stepgate tokens revoke ID`: the token is refused from the next request on.
pub async fn tokens_revoke(
    config_path: &Path,
    id: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let ok = store_or_exit!(store.revoke_token(id), err);
    revoked("token", id, ok, &format!("revoked token {id}"), out, err)
}

/// `stepgate tokens revoke --user USER`: every token of the user ends.
pub async fn tokens_revoke_user(
    config_path: &Path,
    user: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (_, store) = open_or_exit!(config_path, err);
    let n = store_or_exit!(store.revoke_user_tokens(user), err);
    revoked_all("all_tokens", "token", user, n, out)
}
