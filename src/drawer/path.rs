//! Dotted-path access to documents, and byte-exact comparison.

use bson::{Bson, Document};

/// `path` split at its first dot. A byte scan: the paths are a few dozen
/// bytes, and `str::split_once('.')` set up a `memchr` search for each
/// segment, a twentieth of the builder's instructions with `split`.
fn split_first(path: &str) -> Option<(&str, &str)> {
    let dot = path.bytes().position(|b| b == b'.')?;
    Some((&path[..dot], &path[dot + 1..]))
}

/// The segments of a dotted path, in order (see [`split_first`]).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let here = rest?;
        match split_first(here) {
            Some((first, after)) => {
                rest = Some(after);
                Some(first)
            }
            None => {
                rest = None;
                Some(here)
            }
        }
    })
}

pub(crate) fn get<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = segments(path);
    let first = parts.next()?;
    let mut cur = doc.get(first)?;
    for p in parts {
        cur = cur.as_document()?.get(p)?;
    }
    Some(cur)
}

pub(crate) fn get_doc<'a>(doc: &'a Document, path: &str) -> Option<&'a Document> {
    get(doc, path).and_then(Bson::as_document)
}

/// Sets `path`, creating (or replacing non-document) intermediate levels.
pub(crate) fn set(doc: &mut Document, path: &str, value: Bson) {
    match split_first(path) {
        None => {
            doc.insert(path, value);
        }
        Some((first, rest)) => {
            if let Some(Bson::Document(child)) = doc.get_mut(first) {
                return set(child, rest, value);
            }
            // Inserted where `first` is (replacing what is not a document),
            // or appended: one lookup per level, not three.
            let mut child = crate::encoded::empty_document();
            set(&mut child, rest, value);
            doc.insert(first, child);
        }
    }
}

pub(crate) fn remove(doc: &mut Document, path: &str) -> Option<Bson> {
    match split_first(path) {
        None => doc.remove(path),
        Some((first, rest)) => match doc.get_mut(first) {
            Some(Bson::Document(child)) => remove(child, rest),
            _ => None,
        },
    }
}

/// Creates `path` as an empty document/array/null when it is absent.
pub(crate) fn ensure(doc: &mut Document, path: &str, default: Bson) {
    if get(doc, path).is_none() {
        set(doc, path, default);
    }
}

/// The array at `path`, borrowed (empty when absent or not an array).
pub(crate) fn array_ref<'a>(doc: &'a Document, path: &str) -> &'a [Bson] {
    match get(doc, path) {
        Some(Bson::Array(items)) => items,
        _ => &[],
    }
}

/// Moves the array at `path` out of the document (leaving it empty), so a
/// caller that rebuilds the array does not copy every entry first.
pub(crate) fn take_array(doc: &mut Document, path: &str) -> Vec<Bson> {
    let mut current = doc;
    let mut parts = segments(path).peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return match current.get_mut(part) {
                Some(Bson::Array(items)) => std::mem::take(items),
                _ => Vec::new(),
            };
        }
        match current.get_mut(part) {
            Some(Bson::Document(inner)) => current = inner,
            _ => return Vec::new(),
        }
    }
    Vec::new()
}

pub(crate) fn array(doc: &Document, path: &str) -> Vec<Bson> {
    match get(doc, path) {
        Some(Bson::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// Serialized BSON size of a document (0 when it cannot be serialized).
pub(crate) fn size(doc: &Document) -> usize {
    crate::encoded::doc_len(doc).unwrap_or(0)
}

/// The encoded length of the element at `path` (type byte, key and value),
/// 0 when it is absent; `None` when a parent on the way is missing or not a
/// document, or the value cannot be encoded.
pub(crate) fn element_len(doc: &Document, path: &str) -> Option<usize> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => match get(doc, parent)? {
            Bson::Document(d) => (d, key),
            _ => return None,
        },
        None => (doc, path),
    };
    match parent.get(key) {
        None => Some(0),
        Some(value) => crate::encoded::element_len(key.len(), value),
    }
}

/// Equal types, values and key order (NaN equals itself).
pub(crate) fn same(a: &Bson, b: &Bson) -> bool {
    crate::encoded::same(a, b)
}

pub(crate) fn same_doc(a: &Document, b: &Document) -> bool {
    crate::encoded::same_doc(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn paths_split_at_every_dot_as_str_split_does() {
        for path in ["", "a", "a.b", "a..b", ".a", "a.", "año.ñu.x", "..."] {
            let ours: Vec<&str> = segments(path).collect();
            assert_eq!(ours, path.split('.').collect::<Vec<_>>(), "{path:?}");
            assert_eq!(split_first(path), path.split_once('.'), "{path:?}");
        }
    }

    #[test]
    fn an_element_weighs_what_it_adds_to_its_document() {
        let d = doc! { "meta": { "status": "active", "n": [1, 2] }, "x": 1.5 };
        let len = |d: &Document| bson::to_vec(d).unwrap().len();
        let mut without = d.clone();
        remove(&mut without, "meta.status");
        assert_eq!(
            element_len(&d, "meta.status"),
            Some(len(&d) - len(&without))
        );
        let mut flat = d.clone();
        flat.remove("x");
        assert_eq!(element_len(&d, "x"), Some(len(&d) - len(&flat)));
        assert_eq!(element_len(&d, "meta.absent"), Some(0));
        assert_eq!(element_len(&d, "absent.status"), None, "no parent");
        assert_eq!(element_len(&d, "x.y"), None, "the parent is no document");
        assert_eq!(element_len(&doc! { "a": { "b\0": 1 } }, "a"), None);
    }
}
