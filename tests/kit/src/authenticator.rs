//! The software-authenticator driver: runs `navigator.credentials.create()`
//! and `.get()` on a software authenticator with a `clientDataJSON` the test
//! writes itself (so it controls origin, `crossOrigin`, `topOrigin` and
//! whether UV is asked), and turns a ceremony's begin answer into its finish
//! body. Every browser of the kit drives its ceremonies through it.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_rs_core::proto::{
    PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions,
};

/// The portal origin the tests' browsers use by default.
pub const PORTAL: &str = "https://auth.test";

/// How the "browser" builds `clientDataJSON`, and what it asks the authenticator.
#[derive(Debug, Clone)]
pub struct Client {
    pub origin: String,
    /// Raw JSON members appended to clientData (e.g. `,"crossOrigin":true`).
    pub extra: String,
    /// Ask the authenticator for UV (false: `discouraged`, the authenticator answers UV=0).
    pub uv: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            origin: PORTAL.into(),
            extra: String::new(),
            uv: true,
        }
    }
}

fn client_data(kind: &str, challenge: &str, c: &Client) -> Vec<u8> {
    format!(
        r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{}"{}}}"#,
        c.origin, c.extra
    )
    .into_bytes()
}

/// `options` as the authenticator takes them (UV `discouraged` at `uv_at`
/// unless the client asks for UV), the `clientDataJSON` of a `kind` ceremony
/// for its challenge, and that JSON's hash.
fn prepare<T: DeserializeOwned>(
    options: &Value,
    uv_at: &[&str],
    kind: &str,
    c: &Client,
) -> (T, Vec<u8>, Vec<u8>) {
    let mut options = options.clone();
    if !c.uv {
        let mut at = &mut options;
        for key in uv_at {
            at = &mut at[*key];
        }
        *at = "discouraged".into();
    }
    let challenge = options["challenge"].as_str().unwrap_or("").to_string();
    let opts: T = match serde_json::from_value(options) {
        Ok(o) => o,
        Err(e) => panic!("{kind} options: {e}"),
    };
    let cdj = client_data(kind, &challenge, c);
    let hash = Sha256::digest(&cdj).to_vec();
    (opts, cdj, hash)
}

/// Run `navigator.credentials.create()` on a software authenticator.
pub fn create(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    options: &Value,
    c: &Client,
) -> Value {
    let uv_at = ["authenticatorSelection", "userVerification"];
    let (opts, cdj, hash): (PublicKeyCredentialCreationOptions, _, _) =
        prepare(options, &uv_at, "webauthn.create", c);
    let mut reg = match auth.perform_register(hash, opts, 60_000) {
        Ok(r) => r,
        Err(e) => panic!("authenticator register: {e:?}"),
    };
    reg.response.client_data_json = cdj;
    serde_json::to_value(&reg).unwrap_or(Value::Null)
}

/// Run `navigator.credentials.get()` on a software authenticator.
pub fn get(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    options: &Value,
    c: &Client,
) -> Value {
    let (opts, cdj, hash): (PublicKeyCredentialRequestOptions, _, _) =
        prepare(options, &["userVerification"], "webauthn.get", c);
    let mut a = match auth.perform_auth(hash, opts, 60_000) {
        Ok(r) => r,
        Err(e) => panic!("authenticator get: {e:?}"),
    };
    a.response.client_data_json = cdj;
    serde_json::to_value(&a).unwrap_or(Value::Null)
}

/// The finish body of a registration begun with `begun` (`{ceremony, publicKey}`).
pub fn registration(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    begun: &Value,
    c: &Client,
) -> Value {
    let cred = create(auth, &begun["publicKey"], c);
    json!({ "ceremony": begun["ceremony"], "credential": cred })
}

/// The finish body of an assertion ceremony begun with `begun` (`{ceremony, publicKey}`).
pub fn assertion(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    begun: &Value,
    c: &Client,
) -> Value {
    let cred = get(auth, &begun["publicKey"], c);
    json!({ "ceremony": begun["ceremony"], "credential": cred })
}
