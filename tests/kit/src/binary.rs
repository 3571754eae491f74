//! The built `stepgate` binary as a child process whose log goes to a file,
//! for tests that need a real process (signals, socket takeover, first run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ChildGuard, spawn};

/// A running `stepgate` with its stderr in `log`.
pub struct Process {
    pub child: ChildGuard,
    pub log: PathBuf,
}

impl Process {
    /// Run `stepgate ARGS` in `cwd`, stderr (the log) to `log`.
    pub fn start(cwd: &Path, args: &[&str], log: PathBuf) -> Process {
        Self::start_env(cwd, args, log, &[])
    }

    /// [`Process::start`] with more environment variables for the child.
    pub fn start_env(cwd: &Path, args: &[&str], log: PathBuf, env: &[(&str, &str)]) -> Process {
        let file = match std::fs::File::create(&log) {
            Ok(f) => f,
            Err(e) => panic!("create {}: {e}", log.display()),
        };
        match Command::new(crate::stepgate_exe())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
        {
            Ok(c) => Process {
                child: ChildGuard(c),
                log,
            },
            Err(e) => panic!("cannot start stepgate: {e}"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.0.id() as i32
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal (`SIGQUIT`, `SIGTERM`...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Wait up to `limit` for the process to exit; its exit code, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.child.0.try_wait() {
                Ok(Some(status)) => return Some(status.code().unwrap_or(-1)),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("wait: {e}"),
            }
        }
        None
    }
}

/// Start the built `stepgate serve -c FILE` (its output dropped).
pub fn serve(file: &Path) -> ChildGuard {
    spawn(
        Command::new(crate::stepgate_exe())
            .arg("serve")
            .arg("-c")
            .arg(file),
        "stepgate",
    )
}
