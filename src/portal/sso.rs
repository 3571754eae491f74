//! Sign in once: what a portal session already proves for a rule.
//!
//! When the login page is opened for an app URL by a browser whose portal
//! session already satisfies that URL's rule, the browser goes straight back
//! through the app host's callback, with no page and no ceremony. "Already
//! satisfies" is decided by [`policy::decide`] itself, on the app session the
//! callback would make: this portal session, the grants its app sessions hold
//! for the rule (on any host), and the current standing of every credential
//! those rest on. So a plain rule opens for anyone signed in (a registration
//! signs in), and a `step_up` opens only for a signed assertion that fits it
//! now: the session's newest one for `scope: session`, a grant for this very
//! rule for `scope: rule`.

use std::collections::BTreeSet;

use crate::config::Rule;
use crate::model::{AppSession, AppView, PortalSession, Verification};
use crate::policy::{self, Decision, SessionState};

use super::{PortalRequest, Result};

/// A portal session's proof for a rule: the assertion the new app session's
/// grant carries (`None` when the rule asks for no fresh proof).
#[derive(Debug, Clone)]
pub struct Proof {
    pub verification: Option<Verification>,
}

/// The proof `portal` already holds for `rule` on `host`, if it satisfies it.
pub async fn already_proven(
    req: &PortalRequest<'_>,
    portal: &PortalSession,
    rule: &Rule,
    host: &str,
) -> Result<Option<Proof>> {
    let view = as_app_session(req, portal, rule, host).await?;
    let Decision::Allow { identity } =
        policy::decide(req.rt, Some(rule), SessionState::Live(&view), req.now)
    else {
        return Ok(None);
    };
    if rule.step_up.is_none() {
        return Ok(Some(Proof { verification: None }));
    }
    // The assertion that met the step-up: the one `decide` reported.
    let at = identity.and_then(|i| i.verified_at);
    let verification = view
        .grants
        .iter()
        .map(|g| &g.verification)
        .chain(view.portal.last_uv.as_ref())
        .find(|v| Some(v.at) == at)
        .cloned();
    Ok(verification.map(|v| Proof {
        verification: Some(v),
    }))
}

/// The app session the callback would make on `host` from `portal`, with the
/// grants for `rule` its app sessions hold and their credentials' standing.
async fn as_app_session(
    req: &PortalRequest<'_>,
    portal: &PortalSession,
    rule: &Rule,
    host: &str,
) -> Result<AppView> {
    let (store, now) = (req.store(), req.now);
    let mut grants = Vec::new();
    for app in store.app_sessions(&portal.id).await? {
        grants.extend(
            store
                .grants_of(&app.id)
                .await?
                .into_iter()
                .filter(|g| g.rule == rule.name),
        );
    }
    let mut ids: BTreeSet<&str> = grants
        .iter()
        .map(|g| g.verification.credential_id.as_str())
        .collect();
    ids.extend(portal.last_uv.as_ref().map(|v| v.credential_id.as_str()));
    ids.extend(portal.signed_in_with.as_deref());
    let mut credentials = Vec::new();
    for id in ids {
        if let Some(c) = store.credential(id).await? {
            credentials.push(c.standing());
        }
    }
    Ok(AppView {
        app: AppSession {
            id: String::new(),
            portal_id: portal.id.clone(),
            user: portal.user.clone(),
            host: host.to_string(),
            created_at: now,
            last_seen_at: now,
            expires_at: portal.expires_at,
        },
        portal: portal.clone(),
        grants,
        credentials,
    })
}
