//! What both backends share: the JSON codec of stored records and the two
//! ways a backend call fails ([`unavailable`], [`corrupt`]).

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The backend did not answer (or not in time): fail closed.
pub(super) fn unavailable(e: impl Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A stored record could not be decoded (or encoded).
pub(super) fn corrupt(e: impl Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A record as stored.
pub(super) fn to_json(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

/// A stored record read back.
pub(super) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

/// An optional stored record read back.
pub(super) fn from_json_opt<T: DeserializeOwned>(
    s: Option<String>,
) -> Result<Option<T>, StoreError> {
    s.as_deref().map(from_json).transpose()
}
