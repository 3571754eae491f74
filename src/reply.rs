//! [`Reply`]: a complete answer the gateway writes itself (a refusal, a
//! portal page, a forward-auth answer). Only `proxy/` knows about pingora,
//! so every handler that answers is testable without a server.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// A complete answer the gateway writes itself.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Add a header; values that are not valid header text are dropped (they
    /// only ever come from our own formatting).
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.header(http::header::CONTENT_TYPE, content_type)
    }

    /// A 302/303 redirect.
    pub fn redirect(status: StatusCode, location: &str) -> Self {
        Reply::new(status)
            .header(http::header::LOCATION, location)
            .header(http::header::CACHE_CONTROL, "no-store")
    }
}
