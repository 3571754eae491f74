//! `cargo bench --bench proxy`: stepgate against nginx and Caddy on loopback.
//!
//! One run starts, on free 127.0.0.1 ports and in a temp dir: an nginx app
//! serving a 1 KiB static body; plain nginx proxying to it (the ceiling);
//! stepgate inline (the release binary Cargo builds for this bench) on the
//! SQLite store and on a private redis-server, each with a session made by a
//! real enrollment and sign-in (software passkey, UV) over HTTP; nginx +
//! auth_request → stepgate; Caddy + forward_auth → stepgate. Every system gets
//! the same wrk load, interleaved over several rounds, and the bench prints
//! requests/s, p50 and p99 and the ratio to plain nginx in the same round
//! (medians over rounds); then the p99 at half of nginx's peak rate (wrk
//! throttled by a Lua `delay()`), and stepgate's memory with 1,000 idle
//! keep-alive connections. Everything it starts is killed on drop.
//!
//! Knobs (environment): `STEPGATE_BENCH_SECONDS` (5), `STEPGATE_BENCH_ROUNDS`
//! (3), `STEPGATE_BENCH_THREADS` (2), `STEPGATE_BENCH_CONNECTIONS` (64),
//! `STEPGATE_BENCH_IDLE` (1000), `STEPGATE_BENCH_ONLY` (run only the systems
//! whose name contains this text, plus plain nginx), `STEPGATE_BENCH_BASELINE_BIN`
//! (another stepgate binary, e.g. an older build, measured inline on the same
//! store and session), `STEPGATE_BENCH_WRAP` (a command, e.g. valgrind, that
//! the SQLite stepgate runs under), `STEPGATE_BENCH_BIN` (the stepgate binary
//! to measure instead of the one Cargo built).

#[path = "proxy/load.rs"]
mod load;
#[path = "proxy/passkey.rs"]
mod passkey;
#[path = "proxy/systems.rs"]
mod systems;
#[path = "proxy/util.rs"]
mod util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use load::{Load, Sample, wrk};
use passkey::APP_HOST;
use systems::Store;
use util::{Browser, free_port};

const BODY_LEN: usize = 1024;

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// One system under load.
struct System {
    name: &'static str,
    port: u16,
    path: &'static str,
    cookie: Option<String>,
    /// Must a request without the cookie be refused?
    guarded: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| {
                let t = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                t.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|_| "missing".into())
    };
    format!(
        "machine: {cores} cores ({cpu}), {mem} RAM, Linux {}\n\
         tools: {} | caddy {} | {} | {}",
        kernel.trim(),
        version("nginx", "-v"),
        version("caddy", "version").split(' ').next().unwrap_or(""),
        version("wrk", "-v"),
        version("redis-server", "--version")
            .split(" sha")
            .next()
            .unwrap_or(""),
    )
}

/// A request with and without the cookie: the system must serve the 1 KiB
/// body only with it (and refuse without it when `guarded`).
fn sanity(s: &System) {
    let url = format!("http://{APP_HOST}:{}{}", s.port, s.path);
    let mut b = Browser::new(s.port);
    let extra: Vec<(&str, &str)> = s.cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
    let r = b.request("GET", &url, &extra, b"");
    if r.status != 200 || r.body.len() != BODY_LEN {
        panic!(
            "{}: GET {url} gave {} with {} bytes: {}",
            s.name,
            r.status,
            r.body.len(),
            r.text()
        );
    }
    if s.guarded {
        let r = Browser::new(s.port).request("GET", &url, &[], b"");
        if r.status == 200 {
            panic!("{}: GET {url} without a session was let through", s.name);
        }
    }
}

fn run_load(
    dir: &Path,
    s: &System,
    threads: usize,
    connections: usize,
    seconds: u64,
    delay: Option<u64>,
) -> Sample {
    let host = format!("{APP_HOST}:{}", s.port);
    let sample = wrk(
        dir,
        &Load {
            port: s.port,
            host: &host,
            path: s.path,
            cookie: s.cookie.as_deref(),
            threads,
            connections,
            seconds,
            delay_ms: delay,
        },
    );
    if sample.bad_status > 0 || sample.socket_errors > 0 || sample.requests == 0 {
        panic!(
            "{}: {} non-2xx answers, {} socket errors in {} requests: the numbers would lie",
            s.name, sample.bad_status, sample.socket_errors, sample.requests
        );
    }
    sample
}

fn main() {
    let started = Instant::now();
    let seconds = env_num("STEPGATE_BENCH_SECONDS", 5);
    let rounds = env_num("STEPGATE_BENCH_ROUNDS", 3) as usize;
    let threads = env_num("STEPGATE_BENCH_THREADS", 2) as usize;
    let connections = env_num("STEPGATE_BENCH_CONNECTIONS", 64) as usize;
    let idle = env_num("STEPGATE_BENCH_IDLE", 1000) as usize;
    let only = std::env::var("STEPGATE_BENCH_ONLY").unwrap_or_default();
    let bin_override = std::env::var_os("STEPGATE_BENCH_BIN").map(std::path::PathBuf::from);
    let bin = bin_override
        .as_deref()
        .unwrap_or(Path::new(env!("CARGO_BIN_EXE_stepgate")));

    println!("{}", machine());
    println!(
        "load: wrk {threads} threads x {connections} connections x {seconds} s per system and round, {rounds} rounds, interleaved; \
         servers: {} workers each (nginx worker_processes, Caddy GOMAXPROCS, stepgate threads)",
        systems::WORKERS
    );
    println!("stepgate: {}", bin.display());

    let tmp = tempfile::Builder::new()
        .prefix("stepgate-bench-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = tmp.path();

    // The app and the ceiling.
    let app = systems::upstream(root);
    let nginx = systems::plain_nginx(root, app.port);

    // stepgate on SQLite, and on a private Redis; a real session on each.
    let sqlite_dir = root.join("stepgate-sqlite");
    let (sg_port, sg_admin) = (free_port(), free_port());
    let sg_conf =
        systems::stepgate_config(bin, &sqlite_dir, sg_port, sg_admin, app.port, Store::Sqlite);
    let sg_sqlite = systems::stepgate(bin, &sg_conf, sg_port, "stepgate-sqlite");
    let t = Instant::now();
    let cookie_sqlite = passkey::sign_in(bin, &sg_conf, sg_port, "/admin/");
    println!(
        "session (sqlite): enrolled + signed in with step-up over HTTP in {:?}",
        t.elapsed()
    );

    let redis = systems::redis(root);
    let redis_dir = root.join("stepgate-redis");
    let (sgr_port, sgr_admin) = (free_port(), free_port());
    let sgr_conf = systems::stepgate_config(
        bin,
        &redis_dir,
        sgr_port,
        sgr_admin,
        app.port,
        Store::Redis(redis.port),
    );
    let sg_redis = systems::stepgate(bin, &sgr_conf, sgr_port, "stepgate-redis");
    let t = Instant::now();
    let cookie_redis = passkey::sign_in(bin, &sgr_conf, sgr_port, "/admin/");
    println!(
        "session (redis): enrolled + signed in with step-up over HTTP in {:?}",
        t.elapsed()
    );

    // Optionally an older stepgate binary on the same store and session, for before/after.
    let baseline_bin =
        std::env::var_os("STEPGATE_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
    let baseline = baseline_bin.as_ref().map(|b| {
        let (p, a) = (free_port(), free_port());
        let conf = systems::stepgate_config(b, &sqlite_dir, p, a, app.port, Store::Sqlite);
        systems::stepgate(b, &conf, p, "stepgate-baseline")
    });

    // Front proxies asking the SQLite stepgate.
    let nginx_ar = systems::nginx_auth_request(root, sg_sqlite.port, app.port);
    let caddy = systems::caddy(root, sg_sqlite.port, app.port);

    let all = vec![
        System {
            name: "nginx (plain proxy)",
            port: nginx.port,
            path: "/1k",
            cookie: None,
            guarded: false,
        },
        System {
            name: "stepgate inline, bypass rule (no session)",
            port: sg_sqlite.port,
            path: "/public/1k",
            cookie: None,
            guarded: false,
        },
        System {
            name: "stepgate inline, sqlite, passkey",
            port: sg_sqlite.port,
            path: "/1k",
            cookie: Some(cookie_sqlite.clone()),
            guarded: true,
        },
        System {
            name: "stepgate inline, sqlite, step_up",
            port: sg_sqlite.port,
            path: "/admin/1k",
            cookie: Some(cookie_sqlite.clone()),
            guarded: true,
        },
        System {
            name: "stepgate inline, redis, passkey",
            port: sg_redis.port,
            path: "/1k",
            cookie: Some(cookie_redis.clone()),
            guarded: true,
        },
        System {
            name: "stepgate inline, redis, step_up",
            port: sg_redis.port,
            path: "/admin/1k",
            cookie: Some(cookie_redis.clone()),
            guarded: true,
        },
        System {
            name: "nginx + auth_request -> stepgate",
            port: nginx_ar.port,
            path: "/1k",
            cookie: Some(cookie_sqlite.clone()),
            guarded: true,
        },
        System {
            name: "caddy + forward_auth -> stepgate",
            port: caddy.port,
            path: "/1k",
            cookie: Some(cookie_sqlite.clone()),
            guarded: true,
        },
    ];
    let mut all = all;
    if let Some(b) = &baseline {
        all.insert(
            2,
            System {
                name: "baseline binary: inline, sqlite, passkey",
                port: b.port,
                path: "/1k",
                cookie: Some(cookie_sqlite.clone()),
                guarded: true,
            },
        );
    }
    let list: Vec<System> = all
        .into_iter()
        .enumerate()
        .filter(|(i, s)| *i == 0 || only.is_empty() || s.name.contains(only.as_str()))
        .map(|(_, s)| s)
        .collect();
    for s in &list {
        sanity(s);
    }
    println!(
        "sanity: every system serves the {BODY_LEN}-byte body with the cookie and refuses without it"
    );

    // Warm-up, then the interleaved rounds.
    for s in &list {
        run_load(root, s, threads, connections, 1, None);
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); list.len()];
    for round in 0..rounds {
        for k in 0..list.len() {
            let i = (k + round) % list.len();
            let s = run_load(root, &list[i], threads, connections, seconds, None);
            println!(
                "round {} {:<34} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                round + 1,
                list[i].name,
                s.rps,
                s.p50_ms,
                s.p99_ms
            );
            samples[i].push(s);
        }
    }
    let (rss_loaded, hwm_loaded) = load::memory(sg_sqlite.proc.pid());

    println!();
    println!(
        "## Throughput: wrk {threads} threads x {connections} connections x {seconds} s, medians of {rounds} interleaved rounds"
    );
    println!();
    println!("| system | req/s | p50 ms | p99 ms | req/s vs nginx (same round) |");
    println!("|---|---:|---:|---:|---:|");
    let nginx_rps: Vec<f64> = samples[0].iter().map(|s| s.rps).collect();
    for (i, s) in list.iter().enumerate() {
        let rps = median(samples[i].iter().map(|x| x.rps).collect());
        let p50 = median(samples[i].iter().map(|x| x.p50_ms).collect());
        let p99 = median(samples[i].iter().map(|x| x.p99_ms).collect());
        let ratio = median(
            samples[i]
                .iter()
                .zip(&nginx_rps)
                .map(|(x, n)| x.rps / n)
                .collect(),
        );
        println!(
            "| {} | {rps:.0} | {p50:.2} | {p99:.2} | {ratio:.2}x |",
            s.name
        );
    }

    // Added p99 at half of nginx's peak rate.
    let peak = median(nginx_rps.clone());
    let target = peak / 2.0;
    let delay_ms = 10u64;
    let conns = ((target * delay_ms as f64 / 1000.0).round() as usize).max(threads);
    let fixed: Vec<&System> = list
        .iter()
        .filter(|s| {
            s.name.starts_with("nginx (plain")
                || (s.name.starts_with("stepgate inline") && s.name.ends_with("passkey"))
        })
        .collect();
    let mut fixed_samples: Vec<Vec<Sample>> = vec![Vec::new(); fixed.len()];
    for round in 0..rounds {
        for k in 0..fixed.len() {
            let i = (k + round) % fixed.len();
            fixed_samples[i].push(run_load(
                root,
                fixed[i],
                threads,
                conns,
                seconds,
                Some(delay_ms),
            ));
        }
    }
    println!();
    println!(
        "## Latency at half of nginx's peak ({target:.0} req/s): wrk {threads} threads x {conns} connections, \
         each pausing {delay_ms} ms before every request (Lua delay()), {seconds} s, medians of {rounds} rounds"
    );
    println!();
    println!("| system | achieved req/s | p50 ms | p99 ms | added p99 vs nginx (same round) |");
    println!("|---|---:|---:|---:|---:|");
    for (i, s) in fixed.iter().enumerate() {
        let rps = median(fixed_samples[i].iter().map(|x| x.rps).collect());
        let p50 = median(fixed_samples[i].iter().map(|x| x.p50_ms).collect());
        let p99 = median(fixed_samples[i].iter().map(|x| x.p99_ms).collect());
        let added = median(
            fixed_samples[i]
                .iter()
                .zip(&fixed_samples[0])
                .map(|(x, n)| x.p99_ms - n.p99_ms)
                .collect(),
        );
        println!(
            "| {} | {rps:.0} | {p50:.2} | {p99:.2} | {added:+.2} ms |",
            s.name
        );
    }

    // Memory with idle keep-alive connections, on a fresh stepgate (same store).
    let (p, a) = (free_port(), free_port());
    let conf = systems::stepgate_config(bin, &sqlite_dir, p, a, app.port, Store::Sqlite);
    let fresh = systems::stepgate(bin, &conf, p, "stepgate-idle");
    let (rss_start, _) = load::memory(fresh.proc.pid());
    let host = format!("{APP_HOST}:{p}");
    let held = load::hold_connections(p, &host, "/1k", &cookie_sqlite, idle);
    std::thread::sleep(Duration::from_secs(2));
    let open = load::still_open(&held);
    let (rss, hwm) = load::memory(fresh.proc.pid());
    drop(held);
    println!();
    println!("## stepgate memory (sqlite)");
    println!();
    println!("| state | VmRSS MiB | VmHWM (peak) MiB |");
    println!("|---|---:|---:|");
    println!("| fresh process, no connection | {rss_start:.1} | |");
    println!(
        "| {open} of {idle} idle keep-alive connections open (each served one authenticated request) | {rss:.1} | {hwm:.1} |"
    );
    println!(
        "| after the throughput rounds (the loaded instance) | {rss_loaded:.1} | {hwm_loaded:.1} |"
    );

    drop((
        fresh, caddy, nginx_ar, sg_redis, redis, sg_sqlite, nginx, app,
    ));
    println!();
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
}
