//! What the portal's forms share: labels as users type them, what an
//! account action did (`?done=`), and the session behind a form POST after
//! its origin and CSRF checks.

use http::StatusCode;

use super::{PortalRequest, Refusal, Result, guard, sessions};
use crate::model::PortalSession;
use crate::reply::Reply;
use crate::reserved::PortalRoute;

/// The longest name a passkey or token may have, in characters.
pub const LABEL_MAX: usize = 64;

/// What an account action did, carried back to the page in `?done=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Renamed,
    Revoked,
    Ended,
    EndedOthers,
    TokenRevoked,
}

impl Done {
    pub const ALL: [Done; 5] = [
        Done::Renamed,
        Done::Revoked,
        Done::Ended,
        Done::EndedOthers,
        Done::TokenRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Done::Renamed => "renamed",
            Done::Revoked => "revoked",
            Done::Ended => "ended",
            Done::EndedOthers => "ended-others",
            Done::TokenRevoked => "token-revoked",
        }
    }

    pub fn notice(self) -> &'static str {
        match self {
            Done::Renamed => "Passkey renamed.",
            Done::Revoked => "Passkey removed.",
            Done::Ended => "Session ended.",
            Done::EndedOthers => "Every other session ended.",
            Done::TokenRevoked => "Token revoked.",
        }
    }

    /// Back to the account page, saying what was done.
    pub fn back(self, req: &PortalRequest<'_>) -> Reply {
        let url = PortalRoute::Account.url_with(&req.rt.boot.portal, &[("done", self.as_str())]);
        Reply::redirect(StatusCode::SEE_OTHER, &url)
    }
}

/// The session of a form POST, after the origin and CSRF checks.
pub async fn authorised(req: &PortalRequest<'_>) -> Result<Option<PortalSession>> {
    req.require_same_origin()?;
    let Some(lookup) = sessions::current(req).await? else {
        return Ok(None);
    };
    if !guard::csrf_ok(&lookup.token_hash, req.form().field("csrf")) {
        return Err(Refusal::StaleForm);
    }
    Ok(Some(lookup.session))
}

/// A label as given: trimmed, without control characters, at most [`LABEL_MAX`] characters.
pub fn clean_label(raw: &str, what: &'static str) -> Result<String> {
    let label: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(LABEL_MAX)
        .collect();
    if label.is_empty() {
        return Err(Refusal::LabelMissing(what));
    }
    Ok(label)
}
