//! The page that registers a passkey from an invite.

use maud::html;

use super::{layout, status};
use crate::portal::form::LABEL_MAX;
use crate::reserved::PortalRoute;

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
