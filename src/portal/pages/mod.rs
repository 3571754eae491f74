//! Server-rendered HTML for the portal pages, from maud templates: checked
//! when the gateway is compiled, every value escaped unless it is markup.
//!
//! One layout, plain semantic HTML, one stylesheet and one script, both served
//! from the binary (`/.stepgate/assets/…`): no CDN, no third-party request.
//! Links and form actions come from [`PortalRoute`]. This module holds the
//! frame and the parts every page shares; each page's template is a module
//! of its own (`login`, `enroll`, `account`, `logout`).

use maud::{DOCTYPE, Markup, html};

use crate::reserved::PortalRoute;

mod account;
mod enroll;
mod login;
mod logout;

pub use account::{
    Account, AppRow, GrantRow, MintForm, MintRule, PasskeyRow, SessionRow, TokenRow, Tokens,
    account,
};
pub use enroll::enroll;
pub use login::{Login, login};
pub use logout::confirm_logout;

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

/// The status line the ceremony script writes to.
fn status() -> Markup {
    html! { div id="status" role="status" aria-live="polite" {} }
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
}
