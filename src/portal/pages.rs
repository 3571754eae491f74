//! Server-rendered HTML for the portal pages, from maud templates: checked
//! when the gateway is compiled, every value escaped unless it is markup.
//!
//! One layout, plain semantic HTML, one stylesheet and one script, both served
//! from the binary (`/.stepgate/assets/…`): no CDN, no third-party request.
//! Links and form actions come from [`PortalRoute`].

use maud::{DOCTYPE, Markup, html};

use super::form::LABEL_MAX;
use crate::reserved::PortalRoute;

/// The page frame. `script` is the ceremony script's tag, when the page has one.
fn layout(title: &str, main: Markup, script: Option<Markup>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · stepgate" }
                link rel="stylesheet" href=(PortalRoute::Stylesheet.path());
            }
            body {
                main id="main" { (main) }
                @if let Some(s) = script { (s) }
            }
        }
    }
    .into_string()
}

/// A page with one message and an optional link.
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let main = html! {
        h1 { (title) }
        p { (text) }
        @if let Some((href, label)) = link {
            p { a class="button" href=(href) { (label) } }
        }
    };
    layout(title, main, None)
}

/// What the login page shows.
pub struct Login<'a> {
    pub rd: &'a str,
    /// The browser binding from the app host ("" when none).
    pub state: &'a str,
    /// Where the user is going (host), shown to them.
    pub destination: &'a str,
    /// What the page's `step_up` asks for, in a sentence.
    pub needs: Option<String>,
    /// The signed-in user, if known.
    pub user: Option<&'a str>,
    /// Set when the known user has no passkey that satisfies the rule.
    pub no_match: Option<String>,
}

/// The status line the ceremony script writes to.
fn status() -> Markup {
    html! { div id="status" role="status" aria-live="polite" {} }
}

pub fn login(p: &Login<'_>) -> String {
    let main = html! {
        h1 { "Sign in" }
        p class="lead" { "to continue to " strong { (p.destination) } }
        @if let Some(u) = p.user { p { "Signed in as " strong { (u) } "." } }
        @if let Some(n) = &p.needs { p class="note" { (n) } }
        @if let Some(msg) = &p.no_match { p class="error" role="alert" { (msg) } }
        (status())
        p { button id="signin" type="button" { "Sign in with a passkey" } }
        details {
            summary { "Use a passkey for a specific user name" }
            form id="signin-name" {
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username webauthn"
                    autocapitalize="none" spellcheck="false" required;
                button type="submit" { "Continue" }
            }
        }
        p class="small" { "Your authenticator will ask for your PIN or fingerprint." }
    };
    let script = html! {
        script src=(PortalRoute::Script.path()) data-page="login" data-rd=(p.rd)
            data-state=(p.state) data-user=[p.user] {}
    };
    layout("Sign in", main, Some(script))
}

pub fn enroll(token: &str, user: Option<&str>) -> String {
    let main = html! {
        h1 { "Register a passkey" }
        p class="lead" {
            "Create a passkey"
            @if let Some(u) = user { " for " strong { (u) } }
            " to sign in to this portal."
        }
        (status())
        form id="enroll" {
            label for="label" { "Name this passkey" }
            input id="label" name="label" maxlength=(LABEL_MAX) placeholder="laptop, phone, yubikey" required;
            button type="submit" { "Create passkey" }
        }
        p class="small" {
            "Your authenticator must ask for your PIN or fingerprint; one that cannot is refused."
        }
        p class="small" {
            "Registering signs you in, but it is not a check of your PIN or fingerprint: \
             when a page asks for one, now confirm with your passkey."
        }
    };
    let script = html! {
        script src=(PortalRoute::Script.path()) data-page="enroll" data-token=(token) {}
    };
    layout("Register a passkey", main, Some(script))
}

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

/// The CSRF field every form of a signed-in page carries.
fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A form that posts `csrf` (and `id`, when given) to `route`.
fn post_form(route: PortalRoute, csrf: &str, id: Option<&str>, inner: Markup) -> Markup {
    html! {
        form method="post" action=(route.path()) {
            (csrf_field(csrf))
            @if let Some(id) = id { input type="hidden" name="id" value=(id); }
            (inner)
        }
    }
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

/// The page behind a "log out" link: one button that signs out (a `GET` never does).
pub fn confirm_logout(user: &str, csrf: &str) -> String {
    let main = html! {
        h1 { "Sign out" }
        p class="lead" { "Signed in as " strong { (user) } "." }
        p { "Signing out ends this browser's sign-in and every app it opened with it." }
        (post_form(PortalRoute::Logout, csrf, None, html! { button type="submit" { "Sign out" } }))
    };
    layout("Sign out", main, None)
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
    fn escapes_everything_dangerous() {
        let page = message("t", "<a href=\"x\" onclick='y'>&</a>", None);
        assert!(
            page.contains("&lt;a href=&quot;x&quot; onclick='y'&gt;&amp;&lt;/a&gt;"),
            "{page}"
        );
        assert!(!page.contains("<a href=\"x\""));
    }

    #[test]
    fn login_page_carries_rd_escaped() {
        let html = login(&Login {
            state: "",
            rd: "https://a/\"><script>",
            destination: "a",
            needs: None,
            user: None,
            no_match: None,
        });
        assert!(!html.contains("\"><script>"));
        assert!(html.contains("data-rd=\"https://a/&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("<label for=\"username\">"));
    }

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
