//! [`Facts`]: what arrived, already checked and normalised — what every
//! decision reads. Built only by `request::facts()`, for inline and forward-auth alike.

use std::net::IpAddr;

use http::HeaderMap;

/// What arrived, after host and path normalisation.
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: http::Method,
    /// Normalised host (lower case, no port).
    pub host: String,
    /// The port the client addressed, unless it is the scheme's default.
    pub port: Option<u16>,
    /// Normalised path.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// Was the request (as the browser sent it) https?
    pub https: bool,
    pub client_ip: IpAddr,
    pub headers: HeaderMap,
}

impl Facts {
    /// The value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// `scheme://host[:port]` as the browser addressed it.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Does the client want an HTML page (a browser navigation)?
    pub fn wants_html(&self) -> bool {
        matches!(self.method, http::Method::GET | http::Method::HEAD)
            && self
                .header("accept")
                .is_some_and(|a| a.contains("text/html"))
    }
}
