//! Instructions per request, counted by callgrind (`STEPGATE_BENCH_PROFILE=N`).
//!
//! Instruction counts are repeatable on a loaded machine where wall-clock
//! figures are not (this VM has no hardware counters for `perf`). stepgate runs
//! under `valgrind --tool=callgrind`; for each kind of request, 200 warm-up
//! requests, then the counters are zeroed (`callgrind_control -z`), exactly N
//! requests go over one keep-alive connection, and the counters are dumped
//! (`callgrind_control -d`): the dump's total divided by N is what one request
//! costs, all threads included (pingora, the session check, SQLite on the
//! blocking pool). With `STEPGATE_BENCH_BASELINE_BIN` the other build is
//! counted the same way, on the same store and session.
//! `STEPGATE_BENCH_PROFILE_DIR=DIR` keeps each dump there, for
//! `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::passkey::APP_HOST;
use crate::systems::{self, Store};
use crate::util::{Proc, addr, free_port, run, spawn, wait_for_port};
use stepgate_kit::Conn;

/// What is counted: (label, path, with the session cookie?, extra header lines).
const KINDS: [(&str, &str, bool, &str); 4] = [
    ("bypass rule (no session)", "/public/1k", false, ""),
    ("passkey rule, sqlite session", "/1k", true, ""),
    ("step_up rule, sqlite session", "/admin/1k", true, ""),
    (
        "forward-auth answer (passkey rule, sqlite session)",
        "/.stepgate/authz/forward-auth",
        true,
        "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: HOST\r\nX-Forwarded-Uri: /1k\r\n",
    ),
];

/// Count instructions per request for `bins` (label, binary), `n` requests per kind.
pub fn run_all(root: &Path, bins: &[(&str, PathBuf)], threads: usize, n: usize) {
    let app = systems::upstream(root);
    let dir = root.join("stepgate-profile");
    let mut cookie = None;
    let mut table = Vec::new();
    {
        let out = root.join("callgrind-bare.out");
        let bare = crate::bare::start_under(root, app.port, threads, &callgrind(&out));
        let ir = count(&bare.proc, &out, bare.port, "/1k", "", n, "bare pingora");
        println!("callgrind: bare pingora: {ir:.0} instructions per request");
        table.push(("bare pingora (the ceiling)", "any request", ir));
    }
    for (label, bin) in bins {
        let (port, admin) = (free_port(), free_port());
        let threads = (*label == "this build").then_some(threads);
        let conf = systems::stepgate_config(
            bin,
            &dir,
            (port, admin),
            app.port,
            Store::Sqlite,
            threads,
            &[],
        );
        let out = root.join(format!("callgrind-{port}.out"));
        let log = root.join(format!("callgrind-{port}.log"));
        let vg = callgrind(&out);
        let mut proc = spawn(
            "stepgate under callgrind",
            Command::new(&vg[0])
                .args(&vg[1..])
                .arg(bin)
                .arg("serve")
                .arg("-c")
                .arg(&conf),
            &log,
        );
        wait_for_port(port, &mut proc, &log);
        let c = cookie
            .get_or_insert_with(|| crate::passkey::sign_in(bin, &conf, port, "/admin/").app)
            .clone();
        for (kind, path, with_cookie, extra) in KINDS {
            let mut head = extra.replace("HOST", &format!("{APP_HOST}:{port}"));
            if with_cookie {
                head.push_str(&format!("Cookie: {c}\r\n"));
            }
            let ir = count(
                &proc,
                &out,
                port,
                path,
                &head,
                n,
                &format!("{label}, {kind}"),
            );
            println!(
                "callgrind: {label}, {kind}: {:.0} instructions per request",
                ir
            );
            table.push((*label, kind, ir));
        }
        drop(proc);
    }
    println!();
    println!(
        "## Instructions per request (callgrind, {n} requests per row after 200 warm-up, one keep-alive connection)"
    );
    println!();
    println!("| build | request | Ir per request |");
    println!("|---|---|---:|");
    for (label, kind, ir) in table {
        println!("| {label} | {kind} | {:.0}k |", ir / 1000.0);
    }
    drop(app);
}

/// The callgrind command line writing to `out` (dumps: `out.1`, `out.2`, …).
fn callgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
        "--dump-instr=no".into(),
    ]
}

fn count(proc: &Proc, out: &Path, port: u16, path: &str, head: &str, n: usize, what: &str) -> f64 {
    let pid = proc.pid().to_string();
    send(port, path, head, 200);
    run(Command::new("callgrind_control").arg("-z").arg(&pid));
    send(port, path, head, n);
    let before = dumps(out);
    run(Command::new("callgrind_control").arg("-d").arg(&pid));
    let dump = dumps(out)
        .into_iter()
        .find(|d| !before.contains(d))
        .unwrap_or_else(|| panic!("callgrind wrote no new dump next to {}", out.display()));
    if let Some(keep) = std::env::var_os("STEPGATE_BENCH_PROFILE_DIR") {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let to = Path::new(&keep).join(format!("callgrind.{name}.out"));
        std::fs::copy(&dump, &to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    }
    total(&dump) as f64 / n as f64
}

/// `n` requests, one after another, over one keep-alive connection, with the
/// header lines `head`; each must be a 200 (with the body, unless it is a
/// forward-auth answer).
fn send(port: u16, path: &str, head: &str, n: usize) {
    let mut conn = Conn::open_waiting(addr(port), Duration::from_secs(60));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {APP_HOST}:{port}\r\n{head}\r\n");
    let len = if path.starts_with("/.stepgate/") {
        0
    } else {
        crate::BODY_LEN
    };
    for _ in 0..n {
        let r = conn.exchange(req.as_bytes());
        assert!(
            r.status == 200 && r.body.len() == len,
            "{path}: {} under callgrind",
            r.status
        );
    }
}

/// The dump files callgrind wrote for `out` (`out.1`, `out.2`, …).
fn dumps(out: &Path) -> Vec<PathBuf> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let stem = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}.")))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The `summary:` (or `totals:`) instruction count of a dump, summed over the
/// per-thread files callgrind may write.
fn total(dump: &Path) -> u64 {
    let text = std::fs::read_to_string(dump).unwrap_or_else(|e| panic!("{}: {e}", dump.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: no summary line", dump.display()))
}
