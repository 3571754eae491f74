//! Every path stepgate answers itself, under `/.stepgate/` on every host: the
//! one place those paths are written. [`PortalRoute::parse`] reads a request's
//! method and path once (telling "no such page" from "not with that method"),
//! and [`PortalRoute::url`] / [`PortalRoute::url_with`] build every link to
//! them. The forward-auth endpoints' paths live here too ([`FORWARD_AUTH`],
//! [`AUTH_REQUEST`]); `authz` serves them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Portal;

/// The prefix every reserved path starts with, on every host.
pub const PREFIX: &str = "/.stepgate/";
/// The reserved prefix without its slash (itself reserved).
pub const PREFIX_BARE: &str = "/.stepgate";
/// The prefix of the JSON API (its refusals are JSON, not pages).
const API_PREFIX: &str = "/.stepgate/api/";
/// Traefik's and Caddy's forward-auth endpoint.
pub const FORWARD_AUTH: &str = "/.stepgate/authz/forward-auth";
/// nginx's `auth_request` endpoint.
pub const AUTH_REQUEST: &str = "/.stepgate/authz/auth-request";

/// A page, form action or JSON endpoint of the portal (not forward-auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalRoute {
    /// The ceremony script, served on every host.
    Script,
    /// The stylesheet, served on every host.
    Stylesheet,
    /// Trade a one-time code for an app session, on an app host.
    Callback,
    Login,
    Enroll,
    Account,
    /// Sign out, on the portal and on every app host.
    Logout,
    RenamePasskey,
    RevokePasskey,
    EndSession,
    EndOtherSessions,
    EndAllSessions,
    RevokeToken,
    LoginBegin,
    LoginFinish,
    EnrollBegin,
    EnrollFinish,
    EnrollCancel,
    TokensBegin,
    TokensFinish,
}

/// Which methods a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// `GET` and `HEAD`.
    Read,
    Post,
    ReadOrPost,
}

/// Why a reserved path is not a route for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    /// No such path: 404.
    NotFound,
    /// The path exists, not with this method: 405.
    Method,
}

/// What a query value keeps unencoded: letters, digits, `-` and `_` (so a
/// base64url browser binding travels as it is).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Every route with its path and the methods it takes.
const ROUTES: [(PortalRoute, &str, Takes); 20] = [
    (
        PortalRoute::Script,
        "/.stepgate/assets/portal.js",
        Takes::Read,
    ),
    (
        PortalRoute::Stylesheet,
        "/.stepgate/assets/portal.css",
        Takes::Read,
    ),
    (PortalRoute::Callback, "/.stepgate/callback", Takes::Read),
    (PortalRoute::Login, "/.stepgate/login", Takes::Read),
    (PortalRoute::Enroll, "/.stepgate/enroll", Takes::Read),
    (PortalRoute::Account, "/.stepgate/account", Takes::Read),
    (PortalRoute::Logout, "/.stepgate/logout", Takes::ReadOrPost),
    (
        PortalRoute::RenamePasskey,
        "/.stepgate/account/rename",
        Takes::Post,
    ),
    (
        PortalRoute::RevokePasskey,
        "/.stepgate/account/revoke",
        Takes::Post,
    ),
    (
        PortalRoute::EndSession,
        "/.stepgate/account/end-session",
        Takes::Post,
    ),
    (
        PortalRoute::EndOtherSessions,
        "/.stepgate/account/end-others",
        Takes::Post,
    ),
    (
        PortalRoute::EndAllSessions,
        "/.stepgate/account/end-all",
        Takes::Post,
    ),
    (
        PortalRoute::RevokeToken,
        "/.stepgate/account/revoke-token",
        Takes::Post,
    ),
    (
        PortalRoute::LoginBegin,
        "/.stepgate/api/login/begin",
        Takes::Post,
    ),
    (
        PortalRoute::LoginFinish,
        "/.stepgate/api/login/finish",
        Takes::Post,
    ),
    (
        PortalRoute::EnrollBegin,
        "/.stepgate/api/enroll/begin",
        Takes::Post,
    ),
    (
        PortalRoute::EnrollFinish,
        "/.stepgate/api/enroll/finish",
        Takes::Post,
    ),
    (
        PortalRoute::EnrollCancel,
        "/.stepgate/api/enroll/cancel",
        Takes::Post,
    ),
    (
        PortalRoute::TokensBegin,
        "/.stepgate/api/tokens/begin",
        Takes::Post,
    ),
    (
        PortalRoute::TokensFinish,
        "/.stepgate/api/tokens/finish",
        Takes::Post,
    ),
];

/// Is `path` (normalised) reserved for stepgate on every host?
pub fn is_reserved(path: &str) -> bool {
    path == PREFIX_BARE || path.starts_with(PREFIX)
}

/// Is `path` part of the JSON API (whose refusals are JSON)?
pub fn is_api(path: &str) -> bool {
    path.starts_with(API_PREFIX)
}

/// Is `method` one that only reads?
pub fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

impl PortalRoute {
    /// The route a request for `path` with `method` asks for.
    pub fn parse(method: &str, path: &str) -> Result<PortalRoute, Unrouted> {
        let Some((route, _, takes)) = ROUTES.iter().find(|(_, p, _)| *p == path) else {
            return Err(Unrouted::NotFound);
        };
        let fits = match takes {
            Takes::Read => is_read(method),
            Takes::Post => method == "POST",
            Takes::ReadOrPost => is_read(method) || method == "POST",
        };
        if fits {
            Ok(*route)
        } else {
            Err(Unrouted::Method)
        }
    }

    /// The path, e.g. `/.stepgate/login`.
    pub fn path(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(r, _, _)| *r == self)
            .map_or(PREFIX, |(_, p, _)| p)
    }

    /// The path with a query of `pairs` (values percent-encoded).
    pub fn with_query(self, pairs: &[(&str, &str)]) -> String {
        let mut out = self.path().to_string();
        for (i, (k, v)) in pairs.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.extend(utf8_percent_encode(v, QUERY_VALUE));
        }
        out
    }

    /// The absolute URL of this route on the portal.
    pub fn url(self, portal: &Portal) -> String {
        portal.url(self.path())
    }

    /// The absolute URL on the portal with a query of `pairs`.
    pub fn url_with(self, portal: &Portal, pairs: &[(&str, &str)]) -> String {
        portal.url(&self.with_query(pairs))
    }

    /// The absolute URL of this route at another origin (`scheme://host[:port]`).
    pub fn at(self, origin: &str, pairs: &[(&str, &str)]) -> String {
        format!("{origin}{}", self.with_query(pairs))
    }

    /// A page of the portal itself, which an app host bounces to the portal.
    pub fn is_portal_page(self) -> bool {
        matches!(self, Self::Login | Self::Enroll | Self::Account)
    }

    /// Served on every host, not just the portal's.
    pub fn is_on_every_host(self) -> bool {
        matches!(self, Self::Script | Self::Stylesheet | Self::Callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_route_back_from_its_path() {
        for (route, path, takes) in ROUTES {
            let method = if takes == Takes::Post { "POST" } else { "GET" };
            assert_eq!(PortalRoute::parse(method, path), Ok(route), "{path}");
            assert_eq!(route.path(), path);
            assert!(is_reserved(path));
        }
    }

    #[test]
    fn tells_a_wrong_method_from_a_missing_page() {
        assert_eq!(
            PortalRoute::parse("POST", "/.stepgate/login"),
            Err(Unrouted::Method)
        );
        assert_eq!(
            PortalRoute::parse("GET", "/.stepgate/api/login/begin"),
            Err(Unrouted::Method)
        );
        assert_eq!(
            PortalRoute::parse("DELETE", "/.stepgate/logout"),
            Err(Unrouted::Method)
        );
        assert_eq!(
            PortalRoute::parse("HEAD", "/.stepgate/logout"),
            Ok(PortalRoute::Logout)
        );
        assert_eq!(
            PortalRoute::parse("GET", "/.stepgate/nothing"),
            Err(Unrouted::NotFound)
        );
        assert_eq!(
            PortalRoute::parse("GET", "/.stepgate/login/"),
            Err(Unrouted::NotFound)
        );
    }

    #[test]
    fn builds_queries_percent_encoded() {
        assert_eq!(
            PortalRoute::Login.with_query(&[("rd", "https://a.b/c?d=e f"), ("state", "x-_y")]),
            "/.stepgate/login?rd=https%3A%2F%2Fa%2Eb%2Fc%3Fd%3De%20f&state=x-_y"
        );
        assert_eq!(PortalRoute::Account.with_query(&[]), "/.stepgate/account");
        assert!(is_reserved("/.stepgate") && !is_reserved("/.stepgatex"));
        assert!(is_api("/.stepgate/api/x") && !is_api("/.stepgate/login"));
    }
}
