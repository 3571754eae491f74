//! A browser speaking HTTP to a served gateway: one cookie jar per host,
//! `Origin` on POSTs, `X-Forwarded-Proto: https` as a TLS-terminating proxy
//! would add, redirects followed as a navigation does, and enrollment and
//! sign-in done as the portal's page does them, with a software passkey.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::authenticator::{self, Client};
use super::gateway::{TestGateway, own_store};
use super::http::{Response, send_bytes};
use super::{remember, tokio_rt};

/// A browser speaking HTTP to the gateway: one cookie jar per host, every
/// request carrying `X-Forwarded-Proto: https` as the TLS-terminating proxy would.
pub struct NetBrowser {
    pub addr: SocketAddr,
    pub jar: HashMap<String, HashMap<String, String>>,
    /// The client address the trusted proxy reports (`X-Forwarded-For`), if any.
    pub client: Option<String>,
    /// The portal's origin (where the API is, and what `Origin` says).
    pub portal: String,
    /// Send `X-Forwarded-Proto: https`, as a TLS-terminating proxy would
    /// (false when a real front proxy sits in between and says it itself).
    pub says_https: bool,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl NetBrowser {
    pub fn new(addr: SocketAddr) -> NetBrowser {
        NetBrowser {
            addr,
            jar: HashMap::new(),
            client: None,
            portal: "https://auth.test".into(),
            says_https: true,
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
                .into(),
        }
    }

    /// A browser talking to a real front proxy at `addr`, with the portal at `portal`.
    pub fn behind_front(addr: SocketAddr, portal: &str) -> NetBrowser {
        NetBrowser {
            portal: portal.to_string(),
            says_https: false,
            ..NetBrowser::new(addr)
        }
    }

    /// How the software authenticator writes `clientDataJSON` for this portal.
    pub fn client_data(&self) -> Client {
        Client {
            origin: self.portal.clone(),
            ..Client::default()
        }
    }

    /// Open `url` and follow redirects (at most 10), as a browser navigates;
    /// returns the last response and the URL it came from.
    pub fn navigate(&mut self, url: &str) -> (Response, String) {
        let mut url = url.to_string();
        for _ in 0..10 {
            let r = self.get(&url);
            let location = r.header("location").map(str::to_string);
            match (r.status, location) {
                (301 | 302 | 303 | 307, Some(next)) => {
                    url = match url::Url::parse(&url).and_then(|base| base.join(&next)) {
                        Ok(u) => u.to_string(),
                        Err(e) => panic!("bad Location {next}: {e}"),
                    };
                }
                _ => return (r, url),
            }
        }
        panic!("more than 10 redirects from {url}");
    }

    /// A browser at `client` (as the trusted proxy in front reports it).
    pub fn at(addr: SocketAddr, client: &str) -> NetBrowser {
        NetBrowser {
            client: Some(client.to_string()),
            ..NetBrowser::new(addr)
        }
    }

    pub fn request(&mut self, method: &str, url: &str, body: &str, ct: &str) -> Response {
        let u = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        };
        let host = u.host_str().unwrap_or("").to_string();
        // Cookies are kept per host (they ignore ports); Host names the port too.
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let target = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: text/html,application/json\r\nUser-Agent: {}\r\n",
            self.user_agent
        );
        if self.says_https {
            req.push_str("X-Forwarded-Proto: https\r\n");
        }
        if let Some(c) = &self.client {
            req.push_str(&format!("X-Forwarded-For: {c}\r\n"));
        }
        if let Some(jar) = self.jar.get(&host).filter(|j| !j.is_empty()) {
            let c: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        if method == "POST" {
            let origin = if host == "auth.test" || self.portal.contains(&format!("//{authority}")) {
                self.portal.clone()
            } else {
                format!("{}://{authority}", u.scheme())
            };
            req.push_str(&format!(
                "Content-Type: {ct}\r\nOrigin: {origin}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        let r = send_bytes(self.addr, req.as_bytes());
        let jar = self.jar.entry(host).or_default();
        for (_, v) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        {
            remember(jar, v);
        }
        r
    }

    pub fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, "", "")
    }

    pub fn api(&mut self, path: &str, body: &Value) -> Value {
        let (status, v) = self.try_api(path, body);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// POST JSON to `/.stepgate/api/{path}` on the portal; (status, body).
    pub fn try_api(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.request(
            "POST",
            &format!("{}/.stepgate/api/{path}", self.portal),
            &body.to_string(),
            "application/json",
        );
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    /// Enroll `key` for alice with an invite (the token `stepgate invite` would print).
    pub fn enroll_by_invite(&mut self, g: &TestGateway, key: &mut SoftPasskey) {
        self.enroll_as(g, key, "alice", "laptop");
    }

    /// Enroll `key` for `user`, labelled `label`, with an invite.
    pub fn enroll_as(&mut self, g: &TestGateway, key: &mut SoftPasskey, user: &str, label: &str) {
        let token = stepgate::model::new_secret();
        let invite = stepgate::model::Invite {
            user: user.into(),
            credential_ttl: None,
            expires_at: g.now() + 3600,
        };
        let store = own_store(&g.gw);
        let added =
            tokio_rt().block_on(store.add_invite(&stepgate::model::token_hash(&token), &invite));
        assert!(added.is_ok(), "{added:?}");
        let begun = self.api("enroll/begin", &json!({ "token": token, "label": label }));
        let finish = authenticator::registration(key, &begun, &self.client_data());
        self.api("enroll/finish", &finish);
    }

    /// The app's redirect to the portal for `url` (which must need a
    /// sign-in): the `rd` and `state` its login URL carries.
    pub fn login_params(&mut self, url: &str) -> (String, String) {
        let r = self.get(url);
        assert_eq!(
            r.status, 302,
            "{url} should send the browser to the portal: {r:?}"
        );
        let location = r.header("location").unwrap_or_default();
        let login = match url::Url::parse(location) {
            Ok(u) => u,
            Err(e) => panic!("{location}: {e}"),
        };
        let param = |name: &str| {
            login
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (param("rd"), param("state"))
    }

    /// The ceremony at the portal for `rd` with the app's `state`; returns
    /// the finish answer's `redirect`.
    pub fn ceremony(&mut self, key: &mut SoftPasskey, rd: &str, state: &str) -> String {
        let begun = self.api(
            "login/begin",
            &json!({ "rd": rd, "state": state, "username": "alice" }),
        );
        let finish = authenticator::assertion(key, &begun, &self.client_data());
        let done = self.api("login/finish", &finish);
        done["redirect"].as_str().unwrap_or("").to_string()
    }

    /// Sign in (or step up) for `url` as a browser does: open it, follow the
    /// app's redirect to the portal, do the ceremony and follow the callback;
    /// returns where it lands.
    pub fn sign_in(&mut self, key: &mut SoftPasskey, url: &str) -> String {
        let (rd, state) = self.login_params(url);
        let redirect = self.ceremony(key, &rd, &state);
        assert!(redirect.contains("/.stepgate/callback?code="), "{redirect}");
        let cb = self.get(&redirect);
        assert_eq!(cb.status, 303, "{cb:?}");
        cb.header("location").unwrap_or("").to_string()
    }
}

/// The CSRF token in a page's sign-out form.
pub fn csrf_of(body: &str) -> String {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}
