//! The page behind a "log out" link.

use maud::html;

use super::{layout, post_form};
use crate::reserved::PortalRoute;

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
