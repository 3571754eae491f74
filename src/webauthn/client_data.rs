//! Checks on what the browser itself reports: `clientDataJSON` and the raw
//! authenticator data bytes.
//!
//! webauthn-rs checks the challenge, the type and (loosely) the origin; these
//! functions add what stepgate demands on top: the origin is exactly the
//! portal's, `crossOrigin` is not `true`, `topOrigin` is absent, and the AAGUID
//! is read from the authenticator data whatever the attestation format.

use serde_json::Value;
use uuid::Uuid;

use super::CeremonyError;

/// Check `clientDataJSON` bytes against the portal origin and the expected type.
pub fn check(bytes: &[u8], origin: &str, expected_type: &str) -> Result<(), CeremonyError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|_| CeremonyError::Malformed("clientDataJSON is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or(CeremonyError::Malformed("clientDataJSON is not an object"))?;
    if obj.get("type").and_then(Value::as_str) != Some(expected_type) {
        return Err(CeremonyError::Malformed("wrong clientData type"));
    }
    if obj.get("origin").and_then(Value::as_str) != Some(origin) {
        return Err(CeremonyError::WrongOrigin);
    }
    match obj.get("crossOrigin") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) => return Err(CeremonyError::CrossOrigin),
    }
    if obj.contains_key("topOrigin") {
        return Err(CeremonyError::CrossOrigin);
    }
    Ok(())
}

/// The AAGUID in an attestation object's authenticator data (all zeros when absent).
pub fn attestation_aaguid(attestation_object: &[u8]) -> Result<Uuid, CeremonyError> {
    let v: serde_cbor_2::Value = serde_cbor_2::from_slice(attestation_object)
        .map_err(|_| CeremonyError::Malformed("attestationObject is not CBOR"))?;
    let serde_cbor_2::Value::Map(map) = v else {
        return Err(CeremonyError::Malformed("attestationObject is not a map"));
    };
    let auth_data = map
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (serde_cbor_2::Value::Text(k), serde_cbor_2::Value::Bytes(b)) if k == "authData" => {
                Some(b)
            }
            _ => None,
        })
        .ok_or(CeremonyError::Malformed(
            "attestationObject has no authData",
        ))?;
    // rpIdHash (32) | flags (1) | signCount (4) | aaguid (16) | ...
    let flags = *auth_data
        .get(32)
        .ok_or(CeremonyError::Malformed("authData too short"))?;
    if flags & 0x40 == 0 {
        return Err(CeremonyError::Malformed("no attested credential data"));
    }
    let bytes: [u8; 16] = auth_data
        .get(37..53)
        .and_then(|s| s.try_into().ok())
        .ok_or(CeremonyError::Malformed("authData too short"))?;
    Ok(Uuid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://auth.home.lab";

    fn cd(extra: &str) -> Vec<u8> {
        format!(r#"{{"type":"webauthn.get","challenge":"AA","origin":"{O}"{extra}}}"#).into_bytes()
    }

    #[test]
    fn accepts_plain_same_origin() {
        assert!(check(&cd(""), O, "webauthn.get").is_ok());
        assert!(check(&cd(r#","crossOrigin":false"#), O, "webauthn.get").is_ok());
    }

    #[test]
    fn refuses_cross_origin_and_top_origin() {
        assert!(matches!(
            check(&cd(r#","crossOrigin":true"#), O, "webauthn.get"),
            Err(CeremonyError::CrossOrigin)
        ));
        assert!(matches!(
            check(&cd(r#","crossOrigin":"yes""#), O, "webauthn.get"),
            Err(CeremonyError::CrossOrigin)
        ));
        assert!(matches!(
            check(&cd(r#","topOrigin":"https://evil.com""#), O, "webauthn.get"),
            Err(CeremonyError::CrossOrigin)
        ));
    }

    #[test]
    fn refuses_other_origins_and_types() {
        for origin in [
            "https://x.auth.home.lab",
            "http://auth.home.lab",
            "https://auth.home.lab:444",
            "https://auth.home.lab/",
        ] {
            let b = format!(r#"{{"type":"webauthn.get","challenge":"AA","origin":"{origin}"}}"#);
            assert!(matches!(
                check(b.as_bytes(), O, "webauthn.get"),
                Err(CeremonyError::WrongOrigin)
            ));
        }
        assert!(check(&cd(""), O, "webauthn.create").is_err());
        assert!(check(b"not json", O, "webauthn.get").is_err());
    }
}
