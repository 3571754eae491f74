//! The account page: passkeys, sessions with their apps and grants, client
//! tokens, and signing out everywhere.

use maud::{Markup, html};

use super::{layout, post_form, status};
use crate::portal::form::LABEL_MAX;
use crate::reserved::PortalRoute;

/// One passkey row on the account page.
pub struct PasskeyRow {
    pub id: String,
    pub label: String,
    pub model: Option<String>,
    pub created: String,
    pub last_used: String,
    pub synced: bool,
    pub expires: Option<String>,
    pub flagged: bool,
}

/// One session row on the account page.
pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
    /// "Firefox 133.0 on Linux".
    pub browser: String,
    /// The address it signed in from.
    pub address: String,
    pub apps: Vec<AppRow>,
}

/// An app host a session opened, with the grants it holds.
pub struct AppRow {
    pub host: String,
    pub grants: Vec<GrantRow>,
}

/// A step-up grant: which rule, when the passkey check was, how long it counts.
pub struct GrantRow {
    pub rule: String,
    pub verified: String,
    pub valid_until: String,
}

/// One live client token on the account page.
pub struct TokenRow {
    pub id: String,
    pub label: String,
    /// The rules it was minted for, joined.
    pub rules: String,
    pub made: String,
    /// The label of the passkey that minted it.
    pub credential: String,
    pub expires: String,
}

/// A rule the mint form offers.
pub struct MintRule {
    pub name: String,
    /// Its host patterns, joined.
    pub hosts: String,
    /// Its `step_up.max_age`, in words: a token works only that long.
    pub max_age: Option<String>,
}

/// The mint form's choices.
pub struct MintForm {
    pub rules: Vec<MintRule>,
    /// Lifetimes offered, in days.
    pub days: Vec<u64>,
    pub default_days: u64,
}

/// The account page's client tokens part.
pub struct Tokens {
    pub csrf: String,
    pub rows: Vec<TokenRow>,
    /// `None` when no rule takes tokens for this user.
    pub mint: Option<MintForm>,
}

pub struct Account<'a> {
    pub user: &'a str,
    pub display: Option<&'a str>,
    pub csrf: &'a str,
    pub passkeys: Vec<PasskeyRow>,
    pub sessions: Vec<SessionRow>,
    pub tokens: Tokens,
    pub notice: Option<&'a str>,
    /// URL of the login page that refreshes the ceremony (for revoking).
    pub reverify: String,
    pub can_revoke: bool,
    /// How fresh (seconds) the ceremony must be to remove a passkey.
    pub revoke_max_age: i64,
}

fn apps_list(apps: &[AppRow]) -> Markup {
    html! {
        @if apps.is_empty() { "none" } @else {
            ul {
                @for a in apps {
                    li {
                        (a.host)
                        @if a.grants.is_empty() { " (signed in; no step-up yet)" } @else {
                            ul {
                                @for g in &a.grants {
                                    li {
                                        "rule " (g.rule) ": checked " (g.verified)
                                        ", counts until " (g.valid_until)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "5 minutes" for 300 seconds.
fn minutes(secs: i64) -> String {
    match secs / 60 {
        1 => "1 minute".to_string(),
        m => format!("{m} minutes"),
    }
}

fn passkey_card(p: &PasskeyRow, csrf: &str, can_revoke: bool) -> Markup {
    let rename_id = format!("rename-{}", p.id);
    html! {
        li class="card" {
            h3 { (p.label) }
            dl {
                dt { "Model" } dd { (p.model.as_deref().unwrap_or("unknown")) }
                dt { "Kind" } dd { (if p.synced { "synced (backup eligible)" } else { "device-bound" }) }
                dt { "Created" } dd { (p.created) }
                dt { "Last used" } dd { (p.last_used) }
                dt { "Expires" } dd { (p.expires.as_deref().unwrap_or("never")) }
            }
            @if p.flagged {
                p class="error" { "Blocked: its sign counter went backwards (possible copy)." }
            }
            (post_form(PortalRoute::RenamePasskey, csrf, Some(&p.id), html! {
                label for=(rename_id) { "New name" }
                input id=(rename_id) name="label" maxlength=(LABEL_MAX) required value=(p.label);
                button type="submit" { "Rename" }
            }))
            (post_form(PortalRoute::RevokePasskey, csrf, Some(&p.id), html! {
                button type="submit" class="danger" disabled[!can_revoke] { "Remove " (p.label) }
            }))
        }
    }
}

fn session_card(s: &SessionRow, csrf: &str) -> Markup {
    html! {
        li class="card" {
            h3 { "Session " (s.id) @if s.current { " (this browser)" } }
            dl {
                dt { "Browser" } dd { (s.browser) }
                dt { "Signed in from" } dd { (s.address) }
                dt { "Started" } dd { (s.created) }
                dt { "Last seen" } dd { (s.last_seen) }
                dt { "Apps" } dd { (apps_list(&s.apps)) }
            }
            (post_form(PortalRoute::EndSession, csrf, Some(&s.id), html! {
                button type="submit" { "End this session" }
            }))
        }
    }
}

fn token_card(t: &TokenRow, csrf: &str) -> Markup {
    html! {
        li class="card" {
            h3 { (t.label) }
            dl {
                dt { "For" } dd { (t.rules) }
                dt { "Made" } dd { (t.made) " with " (t.credential) }
                dt { "Expires" } dd { (t.expires) }
            }
            (post_form(PortalRoute::RevokeToken, csrf, Some(&t.id), html! {
                button type="submit" class="danger" { "Revoke " (t.label) }
            }))
        }
    }
}

/// The form that mints a token (driven by the portal script).
fn mint_form(m: &MintForm) -> Markup {
    html! {
        form id="mint" {
            h3 { "New token" }
            label for="token-label" { "Name" }
            input id="token-label" name="label" maxlength=(LABEL_MAX)
                placeholder="laptop git, phone calendar" required;
            fieldset {
                legend { "For" }
                @for r in &m.rules {
                    label class="check" {
                        input type="checkbox" name="rule" value=(r.name);
                        " " (r.name) " (" (r.hosts) ")"
                        @if let Some(age) = &r.max_age { " — works only for " (age) " after it is made" }
                    }
                }
            }
            label for="token-days" { "Valid for" }
            select id="token-days" name="days" {
                @for d in &m.days {
                    option value=(d) selected[*d == m.default_days] {
                        (d) " " (if *d == 1 { "day" } else { "days" })
                    }
                }
            }
            button type="submit" { "Make token" }
        }
        (status())
        div id="minted" hidden {
            p { "Your new token. Copy it now: it is not shown again." }
            input id="minted-secret" readonly aria-label="New token";
        }
    }
}

fn tokens_part(t: &Tokens) -> Markup {
    html! {
        h2 { "Client tokens" }
        p class="small" {
            "For apps that cannot use a passkey: git, calendar, contacts and WebDAV apps, \
             scripts. A token works only for the addresses it was made for, and no longer \
             than they allow: one that asks for a check at most N minutes old refuses a token \
             minted longer ago. Making one asks for your passkey."
        }
        ul class="cards" { @for row in &t.rows { (token_card(row, &t.csrf)) } }
        @if let Some(m) = &t.mint { (mint_form(m)) }
    }
}

/// "1 client token", "2 client tokens".
fn counted(n: usize, one: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    }
}

/// The sign-out-everywhere form: what it ends, the client tokens it leaves
/// valid (how many), and the box that ends them too.
fn sign_out_everywhere(a: &Account<'_>) -> Markup {
    let tokens = a.tokens.rows.len();
    let (kept, end) = match tokens {
        1 => (
            "Your 1 client token stays valid: signing out does not end it".to_string(),
            "Also end my client token".to_string(),
        ),
        n => (
            format!("Your {n} client tokens stay valid: signing out does not end them"),
            format!("Also end all {n} of my client tokens"),
        ),
    };
    html! {
        (post_form(PortalRoute::EndAllSessions, a.csrf, None, html! {
            p {
                "Signing out everywhere ends your " (counted(a.sessions.len(), "session"))
                " and every app they opened."
                @if tokens > 0 { " " (kept) ", so git, calendars and scripts keep working." }
            }
            @if tokens > 0 {
                label class="check" { input type="checkbox" name="tokens" value="end"; " " (end) }
            }
            button type="submit" class="danger" { "Sign out everywhere" }
        }))
    }
}

pub fn account(a: &Account<'_>) -> String {
    let main = html! {
        h1 { "Your account" }
        p class="lead" {
            "Signed in as " strong { (a.user) }
            @if let Some(d) = a.display { " (" (d) ")" }
        }
        @if let Some(n) = a.notice { p class="note" role="status" { (n) } }
        h2 { "Passkeys" }
        @if !a.can_revoke {
            p class="small" {
                "Removing a passkey needs a check at most " (minutes(a.revoke_max_age)) " old. "
                a href=(a.reverify) { "Verify again" } " first."
            }
        }
        ul class="cards" { @for p in &a.passkeys { (passkey_card(p, a.csrf, a.can_revoke)) } }
        h2 { "Sessions" }
        ul class="cards" { @for s in &a.sessions { (session_card(s, a.csrf)) } }
        @if a.sessions.len() > 1 {
            (post_form(PortalRoute::EndOtherSessions, a.csrf, None, html! {
                button type="submit" { "End every other session" }
            }))
        }
        (tokens_part(&a.tokens))
        h2 { "Sign out" }
        (post_form(PortalRoute::Logout, a.csrf, None, html! { button type="submit" { "Sign out" } }))
        (sign_out_everywhere(a))
    };
    let script = html! { script src=(PortalRoute::Script.path()) data-page="account" {} };
    layout("Your account", main, Some(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_out_everywhere_counts_the_tokens_it_keeps() {
        let token = |id: &str| TokenRow {
            id: id.into(),
            label: id.into(),
            rules: "git".into(),
            made: "now".into(),
            credential: "key".into(),
            expires: "later".into(),
        };
        let page = |rows: Vec<TokenRow>| {
            account(&Account {
                user: "alice",
                display: None,
                csrf: "c",
                passkeys: vec![],
                sessions: vec![],
                tokens: Tokens {
                    csrf: "c".into(),
                    rows,
                    mint: None,
                },
                notice: None,
                reverify: String::new(),
                can_revoke: false,
                revoke_max_age: 300,
            })
        };
        let none = page(vec![]);
        assert!(
            !none.contains("name=\"tokens\"") && !none.contains("stay"),
            "{none}"
        );
        let one = page(vec![token("a")]);
        assert!(one.contains("Your 1 client token stays valid: signing out does not end it"));
        assert!(one.contains("Also end my client token"));
        let two = page(vec![token("a"), token("b")]);
        assert!(two.contains("Your 2 client tokens stay valid"));
        assert!(two.contains("Also end all 2 of my client tokens"));
    }

    #[test]
    fn revoking_says_the_age_it_needs() {
        assert_eq!(minutes(300), "5 minutes");
        assert_eq!(minutes(60), "1 minute");
    }
}
