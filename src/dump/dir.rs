//! A mongodump folder: `DIR/<db>/<coll>.bson` and `<coll>.metadata.json`,
//! each possibly gzipped (`.bson.gz`, `.metadata.json.gz`: `mongodump
//! --gzip`). Files at the top of DIR (`oplog.bson`, `prelude.json`, a
//! backup's `manifest.json`) are not collections and are left alone here.
//!
//! Collection names are URL-escaped in file names (mongo-tools'
//! `util.EscapeCollectionName`, `url.PathEscape`), so `a%2Fb.bson` is the
//! collection `a/b`.

use super::MAX_DOCUMENT_BYTES;
use crate::backup::BsonStream;
use crate::error::{CommandError, CommandResult};
use bson::Document;
use flate2::read::MultiGzDecoder;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One file of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its path inside the dump folder, `/`-separated: what errors name.
    pub label: String,
    /// Whether it is gzipped.
    pub gzip: bool,
}

/// One collection's files; either may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirCollection {
    /// The database folder's name.
    pub db: String,
    /// The collection name the file names spell (unescaped).
    pub coll: String,
    /// `<coll>.bson` or `<coll>.bson.gz`.
    pub data: Option<DumpFile>,
    /// `<coll>.metadata.json` or `<coll>.metadata.json.gz`.
    pub metadata: Option<DumpFile>,
}

/// The collections of a dump folder, by database then collection name.
pub fn find(dir: &Path) -> CommandResult<Vec<DirCollection>> {
    let mut found: BTreeMap<(String, String), DirCollection> = BTreeMap::new();
    for db_dir in sorted_entries(dir)? {
        if !db_dir.is_dir() {
            continue;
        }
        let db = file_name(&db_dir);
        for path in sorted_entries(&db_dir)? {
            let name = file_name(&path);
            let Some((stem, is_data, gzip)) = classify(&name) else {
                continue;
            };
            let coll = percent_encoding::percent_decode_str(stem)
                .decode_utf8()
                .map_err(|_| {
                    CommandError::Input(format!(
                        "{db}/{name}: the escaped collection name is not UTF-8"
                    ))
                })?
                .into_owned();
            let file = DumpFile {
                label: format!("{db}/{name}"),
                path,
                gzip,
            };
            let entry = found
                .entry((db.clone(), coll.clone()))
                .or_insert_with(|| DirCollection {
                    db: db.clone(),
                    coll,
                    data: None,
                    metadata: None,
                });
            let slot = if is_data {
                &mut entry.data
            } else {
                &mut entry.metadata
            };
            if let Some(other) = slot {
                return Err(CommandError::Input(format!(
                    "{} and {} are the same collection: keep one of them",
                    other.label, file.label
                )));
            }
            *slot = Some(file);
        }
    }
    Ok(found.into_values().collect())
}

/// `(escaped collection name, is it the data file, is it gzipped)`.
fn classify(name: &str) -> Option<(&str, bool, bool)> {
    [
        (".metadata.json.gz", false, true),
        (".metadata.json", false, false),
        (".bson.gz", true, true),
        (".bson", true, false),
    ]
    .into_iter()
    .find_map(|(suffix, is_data, gzip)| {
        let stem = name.strip_suffix(suffix)?;
        (!stem.is_empty()).then_some((stem, is_data, gzip))
    })
}

impl DumpFile {
    /// The whole file, uncompressed: for metadata, which is small.
    pub fn read_all(&self) -> CommandResult<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open()?
            .read_to_end(&mut bytes)
            .map_err(|e| CommandError::Input(format!("{}: cannot be read: {e}", self.label)))?;
        Ok(bytes)
    }

    /// The file's documents, one at a time.
    pub fn documents(&self) -> CommandResult<Documents> {
        let consumed = Rc::new(Cell::new(0));
        let reader = Tally {
            inner: self.open()?,
            consumed: Rc::clone(&consumed),
        };
        let label = if self.gzip {
            format!("{} (uncompressed)", self.label)
        } else {
            self.label.clone()
        };
        Ok(Documents {
            stream: BsonStream::new(reader, label.clone()),
            consumed,
            label,
        })
    }

    fn open(&self) -> CommandResult<Box<dyn Read>> {
        let file = File::open(&self.path)
            .map_err(|e| CommandError::Input(format!("{}: cannot be read: {e}", self.label)))?;
        let file = BufReader::new(file);
        Ok(if self.gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(file)))
        } else {
            Box::new(file)
        })
    }
}

/// A `.bson` file's documents, checked against MongoDB's 16 MiB limit.
pub struct Documents {
    stream: BsonStream<Tally<Box<dyn Read>>>,
    consumed: Rc<Cell<u64>>,
    label: String,
}

impl Documents {
    /// The next document; `None` at a clean end; an error naming the file
    /// and the byte offset (uncompressed, for a gzipped file) otherwise.
    pub fn next_document(&mut self) -> CommandResult<Option<Document>> {
        let at = self.consumed.get();
        let doc = self.stream.next_document()?;
        let len = self.consumed.get() - at;
        if len > MAX_DOCUMENT_BYTES as u64 {
            return Err(CommandError::Input(format!(
                "{} at byte offset {at}: a {len}-byte document is larger than MongoDB's 16 MiB limit",
                self.label
            )));
        }
        Ok(doc)
    }
}

/// Counts the bytes the BSON reader takes, which are exactly the documents'.
struct Tally<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

fn sorted_entries(dir: &Path) -> CommandResult<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(CommandError::io(format!(
        "reading folder {}",
        dir.display()
    )))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = GzEncoder::new(Vec::new(), flate2::Compression::default());
        out.write_all(bytes).unwrap();
        out.finish().unwrap()
    }

    fn read(file: &DumpFile) -> CommandResult<Vec<Document>> {
        let mut docs = file.documents()?;
        let mut out = Vec::new();
        while let Some(d) = docs.next_document()? {
            out.push(d);
        }
        Ok(out)
    }

    #[test]
    fn files_group_by_collection_and_names_unescape() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d");
        fs::create_dir(&db).unwrap();
        for name in [
            "a%2Fb.bson",
            "a%2Fb.metadata.json",
            "c.bson.gz",
            "c.metadata.json.gz",
            "only.metadata.json",
            "notes.txt",
        ] {
            fs::write(db.join(name), b"").unwrap();
        }
        fs::write(dir.path().join("oplog.bson"), b"").unwrap();
        let found = find(dir.path()).unwrap();
        let names: Vec<(&str, bool, bool)> = found
            .iter()
            .map(|c| {
                (
                    c.coll.as_str(),
                    c.data.as_ref().is_some_and(|f| f.gzip),
                    c.data.is_some(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("a/b", false, true),
                ("c", true, true),
                ("only", false, false)
            ]
        );
        assert_eq!(found[0].data.as_ref().unwrap().label, "d/a%2Fb.bson");
    }

    #[test]
    fn a_collection_both_plain_and_gzipped_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d");
        fs::create_dir(&db).unwrap();
        fs::write(db.join("c.bson"), b"").unwrap();
        fs::write(db.join("c.bson.gz"), b"").unwrap();
        let err = find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("d/c.bson and d/c.bson.gz"), "{err}");
    }

    #[test]
    fn gzipped_documents_read_and_truncation_names_the_uncompressed_offset() {
        let dir = tempfile::tempdir().unwrap();
        // Text that does not compress, so a cut file still yields documents.
        let mut seed = 7_u64;
        let mut noise = || {
            (0..2000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    char::from(b'a' + (seed >> 59) as u8)
                })
                .collect::<String>()
        };
        let docs: Vec<Document> = (0..20).map(|i| doc! {"_id": i, "s": noise()}).collect();
        let mut starts = vec![0];
        for d in &docs {
            starts.push(starts.last().unwrap() + bson::to_vec(d).unwrap().len());
        }
        let plain: Vec<u8> = docs.iter().flat_map(|d| bson::to_vec(d).unwrap()).collect();
        let packed = gzip(&plain);
        let path = dir.path().join("c.bson.gz");
        fs::write(&path, &packed).unwrap();
        let file = DumpFile {
            path: path.clone(),
            label: "d/c.bson.gz".into(),
            gzip: true,
        };
        assert_eq!(read(&file).unwrap(), docs);

        fs::write(&path, &packed[..packed.len() * 3 / 4]).unwrap();
        let err = read(&file).unwrap_err().to_string();
        let offset: usize = err
            .strip_prefix("d/c.bson.gz (uncompressed) at byte offset ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!(offset > 0 && starts.contains(&offset), "{err}");
    }

    #[test]
    fn a_document_over_16_mib_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let small = bson::to_vec(&doc! {"_id": 0}).unwrap();
        let big = bson::to_vec(&doc! {"_id": 1, "s": "x".repeat(MAX_DOCUMENT_BYTES)}).unwrap();
        assert!(big.len() > MAX_DOCUMENT_BYTES);
        let path = dir.path().join("c.bson");
        fs::write(&path, [small.clone(), big].concat()).unwrap();
        let file = DumpFile {
            path,
            label: "d/c.bson".into(),
            gzip: false,
        };
        let err = read(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("d/c.bson at byte offset {}:", small.len())),
            "{err}"
        );
        assert!(err.contains("16 MiB"), "{err}");
    }
}
