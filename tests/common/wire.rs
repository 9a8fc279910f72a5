//! Starts the MongoDB-wire-compatible test server (tests/wire_server/server.py)
//! once per test binary. It is a test server built on mongomock, not MongoDB.
//!
//! If it cannot start, the tests that need it fail: only setting
//! `EDN_SKIP_WIRE_TESTS=1` skips them, and each skipped test says so.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that skips the wire tests on purpose.
pub const OPT_OUT: &str = "EDN_SKIP_WIRE_TESTS";

struct Server {
    url: String,
    // Held open: the server exits when this pipe closes with the test process.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The URL of the shared server, starting it on first use.
pub fn url() -> Option<String> {
    if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: MongoDB wire test ({OPT_OUT}=1)");
        return None;
    }
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server.url.clone()),
        Err(why) => panic!(
            "the wire test server did not start: {why}\n\
             install its dependencies with `pip install -r tests/wire_server/requirements.txt`, \
             or set {OPT_OUT}=1 to skip the MongoDB contract tests"
        ),
    }
}

/// A database name unique to this test binary run.
pub fn fresh_db(case: &str) -> String {
    let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
    let mut name = format!("t{}_{n}_{case}", std::process::id());
    name.truncate(60);
    name
}

fn start() -> Result<Server, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire_server/server.py");
    let python = std::env::var("EDN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args([script, "--port", "0", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {python} {script}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the server's first line: {e}"))?;
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?
        .to_string();
    let stdin = child.stdin.take().ok_or("no stdin to the server")?;
    eprintln!("wire test server (mongomock, not MongoDB) listening on 127.0.0.1:{port}");
    Ok(Server {
        url: format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=10000"
        ),
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}

/// A wire test server of one's own (for fault injection, which would
/// disturb the tests sharing the common one), stopped when dropped.
pub struct Dedicated {
    /// Its URL.
    pub url: String,
    child: Child,
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a dedicated server with extra arguments; `None` when the wire
/// tests are skipped on purpose.
pub fn dedicated(args: &[&str]) -> Option<Dedicated> {
    if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: MongoDB wire test ({OPT_OUT}=1)");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire_server/server.py");
    let python = std::env::var("EDN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(script)
        .args(["--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} {script}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server's first line");
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
        .to_string();
    Some(Dedicated {
        url: format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=10000"
        ),
        child,
    })
}
