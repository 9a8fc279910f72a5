//! The backend's feature flags, edited in place in its `.env` file.
//!
//! The plan's incident scripts append `FLAG=false` to `.env` (a duplicate key
//! that some loaders ignore); a human editing the file under pressure can
//! break it. This editor changes exactly the value of the lines that set a
//! key and nothing else: comments, blank lines, order, `export`, quoting,
//! trailing spaces and comments, line endings and a missing final newline
//! all stay as they were. A key set on two lines is reported and both lines
//! are set. The new file replaces the old one atomically (a temporary file in
//! the same directory, then a rename), with the old file's mode and owner, so
//! the backend never reads half a file; a read-only file is refused untouched.

use crate::error::{CommandError, CommandResult};
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Dual-write: the backend also writes every questionnaire into its drawer.
pub const WRITE: &str = "USE_CLIENT_DRAWER_WRITE";
/// The switch: plan generation reads the drawers instead of the legacy collections.
pub const READ: &str = "USE_CLIENT_DRAWER_READ";
/// Phase 4: the legacy endpoints stop writing the legacy collections.
pub const DISABLE_LEGACY: &str = "DISABLE_LEGACY_ENDPOINTS";
/// The three flags of the plan, in the order they are turned on.
pub const ALL: [&str; 3] = [WRITE, READ, DISABLE_LEGACY];

/// One line of the file, split so the value can be replaced alone.
#[derive(Debug, Clone)]
struct Line {
    /// Everything up to the value: indentation, `export `, key, `=`, spaces.
    prefix: String,
    /// The value as written (with its quotes).
    token: String,
    /// Everything after the value: trailing spaces, an inline comment.
    suffix: String,
    /// `\n`, `\r\n`, or nothing for a last line without a newline.
    eol: &'static str,
    /// The key this line sets, if it is an assignment.
    key: Option<String>,
}

impl Line {
    fn text(&self) -> String {
        format!("{}{}{}{}", self.prefix, self.token, self.suffix, self.eol)
    }
}

/// A `.env` file as read, ready to be edited and written back.
#[derive(Debug, Clone)]
pub struct EnvFile {
    path: PathBuf,
    lines: Vec<Line>,
}

/// What setting one key did (recorded in the run; values are flag values,
/// never secrets: only the three flags are ever set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The key.
    pub key: String,
    /// Its value before (the last assignment, as a loader reads it), if any.
    pub old: Option<String>,
    /// Its value now.
    pub new: String,
    /// The 1-based line numbers that set it (after the change).
    pub lines: Vec<usize>,
    /// True when the key was set on more than one line (all were set).
    pub duplicate: bool,
    /// True when the key was absent and a line was appended.
    pub appended: bool,
    /// False when every line already held the value: nothing was written.
    pub changed: bool,
}

impl EnvFile {
    /// Reads and splits a `.env` file; a missing file is an error that says
    /// which file the tool was given.
    pub fn read(path: &Path) -> CommandResult<EnvFile> {
        let text = fs::read_to_string(path).map_err(|e| {
            CommandError::Input(format!(
                "cannot read the backend's .env file {}: {e}\npass the right file with --env-file PATH (or EDN_ENV_FILE)",
                path.display()
            ))
        })?;
        Ok(EnvFile::parse(path, &text))
    }

    /// Splits text into lines; no line is ever rejected (unknown syntax is
    /// kept verbatim and never edited).
    pub fn parse(path: &Path, text: &str) -> EnvFile {
        let mut lines = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (raw, eol, next) = match rest.find('\n') {
                Some(i) if rest[..i].ends_with('\r') => (&rest[..i - 1], "\r\n", &rest[i + 1..]),
                Some(i) => (&rest[..i], "\n", &rest[i + 1..]),
                None => (rest, "", ""),
            };
            lines.push(split_line(raw, eol));
            rest = next;
        }
        EnvFile {
            path: path.to_path_buf(),
            lines,
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value a loader sees: the last assignment of the key, unquoted.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.key.as_deref() == Some(key))
            .map(|l| unquote(&l.token))
    }

    /// Whether a flag is on, as the backend reads it
    /// (`os.getenv(KEY, "false").lower() == "true"`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Keys assigned on more than one line.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen: Vec<&str> = Vec::new();
        let mut dup: Vec<String> = Vec::new();
        for key in self.lines.iter().filter_map(|l| l.key.as_deref()) {
            if seen.contains(&key) {
                if !dup.iter().any(|d| d == key) {
                    dup.push(key.to_string());
                }
            } else {
                seen.push(key);
            }
        }
        dup
    }

    /// Sets a key on every line that assigns it, keeping each line's
    /// quoting, `export` and trailing text; appends `KEY=value` when absent.
    pub fn set(&mut self, key: &str, value: &str) -> Change {
        let old = self.get(key);
        let mut lines = Vec::new();
        let mut changed = false;
        for (i, line) in self.lines.iter_mut().enumerate() {
            if line.key.as_deref() != Some(key) {
                continue;
            }
            lines.push(i + 1);
            if unquote(&line.token) != value {
                line.token = requote(&line.token, value);
                changed = true;
            }
        }
        let appended = lines.is_empty();
        if appended {
            let eol = self.dominant_eol();
            if let Some(last) = self.lines.last_mut() {
                if last.eol.is_empty() {
                    last.eol = eol;
                }
            }
            self.lines.push(Line {
                prefix: format!("{key}="),
                token: value.to_string(),
                suffix: String::new(),
                eol,
                key: Some(key.to_string()),
            });
            lines.push(self.lines.len());
            changed = true;
        }
        Change {
            key: key.to_string(),
            old,
            new: value.to_string(),
            duplicate: lines.len() > 1,
            lines,
            appended,
            changed,
        }
    }

    /// The file's text as it would be written.
    pub fn render(&self) -> String {
        self.lines.iter().map(Line::text).collect()
    }

    fn dominant_eol(&self) -> &'static str {
        let crlf = self.lines.iter().filter(|l| l.eol == "\r\n").count();
        let lf = self.lines.iter().filter(|l| l.eol == "\n").count();
        if crlf > lf {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// Replaces the file atomically with the rendered text, keeping its mode
    /// and owner; refuses (file untouched) when it is read-only or its owner
    /// cannot be kept.
    pub fn write(&self) -> CommandResult<()> {
        write_atomic(&self.path, self.render().as_bytes())
    }
}

/// Sets several flags in one read and one atomic write (none when nothing
/// changes), returning what each did. Turning off a flag the file does not
/// set changes nothing: the backend reads an absent flag as `false`.
pub fn set_flags(path: &Path, values: &[(&str, &str)]) -> CommandResult<Vec<Change>> {
    let mut file = EnvFile::read(path)?;
    let changes: Vec<Change> = values
        .iter()
        .map(|(k, v)| match file.get(k) {
            None if *v == "false" => Change {
                key: k.to_string(),
                old: None,
                new: v.to_string(),
                lines: Vec::new(),
                duplicate: false,
                appended: false,
                changed: false,
            },
            _ => file.set(k, v),
        })
        .collect();
    if changes.iter().any(|c| c.changed) {
        file.write()?;
    }
    Ok(changes)
}

/// `true` / `false` as the flags are written.
pub fn bool_text(on: bool) -> &'static str {
    if on {
        "true"
    } else {
        "false"
    }
}

fn split_line(raw: &str, eol: &'static str) -> Line {
    let verbatim = || Line {
        prefix: raw.to_string(),
        token: String::new(),
        suffix: String::new(),
        eol,
        key: None,
    };
    let body = raw.trim_start();
    if body.is_empty() || body.starts_with('#') {
        return verbatim();
    }
    let after_export = body
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map(str::trim_start)
        .unwrap_or(body);
    let Some(eq) = after_export.find('=') else {
        return verbatim();
    };
    let key = after_export[..eq].trim_end();
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !valid {
        return verbatim();
    }
    let value_start = raw.len() - after_export.len() + eq + 1;
    let after_eq = &raw[value_start..];
    let spaces = after_eq.len() - after_eq.trim_start_matches([' ', '\t']).len();
    let value_start = value_start + spaces;
    let value = &raw[value_start..];
    let token_len = token_length(value);
    Line {
        prefix: raw[..value_start].to_string(),
        token: value[..token_len].to_string(),
        suffix: value[token_len..].to_string(),
        eol,
        key: Some(key.to_string()),
    }
}

/// The length of the value token at the start of `value`: a quoted string
/// through its closing quote, or an unquoted word up to trailing spaces or an
/// inline ` #` comment.
fn token_length(value: &str) -> usize {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(&q @ (b'"' | b'\'')) => {
            let mut i = 1;
            while i < bytes.len() {
                if q == b'"' && bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == q {
                    return i + 1;
                }
                i += 1;
            }
            value.len()
        }
        _ => {
            let end = value
                .char_indices()
                .find(|&(i, c)| c == '#' && i > 0 && value[..i].ends_with([' ', '\t']))
                .map_or(value.len(), |(i, _)| i);
            value[..end].trim_end_matches([' ', '\t']).len()
        }
    }
}

fn unquote(token: &str) -> String {
    if token.len() >= 2 && token.starts_with('\'') && token.ends_with('\'') {
        return token[1..token.len() - 1].to_string();
    }
    if token.len() >= 2 && token.starts_with('"') && token.ends_with('"') {
        let inner = &token[1..token.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    token.to_string()
}

/// The new token in the same quoting style as the old one.
fn requote(old: &str, value: &str) -> String {
    if old.starts_with('\'') {
        format!("'{value}'")
    } else if old.starts_with('"') {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

/// Writes `bytes` to a temporary file beside `path` with `path`'s mode and
/// owner, flushes it to disk, and renames it over `path` (a symlink is
/// followed: its target is replaced). The old file is never opened for
/// writing, so any failure leaves it exactly as it was.
fn write_atomic(path: &Path, bytes: &[u8]) -> CommandResult<()> {
    let real = fs::canonicalize(path)
        .map_err(CommandError::io(format!("resolving {}", path.display())))?;
    let meta =
        fs::metadata(&real).map_err(CommandError::io(format!("reading {}", real.display())))?;
    let mode = meta.permissions().mode() & 0o7777;
    let not_writable = meta.permissions().readonly()
        || fs::OpenOptions::new()
            .append(true)
            .open(&real)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    if not_writable {
        return Err(CommandError::Input(format!(
            "{} is read-only (mode {mode:o}): nothing was changed. Make it writable \
             (`chmod u+w {}`) or run as its owner, then run the command again",
            real.display(),
            real.display()
        )));
    }
    let dir = real.parent().unwrap_or(Path::new("."));
    let context = |what: &str| format!("{what} beside {} (nothing was changed)", real.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".edn-migrate-env-")
        .tempfile_in(dir)
        .map_err(CommandError::io(context("creating a temporary file")))?;
    let file = tmp.as_file_mut();
    file.write_all(bytes)
        .map_err(CommandError::io(context("writing a temporary file")))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(CommandError::io(context(
            "setting the mode of a temporary file",
        )))?;
    std::os::unix::fs::fchown(&*file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
        CommandError::Input(format!(
            "cannot give the new {} its owner {}:{} ({e}): nothing was changed; \
             run the command as that user (or root)",
            real.display(),
            meta.uid(),
            meta.gid()
        ))
    })?;
    file.sync_all()
        .map_err(CommandError::io(context("flushing a temporary file")))?;
    tmp.persist(&real).map_err(|e| CommandError::Io {
        context: context("replacing the file"),
        source: e.error,
    })?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(text: &str, key: &str, value: &str) -> (String, Change) {
        let mut f = EnvFile::parse(Path::new(".env"), text);
        let c = f.set(key, value);
        (f.render(), c)
    }

    #[test]
    fn plain_export_quoted_and_trailing_spaces_are_updated_in_place() {
        let (out, c) = edit(
            "# flags\nA=1\nUSE_CLIENT_DRAWER_READ=false\nB=2\n",
            READ,
            "true",
        );
        assert_eq!(out, "# flags\nA=1\nUSE_CLIENT_DRAWER_READ=true\nB=2\n");
        assert_eq!(
            (c.old.as_deref(), c.lines.clone(), c.changed),
            (Some("false"), vec![3], true)
        );
        let (out, _) = edit("export USE_CLIENT_DRAWER_READ=false\n", READ, "true");
        assert_eq!(out, "export USE_CLIENT_DRAWER_READ=true\n");
        let (out, _) = edit("USE_CLIENT_DRAWER_READ=\"false\"\n", READ, "true");
        assert_eq!(out, "USE_CLIENT_DRAWER_READ=\"true\"\n");
        let (out, _) = edit("USE_CLIENT_DRAWER_READ='false'  # why\n", READ, "true");
        assert_eq!(out, "USE_CLIENT_DRAWER_READ='true'  # why\n");
        let (out, c) = edit("USE_CLIENT_DRAWER_READ=false   \n", READ, "true");
        assert_eq!(out, "USE_CLIENT_DRAWER_READ=true   \n");
        assert_eq!(c.old.as_deref(), Some("false"));
        let (out, _) = edit("  USE_CLIENT_DRAWER_READ = false # off\n", READ, "true");
        assert_eq!(out, "  USE_CLIENT_DRAWER_READ = true # off\n");
    }

    #[test]
    fn commented_out_and_similar_keys_are_left_alone() {
        let text = "# USE_CLIENT_DRAWER_READ=true\nUSE_CLIENT_DRAWER_READ_X=1\nexported=1\n";
        let (out, c) = edit(text, READ, "false");
        assert_eq!(out, format!("{text}USE_CLIENT_DRAWER_READ=false\n"));
        assert!(c.appended && c.changed && c.old.is_none());
    }

    #[test]
    fn duplicates_are_reported_and_both_set() {
        let (out, c) = edit(
            "READ=1\nUSE_CLIENT_DRAWER_READ=false\nX=2\nUSE_CLIENT_DRAWER_READ=true\n",
            READ,
            "false",
        );
        assert_eq!(
            out,
            "READ=1\nUSE_CLIENT_DRAWER_READ=false\nX=2\nUSE_CLIENT_DRAWER_READ=false\n"
        );
        assert!(c.duplicate);
        assert_eq!(c.lines, vec![2, 4]);
        assert_eq!(
            c.old.as_deref(),
            Some("true"),
            "a loader reads the last line"
        );
        assert!(c.changed);
    }

    #[test]
    fn missing_final_newline_and_crlf_are_kept() {
        let (out, _) = edit("A=1\nUSE_CLIENT_DRAWER_READ=false", READ, "true");
        assert_eq!(out, "A=1\nUSE_CLIENT_DRAWER_READ=true");
        let (out, _) = edit("A=1", READ, "true");
        assert_eq!(out, "A=1\nUSE_CLIENT_DRAWER_READ=true\n");
        let (out, _) = edit(
            "A=1\r\nUSE_CLIENT_DRAWER_READ=false\r\nB=2\r\n",
            READ,
            "true",
        );
        assert_eq!(out, "A=1\r\nUSE_CLIENT_DRAWER_READ=true\r\nB=2\r\n");
        let (out, _) = edit("A=1\r\nB=2\r\n", READ, "true");
        assert_eq!(out, "A=1\r\nB=2\r\nUSE_CLIENT_DRAWER_READ=true\r\n");
    }

    #[test]
    fn setting_the_same_value_changes_nothing() {
        let (out, c) = edit("USE_CLIENT_DRAWER_WRITE=true\n", WRITE, "true");
        assert_eq!(out, "USE_CLIENT_DRAWER_WRITE=true\n");
        assert!(!c.changed);
    }

    #[test]
    fn flags_read_like_the_backend() {
        let f = EnvFile::parse(
            Path::new(".env"),
            "USE_CLIENT_DRAWER_WRITE=TRUE\nUSE_CLIENT_DRAWER_READ=\"true\"\nDISABLE_LEGACY_ENDPOINTS=1\n",
        );
        assert!(f.flag(WRITE) && f.flag(READ));
        assert!(
            !f.flag(DISABLE_LEGACY),
            "only the word true turns a flag on"
        );
    }
}
