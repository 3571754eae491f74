//! Memory under session churn: many distinct valid app sessions, each used
//! once, against one stepgate; its RSS is sampled as they go.
//!
//! The sessions are real: each is an app session on the portal session the
//! bench's passkey sign-in made, written with stepgate's own store code and
//! carried by a cookie signed with the instance's key, just as the sign-in
//! callback would make it. Every request must be answered 200 with the body.

use std::path::Path;
use std::time::{Duration, Instant};

use stepgate::model::token_hash;
use stepgate::session::lifecycle::new_app_session;
use stepgate::session::{CookieKeys, CookieKind};

use crate::load::memory;
use crate::passkey::APP_HOST;
use crate::util::addr;
use stepgate_kit::Conn;

/// `n` fresh app cookies (`stepgate_app=…`) on `APP_HOST`, on the portal
/// session whose cookie value is `portal_cookie`, in the store of `config`.
pub fn mint_sessions(config: &Path, portal_cookie: &str, n: usize) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rt = stepgate::config::check_file(config, now)
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()))
        .runtime;
    let keys = CookieKeys::load(&rt.cookie_keys).unwrap_or_else(|e| panic!("keys: {e}"));
    let store = stepgate::store::open(
        &rt.boot.store,
        std::sync::Arc::new(stepgate::clock::SystemClock),
    )
    .unwrap_or_else(|e| panic!("store: {e}"));
    let token = keys
        .open(CookieKind::Portal, portal_cookie)
        .unwrap_or_else(|| panic!("the portal cookie does not verify"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio: {e}"));
    tokio.block_on(async {
        let portal = store
            .portal_session(&token_hash(&token))
            .await
            .unwrap_or_else(|e| panic!("portal session: {e}"))
            .unwrap_or_else(|| panic!("the portal session is gone"));
        let mut cookies = Vec::with_capacity(n);
        for _ in 0..n {
            let app = new_app_session(&portal, APP_HOST, &rt.session, now);
            let minted = keys.mint(CookieKind::App);
            store
                .add_app_session(&minted.token_hash, &app, &[])
                .await
                .unwrap_or_else(|e| panic!("add app session: {e}"));
            cookies.push(format!("stepgate_app={}", minted.cookie_value));
        }
        cookies
    })
}

/// RSS (MiB) after each tenth of the requests.
pub struct Churn {
    pub rss: Vec<(usize, f64)>,
    pub hwm: f64,
    pub took: Duration,
}

/// Send one `GET path` per cookie to `port`, over `conns` keep-alive
/// connections in parallel (each cookie once), sampling `pid`'s memory.
pub fn run(port: u16, path: &str, cookies: &[String], conns: usize, pid: u32) -> Churn {
    let started = Instant::now();
    let host = format!("{APP_HOST}:{port}");
    let step = cookies.len().div_ceil(10).max(1);
    let mut rss = Vec::new();
    for (k, batch) in cookies.chunks(step).enumerate() {
        let per = batch.len().div_ceil(conns).max(1);
        std::thread::scope(|s| {
            for part in batch.chunks(per) {
                let host = host.as_str();
                s.spawn(move || send_all(port, host, path, part));
            }
        });
        let done = (k * step + batch.len()).min(cookies.len());
        rss.push((done, memory(pid).0));
    }
    Churn {
        rss,
        hwm: memory(pid).1,
        took: started.elapsed(),
    }
}

/// One keep-alive connection carrying one request per cookie.
fn send_all(port: u16, host: &str, path: &str, cookies: &[String]) {
    let mut conn = Conn::open_waiting(addr(port), Duration::from_secs(10));
    for c in cookies {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {c}\r\n\r\n");
        let r = conn.exchange(req.as_bytes());
        if r.status != 200 || r.body.len() != crate::BODY_LEN {
            panic!(
                "a fresh session was not served: {} ({} bytes)",
                r.status,
                r.body.len()
            );
        }
    }
}
