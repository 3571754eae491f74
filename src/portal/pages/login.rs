//! The sign-in and step-up page.

use maud::html;

use super::{layout, status};
use crate::reserved::PortalRoute;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
