//! Config files as a user writes them: every broken fixture fails `check` with
//! exactly its expected messages, and every shipped config passes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_invalid_fixture_fails_with_its_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let files = yaml_files(&dir);
    assert!(
        files.len() >= 15,
        "expected at least 15 fixtures, found {}",
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let err = match stepgate::config::check_str("f.yaml", &text, now()) {
            Ok(_) => panic!("{} passed check", file.display()),
            Err(e) => e,
        };
        let got: Vec<String> = err
            .errors()
            .map(|d| d.to_string().trim_start_matches("f.yaml:").to_string())
            .collect();
        assert_eq!(got, expected, "{}", file.display());
    }
}

#[test]
fn check_command_lists_every_error_and_exits_1() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/mixed-errors.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("rules[1].upstream: unknown upstream \"gitae\" (known: gitea)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rules[0].upstrem: unknown key \"upstrem\""),
        "{stderr}"
    );
}

#[test]
fn shipped_configs_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = yaml_files(&root.join("config"));
    files.extend(
        yaml_files(&root.join("deploy"))
            .into_iter()
            .filter(|p| is_stepgate_config(p)),
    );
    assert!(files.iter().any(|p| p.ends_with("config/example.yaml")));
    assert!(files.iter().any(|p| p.ends_with("config/reference.yaml")));
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .arg("check")
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A YAML file under deploy/ is a stepgate config when it has a `portal:` key.
pub fn is_stepgate_config(p: &Path) -> bool {
    std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("portal:")))
}

#[test]
fn explain_names_rule_needs_and_user() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(args)
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = run(&[
        "explain",
        "http://app.localhost:8080/public/%2e%2e/admin/x",
        "--user",
        "alice",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("rule: admin (rules[1])"), "{out}");
    assert!(out.contains("at most 5m old"), "{out}");
    assert!(out.contains("user alice: passes allow"), "{out}");
    let (code, out) = run(&["explain", "http://nothing.localhost/"]);
    assert_eq!(code, Some(2));
    assert!(out.contains("denied: no rule matches"), "{out}");
    let (code, out) = run(&["explain", "http://app.localhost/admin%2fx"]);
    assert_eq!(code, Some(2));
    assert!(out.contains("bad request (400)"), "{out}");
}
