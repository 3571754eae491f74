//! Upstream addresses through the real server: a name is resolved when the
//! config is loaded and again when a reload changes it, and the connection to
//! the upstream is reused across requests.

use std::sync::atomic::Ordering;

use crate::kit::{EchoUpstream, TestConfig, TestGateway, runtime};

fn rules(echo: &EchoUpstream) -> String {
    format!(
        "upstreams:\n  app: \"http://localhost:{}\"\nrules:\n  - {{ name: open, hosts: [app.home.lab], upstream: app, policy: bypass }}\n",
        echo.addr.port()
    )
}

#[test]
fn a_named_upstream_is_resolved_at_load_and_reload() {
    let first = EchoUpstream::start();
    let second = EchoUpstream::start();
    let g = TestGateway::start(TestConfig::new().body(&rules(&first)));
    for i in 0..5 {
        let r = g.get("app.home.lab", &format!("/one/{i}"), &[]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(first.seen().len(), 5);
    assert_eq!(
        first.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection, kept alive"
    );

    // A reload pointing the name at another port is followed from the next request.
    let next = TestConfig::new().body(&rules(&second));
    if let Err(e) = g.gw.apply(runtime(&next.yaml(g.addr, Some(g.admin)))) {
        panic!("reload: {e}");
    }
    let r = g.get("app.home.lab", "/two", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed_request_line(), "GET /two HTTP/1.1");
    assert_eq!(second.seen().len(), 1);
    assert_eq!(
        first.seen().len(),
        5,
        "the old address is not used any more"
    );
}
