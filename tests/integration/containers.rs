//! The container image is not built in CI: no container engine can run here
//! (podman installs, but no base image can be pulled and no container started;
//! see deploy/README.md). So these tests hold `deploy/docker/Dockerfile` to
//! what CI does prove: its build stage installs only packages `.ci/run`
//! installs, runs `.ci/run`'s build command (plus `--release`), copies every
//! file the binary is built from, and its runtime stage carries every shared
//! library the binary links. They also hold the compose stack to what makes it
//! safe as shipped (a private store network, a Redis password, no published
//! admin port) and the Traefik files to every identity-header spelling.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    match std::fs::read_to_string(Path::new(ROOT).join(rel)) {
        Ok(t) => t,
        Err(e) => panic!("{rel}: {e}"),
    }
}

/// The Dockerfile's instructions (continuation lines joined), split by stage.
fn stages() -> Vec<Vec<String>> {
    let text = read("deploy/docker/Dockerfile").replace("\\\n", " ");
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            out.push(Vec::new());
        }
        if !line.is_empty()
            && !line.starts_with('#')
            && let Some(stage) = out.last_mut()
        {
            stage.push(line.to_string());
        }
    }
    assert_eq!(out.len(), 2, "a build stage and a runtime stage");
    out
}

/// Packages named after `apt-get install` in `text` (options skipped).
fn apt_packages(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split("apt-get install").skip(1) {
        let words = part
            .split_whitespace()
            .take_while(|w| !matches!(*w, "&&" | ";" | "||" | ">/dev/null"));
        out.extend(
            words
                .filter(|w| !w.starts_with('-') && !w.starts_with('"'))
                .map(String::from),
        );
    }
    out
}

#[test]
fn the_build_stage_runs_what_ci_runs() {
    let stages = stages();
    let build = stages[0].join("\n");
    let ci = read(".ci/run");
    // Packages: the ones .ci/run installs when missing (its need+=(...) list).
    let ci_packages: BTreeSet<String> = ci
        .lines()
        .filter_map(|l| l.split("need+=(").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .map(String::from)
        .collect();
    let docker_packages = apt_packages(&build);
    assert!(!docker_packages.is_empty(), "{build}");
    assert!(
        docker_packages.is_subset(&ci_packages),
        "the image builds with {docker_packages:?}, CI proves only {ci_packages:?}"
    );
    // The build command: CI's, with --release.
    let cargo = |text: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| {
                l.split("cargo build")
                    .nth(1)
                    .map(|rest| format!("cargo build{rest}"))
            })
            .unwrap_or_default();
        let words = line.split_whitespace().take_while(|w| *w != "&&");
        words
            .filter(|w| !matches!(*w, "-q" | "--release"))
            .map(String::from)
            .collect()
    };
    let (ci_cmd, docker_cmd) = (cargo(&ci), cargo(&build));
    assert!(
        ci_cmd.contains(&"--locked".to_string()),
        "CI builds with the lock file: {ci_cmd:?}"
    );
    assert_eq!(
        docker_cmd, ci_cmd,
        "Dockerfile and .ci/run build differently"
    );
    assert!(build.contains("cargo build --release"), "{build}");
}

/// The paths the build stage copies into the image (the sources of `COPY`).
fn copied_paths() -> Vec<String> {
    stages()[0]
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len().saturating_sub(1)]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_build_stage_copies_every_source_of_the_binary() {
    let copied = copied_paths();
    for needed in ["Cargo.toml", "Cargo.lock", "benches", "tests/kit"] {
        assert!(
            copied.iter().any(|c| c == needed),
            "{needed} is not copied: {copied:?}"
        );
    }
    let ours = compiled_sources();
    assert!(
        ours.iter().any(|f| f.ends_with("portal/assets/portal.js")),
        "{ours:?}"
    );
    for f in &ours {
        assert!(
            copied
                .iter()
                .any(|c| f == c || f.starts_with(&format!("{c}/"))),
            "the image build lacks {f} (COPY it in deploy/docker/Dockerfile)"
        );
    }
}

/// Every file of this repository that rustc read to compile the stepgate
/// crates (library and binary), from the dep-info files it writes beside its
/// outputs in `deps/`. Those exist whichever cargo command built the binary
/// (the uplifted `stepgate.d` next to it only when the binary was a root of
/// the build, as in `cargo build`, not `cargo test`); files an older compile
/// read and that are gone now are left out.
fn compiled_sources() -> BTreeSet<String> {
    let exe = Path::new(env!("CARGO_BIN_EXE_stepgate"));
    let deps = exe.with_file_name("deps");
    let entries = match std::fs::read_dir(&deps) {
        Ok(e) => e,
        Err(e) => panic!("{}: {e}", deps.display()),
    };
    let mut ours = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("stepgate-") && name.ends_with(".d")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        // Each line is `output: input input…`; the inputs are what we want.
        for line in text.lines() {
            let Some((_, inputs)) = line.split_once(": ") else {
                continue;
            };
            // rustc names inputs relative to the package root (the uplifted
            // file next to the binary has them absolute).
            ours.extend(
                inputs
                    .split_whitespace()
                    .map(|f| Path::new(ROOT).join(f))
                    .filter(|f| f.is_file())
                    .filter_map(|f| {
                        f.strip_prefix(ROOT)
                            .ok()
                            .map(|r| r.to_string_lossy().into_owned())
                    }),
            );
        }
    }
    assert!(
        ours.iter().any(|f| f == "src/main.rs") && ours.iter().any(|f| f == "src/lib.rs"),
        "no dep-info for the stepgate library and binary under {}: {ours:?}",
        deps.display()
    );
    ours
}

/// The target triple rustc builds for by default (`host:` in `rustc -vV`).
fn host_triple() -> String {
    let out = std::process::Command::new("rustc").arg("-vV").output();
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => panic!("rustc -vV: {e}"),
    };
    match text.lines().find_map(|l| l.strip_prefix("host: ")) {
        Some(host) => host.trim().to_string(),
        None => panic!("no host in rustc -vV: {text}"),
    }
}

/// cargo reads every manifest the workspace names (members, path
/// dependencies, bench targets) before it builds one binary: the copied tree
/// alone must resolve with the lock file as it is.
#[test]
fn the_copied_tree_resolves_with_the_lock_file() {
    let dir = crate::kit::temp_dir();
    for rel in copied_paths() {
        // COPY makes the destination's parent folders; so does this.
        let to = dir.path().join(&rel);
        if let Some(parent) = to.parent() {
            assert!(std::fs::create_dir_all(parent).is_ok(), "mkdir for {rel}");
        }
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(Path::new(ROOT).join(&rel))
            .arg(&to)
            .status();
        assert!(status.is_ok_and(|s| s.success()), "cp {rel}");
    }
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        // Only this platform's packages: others (Android, Windows…) may never
        // have been downloaded here, and --offline cannot fetch them.
        .args(["--filter-platform", &host_triple()])
        .current_dir(dir.path())
        .output();
    match out {
        Ok(o) => assert!(
            o.status.success(),
            "cargo metadata on the image's copied tree: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cargo metadata: {e}"),
    }
}

#[test]
fn the_runtime_stage_has_every_library_the_binary_links() {
    let runtime = stages()[1].join("\n");
    assert!(
        runtime.starts_with("FROM debian:bookworm-slim"),
        "{runtime}"
    );
    let mut provided = apt_packages(&runtime);
    // In every debian:bookworm-slim image (Essential / required).
    provided.extend(["libc6", "libgcc-s1", "libstdc++6", "zlib1g"].map(String::from));
    let ldd = match std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_stepgate"))
        .output()
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout).to_string(),
        Err(e) => panic!("ldd: {e}"),
    };
    let libs: Vec<&str> = ldd
        .lines()
        .filter_map(|l| l.split("=> ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    assert!(!libs.is_empty(), "{ldd}");
    for lib in libs {
        let owner = match std::process::Command::new("dpkg")
            .args(["-S", lib])
            .output()
        {
            Ok(o) => String::from_utf8_lossy(&o.stdout).to_string(),
            Err(e) => panic!("dpkg -S {lib}: {e}"),
        };
        let package = owner.split(':').next().unwrap_or("").trim().to_string();
        assert!(
            provided.contains(&package),
            "{lib} comes from {package:?}, which the runtime image does not install"
        );
    }
}

fn yaml(rel: &str) -> serde_norway::Value {
    match serde_norway::from_str(&read(rel)) {
        Ok(v) => v,
        Err(e) => panic!("{rel}: {e}"),
    }
}

fn names(v: &serde_norway::Value) -> Vec<String> {
    match v {
        serde_norway::Value::Sequence(s) => s
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        serde_norway::Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The compose stack as shipped: Redis on a network only stepgate joins, with a
/// password; only Traefik publishes a port; the admin listener stays private.
#[test]
fn the_compose_stack_keeps_the_store_and_the_admin_listener_private() {
    let c = yaml("deploy/docker/docker-compose.yml");
    let services = &c["services"];
    assert_eq!(names(&services["redis"]["networks"]), ["store"]);
    assert_eq!(c["networks"]["store"]["internal"].as_bool(), Some(true));
    for (name, svc) in services.as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        let on_store = names(&svc["networks"]).iter().any(|n| n == "store");
        assert_eq!(
            on_store,
            name == "redis" || name == "stepgate",
            "{name} on the store network"
        );
        assert_eq!(
            svc["ports"].is_null(),
            name != "traefik",
            "{name} publishes ports"
        );
    }
    let redis_command = serde_norway::to_string(&services["redis"]["command"]).unwrap_or_default();
    assert!(redis_command.contains("--requirepass"), "{redis_command}");
    let cfg = yaml("deploy/docker/stepgate.yaml");
    let admin = cfg["admin_listen"].as_str().unwrap_or_default();
    assert!(admin.starts_with("127.0.0.1:"), "admin_listen: {admin}");
    let url = cfg["store"]["redis"]["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("redis://:") && url.contains('@'),
        "no Redis password in {url}"
    );
}

/// Both Traefik files blank the same header spellings, all of them.
#[test]
fn the_traefik_files_strip_every_identity_header_spelling() {
    let strip = |rel: &str| {
        let mut n = names(
            &yaml(rel)["http"]["middlewares"]["stepgate-strip"]["headers"]["customRequestHeaders"],
        );
        n.sort();
        n
    };
    let file = strip("deploy/traefik/dynamic.yml");
    let compose = strip("deploy/docker/traefik-middlewares.yml");
    assert_eq!(file, compose);
    let mut want: Vec<String> = crate::front_proxies::identity_spellings()
        .into_iter()
        .filter(|n| n.contains(['_', '.']))
        .collect();
    want.sort();
    assert_eq!(file, want);
}
