//! What the bench prints: the machine, the tables (medians over interleaved
//! rounds, ratios taken within each round), and the targets met or not.

use std::process::Command;

use crate::churn::Churn;
use crate::load::Sample;
use crate::{BARE, Knobs, NGINX};

/// The samples of one set of interleaved rounds, per system.
pub struct Rows {
    pub names: Vec<&'static str>,
    pub ceilings: Vec<Option<&'static str>>,
    pub samples: Vec<Vec<Sample>>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Rows {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    fn of(&self, name: &str, f: impl Fn(&Sample) -> f64) -> f64 {
        match self.index(name) {
            Some(i) => median(self.samples[i].iter().map(f).collect()),
            None => f64::NAN,
        }
    }

    pub fn median_rps(&self, name: &str) -> f64 {
        self.of(name, |s| s.rps)
    }

    /// Median over rounds of `f(row's sample, other's sample)` in the same round.
    fn paired(&self, name: &str, other: &str, f: impl Fn(&Sample, &Sample) -> f64) -> f64 {
        match (self.index(name), self.index(other)) {
            (Some(i), Some(j)) => median(
                self.samples[i]
                    .iter()
                    .zip(&self.samples[j])
                    .map(|(a, b)| f(a, b))
                    .collect(),
            ),
            _ => f64::NAN,
        }
    }

    /// Median of req/s(name) / req/s(other) within each round.
    pub fn ratio(&self, name: &str, other: &str) -> f64 {
        self.paired(name, other, |a, b| a.rps / b.rps)
    }

    /// Median of p99(name) − p99(other) within each round (ms).
    pub fn added_p99(&self, name: &str, other: &str) -> f64 {
        self.paired(name, other, |a, b| a.p99_ms - b.p99_ms)
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "-".into()
    } else {
        format!("{r:.2}x")
    }
}

pub fn throughput(rows: &Rows, k: &Knobs) {
    println!();
    println!(
        "## Throughput: wrk {} threads x {} connections x {} s, medians of {} interleaved rounds",
        k.threads, k.connections, k.seconds, k.rounds
    );
    println!();
    println!(
        "| system | req/s | p50 ms | p99 ms | vs its ceiling | vs nginx | upstream conns per 1k req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, name) in rows.names.iter().enumerate() {
        let ceiling = rows.ceilings[i].map_or(f64::NAN, |c| rows.ratio(name, c));
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {} | {:.2} |",
            rows.median_rps(name),
            rows.of(name, |s| s.p50_ms),
            rows.of(name, |s| s.p99_ms),
            fmt_ratio(ceiling),
            fmt_ratio(rows.ratio(name, NGINX)),
            rows.of(name, |s| 1000.0 * s.upstream_conns as f64
                / s.requests as f64),
        );
    }
}

pub fn latency(rows: &Rows, k: &Knobs, target: f64, conns: usize, delay_ms: u64) {
    println!();
    println!(
        "## Latency at half of bare pingora's peak ({target:.0} req/s asked): wrk {} threads x {conns} connections, \
         each pausing {delay_ms} ms before every request (Lua delay()), {} s, medians of {} rounds",
        k.threads, k.seconds, k.rounds
    );
    println!();
    println!(
        "| system | achieved req/s | p50 ms | p99 ms | added p99 vs bare pingora (same round) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for name in &rows.names {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:+.2} ms |",
            rows.median_rps(name),
            rows.of(name, |s| s.p50_ms),
            rows.of(name, |s| s.p99_ms),
            rows.added_p99(name, BARE),
        );
    }
}

/// stepgate's memory figures (MiB).
pub struct Memory {
    pub fresh_rss: f64,
    pub idle: usize,
    pub open: usize,
    pub idle_rss: f64,
    pub idle_hwm: f64,
    /// (VmRSS, VmHWM) of the instance that carried the throughput rounds.
    pub loaded: (f64, f64),
    pub churn: Option<Churn>,
}

impl Memory {
    /// RSS growth from the second tenth of the churn (the cache warmed up) to its end.
    fn churn_growth(&self) -> Option<(f64, f64)> {
        let c = self.churn.as_ref()?;
        let warm = c.rss.get(1).or(c.rss.first())?.1;
        let end = c.rss.last()?.1;
        Some((warm, end))
    }
}

pub fn memory(m: &Memory) {
    println!();
    println!("## stepgate memory (sqlite)");
    println!();
    println!("| state | VmRSS MiB | VmHWM (peak) MiB |");
    println!("|---|---:|---:|");
    println!("| fresh process, no connection | {:.1} | |", m.fresh_rss);
    println!(
        "| {} of {} idle keep-alive connections open (each served one authenticated request) | {:.1} | {:.1} |",
        m.open, m.idle, m.idle_rss, m.idle_hwm
    );
    println!(
        "| after the throughput rounds (the loaded instance) | {:.1} | {:.1} |",
        m.loaded.0, m.loaded.1
    );
    if let Some(c) = &m.churn {
        for (done, rss) in &c.rss {
            println!("| churn: {done} distinct sessions used once each | {rss:.1} | |");
        }
        println!(
            "| churn done ({:.1} s) | {:.1} | {:.1} |",
            c.took.as_secs_f64(),
            c.rss.last().map_or(f64::NAN, |x| x.1),
            c.hwm
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

pub fn targets(peak: &Rows, half: &Rows, m: &Memory) {
    println!();
    println!("## Targets");
    println!();
    println!("| target | measured | |");
    println!("|---|---:|---|");
    for (i, name) in peak.names.iter().enumerate() {
        let Some(ceiling) = peak.ceilings[i] else {
            continue;
        };
        if name.starts_with("baseline") {
            continue;
        }
        let want = if name.contains("bypass") { 0.97 } else { 0.90 };
        let r = peak.ratio(name, ceiling);
        println!(
            "| {name} ≥ {want:.2} x {ceiling} | {r:.3}x | {} |",
            verdict(r >= want)
        );
    }
    for name in half.names.iter().filter(|n| n.starts_with("stepgate")) {
        let added = half.added_p99(name, BARE);
        println!(
            "| {name}: p99 at half of bare pingora's peak ≤ bare pingora's + 1 ms | {added:+.2} ms | {} |",
            verdict(added <= 1.0)
        );
    }
    println!(
        "| RSS with {} idle keep-alive connections ≤ 64 MiB | {:.1} MiB | {} |",
        m.idle,
        m.idle_rss,
        verdict(m.idle_rss <= 64.0 && m.open == m.idle)
    );
    if let Some((warm, end)) = m.churn_growth() {
        println!(
            "| RSS bounded under session churn (end ≤ after warm-up + 10 %) | {warm:.1} → {end:.1} MiB | {} |",
            verdict(end <= warm * 1.1)
        );
    }
}

/// One line on the machine and one on the tools' versions.
pub fn machine() -> String {
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
    format!(
        "machine: {cores} cores ({cpu}), {mem} RAM, Linux {}\n\
         tools: {} | caddy {} | traefik {} | {} | {}",
        kernel.trim(),
        version("nginx", "-v"),
        version("caddy", "version").split(' ').next().unwrap_or(""),
        version("traefik", "version")
            .split_whitespace()
            .nth(1)
            .unwrap_or(""),
        version("wrk", "-v"),
        version("redis-server", "--version")
            .split(" sha")
            .next()
            .unwrap_or(""),
    )
}

fn version(cmd: &str, arg: &str) -> String {
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
}
