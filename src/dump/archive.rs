//! `mongodump --archive`: every collection of a dump in one stream.
//!
//! The format is the one mongo-tools documents in `common/archive/spec.md`
//! and implements in `common/archive/` (`archive.go`, `parser.go`,
//! `prelude.go`, `demultiplexer.go`, `multiplexer.go`):
//!
//! ```text
//! archive   = magic, header, *collection-metadata, terminator,
//!             *(namespace-segment | namespace-eof)
//! magic     = 6d e2 99 81          (0x8199e26d, little-endian)
//! terminator= ff ff ff ff
//! header    = {concurrent_collections, version "0.1", server_version, tool_version}
//! collection-metadata = {db, collection, metadata (Extended JSON string), size, type}
//! namespace-segment   = {db, collection, EOF: false, CRC: 0}, *document, terminator
//! namespace-eof       = {db, collection, EOF: true, CRC}, terminator
//! ```
//!
//! Collections dumped in parallel interleave their segments. `CRC` is the
//! CRC-64 (Go's ECMA table, i.e. CRC-64/XZ) of all the namespace's document
//! bytes, as mongorestore checks it. As in mongo-tools' parser, no document
//! or header may exceed 16 MiB, and an empty collection is a segment with no
//! document followed by its EOF block (what mongodump writes).

use super::MAX_DOCUMENT_BYTES;
use crate::error::{CommandError, CommandResult};
use crate::store::Ns;
use bson::{Bson, Document};
use crc::{Crc, Digest, CRC_64_XZ};
use std::collections::HashMap;
use std::io::{self, Read};

/// The first four bytes of every archive.
pub const MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];
/// The length that is not a length: the end of a block.
const TERMINATOR: i32 = -1;
/// The archive's checksum: Go's `crc64.MakeTable(crc64.ECMA)`.
static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_XZ);

/// The archive's header document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The archive format version (`0.1` is the only one so far).
    pub version: String,
    /// The MongoDB version the dump was taken from.
    pub server_version: String,
    /// The mongodump version that wrote it.
    pub tool_version: String,
}

/// One namespace the prelude announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreludeEntry {
    /// Where the data comes from.
    pub ns: Ns,
    /// The collection's metadata, as a `metadata.json` file would hold it
    /// (empty when mongodump had none).
    pub metadata: String,
    /// `collection`, `view`, `timeseries` (empty in older archives).
    pub kind: String,
}

/// What the archive says next.
#[derive(Debug)]
pub enum Event {
    /// A document of the namespace at this index of [`Archive::namespaces`].
    Document(usize, Document),
    /// A segment of that namespace ended: a good moment to write a batch.
    SegmentEnd(usize),
}

/// Reads an archive from its first byte: the prelude at once, then the
/// namespaces' documents one by one, checking their framing and CRC.
pub struct Archive<R> {
    frames: Frames<R>,
    header: Header,
    prelude: Vec<PreludeEntry>,
    namespaces: Vec<Namespace>,
    by_name: HashMap<Ns, usize>,
    current: Option<usize>,
    finished: bool,
}

struct Namespace {
    ns: Ns,
    crc: Digest<'static, u64>,
    closed: bool,
}

impl<R: Read> Archive<R> {
    /// Checks the magic number and reads the prelude. `label` names the
    /// stream in every error.
    pub fn open(reader: R, label: String) -> CommandResult<Archive<R>> {
        let mut frames = Frames {
            reader,
            label,
            offset: 0,
        };
        let mut magic = [0u8; 4];
        let got = fill(&mut frames.reader, &mut magic).map_err(|e| frames.io(0, e))?;
        if got < 4 || magic != MAGIC {
            return Err(CommandError::Input(format!(
                "{}: not a mongodump archive (it does not start with the magic number 0x8199e26d); \
                 pass a dump folder or a file written by `mongodump --archive[=FILE] [--gzip]`",
                frames.label
            )));
        }
        frames.offset = 4;
        let (at, header) = match frames.next()? {
            Some((at, Frame::Document(bytes))) => (at, bytes),
            _ => return Err(frames.bad(4, "truncated: the archive header is missing".into())),
        };
        let header = parse_header(&frames.doc(at, &header)?);
        let mut prelude = Vec::new();
        loop {
            match frames.next()? {
                Some((_, Frame::Terminator)) => break,
                Some((at, Frame::Document(bytes))) => {
                    let entry = parse_entry(&frames.doc(at, &bytes)?)
                        .map_err(|why| frames.bad(at, format!("malformed prelude: {why}")))?;
                    prelude.push(entry);
                }
                None => {
                    let at = frames.offset;
                    return Err(frames.bad(at, "truncated: the prelude does not end".into()));
                }
            }
        }
        Ok(Archive {
            frames,
            header,
            prelude,
            namespaces: Vec::new(),
            by_name: HashMap::new(),
            current: None,
            finished: false,
        })
    }

    /// The archive's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The namespaces the prelude announces, in its order.
    pub fn prelude(&self) -> &[PreludeEntry] {
        &self.prelude
    }

    /// The namespace behind an index an [`Event`] carries.
    pub fn namespace(&self, index: usize) -> &Ns {
        &self.namespaces[index].ns
    }

    /// The next document or segment end; `None` once the archive ended
    /// cleanly with every announced collection complete.
    pub fn next_event(&mut self) -> CommandResult<Option<Event>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let Some((at, frame)) = self.frames.next()? else {
                return self.end().map(|()| None);
            };
            match (frame, self.current) {
                (Frame::Document(bytes), Some(index)) => {
                    let doc = self.frames.doc(at, &bytes)?;
                    self.namespaces[index].crc.update(&bytes);
                    return Ok(Some(Event::Document(index, doc)));
                }
                (Frame::Terminator, Some(index)) => {
                    self.current = None;
                    return Ok(Some(Event::SegmentEnd(index)));
                }
                (Frame::Document(bytes), None) => {
                    let header = self.frames.doc(at, &bytes)?;
                    self.namespace_header(at, &header)?;
                }
                (Frame::Terminator, None) => {
                    return Err(self.frames.bad(
                        at,
                        "malformed: a terminator where a namespace header should be".into(),
                    ))
                }
            }
        }
    }

    /// Opens a segment, or closes a namespace and checks its CRC.
    fn namespace_header(&mut self, at: u64, header: &Document) -> CommandResult<()> {
        let ns = match (header.get_str("db"), header.get_str("collection")) {
            (Ok(db), Ok(coll)) if !coll.is_empty() => Ns::new(db, coll),
            _ => {
                return Err(self.frames.bad(
                    at,
                    "malformed: a namespace header without db and collection".into(),
                ))
            }
        };
        let index = match self.by_name.get(&ns) {
            Some(&index) => index,
            None => {
                self.namespaces.push(Namespace {
                    ns: ns.clone(),
                    crc: CRC64.digest(),
                    closed: false,
                });
                self.by_name.insert(ns.clone(), self.namespaces.len() - 1);
                self.namespaces.len() - 1
            }
        };
        if self.namespaces[index].closed {
            return Err(self
                .frames
                .bad(at, format!("malformed: {ns} continues after its end")));
        }
        if !header.get_bool("EOF").unwrap_or(false) {
            self.current = Some(index);
            return Ok(());
        }
        let expected = match header.get("CRC") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            _ => {
                return Err(self
                    .frames
                    .bad(at, format!("malformed: the end of {ns} has no CRC")))
            }
        };
        let namespace = &mut self.namespaces[index];
        namespace.closed = true;
        let actual = std::mem::replace(&mut namespace.crc, CRC64.digest()).finalize() as i64;
        if actual != expected {
            return Err(self.frames.bad(
                at,
                format!("corrupt: the documents of {ns} have CRC-64 {actual}, its end block says {expected}"),
            ));
        }
        match self.frames.next()? {
            Some((_, Frame::Terminator)) => Ok(()),
            Some((doc_at, Frame::Document(_))) => Err(self.frames.bad(
                doc_at,
                format!("malformed: a document after the end of {ns}"),
            )),
            None => {
                let end = self.frames.offset;
                Err(self
                    .frames
                    .bad(end, "truncated: the archive ends inside a block".into()))
            }
        }
    }

    /// At the end of the stream: every announced collection must be complete.
    fn end(&mut self) -> CommandResult<()> {
        let at = self.frames.offset;
        for entry in &self.prelude {
            if !matches!(entry.kind.as_str(), "" | "collection") {
                continue;
            }
            let closed = self
                .by_name
                .get(&entry.ns)
                .is_some_and(|&i| self.namespaces[i].closed);
            if !closed {
                return Err(self.frames.bad(
                    at,
                    format!(
                        "truncated: the archive ends before {} is complete",
                        entry.ns
                    ),
                ));
            }
        }
        if let Some(open) = self.namespaces.iter().find(|n| !n.closed) {
            return Err(self.frames.bad(
                at,
                format!("truncated: the archive ends before {} is complete", open.ns),
            ));
        }
        self.finished = true;
        Ok(())
    }
}

fn parse_header(doc: &Document) -> Header {
    let text = |key: &str| doc.get_str(key).unwrap_or_default().to_string();
    Header {
        version: text("version"),
        server_version: text("server_version"),
        tool_version: text("tool_version"),
    }
}

fn parse_entry(doc: &Document) -> Result<PreludeEntry, String> {
    let db = doc.get_str("db").map_err(|_| "an entry without db")?;
    let coll = doc
        .get_str("collection")
        .map_err(|_| "an entry without collection")?;
    let text = |key: &str| match doc.get(key) {
        None | Some(Bson::Null) => Ok(String::new()),
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{db}.{coll}: {key} is {other}, not a string")),
    };
    Ok(PreludeEntry {
        ns: Ns::new(db, coll),
        metadata: text("metadata")?,
        kind: text("type")?,
    })
}

/// One block element: a BSON document (its bytes) or the terminator.
enum Frame {
    Document(Vec<u8>),
    Terminator,
}

/// The archive's low-level framing, with the byte offset of every frame.
struct Frames<R> {
    reader: R,
    label: String,
    offset: u64,
}

impl<R: Read> Frames<R> {
    /// The next frame and its offset; `None` at a clean end of the stream.
    fn next(&mut self) -> CommandResult<Option<(u64, Frame)>> {
        let at = self.offset;
        let mut prefix = [0u8; 4];
        let got = fill(&mut self.reader, &mut prefix).map_err(|e| self.io(at, e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Err(self.bad(
                at,
                format!("truncated: {got} byte(s) where a 4-byte length or terminator should be"),
            ));
        }
        self.offset += 4;
        let declared = i32::from_le_bytes(prefix);
        if declared == TERMINATOR {
            return Ok(Some((at, Frame::Terminator)));
        }
        let len = match usize::try_from(declared) {
            Ok(len) if (5..=MAX_DOCUMENT_BYTES).contains(&len) => len,
            _ => {
                return Err(self.bad(
                    at,
                    format!(
                        "malformed: length {declared} is neither a terminator nor a BSON document of 5 to {MAX_DOCUMENT_BYTES} bytes"
                    ),
                ))
            }
        };
        let mut bytes = vec![0u8; len];
        bytes[..4].copy_from_slice(&prefix);
        let got = fill(&mut self.reader, &mut bytes[4..]).map_err(|e| self.io(at, e))?;
        if got < len - 4 {
            return Err(self.bad(
                at,
                format!(
                    "truncated: the document declares {len} bytes, only {} remain",
                    got + 4
                ),
            ));
        }
        self.offset += (len - 4) as u64;
        if bytes[len - 1] != 0 {
            return Err(self.bad(
                at,
                format!("malformed: the {len}-byte document does not end with a NUL byte"),
            ));
        }
        Ok(Some((at, Frame::Document(bytes))))
    }

    fn doc(&self, at: u64, bytes: &[u8]) -> CommandResult<Document> {
        Document::from_reader(bytes).map_err(|e| self.bad(at, format!("malformed document: {e}")))
    }

    fn bad(&self, at: u64, why: String) -> CommandError {
        CommandError::Input(format!("{} at byte offset {at}: {why}", self.label))
    }

    fn io(&self, at: u64, e: io::Error) -> CommandError {
        CommandError::Input(format!(
            "{} at byte offset {at}: cannot be read: {e}",
            self.label
        ))
    }
}

/// Fills `buf` as far as the reader allows: short only at the end.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn bytes(d: &Document) -> Vec<u8> {
        bson::to_vec(d).unwrap()
    }

    /// A two-collection archive with interleaved segments and an empty
    /// collection, written the way the spec says.
    fn sample() -> (Vec<u8>, Vec<Document>, Vec<Document>) {
        let a = vec![doc! {"_id": 1}, doc! {"_id": 2, "x": "y"}, doc! {"_id": 3}];
        let b = vec![doc! {"_id": "b1", "n": 1.5}];
        let mut out = MAGIC.to_vec();
        out.extend(bytes(&doc! {"concurrent_collections": 2, "version": "0.1",
        "server_version": "7.0.2", "tool_version": "100.9.0"}));
        for coll in ["a", "b", "empty"] {
            out.extend(bytes(&doc! {"db": "d", "collection": coll,
            "metadata": "{\"indexes\":[]}", "size": 0, "type": "collection"}));
        }
        out.extend(TERMINATOR.to_le_bytes());
        let segment = |out: &mut Vec<u8>, coll: &str, docs: &[Document]| {
            out.extend(bytes(
                &doc! {"db": "d", "collection": coll, "EOF": false, "CRC": 0_i64},
            ));
            for d in docs {
                out.extend(bytes(d));
            }
            out.extend(TERMINATOR.to_le_bytes());
        };
        let eof = |out: &mut Vec<u8>, coll: &str, docs: &[Document]| {
            let mut digest = CRC64.digest();
            for d in docs {
                digest.update(&bytes(d));
            }
            let crc = digest.finalize() as i64;
            out.extend(bytes(
                &doc! {"db": "d", "collection": coll, "EOF": true, "CRC": crc},
            ));
            out.extend(TERMINATOR.to_le_bytes());
        };
        segment(&mut out, "a", &a[..2]);
        segment(&mut out, "b", &b);
        segment(&mut out, "a", &a[2..]);
        eof(&mut out, "a", &a);
        segment(&mut out, "empty", &[]);
        eof(&mut out, "empty", &[]);
        eof(&mut out, "b", &b);
        (out, a, b)
    }

    fn read_all(data: &[u8]) -> CommandResult<HashMap<String, Vec<Document>>> {
        let mut archive = Archive::open(data, "x.archive".into())?;
        let mut out: HashMap<String, Vec<Document>> = HashMap::new();
        while let Some(event) = archive.next_event()? {
            if let Event::Document(i, d) = event {
                out.entry(archive.namespace(i).coll.clone())
                    .or_default()
                    .push(d);
            }
        }
        Ok(out)
    }

    #[test]
    fn the_crc_is_gos_crc64_ecma() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ECMA))
        assert_eq!(CRC64.checksum(b"123456789"), 0x995d_c9bb_df19_39fa);
    }

    #[test]
    fn interleaved_segments_read_back_per_collection() {
        let (data, a, b) = sample();
        let archive = Archive::open(data.as_slice(), "x".into()).unwrap();
        assert_eq!(archive.header().tool_version, "100.9.0");
        assert_eq!(archive.prelude().len(), 3);
        let read = read_all(&data).unwrap();
        assert_eq!(read["a"], a);
        assert_eq!(read["b"], b);
        assert!(!read.contains_key("empty"));
    }

    #[test]
    fn every_cut_short_of_the_end_is_an_error_with_an_offset() {
        let (data, _, _) = sample();
        for cut in 0..data.len() {
            let err = read_all(&data[..cut]).expect_err(&format!("cut at {cut}"));
            let text = err.to_string();
            assert!(text.contains("x.archive"), "{text}");
            assert!(
                text.contains("byte offset") || text.contains("not a mongodump archive"),
                "cut at {cut}: {text}"
            );
        }
    }

    #[test]
    fn a_changed_byte_in_a_document_fails_the_crc() {
        let (mut data, a, _) = sample();
        let doc = bytes(&a[1]);
        let start = data.windows(doc.len()).position(|w| w == doc).unwrap();
        let at = start + doc.iter().position(|&b| b == b'y').unwrap();
        data[at] = b'z';
        let err = read_all(&data).unwrap_err().to_string();
        assert!(err.contains("CRC-64") && err.contains("d.a"), "{err}");
    }

    #[test]
    fn anything_else_is_not_an_archive() {
        let err = read_all(&bytes(&doc! {"_id": 1})).unwrap_err().to_string();
        assert!(err.contains("not a mongodump archive"), "{err}");
    }
}
