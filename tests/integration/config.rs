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

/// `stepgate check` on `text` written to a temp file: (exit code, stderr, file path).
fn check_text(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stepgate.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        file.display().to_string(),
    )
}

const CHECK_BASE: &str = "portal: { url: https://auth.home.lab }
secrets: { cookie_keys: [/etc/stepgate/cookie.key] }
users: { alice: { groups: [admins] } }
";

#[test]
fn check_refuses_loose_durations_at_their_place() {
    let cases = [
        ("5M", "\"5M\" is not a duration"),
        ("1y", "\"1y\" is not a duration"),
        ("5 minutes", "\"5 minutes\" is not a duration"),
        ("8hrs", "\"8hrs\" is not a duration"),
        ("1.5h", "\"1.5h\" is not a duration"),
        ("-5m", "\"-5m\" is not a duration"),
        ("\"\"", "\"\" is not a duration"),
        ("300", "300 is a bare number"),
        ("300000000s", "\"300000000s\" is longer than the 366d"),
    ];
    for (value, want) in cases {
        let text = format!(
            "{CHECK_BASE}rules:\n  - name: pin\n    hosts: [git.home.lab]\n    policy: passkey\n    step_up: {{ max_age: {value} }}\n"
        );
        let (code, stderr, file) = check_text(&text);
        assert_eq!(code, Some(1), "{value}: {stderr}");
        let line = format!("error: {file}:8:25: rules[0].step_up.max_age: {want}");
        assert!(stderr.contains(&line), "{value}: want {line}\n{stderr}");
        if !want.contains("366d") {
            assert!(stderr.contains("like 90s, 5m, 1h30m or 7d"), "{stderr}");
        }
    }
    let (code, stderr, file) = check_text(&format!(
        "{CHECK_BASE}session:\n  idle_timeout: 8h\n  max_lifetime: 1y\nrules: []\n"
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {file}:6:17: session.max_lifetime: \"1y\" is not a duration"
        )),
        "{stderr}"
    );
}

#[test]
fn check_warns_about_rules_that_open_everything() {
    let text = format!(
        r#"{CHECK_BASE}session: {{ max_lifetime: 7d }}
upstreams:
  gitea: {{ url: "http://127.0.0.1:3000", identity_headers: {{ user: X-WEBAUTH-USER }} }}
  gitea-public: "http://127.0.0.1:3000/"
rules:
  - {{ name: everything, hosts: ["*.home.lab"], paths: ["/**"], upstream: gitea-public, policy: bypass }}
  - {{ name: admin, hosts: [git.home.lab], paths: [/admin/**], upstream: gitea, policy: passkey }}
  - {{ name: lan, hosts: [lan.example], networks: [0.0.0.0/1, 128.0.0.0/1], upstream: gitea, policy: bypass }}
  - {{ name: month, hosts: [m.example], upstream: gitea, policy: passkey, step_up: {{ max_age: 30d }} }}
  - {{ name: post, hosts: [p.example], methods: [POST], upstream: gitea, policy: passkey, step_up: {{ max_age: 5m }} }}
"#
    );
    let (code, stderr, file) = check_text(&text);
    assert_eq!(code, Some(0), "{stderr}");
    let wants = [
        format!(
            "warning: {file}:10:5: rules[1]: passkey rule \"admin\" can never match: bypass rule \"everything\" above"
        ),
        format!(
            "warning: {file}:11:50: rules[2].networks: rule \"lan\": networks together cover every IPv4 address"
        ),
        format!(
            "warning: {file}:12:94: rules[3].step_up.max_age: rule \"month\": max_age 30d is longer than session.max_lifetime 7d"
        ),
        format!(
            "warning: {file}:13:48: rules[4].methods: rule \"post\": its step_up can never be given to a browser"
        ),
        format!(
            "warning: {file}:7:17: upstreams.gitea-public: upstreams \"gitea\" and \"gitea-public\" reach the same app (http://127.0.0.1:3000) with different identity_headers (x-webauth-user)"
        ),
    ];
    for want in wants {
        assert!(stderr.contains(&want), "want {want}\n{stderr}");
    }
}

#[test]
fn explain_prints_durations_in_the_accepted_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stepgate.yaml");
    let text = format!(
        "{CHECK_BASE}rules:\n  - {{ name: pin, hosts: [git.home.lab], policy: passkey, step_up: {{ max_age: 1h30m }} }}\n"
    );
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["explain", "https://git.home.lab/", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("at most 1h30m old"), "{stdout}");
}
