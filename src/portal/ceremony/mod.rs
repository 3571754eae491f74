//! What every passkey ceremony of the portal shares, whatever page runs it:
//! the ceremony state bound to one browser ([`pending`]), verifying one
//! assertion ([`assertion`]), the one-time callback code a finished sign-in
//! sends the browser on with ([`code`]), and reading a stored credential for
//! webauthn-rs. Pages use these; nothing here knows a page.

pub mod assertion;
pub mod code;
pub mod cookie;
pub mod pending;

use webauthn_rs_core::proto::Credential as CoreCredential;

use crate::config::{Runtime, StepUp};
use crate::model::Credential;
use crate::webauthn;

/// Does `cred` satisfy `step_up` under `rt`'s trust anchors at `now` (model
/// and binding; age is the ceremony's own)?
pub fn satisfies(rt: &Runtime, cred: &Credential, step_up: Option<&StepUp>, now: i64) -> bool {
    let Some(s) = step_up else { return true };
    crate::policy::credential_fits(s, &rt.trust, &cred.standing(), now)
}

/// The webauthn-rs credential of a stored one, with the stored counter and flags.
pub fn core_credential(c: &Credential) -> Option<CoreCredential> {
    let mut core = webauthn::decode_passkey(&c.passkey)?;
    core.counter = c.counter;
    core.backup_eligible = c.backup_eligible;
    Some(core)
}
