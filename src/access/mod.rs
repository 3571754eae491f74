//! The one access check shared by the inline proxy and the forward-auth
//! endpoints, in two halves: [`judge`] decides (route → session or token →
//! [`crate::policy::decide`] → [`Verdict`]), [`answer`] turns the verdict into
//! what the door does ([`Outcome`]). Nothing here knows about pingora; the
//! proxy and `authz` only translate.

mod answer;
mod judge;

pub use answer::{
    Mode, Outcome, answer, bad_request, kept_token_place, login_url, original_url, token_carrier,
};
pub use judge::{Verdict, judge};
