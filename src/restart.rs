//! `--restart-cmd`: restart the backend after a flag change, so the new
//! value is read, and say how that went.
//!
//! The command runs through `sh -c` with no input; everything it prints goes
//! to our stderr, so stdout stays one JSON object for scripts. A command that
//! hangs is killed after the timeout: an incident rollback must not wait on
//! a stuck supervisor forever.

use crate::redact::redact_text;
use serde::Serialize;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a restart went; recorded in the run and printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restart {
    /// The command, with any URL password redacted.
    pub command: String,
    /// Its exit status (`None` when it could not start, was killed or timed out).
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub seconds: f64,
    /// Whether it exited 0 in time.
    pub ok: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Runs `command` with `sh -c`, waiting at most `timeout`.
pub fn run(command: &str, timeout: Duration) -> Restart {
    let started = Instant::now();
    let shown = redact_text(command);
    let failed = |error: String, exit_code: Option<i32>| Restart {
        command: shown.clone(),
        exit_code,
        seconds: started.elapsed().as_secs_f64(),
        ok: false,
        error: Some(error),
    };
    let stdout = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    };
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return failed(format!("could not start sh: {e}"), None),
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let code = status.code();
                return if status.success() {
                    Restart {
                        command: shown,
                        exit_code: code,
                        seconds: started.elapsed().as_secs_f64(),
                        ok: true,
                        error: None,
                    }
                } else {
                    failed(
                        match code {
                            Some(c) => format!("exited with status {c}"),
                            None => "killed by a signal".into(),
                        },
                        code,
                    )
                };
            }
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return failed(
                    format!("still running after {} s: killed", timeout.as_secs()),
                    None,
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return failed(format!("could not wait for it: {e}"), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_failure_and_timeout_are_told_apart() {
        let ok = run("true", Duration::from_secs(5));
        assert!(ok.ok && ok.exit_code == Some(0));
        let bad = run("exit 7", Duration::from_secs(5));
        assert!(!bad.ok);
        assert_eq!(bad.exit_code, Some(7));
        let slow = run("sleep 5", Duration::from_millis(100));
        assert!(!slow.ok && slow.exit_code.is_none());
        assert!(slow.seconds < 4.0, "the hung command was killed");
    }
}
