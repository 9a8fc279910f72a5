//! The reviewed flat-key → block → path table, and the lossless mapping it drives.

use std::collections::HashMap;
use std::sync::OnceLock;

use bson::{Bson, Document};

use super::BLOCKS;
use crate::encoded::empty_document;

/// The block and key under which flat keys with no row in the table are kept.
pub const UNMAPPED_BLOCK: &str = "additional_info";
/// See [`UNMAPPED_BLOCK`].
pub const UNMAPPED_KEY: &str = "unmapped";

/// Why a field map text was refused. Every variant names the line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldMapError {
    /// The header line `flat_key,block,path` is missing or different.
    #[error("line {line}: expected the header `flat_key,block,path`")]
    BadHeader { line: usize },
    /// A row does not have exactly three non-empty columns, or a path has an empty segment.
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// The same flat key appears twice.
    #[error("line {line}: flat key `{key}` already mapped on line {first_line}")]
    DuplicateKey {
        key: String,
        line: usize,
        first_line: usize,
    },
    /// The block is not one of the ten blocks.
    #[error("line {line}: unknown block `{block}` (expected one of the ten blocks)")]
    UnknownBlock { line: usize, block: String },
    /// Two rows write the same place, or one row's path is inside another's value.
    #[error(
        "line {line}: path `{block}.{path}` conflicts with `{block}.{other}` on line {other_line}"
    )]
    ConflictingPath {
        line: usize,
        block: String,
        path: String,
        other: String,
        other_line: usize,
    },
    /// A row targets `additional_info.unmapped`, which holds keys without a row.
    #[error("line {line}: `additional_info.unmapped` is reserved for unmapped keys")]
    ReservedPath { line: usize },
    /// The text has no rows at all.
    #[error("the field map has no rows")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    flat_key: String,
    block: &'static str,
    /// `block`'s place in `BLOCKS`.
    block_index: usize,
    path: Vec<String>,
}

/// The flat → ten-block table, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    rows: Vec<Row>,
    by_key: Keys,
}

/// Row numbers by flat key. Every response key of every questionnaire is
/// looked up here; with the standard library's SipHash that hashing was
/// 2% of the builder's instructions.
type Keys = HashMap<String, usize, ahash::RandomState>;

const BUILTIN_TEXT: &str = include_str!("../../migrations/field_map.csv");

impl FieldMap {
    /// Parses and checks a field map text: `#` comments and blank lines are
    /// skipped; the first other line is the header `flat_key,block,path`; then
    /// one row per flat key, the path dotted inside the block.
    pub fn parse(text: &str) -> Result<FieldMap, FieldMapError> {
        let mut rows: Vec<Row> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        let mut by_key = Keys::default();
        let mut header_seen = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = trimmed.split(',').map(str::trim).collect();
            if !header_seen {
                if cols != ["flat_key", "block", "path"] {
                    return Err(FieldMapError::BadHeader { line });
                }
                header_seen = true;
                continue;
            }
            if cols.len() != 3 || cols.iter().any(|c| c.is_empty()) {
                return Err(FieldMapError::Syntax {
                    line,
                    reason: "expected three non-empty columns: flat_key,block,path".into(),
                });
            }
            let (key, block, path) = (cols[0], cols[1], cols[2]);
            let Some(block_index) = BLOCKS.iter().position(|b| *b == block) else {
                return Err(FieldMapError::UnknownBlock {
                    line,
                    block: block.into(),
                });
            };
            let block = BLOCKS[block_index];
            let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
            if segments.iter().any(|s| s.is_empty()) {
                return Err(FieldMapError::Syntax {
                    line,
                    reason: format!("path `{path}` has an empty segment"),
                });
            }
            if block == UNMAPPED_BLOCK && segments[0] == UNMAPPED_KEY {
                return Err(FieldMapError::ReservedPath { line });
            }
            if let Some(&first) = by_key.get(key) {
                return Err(FieldMapError::DuplicateKey {
                    key: key.into(),
                    line,
                    first_line: lines_of[first],
                });
            }
            for (other_index, other) in rows.iter().enumerate() {
                if other.block != block {
                    continue;
                }
                let n = other.path.len().min(segments.len());
                if other.path[..n] == segments[..n] {
                    return Err(FieldMapError::ConflictingPath {
                        line,
                        block: block.into(),
                        path: path.into(),
                        other: other.path.join("."),
                        other_line: lines_of[other_index],
                    });
                }
            }
            by_key.insert(key.to_owned(), rows.len());
            lines_of.push(line);
            rows.push(Row {
                flat_key: key.to_owned(),
                block,
                block_index,
                path: segments,
            });
        }
        if !header_seen {
            return Err(FieldMapError::BadHeader { line: 1 });
        }
        if rows.is_empty() {
            return Err(FieldMapError::Empty);
        }
        Ok(FieldMap { rows, by_key })
    }

    /// The reviewed map shipped in `migrations/field_map.csv`, parsed and checked once.
    pub fn builtin() -> Result<&'static FieldMap, &'static FieldMapError> {
        static MAP: OnceLock<Result<FieldMap, FieldMapError>> = OnceLock::new();
        MAP.get_or_init(|| FieldMap::parse(BUILTIN_TEXT)).as_ref()
    }

    /// Number of rows (mapped flat keys).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the map has no rows (never true for a parsed map).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Where a flat key goes: `(block, dotted path)`, or `None` when unmapped.
    pub fn target(&self, flat_key: &str) -> Option<(&'static str, String)> {
        self.by_key.get(flat_key).map(|&i| {
            let row = &self.rows[i];
            (row.block, row.path.join("."))
        })
    }

    /// Flat responses → the ten blocks (always all ten keys). Values are kept
    /// verbatim; a key without a row goes to `additional_info.unmapped.<key>`
    /// (the key kept literally, dots included).
    pub fn to_blocks(&self, flat: &Document) -> Document {
        let mut blocks: Vec<Document> = BLOCKS.iter().map(|_| empty_document()).collect();
        let mut unmapped = empty_document();
        for (key, value) in flat {
            match self.by_key.get(key.as_str()) {
                Some(&i) => {
                    let row = &self.rows[i];
                    set_nested(&mut blocks[row.block_index], &row.path, value.clone());
                }
                None => {
                    unmapped.insert(key.clone(), value.clone());
                }
            }
        }
        let mut out = empty_document();
        for (name, mut block) in BLOCKS.iter().zip(blocks) {
            if *name == UNMAPPED_BLOCK && !unmapped.is_empty() {
                block.insert(UNMAPPED_KEY, unmapped.clone());
            }
            out.insert(*name, block);
        }
        out
    }

    /// The ten blocks → flat responses: the inverse of [`FieldMap::to_blocks`].
    /// Only places the table names and `additional_info.unmapped` are read;
    /// anything else in `blocks` is ignored.
    pub fn to_flat(&self, blocks: &Document) -> Document {
        let mut flat = Document::new();
        for row in &self.rows {
            if let Some(value) = blocks
                .get_document(row.block)
                .ok()
                .and_then(|b| get_nested(b, &row.path))
            {
                flat.insert(row.flat_key.clone(), value.clone());
            }
        }
        if let Some(unmapped) = blocks
            .get_document(UNMAPPED_BLOCK)
            .ok()
            .and_then(|b| b.get_document(UNMAPPED_KEY).ok())
        {
            for (key, value) in unmapped {
                if !flat.contains_key(key) {
                    flat.insert(key.clone(), value.clone());
                }
            }
        }
        flat
    }

    /// Flat keys of `flat` that have no row (they go to `additional_info.unmapped`).
    pub fn unmapped_keys<'a>(&self, flat: &'a Document) -> Vec<&'a str> {
        flat.keys()
            .filter(|k| !self.by_key.contains_key(k.as_str()))
            .map(String::as_str)
            .collect()
    }
}

fn set_nested(doc: &mut Document, path: &[String], value: Bson) {
    match path {
        [] => {}
        [last] => {
            doc.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            if let Some(Bson::Document(child)) = doc.get_mut(first) {
                return set_nested(child, rest, value);
            }
            // Inserted where `first` is (a value that is not a document is
            // replaced in place), or appended: one lookup, not three.
            let mut child = empty_document();
            set_nested(&mut child, rest, value);
            doc.insert(first.clone(), child);
        }
    }
}

fn get_nested<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    match path {
        [] => None,
        [last] => doc.get(last),
        [first, rest @ ..] => match doc.get(first) {
            Some(Bson::Document(child)) => get_nested(child, rest),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_map_has_every_row_of_the_plan_table() {
        let map = FieldMap::builtin().expect("builtin map parses");
        assert_eq!(map.len(), 50);
        assert_eq!(
            map.target("hernias_protusiones"),
            Some((
                "health",
                "chronic_conditions.musculoskeletal.hernias_protusions".to_string()
            ))
        );
        assert_eq!(
            map.target("comentarios_adicionales"),
            Some(("additional_info", "comments".to_string()))
        );
    }
}
