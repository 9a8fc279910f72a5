//! The `.env` editor on real files: everything around the value is kept,
//! the replace is atomic with the old mode and owner, and a read-only file
//! is refused untouched.

use edn_migrate::flags::{set_flags, EnvFile, READ, WRITE};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join(".env");
    fs::write(&path, text).unwrap();
    path
}

const BACKEND_ENV: &str = "\
# ============================================
# FEATURE FLAGS - FASE 1 DUAL WRITE
# ============================================
MONGO_URL=\"mongodb://localhost:27017\"

export USE_CLIENT_DRAWER_WRITE=false   # phase 1
USE_CLIENT_DRAWER_READ='false'
CORS_ORIGINS=*
";

#[test]
fn a_real_backend_file_changes_only_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), BACKEND_ENV);
    let changes = set_flags(&path, &[(WRITE, "true"), (READ, "true")]).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        BACKEND_ENV
            .replace("WRITE=false", "WRITE=true")
            .replace("READ='false'", "READ='true'")
    );
    assert_eq!(changes[0].lines, vec![6]);
    assert_eq!(changes[1].lines, vec![7]);
    assert_eq!(changes[0].old.as_deref(), Some("false"));
    let reread = EnvFile::read(&path).unwrap();
    assert!(reread.flag(WRITE) && reread.flag(READ));
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn duplicate_keys_are_reported_and_every_line_is_set() {
    let dir = tempfile::tempdir().unwrap();
    // What the plan's incident script leaves: `echo KEY=false >> .env`.
    let path = file(
        dir.path(),
        "USE_CLIENT_DRAWER_READ=true\nOTHER=1\nUSE_CLIENT_DRAWER_READ=false\n",
    );
    let c = &set_flags(&path, &[(READ, "true")]).unwrap()[0];
    assert!(c.duplicate && c.changed);
    assert_eq!(c.lines, vec![1, 3]);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "USE_CLIENT_DRAWER_READ=true\nOTHER=1\nUSE_CLIENT_DRAWER_READ=true\n"
    );
    assert_eq!(
        EnvFile::read(&path).unwrap().duplicates(),
        vec![READ.to_string()]
    );
}

#[test]
fn crlf_and_a_missing_final_newline_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "A=1\r\n\r\n# c\r\nUSE_CLIENT_DRAWER_WRITE=false",
    );
    set_flags(&path, &[(WRITE, "true")]).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "A=1\r\n\r\n# c\r\nUSE_CLIENT_DRAWER_WRITE=true"
    );
    set_flags(&path, &[(READ, "true")]).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "A=1\r\n\r\n# c\r\nUSE_CLIENT_DRAWER_WRITE=true\r\nUSE_CLIENT_DRAWER_READ=true\r\n"
    );
}

#[test]
fn mode_and_owner_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "USE_CLIENT_DRAWER_WRITE=false\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let me = fs::metadata(&path).unwrap();
    // As root (CI containers), give the file another owner to prove it is kept.
    let owner = if me.uid() == 0 {
        std::os::unix::fs::chown(&path, Some(1234), Some(2345)).unwrap();
        (1234, 2345)
    } else {
        (me.uid(), me.gid())
    };
    set_flags(&path, &[(WRITE, "true")]).unwrap();
    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.permissions().mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), owner);
    assert_ne!(
        after.ino(),
        me.ino(),
        "replaced by rename, not rewritten in place"
    );
}

#[test]
fn a_read_only_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = "USE_CLIENT_DRAWER_READ=true\n";
    let path = file(dir.path(), text);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let before = fs::metadata(&path).unwrap();
    let err = set_flags(&path, &[(READ, "false")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only") && err.contains("chmod"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mode()),
        (before.ino(), before.mtime(), before.mode())
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_symlinked_env_keeps_its_link_and_the_target_changes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backend.env");
    fs::write(&target, "USE_CLIENT_DRAWER_WRITE=false\n").unwrap();
    let link = dir.path().join(".env");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    set_flags(&link, &[(WRITE, "true")]).unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "USE_CLIENT_DRAWER_WRITE=true\n"
    );
}

#[test]
fn a_missing_file_names_the_flag_that_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = set_flags(&dir.path().join(".env"), &[(READ, "false")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--env-file"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn turning_off_an_absent_flag_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "A=1\n");
    let c = &set_flags(&path, &[(READ, "false")]).unwrap()[0];
    assert!(!c.changed && !c.appended && c.old.is_none());
    assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\n");
}

#[test]
fn an_unchanged_value_does_not_rewrite_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "USE_CLIENT_DRAWER_WRITE=true\n");
    let before = fs::metadata(&path).unwrap().ino();
    let c = &set_flags(&path, &[(WRITE, "true")]).unwrap()[0];
    assert!(!c.changed);
    assert_eq!(fs::metadata(&path).unwrap().ino(), before);
}
