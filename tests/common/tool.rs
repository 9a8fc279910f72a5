//! Running the `edn-migrate` binary in a scratch folder against one store.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy");

/// Runs `edn-migrate` against one store, in a scratch working directory.
pub struct Tool {
    pub store: String,
    pub legacy_db: String,
    pub drawer_db: String,
    pub work: tempfile::TempDir,
}

impl Tool {
    pub fn sqlite() -> Tool {
        let work = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", work.path().join("store.db").display());
        Tool {
            store,
            legacy_db: "test_database".into(),
            drawer_db: "edn360_app".into(),
            work,
        }
    }

    pub fn wire(case: &str) -> Option<Tool> {
        let url = super::wire::url()?;
        let work = tempfile::tempdir().unwrap();
        let prefix = super::wire::fresh_db(case);
        Some(Tool {
            store: url,
            legacy_db: format!("{prefix}_l"),
            drawer_db: format!("{prefix}_d"),
            work,
        })
    }

    /// The command for `edn-migrate ARGS` against this tool's store.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_edn-migrate"));
        command
            .args([
                "--store",
                &self.store,
                "--legacy-db",
                &self.legacy_db,
                "--drawer-db",
                &self.drawer_db,
            ])
            .args(args)
            .current_dir(self.work.path())
            .env_remove("MONGO_URL")
            .env_remove("DB_NAME")
            .env_remove("EDN360_DB_NAME")
            .env_remove("EDN_BACKUP_DIR")
            .env_remove("EDN_ENV_FILE")
            .env_remove("EDN_RESTART_CMD")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "edn-migrate {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// The fixtures, with database folders renamed to this tool's databases.
    pub fn fixtures(&self) -> PathBuf {
        let dir = self.path("fixtures");
        copy_dir(
            &Path::new(FIXTURES).join("test_database"),
            &dir.join(&self.legacy_db),
        );
        copy_dir(
            &Path::new(FIXTURES).join("edn360_app"),
            &dir.join(&self.drawer_db),
        );
        dir
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Every file below `dir`, relative path → bytes.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for db in fs::read_dir(dir).unwrap() {
        let db = db.unwrap().path();
        for file in fs::read_dir(&db).unwrap() {
            let file = file.unwrap().path();
            let name = format!(
                "{}/{}",
                db.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            files.push((name, fs::read(&file).unwrap()));
        }
    }
    files.sort();
    files
}

pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}
