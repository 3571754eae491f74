//! Minting a client token on the account page in headless Chromium (the
//! page's own script, the browser's WebAuthn with a virtual authenticator),
//! then using it as `git` would: the token is shown once, works on the rule
//! it was minted for, and is listed and revoked on the page.

use serde_json::json;

use super::{Cdp, Chromium};
use crate::kit::apps::basic;
use crate::kit::{TestConfig, TestGateway, tokio_rt};

/// A gateway whose portal is `http://auth.localhost:PORT` (Chromium resolves
/// `*.localhost` to loopback), with one rule that takes tokens.
fn start() -> TestGateway {
    TestGateway::start(
        TestConfig::new()
            .portal_on_listen_port("http://auth.localhost")
            .body(
                r#"users:
  alice: { name: Alice }
upstreams: { demo: "builtin:whoami" }
rules:
  - { name: git, hosts: [git.localhost], upstream: demo, policy: passkey, tokens: { from: basic } }
"#,
            ),
    )
}

#[test]
fn chromium_mints_a_token_on_the_account_page() {
    let g = start();
    let invite = tokio_rt()
        .block_on(stepgate::portal::bootstrap(&g.gw))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no bootstrap invite"));
    let chrome = Chromium::launch();
    let secret = tokio_rt().block_on(async {
        let mut cdp = Cdp::connect(&chrome.ws_url).await;
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        cdp.session = attached["sessionId"].as_str().map(String::from);
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            cdp.call(domain, json!({})).await;
        }
        cdp.call("WebAuthn.enable", json!({"enableUI": false})).await;
        cdp.call(
            "WebAuthn.addVirtualAuthenticator",
            json!({"options": {
                "protocol": "ctap2", "transport": "internal",
                "hasResidentKey": true, "hasUserVerification": true,
                "isUserVerified": true, "automaticPresenceSimulation": true
            }}),
        )
        .await;
        cdp.navigate(&invite).await;
        cdp.eval("document.getElementById('label').value = 'laptop'; document.getElementById('enroll').requestSubmit(); true")
            .await;
        cdp.wait_for(
            "location.pathname === '/.stepgate/account' && !!document.getElementById('mint')",
            30,
            "the account page with the token form",
        )
        .await;
        cdp.eval(
            "document.getElementById('token-label').value = 'laptop git'; \
             document.querySelector('input[name=rule][value=git]').checked = true; \
             document.getElementById('mint').requestSubmit(); true",
        )
        .await;
        cdp.wait_for(
            "!document.getElementById('minted').hidden",
            30,
            "the minted token on the page",
        )
        .await;
        cdp.eval("document.getElementById('mint').scrollIntoView(); true").await;
        cdp.screenshot("account-token.png").await;
        let secret = cdp
            .eval("document.getElementById('minted-secret').value")
            .await;
        // Listed after a reload, the secret nowhere on the page.
        cdp.navigate(&format!(
            "http://auth.localhost:{}/.stepgate/account",
            g.addr.port()
        ))
        .await;
        let page = cdp.eval("document.body.innerText").await;
        let page = page.as_str().unwrap_or("").to_string();
        let secret = secret.as_str().unwrap_or("").to_string();
        assert!(page.contains("laptop git") && page.contains("Revoke laptop git"), "{page}");
        assert!(!page.contains(&secret), "the secret was shown again");
        secret
    });
    assert!(secret.starts_with("sgt_"), "{secret:?}");
    let r = g.get(
        "git.localhost",
        "/x",
        &[("Authorization", &basic("git", &secret))],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
}
