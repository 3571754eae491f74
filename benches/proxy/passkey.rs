//! A real session for the bench: `stepgate invite`, then enrollment and a
//! sign-in (with step-up for the `app-admin` rule) through the portal's JSON
//! API over HTTP, answered by a software authenticator (`SoftPasskey`, UV on),
//! then the callback on the app host that sets the app cookie.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use stepgate_kit::authenticator::{Client, create, get};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::util::{Browser, run};

pub const PORTAL_HOST: &str = "auth.home.lab";
pub const APP_HOST: &str = "app.home.lab";

/// What a sign-in left in the browser.
pub struct SignedIn {
    /// The `Cookie` header value (`stepgate_app=…`) the app host accepts.
    pub app: String,
    /// The portal cookie's value (the portal session the app session rests on).
    pub portal: String,
}

/// Enroll `alice` and sign in for `rd_path` (on the app host).
pub fn sign_in(bin: &Path, config: &Path, port: u16, rd_path: &str) -> SignedIn {
    let out = run(Command::new(bin)
        .arg("invite")
        .arg("-c")
        .arg(config)
        .arg("alice"));
    let token = out
        .split("token=")
        .nth(1)
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no token in `stepgate invite` output: {out}"));

    let origin = format!("http://{PORTAL_HOST}:{port}");
    let mut b = Browser::new(port);
    let mut key = SoftPasskey::new(true);
    let client = Client {
        origin: origin.clone(),
        ..Client::default()
    };

    let begun = api(
        &mut b,
        &origin,
        "enroll/begin",
        &json!({"token": token, "label": "bench"}),
    );
    let cred = create(&mut key, &begun["publicKey"], &client);
    api(
        &mut b,
        &origin,
        "enroll/finish",
        &json!({"ceremony": begun["ceremony"], "credential": cred}),
    );

    // As a browser: open the app page, follow its redirect to the portal (the
    // app host sets the browser-state cookie the callback code is bound to).
    let page = format!("http://{APP_HOST}:{port}{rd_path}");
    let r = b.request("GET", &page, &[("Accept", "text/html")], b"");
    let location = r
        .header("location")
        .map(str::to_string)
        .unwrap_or_else(|| panic!("GET {page}: {} without a Location", r.status));
    let login = url::Url::parse(&location).unwrap_or_else(|e| panic!("{location}: {e}"));
    let param = |name: &str| {
        login
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let begun = api(
        &mut b,
        &origin,
        "login/begin",
        &json!({"rd": param("rd"), "state": param("state"), "username": "alice"}),
    );
    let assertion = get(&mut key, &begun["publicKey"], &client);
    let done = api(
        &mut b,
        &origin,
        "login/finish",
        &json!({"ceremony": begun["ceremony"], "credential": assertion}),
    );
    let callback = done["redirect"]
        .as_str()
        .unwrap_or_else(|| panic!("login/finish gave no redirect: {done}"))
        .to_string();
    let r = b.request("GET", &callback, &[("Accept", "text/html")], b"");
    if r.status != 303 {
        panic!("callback {callback}: {} {}", r.status, r.body);
    }
    let value = b
        .cookie(APP_HOST, "stepgate_app")
        .unwrap_or_else(|| panic!("the callback set no app cookie: {r:?}"));
    let portal = b
        .cookie(PORTAL_HOST, "stepgate_portal")
        .unwrap_or_else(|| panic!("the sign-in set no portal cookie"));
    SignedIn {
        app: format!("stepgate_app={value}"),
        portal,
    }
}

fn api(b: &mut Browser, origin: &str, path: &str, body: &Value) -> Value {
    let url = format!("{origin}/.stepgate/api/{path}");
    let r = b.request(
        "POST",
        &url,
        &[
            ("Origin", origin),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    if r.status != 200 {
        panic!("POST {url}: {} {}", r.status, r.body);
    }
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", r.body))
}
