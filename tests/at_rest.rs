//! Health data at rest and secrets in connection strings (issue 11).
//!
//! Every test here runs under umask 022 (set once for this test binary, and
//! inherited by the `edn-migrate` processes it starts), the umask of a new
//! operator's shell, so a mode below that is the tool's own doing.
//!
//! The secrets tests use connection strings that carry each kind of secret
//! a MongoDB URL can hold, against a wire test server (mongomock, not
//! MongoDB) started with TLS (client certificate required) and a PLAIN user,
//! so the secrets are the ones that really open the connection.

mod common;

use common::tool::{copy_dir, Tool, FIXTURES};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;

fn umask_022() {
    static SET: Once = Once::new();
    // SAFETY: umask only sets the process's file mode mask; it cannot fail.
    SET.call_once(|| unsafe {
        libc::umask(0o022);
    });
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and folder below `dir` (itself included), with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(dir.to_path_buf(), mode(dir))];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(modes(&path));
        } else {
            out.push((path.clone(), mode(&path)));
        }
    }
    out
}

fn assert_owner_only(dir: &Path) {
    let all = modes(dir);
    assert!(all.len() > 1, "{} is empty", dir.display());
    for (path, m) in all {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m, want, "{} is {m:03o}", path.display());
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- modes

#[test]
fn the_store_and_its_journal_files_are_owner_only() {
    umask_022();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("store.db");
    let path_str = path.to_str().unwrap();
    let store = edn_migrate::store::sqlite::SqliteStore::open(path_str).unwrap();
    use edn_migrate::store::{Ns, Store};
    store
        .insert_many(&Ns::new("db", "c"), &[bson::doc! {"_id": 1, "weight": 80}])
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{path_str}{suffix}"));
        assert_eq!(mode(&file), 0o600, "{} while open", file.display());
    }
    drop(store);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn the_store_the_binary_creates_is_owner_only() {
    umask_022();
    let tool = Tool::sqlite();
    let fixtures = tool.fixtures();
    tool.ok(&["import", fixtures.to_str().unwrap()]);
    assert_eq!(mode(&tool.path("store.db")), 0o600);
}

#[test]
fn an_existing_store_open_to_others_is_warned_about_with_the_fix() {
    umask_022();
    let tool = Tool::sqlite();
    // A command that prepares data creates the store (`status` would refuse a missing one).
    tool.ok(&["phase0", "prepare"]);
    let db = tool.path("store.db");
    chmod(&db, 0o644);
    let out = tool.run(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("chmod go-rwx '{}'", db.display())),
        "{err}"
    );
    assert!(err.contains("644"), "{err}");
    assert_eq!(
        mode(&db),
        0o644,
        "the operator's file is not changed behind them"
    );
    chmod(&db, 0o600);
    let quiet = stderr(&tool.run(&["status"]));
    assert!(!quiet.contains("chmod"), "{quiet}");
}

fn exports_are_owner_only(tool: Tool) {
    umask_022();
    let fixtures = tool.fixtures();
    tool.ok(&["import", fixtures.to_str().unwrap()]);
    let out = tool.path("out");
    let report = tool.run(&["export", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert_owner_only(&out);
    assert!(
        !stderr(&report).contains("chmod"),
        "a new folder is not warned about"
    );

    // An export folder an earlier version left open to others: warned, and
    // every file written again is owner-only.
    chmod(&out, 0o755);
    let legacy = out.join(&tool.legacy_db);
    chmod(&legacy, 0o755);
    for (path, _) in modes(&legacy).into_iter().skip(1) {
        chmod(&path, 0o644);
    }
    let again = tool.run(&["export", out.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(
        err.contains(&format!("chmod -R go-rwx '{}'", out.display())),
        "{err}"
    );
    for (path, m) in modes(&legacy).into_iter().skip(1) {
        assert_eq!(m, 0o600, "{}", path.display());
    }
}

#[test]
fn exports_are_owner_only_sqlite() {
    exports_are_owner_only(Tool::sqlite());
}

#[test]
fn exports_are_owner_only_wire() {
    if let Some(tool) = Tool::wire("export_modes") {
        exports_are_owner_only(tool);
    }
}

#[test]
fn exports_are_owner_only_even_under_umask_000() {
    let tool = Tool::sqlite();
    let fixtures = tool.fixtures();
    tool.ok(&["import", fixtures.to_str().unwrap()]);
    let out = tool.path("out");
    let inner = tool.command(&["export", out.to_str().unwrap()]);
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(tool.work.path())
        .env_remove("MONGO_URL");
    let result = command.output().unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    assert_owner_only(&out);
}

fn reports_and_backups_are_owner_only(tool: Tool) {
    umask_022();
    let fixtures = tool.fixtures();
    tool.ok(&["import", fixtures.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
    tool.ok(&["phase2", "migrate", "all"]);
    tool.ok(&["phase2", "validate"]);
    assert_owner_only(&tool.path("reports"));
    assert_owner_only(&tool.path("backups"));
}

#[test]
fn reports_and_backups_are_owner_only_sqlite() {
    reports_and_backups_are_owner_only(Tool::sqlite());
}

#[test]
fn reports_and_backups_are_owner_only_wire() {
    if let Some(tool) = Tool::wire("report_modes") {
        reports_and_backups_are_owner_only(tool);
    }
}

// ---------------------------------------------------------------- secrets

const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
const USER_PASSWORD: &str = "pw-SECRET-userinfo-31";
const AWS_TOKEN: &str = "tok-SECRET-aws-session-47";
const PROXY_PASSWORD: &str = "px-SECRET-proxy-59";

fn key_password() -> String {
    fs::read_to_string(Path::new(TLS_DIR).join("client-key-password.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// The TLS options of a URL, with the client key's password.
fn tls_options(password: &str) -> String {
    format!(
        "tls=true&tlsCAFile={dir}/ca.pem&tlsCertificateKeyFile={dir}/client.pem&tlsCertificateKeyFilePassword={password}",
        dir = TLS_DIR
    )
}

/// A wire test server of this test's own, with TLS (client certificate
/// required) and one PLAIN user.
struct SecureServer {
    port: u16,
    child: Child,
}

impl SecureServer {
    fn start() -> Option<SecureServer> {
        let Some(_) = common::wire::url() else {
            return None; // the operator opted out of wire tests
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire_server/server.py");
        let python = std::env::var("EDN_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .args([script, "--port", "0", "--exit-on-stdin-eof"])
            .args(["--user", &format!("edn:{USER_PASSWORD}")])
            .args(["--tls-cert", &format!("{TLS_DIR}/server.pem")])
            .args(["--tls-key", &format!("{TLS_DIR}/server.key")])
            .args(["--tls-ca", &format!("{TLS_DIR}/ca.pem")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the wire test server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Some(SecureServer { port, child })
    }

    /// A URL that opens this server with every secret a URL can carry.
    fn url(&self) -> String {
        format!(
            "mongodb://edn:{USER_PASSWORD}@127.0.0.1:{port}/?authMechanism=PLAIN&authSource=$external\
             &authMechanismProperties=AWS_SESSION_TOKEN:{AWS_TOKEN}&{tls}\
             &directConnection=true&serverSelectionTimeoutMS=10000",
            port = self.port,
            tls = tls_options(&key_password())
        )
    }
}

impl Drop for SecureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every secret a test URL carries, by kind.
fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("user-info password", USER_PASSWORD.to_string()),
        ("tlsCertificateKeyFilePassword", key_password()),
        ("AWS_SESSION_TOKEN", AWS_TOKEN.to_string()),
        ("proxyPassword", PROXY_PASSWORD.to_string()),
    ]
}

fn assert_no_secret(what: &str, text: &[u8]) {
    for (kind, secret) in secrets() {
        let found = text.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(
            !found,
            "the {kind} leaked into {what}:\n{}",
            String::from_utf8_lossy(text)
        );
    }
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_secret_stays_out_of_every_output() {
    umask_022();
    let Some(server) = SecureServer::start() else {
        return;
    };
    let mut tool = Tool::wire("secrets").unwrap();
    tool.store = server.url();
    let fixtures = tool.path("fixtures");
    copy_dir(
        &Path::new(FIXTURES).join("test_database"),
        &fixtures.join(&tool.legacy_db),
    );
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let out = tool
            .command(&[&["--log-format", "json"][..], args].concat())
            .env("EDN_LOG", "info")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push((format!("stdout of {args:?}"), out.stdout));
        outputs.push((format!("stderr (logs) of {args:?}"), out.stderr));
    };
    run(&["import", fixtures.to_str().unwrap()]);
    run(&["phase0", "prepare"]);
    run(&["phase2", "backup"]);
    run(&["phase2", "migrate", "all"]);
    run(&["phase2", "validate"]);
    run(&["status"]);
    run(&["--json", "status"]);
    run(&["export", "out"]);

    for (what, bytes) in &outputs {
        assert_no_secret(what, bytes);
    }
    let mut files = files_below(&tool.path("backups"));
    files.extend(files_below(&tool.path("reports")));
    files.extend(files_below(&tool.path("out")));
    for file in &files {
        assert_no_secret(&file.display().to_string(), &fs::read(file).unwrap());
    }

    // Each output did carry the (redacted) URL, so the checks above read
    // something that could have leaked.
    let runs = fs::read_to_string(
        tool.path("out")
            .join(&tool.drawer_db)
            .join("migration_runs.jsonl"),
    )
    .unwrap();
    let masked = "edn:****@127.0.0.1";
    for (what, text) in [
        ("run records", runs.clone()),
        ("logs", String::from_utf8_lossy(&outputs[7].1).into_owned()),
        (
            "status",
            String::from_utf8_lossy(&outputs[10].1).into_owned(),
        ),
        ("reports", read_all(&files_below(&tool.path("reports")))),
        (
            "backup manifest",
            read_all(&files_below(&tool.path("backups"))),
        ),
    ] {
        assert!(
            text.contains(masked),
            "{what} do not name the store:\n{text}"
        );
        assert!(
            text.contains("tlsCertificateKeyFilePassword=****"),
            "{what}:\n{text}"
        );
        assert!(text.contains("AWS_SESSION_TOKEN:****"), "{what}:\n{text}");
    }
    assert!(
        runs.contains(&format!("\"user\":\"{}\"", whoami_user())),
        "{runs}"
    );
}

fn read_all(files: &[PathBuf]) -> String {
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json" || e == "md"))
        .map(|f| fs::read_to_string(f).unwrap())
        .collect()
}

fn whoami_user() -> String {
    edn_migrate::run::record::os_user()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn every_secret_stays_out_of_what_a_failed_connection_prints() {
    umask_022();
    let port = closed_port();
    let host = format!("127.0.0.1:{port}");
    let fast = "directConnection=true&serverSelectionTimeoutMS=500&connectTimeoutMS=500";
    let urls = [
        format!("mongodb://edn:{USER_PASSWORD}@{host}/?{fast}"),
        format!("mongodb://{host}/?{}&{fast}", tls_options(&key_password())),
        format!(
            "mongodb://{host}/?authMechanismProperties=AWS_SESSION_TOKEN:{AWS_TOKEN}&{fast}"
        ),
        format!("mongodb://{host}/?proxyHost=127.0.0.1&proxyUsername=u&proxyPassword={PROXY_PASSWORD}&{fast}"),
    ];
    for url in &urls {
        for json in [false, true] {
            let mut tool = Tool::sqlite();
            tool.store = url.clone();
            let mut args = vec!["--log-format", "json"];
            if json {
                args.push("--json");
            }
            args.push("status");
            let out = tool
                .command(&args)
                .env("EDN_LOG", "trace")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
            assert_no_secret("stdout", &out.stdout);
            assert_no_secret("stderr", &out.stderr);
            assert!(!stderr(&out).trim().is_empty(), "{url}: says nothing");
        }
    }
}

#[test]
fn a_url_with_an_encrypted_client_key_is_accepted() {
    umask_022();
    let port = closed_port();
    let mut tool = Tool::sqlite();
    tool.store = format!(
        "mongodb://127.0.0.1:{port}/?{}&directConnection=true&serverSelectionTimeoutMS=500",
        tls_options(&key_password())
    );
    let out = tool.run(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("feature"),
        "the URL itself was refused: {err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("tlsCertificateKeyFilePassword=****"), "{err}");
}

#[test]
fn a_wrong_client_key_password_is_named_without_echoing_it() {
    umask_022();
    let port = closed_port();
    let mut tool = Tool::sqlite();
    let wrong = "wrong-SECRET-key-password";
    tool.store = format!(
        "mongodb://127.0.0.1:{port}/?{}&directConnection=true&serverSelectionTimeoutMS=500",
        tls_options(wrong)
    );
    let out = tool.run(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("decrypt"), "{err}");
    assert!(!err.contains(wrong), "{err}");
}

#[test]
fn the_encrypted_client_key_opens_a_tls_server_that_requires_it() {
    umask_022();
    let Some(server) = SecureServer::start() else {
        return;
    };
    let mut tool = Tool::wire("tls").unwrap();
    tool.store = server.url();
    let out = tool.ok(&["--json", "status"]);
    assert!(out.contains("edn:****@127.0.0.1"), "{out}");

    // The same server refuses a client without the certificate.
    let mut bare = Tool::wire("tls_bare").unwrap();
    bare.store = format!(
        "mongodb://edn:{USER_PASSWORD}@127.0.0.1:{}/?authMechanism=PLAIN&tls=true&tlsCAFile={TLS_DIR}/ca.pem&directConnection=true&serverSelectionTimeoutMS=1000",
        server.port
    );
    let refused = bare.run(&["status"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
}

#[test]
fn wire_compression_is_negotiated_and_used() {
    umask_022();
    let Some(mut tool) = Tool::wire("compression") else {
        return;
    };
    let before = zlib_bytes(&tool.store);
    // The server speaks zlib only: the driver picks it from the list.
    tool.store = format!("{}&compressors=zstd,snappy,zlib", tool.store);
    let fixtures = tool.fixtures();
    tool.ok(&["import", fixtures.to_str().unwrap()]);
    tool.ok(&["export", "out"]);
    let after = zlib_bytes(&tool.store);
    assert!(
        after > before + 10_000,
        "zlib bytes decompressed by the server: {before} before, {after} after"
    );
}

/// Bytes the server has decompressed with zlib (its serverStatus).
fn zlib_bytes(url: &str) -> i64 {
    let client = mongodb::sync::Client::with_uri_str(url).unwrap();
    let status = client
        .database("admin")
        .run_command(bson::doc! {"serverStatus": 1})
        .run()
        .unwrap();
    status
        .get_document("network")
        .and_then(|n| n.get_document("compression"))
        .and_then(|c| c.get_document("zlib"))
        .and_then(|z| z.get_document("decompressor"))
        .and_then(|d| d.get_i64("bytesIn"))
        .unwrap()
}
