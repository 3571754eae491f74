//! `cargo bench --bench proxy`: stepgate against its ceilings on loopback.
//!
//! One run starts, on free 127.0.0.1 ports and in a temp dir: an nginx app
//! serving a 1 KiB static body; plain nginx proxying to it (the reference every
//! row is also compared with); a bare pingora proxy (this bench binary run as
//! a child, same allocator, profile and thread count as stepgate: the inline
//! ceiling); stepgate inline (the release binary Cargo builds for this bench)
//! on the SQLite store and on a private redis-server, each with a session made
//! by a real enrollment and sign-in (software passkey, UV) over HTTP; and the
//! front proxies from `deploy/` (nginx auth_request, Caddy forward_auth,
//! Traefik ForwardAuth), each once asking stepgate and once an nginx
//! `return 200` stub (that front proxy's ceiling). Every system gets the same
//! wrk load, interleaved over several rounds; the bench prints requests/s, p50
//! and p99 and the ratios to the row's ceiling and to plain nginx in the same
//! round (medians over rounds); then the p99 at half of bare pingora's peak
//! rate, stepgate's memory with 1,000 idle keep-alive connections and while
//! 100,000 distinct sessions are each used once, and the targets met or not.
//! Everything it starts is killed on drop.
//!
//! Knobs (environment): `STEPGATE_BENCH_SECONDS` (5), `STEPGATE_BENCH_ROUNDS`
//! (3), `STEPGATE_BENCH_THREADS` (wrk threads, 2), `STEPGATE_BENCH_CONNECTIONS`
//! (64), `STEPGATE_BENCH_PROXY_THREADS` (threads of stepgate and bare pingora;
//! stepgate's default when unset), `STEPGATE_BENCH_IDLE` (1000),
//! `STEPGATE_BENCH_SESSIONS` (100000; 0 skips the churn),
//! `STEPGATE_BENCH_ONLY` (run only the systems whose name contains this text,
//! plus their ceilings and plain nginx), `STEPGATE_BENCH_BASELINE_BIN`
//! (another stepgate binary, e.g. an older build, measured inline on the same
//! store and session), `STEPGATE_BENCH_WRAP` (a command, e.g. valgrind, that
//! the SQLite stepgate runs under), `STEPGATE_BENCH_BIN` (the stepgate binary
//! to measure instead of the one Cargo built), `STEPGATE_BENCH_PROFILE=N`
//! (instead of the load: instructions per request under callgrind, N requests
//! per kind, for this build and the baseline binary).

#[path = "proxy/bare.rs"]
mod bare;
#[path = "proxy/churn.rs"]
mod churn;
#[path = "proxy/load.rs"]
mod load;
#[path = "proxy/passkey.rs"]
mod passkey;
#[path = "proxy/profile.rs"]
mod profile;
#[path = "proxy/report.rs"]
mod report;
#[path = "proxy/systems.rs"]
mod systems;
#[path = "proxy/util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use load::{Load, Sample, wrk};
use passkey::APP_HOST;
use report::{Memory, Rows};
use systems::{Server, Store};
use util::{Browser, free_port};

/// The same allocator as stepgate's binary, for the bare pingora ceiling.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub const BODY_LEN: usize = 1024;

/// Row names the report and the targets refer to.
pub const NGINX: &str = "nginx (plain proxy)";
pub const BARE: &str = "bare pingora (inline ceiling)";

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// One system under load.
pub struct System {
    pub name: &'static str,
    pub port: u16,
    pub path: &'static str,
    pub cookie: Option<String>,
    /// Must a request without the cookie be refused?
    pub guarded: bool,
    /// The row this one is judged against (same front proxy, no stepgate work).
    pub ceiling: Option<&'static str>,
}

/// The knobs of one run.
pub struct Knobs {
    pub seconds: u64,
    pub rounds: usize,
    pub threads: usize,
    pub connections: usize,
    pub proxy_threads: usize,
    pub idle: usize,
    pub sessions: usize,
    pub only: String,
}

impl Knobs {
    fn from_env() -> Self {
        Knobs {
            seconds: env_num("STEPGATE_BENCH_SECONDS", 5),
            rounds: env_num("STEPGATE_BENCH_ROUNDS", 3) as usize,
            threads: env_num("STEPGATE_BENCH_THREADS", 2) as usize,
            connections: env_num("STEPGATE_BENCH_CONNECTIONS", 64) as usize,
            proxy_threads: env_num(
                "STEPGATE_BENCH_PROXY_THREADS",
                stepgate::config::compile::DEFAULT_THREADS as u64,
            ) as usize,
            idle: env_num("STEPGATE_BENCH_IDLE", 1000) as usize,
            sessions: env_num("STEPGATE_BENCH_SESSIONS", 100_000) as usize,
            only: std::env::var("STEPGATE_BENCH_ONLY").unwrap_or_default(),
        }
    }
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
            r.body
        );
    }
    if s.guarded {
        let r = Browser::new(s.port).request("GET", &url, &[], b"");
        if r.status == 200 {
            panic!("{}: GET {url} without a session was let through", s.name);
        }
    }
}

/// One wrk run against `s`; any non-2xx answer or socket error aborts the bench.
pub fn run_load(
    app: u16,
    dir: &Path,
    s: &System,
    k: &Knobs,
    connections: usize,
    delay: Option<u64>,
) -> Sample {
    let host = format!("{APP_HOST}:{}", s.port);
    let accepted = systems::app_accepts(app);
    let mut sample = wrk(
        dir,
        &Load {
            port: s.port,
            host: &host,
            path: s.path,
            cookie: s.cookie.as_deref(),
            threads: k.threads,
            connections,
            seconds: k.seconds,
            delay_ms: delay,
        },
    );
    sample.upstream_conns = systems::app_accepts(app).saturating_sub(accepted + 1);
    if sample.bad_status > 0 || sample.socket_errors > 0 || sample.requests == 0 {
        panic!(
            "{}: {} non-2xx answers, {} socket errors in {} requests: the numbers would lie",
            s.name, sample.bad_status, sample.socket_errors, sample.requests
        );
    }
    sample
}

/// Interleaved rounds over `list` (the order rotated each round).
fn rounds(
    app: u16,
    root: &Path,
    list: &[&System],
    k: &Knobs,
    conns: usize,
    delay: Option<u64>,
) -> Rows {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); list.len()];
    for round in 0..k.rounds {
        for j in 0..list.len() {
            let i = (j + round) % list.len();
            let s = run_load(app, root, list[i], k, conns, delay);
            println!(
                "round {} {:<44} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                round + 1,
                list[i].name,
                s.rps,
                s.p50_ms,
                s.p99_ms
            );
            samples[i].push(s);
        }
    }
    Rows {
        names: list.iter().map(|s| s.name).collect(),
        ceilings: list.iter().map(|s| s.ceiling).collect(),
        samples,
    }
}

/// Everything started for one run (kept alive until the end).
struct Started {
    servers: Vec<Server>,
    /// The Redis store of the Redis-backed stepgate (stopped after it).
    redis: stepgate_kit::RedisServer,
    list: Vec<System>,
    sqlite_conf: PathBuf,
    sqlite_dir: PathBuf,
    app_port: u16,
    portal_cookie: String,
    app_cookie: String,
    sqlite_pid: u32,
}

fn stepgate_on(
    bin: &Path,
    dir: &Path,
    app: u16,
    store: Store,
    threads: usize,
    name: &str,
    served: &[u16],
) -> (Server, PathBuf) {
    let (port, admin) = (free_port(), free_port());
    let conf = systems::stepgate_config(bin, dir, (port, admin), app, store, Some(threads), served);
    (systems::stepgate(bin, &conf, port, name), conf)
}

fn start(root: &Path, bin: &Path, k: &Knobs) -> Started {
    let app = systems::upstream(root);
    let nginx = systems::plain_nginx(root, app.port);
    let bare = bare::start(root, app.port, k.proxy_threads);
    let stub = systems::allow_stub(root);

    // The ports the front proxies asking stepgate will serve: stepgate
    // mints sign-in codes only for origins it is told are served.
    let front = [free_port(), free_port(), free_port()];
    let sqlite_dir = root.join("stepgate-sqlite");
    let (sg, sqlite_conf) = stepgate_on(
        bin,
        &sqlite_dir,
        app.port,
        Store::Sqlite,
        k.proxy_threads,
        "stepgate-sqlite",
        &front,
    );
    let t = Instant::now();
    let signed = passkey::sign_in(bin, &sqlite_conf, sg.port, "/admin/");
    println!(
        "session (sqlite): enrolled + signed in with step-up over HTTP in {:?}",
        t.elapsed()
    );
    let redis = stepgate_kit::RedisServer::start();
    let (sgr, redis_conf) = stepgate_on(
        bin,
        &root.join("stepgate-redis"),
        app.port,
        Store::Redis(redis.port()),
        k.proxy_threads,
        "stepgate-redis",
        &[],
    );
    let t = Instant::now();
    let redis_cookie = passkey::sign_in(bin, &redis_conf, sgr.port, "/admin/").app;
    println!(
        "session (redis): enrolled + signed in with step-up over HTTP in {:?}",
        t.elapsed()
    );

    let baseline = std::env::var_os("STEPGATE_BENCH_BASELINE_BIN").map(|b| {
        let b = PathBuf::from(b);
        let (p, a) = (free_port(), free_port());
        // Its own copy of the store: two processes writing one SQLite file
        // (idle clocks) would wait on each other's locks.
        let dir = root.join("stepgate-baseline");
        systems::copy_sqlite_store(&sqlite_dir, &dir);
        let conf = systems::stepgate_config(&b, &dir, (p, a), app.port, Store::Sqlite, None, &[]);
        systems::stepgate(&b, &conf, p, "stepgate-baseline")
    });
    let fronts = [
        systems::nginx_auth_request(root, "nginx-ar-stub", free_port(), stub.port, app.port),
        systems::nginx_auth_request(root, "nginx-ar-stepgate", front[0], sg.port, app.port),
        systems::caddy(root, "caddy-stub", free_port(), stub.port, app.port),
        systems::caddy(root, "caddy-stepgate", front[1], sg.port, app.port),
        systems::traefik(root, "traefik-stub", free_port(), stub.port, app.port),
        systems::traefik(root, "traefik-stepgate", front[2], sg.port, app.port),
    ];
    let c = &signed.app;
    let row = |name, port, path, cookie: Option<&String>, ceiling| System {
        name,
        port,
        path,
        cookie: cookie.cloned(),
        guarded: cookie.is_some(),
        ceiling,
    };
    let nar = "nginx + auth_request -> stub (ceiling)";
    let cad = "caddy + forward_auth -> stub (ceiling)";
    let tra = "traefik + ForwardAuth -> stub (ceiling)";
    let mut list = vec![
        row(NGINX, nginx.port, "/1k", None, None),
        row(BARE, bare.port, "/1k", None, None),
        row(
            "stepgate inline, bypass rule (no session)",
            sg.port,
            "/public/1k",
            None,
            Some(BARE),
        ),
        row(
            "stepgate inline, sqlite, passkey",
            sg.port,
            "/1k",
            Some(c),
            Some(BARE),
        ),
        row(
            "stepgate inline, sqlite, step_up",
            sg.port,
            "/admin/1k",
            Some(c),
            Some(BARE),
        ),
        row(
            "stepgate inline, redis, passkey",
            sgr.port,
            "/1k",
            Some(&redis_cookie),
            Some(BARE),
        ),
        row(
            "stepgate inline, redis, step_up",
            sgr.port,
            "/admin/1k",
            Some(&redis_cookie),
            Some(BARE),
        ),
        row(nar, fronts[0].port, "/1k", None, None),
        row(
            "nginx + auth_request -> stepgate",
            fronts[1].port,
            "/1k",
            Some(c),
            Some(nar),
        ),
        row(cad, fronts[2].port, "/1k", None, None),
        row(
            "caddy + forward_auth -> stepgate",
            fronts[3].port,
            "/1k",
            Some(c),
            Some(cad),
        ),
        row(tra, fronts[4].port, "/1k", None, None),
        row(
            "traefik + ForwardAuth -> stepgate",
            fronts[5].port,
            "/1k",
            Some(c),
            Some(tra),
        ),
    ];
    if let Some(b) = &baseline {
        list.insert(
            3,
            row(
                "baseline binary: inline, sqlite, passkey",
                b.port,
                "/1k",
                Some(c),
                Some(BARE),
            ),
        );
    }
    let sqlite_pid = sg.proc.pid();
    let app_port = app.port;
    let mut servers = vec![app, nginx, bare, stub, sg, sgr];
    servers.extend(baseline);
    servers.extend(fronts);
    Started {
        servers,
        redis,
        list: select(list, &k.only),
        sqlite_conf,
        sqlite_dir,
        app_port,
        portal_cookie: signed.portal,
        app_cookie: signed.app.clone(),
        sqlite_pid,
    }
}

/// The systems whose name contains `only` (all when empty), with their
/// ceilings, bare pingora and plain nginx.
fn select(list: Vec<System>, only: &str) -> Vec<System> {
    let wanted: Vec<&str> = list
        .iter()
        .filter(|s| only.is_empty() || s.name.contains(only))
        .flat_map(|s| [Some(s.name), s.ceiling])
        .flatten()
        .chain([NGINX, BARE])
        .collect();
    list.into_iter()
        .filter(|s| wanted.contains(&s.name))
        .collect()
}

/// RSS with `idle` keep-alive connections on a fresh stepgate, then while
/// `sessions` distinct sessions are each used once.
fn memory(bin: &Path, st: &Started, k: &Knobs) -> Memory {
    let (p, a) = (free_port(), free_port());
    let conf = systems::stepgate_config(
        bin,
        &st.sqlite_dir,
        (p, a),
        st.app_port,
        Store::Sqlite,
        Some(k.proxy_threads),
        &[],
    );
    let fresh = systems::stepgate(bin, &conf, p, "stepgate-idle");
    let (fresh_rss, _) = load::memory(fresh.proc.pid());
    let host = format!("{APP_HOST}:{p}");
    let held = load::hold_connections(p, &host, "/1k", &st.app_cookie, k.idle);
    std::thread::sleep(Duration::from_secs(2));
    let open = load::still_open(&held);
    let (idle_rss, idle_hwm) = load::memory(fresh.proc.pid());
    drop(held);
    let churn = (k.sessions > 0).then(|| {
        let t = Instant::now();
        let cookies = churn::mint_sessions(&st.sqlite_conf, &st.portal_cookie, k.sessions);
        println!(
            "churn: {} app sessions written to the SQLite store in {:.1} s",
            cookies.len(),
            t.elapsed().as_secs_f64()
        );
        churn::run(p, "/1k", &cookies, 8, fresh.proc.pid())
    });
    Memory {
        fresh_rss,
        idle: k.idle,
        open,
        idle_rss,
        idle_hwm,
        loaded: load::memory(st.sqlite_pid),
        churn,
    }
}

fn main() {
    bare::serve_if_asked();
    let started = Instant::now();
    let k = Knobs::from_env();
    let bin_override = std::env::var_os("STEPGATE_BENCH_BIN").map(PathBuf::from);
    let bin = bin_override
        .as_deref()
        .unwrap_or(Path::new(env!("CARGO_BIN_EXE_stepgate")));
    println!("{}", report::machine());
    println!(
        "load: wrk {} threads x {} connections x {} s per system and round, {} rounds, interleaved; \
         stepgate and bare pingora: {} threads; nginx worker_processes, Caddy and Traefik GOMAXPROCS: {}",
        k.threads,
        k.connections,
        k.seconds,
        k.rounds,
        k.proxy_threads,
        systems::WORKERS
    );
    println!("stepgate: {}", bin.display());

    let tmp = tempfile::Builder::new()
        .prefix("stepgate-bench-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = tmp.path();
    if let Ok(n) = std::env::var("STEPGATE_BENCH_PROFILE") {
        let n = n
            .parse()
            .unwrap_or_else(|_| panic!("STEPGATE_BENCH_PROFILE={n}: not a number"));
        let mut bins = vec![("this build", bin.to_path_buf())];
        if let Some(b) = std::env::var_os("STEPGATE_BENCH_BASELINE_BIN") {
            bins.push(("baseline", PathBuf::from(b)));
        }
        profile::run_all(root, &bins, k.proxy_threads, n);
        return;
    }
    let st = start(root, bin, &k);
    for s in &st.list {
        sanity(s);
    }
    println!(
        "sanity: every system serves the {BODY_LEN}-byte body with the cookie and refuses without it"
    );
    for s in &st.list {
        let warm = Knobs {
            seconds: 1,
            rounds: 1,
            ..Knobs::from_env()
        };
        run_load(st.app_port, root, s, &warm, k.connections, None);
    }
    let all: Vec<&System> = st.list.iter().collect();
    let peak = rounds(st.app_port, root, &all, &k, k.connections, None);
    report::throughput(&peak, &k);

    // p99 at half of bare pingora's peak.
    let target = peak.median_rps(BARE) / 2.0;
    let delay_ms = 10u64;
    let conns = ((target * delay_ms as f64 / 1000.0).round() as usize).max(k.threads);
    let half: Vec<&System> = st
        .list
        .iter()
        .filter(|s| {
            s.name == BARE
                || s.name == NGINX
                || (s.name.starts_with("stepgate inline") && s.name.ends_with("passkey"))
        })
        .collect();
    let latency = rounds(st.app_port, root, &half, &k, conns, Some(delay_ms));
    report::latency(&latency, &k, target, conns, delay_ms);

    let mem = memory(bin, &st, &k);
    report::memory(&mem);
    report::targets(&peak, &latency, &mem);
    drop(st.servers);
    drop(st.redis);
    println!();
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
}
