//! The one order of every list a store returns. Both backends sort with these
//! functions (bytewise on strings), so a listing reads the same on SQLite and
//! on Redis; the `Store` method docs name the order each list comes in.

use crate::client_token::ClientToken;
use crate::model::{AppSession, Credential, CredentialStanding, PortalSession};

/// Credentials: by user, then creation time, then id.
pub(super) fn credentials(v: &mut [Credential]) {
    v.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
}

/// Portal sessions: by user, then creation time, then id.
pub(super) fn portal_sessions(v: &mut [PortalSession]) {
    v.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
}

/// App sessions (of one portal session): by creation time, then id.
pub(super) fn app_sessions(v: &mut [AppSession]) {
    v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
}

/// Client tokens: by user, then creation time, then id.
pub(super) fn tokens(v: &mut [ClientToken]) {
    v.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
}

/// The credential standings of an app session lookup: by credential id.
pub(super) fn standings(v: &mut [CredentialStanding]) {
    v.sort_unstable_by(|a, b| a.id.cmp(&b.id));
}
