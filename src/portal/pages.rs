//! Server-rendered HTML for the portal pages.
//!
//! One layout, plain semantic HTML, one stylesheet and one script, both served
//! from the binary (`/.stepgate/assets/…`): no CDN, no third-party request.
//! Every dynamic value goes through [`escape`].

use std::fmt::Write;

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page frame. `script` adds the ceremony script with `data-*` attributes.
pub fn layout(title: &str, main: &str, script: Option<&str>) -> String {
    let script = script.map_or(String::new(), |attrs| {
        format!("<script src=\"/.stepgate/assets/portal.js\" {attrs}></script>")
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"same-origin\">\
<title>{t} · stepgate</title>\
<link rel=\"stylesheet\" href=\"/.stepgate/assets/portal.css\"></head>\
<body><main id=\"main\">{main}</main>{script}</body></html>\n",
        t = escape(title)
    )
}

/// A page with one message and an optional link.
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let mut m = format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text));
    if let Some((href, label)) = link {
        let _ = write!(
            m,
            "<p><a class=\"button\" href=\"{}\">{}</a></p>",
            escape(href),
            escape(label)
        );
    }
    layout(title, &m, None)
}

/// What the login page shows.
pub struct Login<'a> {
    pub rd: &'a str,
    /// The browser binding from the app host ("" when none).
    pub state: &'a str,
    /// Where the user is going (host), shown to them.
    pub destination: &'a str,
    /// Plain sentences about what the page needs ("a fresh check …").
    pub needs: Vec<String>,
    /// The signed-in user, if known.
    pub user: Option<&'a str>,
    /// Set when the known user has no passkey that satisfies the rule.
    pub no_match: Option<String>,
}

pub fn login(p: &Login<'_>) -> String {
    let mut m = String::new();
    let _ = write!(
        m,
        "<h1>Sign in</h1><p class=\"lead\">to continue to <strong>{}</strong></p>",
        escape(p.destination)
    );
    if let Some(u) = p.user {
        let _ = write!(m, "<p>Signed in as <strong>{}</strong>.</p>", escape(u));
    }
    for n in &p.needs {
        let _ = write!(m, "<p class=\"note\">{}</p>", escape(n));
    }
    if let Some(msg) = &p.no_match {
        let _ = write!(m, "<p class=\"error\" role=\"alert\">{}</p>", escape(msg));
    }
    m.push_str(
        "<div id=\"status\" role=\"status\" aria-live=\"polite\"></div>\
<p><button id=\"signin\" type=\"button\">Sign in with a passkey</button></p>\
<details><summary>Use a passkey for a specific user name</summary>\
<form id=\"signin-name\"><label for=\"username\">User name</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username webauthn\" autocapitalize=\"none\" spellcheck=\"false\" required>\
<button type=\"submit\">Continue</button></form></details>\
<p class=\"small\">Your authenticator will ask for your PIN or fingerprint.</p>",
    );
    layout(
        "Sign in",
        &m,
        Some(&format!(
            "data-page=\"login\" data-rd=\"{}\" data-state=\"{}\"{}",
            escape(p.rd),
            escape(p.state),
            p.user
                .map_or(String::new(), |u| format!(" data-user=\"{}\"", escape(u)))
        )),
    )
}

pub fn enroll(token: &str, user: Option<&str>) -> String {
    let who = user.map_or(String::new(), |u| {
        format!(" for <strong>{}</strong>", escape(u))
    });
    let m = format!(
        "<h1>Register a passkey</h1><p class=\"lead\">Create a passkey{who} to sign in to this portal.</p>\
<div id=\"status\" role=\"status\" aria-live=\"polite\"></div>\
<form id=\"enroll\"><label for=\"label\">Name this passkey</label>\
<input id=\"label\" name=\"label\" maxlength=\"64\" placeholder=\"laptop, phone, yubikey\" required>\
<button type=\"submit\">Create passkey</button></form>\
<p class=\"small\">Your authenticator must ask for your PIN or fingerprint; one that cannot is refused.</p>\
<p class=\"small\">Registering signs you in, but it is not a check of your PIN or fingerprint: \
when a page asks for one, now confirm with your passkey.</p>"
    );
    layout(
        "Register a passkey",
        &m,
        Some(&format!(
            "data-page=\"enroll\" data-token=\"{}\"",
            escape(token)
        )),
    )
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

fn apps_list(apps: &[AppRow]) -> String {
    if apps.is_empty() {
        return "none".to_string();
    }
    let mut out = String::from("<ul>");
    for a in apps {
        let _ = write!(out, "<li>{}", escape(&a.host));
        if a.grants.is_empty() {
            out.push_str(" (signed in; no step-up yet)");
        } else {
            out.push_str("<ul>");
            for g in &a.grants {
                let _ = write!(
                    out,
                    "<li>rule {}: checked {}, counts until {}</li>",
                    escape(&g.rule),
                    escape(&g.verified),
                    escape(&g.valid_until)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    out
}

/// The page behind a "log out" link: one button that signs out (a `GET` never does).
pub fn confirm_logout(user: &str, csrf: &str) -> String {
    let m = format!(
        "<h1>Sign out</h1><p class=\"lead\">Signed in as <strong>{}</strong>.</p>\
<p>Signing out ends this browser's sign-in and every app it opened with it.</p>\
<form method=\"post\" action=\"/.stepgate/logout\">{}<button type=\"submit\">Sign out</button></form>",
        escape(user),
        hidden(csrf)
    );
    layout("Sign out", &m, None)
}

pub struct Account<'a> {
    pub user: &'a str,
    pub display: Option<&'a str>,
    pub csrf: &'a str,
    pub passkeys: Vec<PasskeyRow>,
    pub sessions: Vec<SessionRow>,
    /// The client tokens part, already rendered (`portal::tokens`).
    pub tokens: &'a str,
    pub notice: Option<&'a str>,
    /// URL of the login page that refreshes the ceremony (for revoking).
    pub reverify: String,
    pub can_revoke: bool,
}

fn hidden(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

pub fn account(a: &Account<'_>) -> String {
    let mut m = String::new();
    let _ = write!(
        m,
        "<h1>Your account</h1><p class=\"lead\">Signed in as <strong>{}</strong>{}</p>",
        escape(a.user),
        a.display
            .map_or(String::new(), |d| format!(" ({})", escape(d)))
    );
    if let Some(n) = a.notice {
        let _ = write!(m, "<p class=\"note\" role=\"status\">{}</p>", escape(n));
    }
    m.push_str("<h2>Passkeys</h2>");
    if !a.can_revoke {
        let _ = write!(
            m,
            "<p class=\"small\">Removing a passkey needs a check at most 5 minutes old. \
<a href=\"{}\">Verify again</a> first.</p>",
            escape(&a.reverify)
        );
    }
    m.push_str("<ul class=\"cards\">");
    for p in &a.passkeys {
        let _ = write!(
            m,
            "<li class=\"card\"><h3>{label}</h3><dl>\
<dt>Model</dt><dd>{model}</dd><dt>Kind</dt><dd>{kind}</dd>\
<dt>Created</dt><dd>{created}</dd><dt>Last used</dt><dd>{used}</dd>\
<dt>Expires</dt><dd>{exp}</dd></dl>{flag}\
<form method=\"post\" action=\"/.stepgate/account/rename\">{h}\
<input type=\"hidden\" name=\"id\" value=\"{id}\">\
<label for=\"rename-{id}\">New name</label>\
<input id=\"rename-{id}\" name=\"label\" maxlength=\"64\" required value=\"{label}\">\
<button type=\"submit\">Rename</button></form>\
<form method=\"post\" action=\"/.stepgate/account/revoke\">{h}\
<input type=\"hidden\" name=\"id\" value=\"{id}\">\
<button type=\"submit\" class=\"danger\"{dis}>Remove {label}</button></form></li>",
            label = escape(&p.label),
            model = escape(p.model.as_deref().unwrap_or("unknown")),
            kind = if p.synced {
                "synced (backup eligible)"
            } else {
                "device-bound"
            },
            created = escape(&p.created),
            used = escape(&p.last_used),
            exp = escape(p.expires.as_deref().unwrap_or("never")),
            flag = if p.flagged {
                "<p class=\"error\">Blocked: its sign counter went backwards (possible copy).</p>"
            } else {
                ""
            },
            h = hidden(a.csrf),
            id = escape(&p.id),
            dis = if a.can_revoke { "" } else { " disabled" },
        );
    }
    m.push_str("</ul><h2>Sessions</h2><ul class=\"cards\">");
    for s in &a.sessions {
        let _ = write!(
            m,
            "<li class=\"card\"><h3>Session {id}{cur}</h3><dl><dt>Browser</dt><dd>{b}</dd>\
<dt>Signed in from</dt><dd>{ip}</dd><dt>Started</dt><dd>{c}</dd>\
<dt>Last seen</dt><dd>{l}</dd><dt>Apps</dt><dd>{apps}</dd></dl>\
<form method=\"post\" action=\"/.stepgate/account/end-session\">{h}\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\">End this session</button></form></li>",
            id = escape(&s.id),
            cur = if s.current { " (this browser)" } else { "" },
            b = escape(&s.browser),
            ip = escape(&s.address),
            c = escape(&s.created),
            l = escape(&s.last_seen),
            apps = apps_list(&s.apps),
            h = hidden(a.csrf),
        );
    }
    m.push_str("</ul>");
    if a.sessions.len() > 1 {
        let _ = write!(
            m,
            "<form method=\"post\" action=\"/.stepgate/account/end-others\">{}\
<button type=\"submit\">End every other session</button></form>",
            hidden(a.csrf)
        );
    }
    m.push_str(a.tokens);
    let _ = write!(
        m,
        "<h2>Sign out</h2><div class=\"row\">\
<form method=\"post\" action=\"/.stepgate/logout\">{h}<button type=\"submit\">Sign out</button></form>\
<form method=\"post\" action=\"/.stepgate/account/end-all\">{h}<button type=\"submit\" class=\"danger\">Sign out everywhere</button></form></div>",
        h = hidden(a.csrf)
    );
    layout("Your account", &m, Some("data-page=\"account\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            escape("<a href=\"x\" onclick='y'>&</a>"),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn login_page_carries_rd_escaped() {
        let html = login(&Login {
            state: "",
            rd: "https://a/\"><script>",
            destination: "a",
            needs: vec![],
            user: None,
            no_match: None,
        });
        assert!(!html.contains("\"><script>"));
        assert!(html.contains("data-rd=\"https://a/&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("<label for=\"username\">"));
    }
}
