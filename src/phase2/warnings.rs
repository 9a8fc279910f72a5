//! The per-document warnings a validation lists (user, kind, field path,
//! document id; never a value), counted by kind in memory and spooled to an
//! anonymous temporary file, one JSON line each: their number grows with the
//! store's users, the validation's memory must not.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

/// Warnings seen so far: counts in memory, the listing on disk.
#[derive(Debug, Default)]
pub(crate) struct WarningLog {
    count: u64,
    by_kind: BTreeMap<String, u64>,
    spool: Option<BufWriter<File>>,
}

impl WarningLog {
    /// Counts a warning and appends it to the spool.
    pub(crate) fn push(&mut self, warning: &Value) -> std::io::Result<()> {
        self.count += 1;
        let kind = warning["kind"].as_str().unwrap_or_default();
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
        let spool = match &mut self.spool {
            Some(spool) => spool,
            None => self.spool.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        serde_json::to_writer(&mut *spool, warning)?;
        spool.write_all(b"\n")
    }

    /// How many warnings there are.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// How many of each kind.
    pub(crate) fn by_kind(&self) -> &BTreeMap<String, u64> {
        &self.by_kind
    }

    /// Every warning in the order they came, read back from the spool one
    /// at a time (as often as needed).
    pub(crate) fn each(
        &mut self,
        mut visit: impl FnMut(Value) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let Some(spool) = &mut self.spool else {
            return Ok(());
        };
        spool.flush()?;
        let mut file = spool.get_ref().try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        for line in BufReader::new(file).lines() {
            visit(serde_json::from_str(&line?)?)?;
        }
        spool.get_mut().seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Every warning in memory: only for `--warnings`, which asks to print them all.
    pub(crate) fn all(&mut self) -> std::io::Result<Vec<Value>> {
        let mut out = Vec::new();
        self.each(|w| {
            out.push(w);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn warnings_come_back_in_order_every_time_and_are_counted_by_kind() {
        let mut log = WarningLog::default();
        assert_eq!(log.all().unwrap(), Vec::<Value>::new());
        let warnings: Vec<Value> = (0..2500)
            .map(|i| json!({ "user_id": format!("u{i}"), "kind": if i % 3 == 0 { "a" } else { "b" }, "field": "f", "document": "d" }))
            .collect();
        for w in &warnings[..1000] {
            log.push(w).unwrap();
        }
        assert_eq!(log.all().unwrap(), warnings[..1000].to_vec());
        for w in &warnings[1000..] {
            log.push(w).unwrap();
        }
        assert_eq!(log.all().unwrap(), warnings);
        assert_eq!(
            log.all().unwrap(),
            warnings,
            "a second reading sees the same"
        );
        assert_eq!(log.count(), 2500);
        assert_eq!(log.by_kind()["a"], 834);
        assert_eq!(log.by_kind()["b"], 1666);
    }
}
