//! `cargo bench --bench router`: `Runtime::route` on a generated 10,000-rule
//! config over 1,000 distinct hosts (exact, `*.suffix` and `*` patterns mixed).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use stepgate::config::{Runtime, check_str};
use stepgate::routing::RouteRequest;

/// 10,000 rules: ten per host for 1,000 hosts, a few wildcard rules, a catch-all last.
fn generated_config() -> Runtime {
    let mut y = String::from(
        "portal: { url: https://auth.bench.lab }\nsecrets: { cookie_keys: [k] }\nupstreams: { app: \"http://127.0.0.1:3000\" }\nrules:\n",
    );
    let mut n = 0;
    for h in 0..1000 {
        for p in 0..9 {
            y.push_str(&format!(
                "  - {{ name: r{n}, hosts: [h{h}.bench.lab], paths: [/s{p}, \"/s{p}/**\"], methods: [GET, POST], upstream: app, policy: passkey }}\n"
            ));
            n += 1;
        }
    }
    for z in 0..999 {
        y.push_str(&format!(
            "  - {{ name: w{z}, hosts: [\"*.z{z}.bench.lab\"], upstream: app, policy: passkey }}\n"
        ));
        n += 1;
    }
    y.push_str(&format!(
        "  - {{ name: r{n}, hosts: [\"*\"], paths: [\"/api/*/health\"], policy: bypass }}\n"
    ));
    match check_str("bench.yaml", &y, 0) {
        Ok(c) => {
            assert_eq!(c.runtime.rules.len(), 10_000);
            c.runtime
        }
        Err(e) => panic!("{e}"),
    }
}

fn bench_route(c: &mut Criterion) {
    let rt = generated_config();
    let ip: IpAddr = [192, 168, 1, 10].into();
    let hosts: Vec<String> = (0..1000).map(|h| format!("h{h}.bench.lab")).collect();
    let paths = ["/s8/deep/page", "/s0", "/api/v1/health", "/nothing/here"];
    let mut i = 0usize;
    c.bench_function("route 10k rules / 1k hosts", |b| {
        b.iter(|| {
            i = i.wrapping_add(7);
            let host = &hosts[i % hosts.len()];
            let req = RouteRequest {
                host,
                path: paths[i % paths.len()],
                method: "GET",
                client_ip: ip,
            };
            black_box(rt.route(black_box(&req)).ok().flatten().map(|(idx, _)| idx))
        })
    });
    c.bench_function("route wildcard host", |b| {
        b.iter(|| {
            let req = RouteRequest {
                host: "a.b.z500.bench.lab",
                path: "/x",
                method: "GET",
                client_ip: ip,
            };
            black_box(rt.route(black_box(&req)).ok().flatten().map(|(idx, _)| idx))
        })
    });
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
