//! Index definitions: what phase 0 creates, what a backup records and what a
//! restore brings back, exactly (key order and direction, uniqueness,
//! sparseness, TTL, partial filter).

use super::{Ns, StoreError, StoreResult};
use bson::{doc, Bson, Document};

/// Whether to create `wanted` on a collection that has `existing`: `false`
/// when it is there already, exactly; an error when an index of that name
/// (or on the same keys under another name) differs, as MongoDB refuses it
/// too. A name alone never counts as "already there".
pub(crate) fn needs_creating(
    existing: &[IndexSpec],
    ns: &Ns,
    wanted: &IndexSpec,
) -> StoreResult<bool> {
    if let Some(why) = wanted.unsupported() {
        return Err(StoreError::Refused {
            ns: ns.to_string(),
            id: wanted.name.clone(),
            message: why,
        });
    }
    let conflict = |e: &IndexSpec| StoreError::IndexConflict {
        ns: ns.to_string(),
        coll: ns.coll.clone(),
        name: e.name.clone(),
        existing: e.describe(),
        wanted: format!("{} named {}", wanted.describe(), wanted.name),
    };
    for e in existing {
        if e.name == wanted.name {
            return if e.same_definition(wanted) {
                Ok(false)
            } else {
                Err(conflict(e))
            };
        }
        if e.key_document() == wanted.key_document() {
            return Err(conflict(e));
        }
    }
    Ok(true)
}

/// One index, as MongoDB defines it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct IndexSpec {
    /// The index name, as MongoDB would name it (`user_id_1`).
    pub name: String,
    /// Dotted field paths, in key order.
    pub keys: Vec<String>,
    /// Whether the store refuses two documents with the same key.
    #[serde(default)]
    pub unique: bool,
    /// The keys (of `keys`) that are descending (`-1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descending: Vec<String>,
    /// Documents without the field are left out of the index.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
    /// A TTL index: documents expire this many seconds after the date in
    /// the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<i64>,
    /// Only documents matching this filter are indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_filter: Option<Document>,
    /// The key document as listed, when a key is not a plain direction
    /// (`"text"`, `"hashed"`, `"2dsphere"`): recorded in backups so that
    /// mongorestore can bring it back; this tool cannot create it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_keys: Option<Document>,
}

impl IndexSpec {
    /// An index named the way MongoDB names it by default (`a.b_1`).
    pub fn ascending(keys: &[&str], unique: bool) -> IndexSpec {
        IndexSpec {
            name: keys
                .iter()
                .map(|k| format!("{k}_1"))
                .collect::<Vec<_>>()
                .join("_"),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            unique,
            ..IndexSpec::default()
        }
    }

    /// The key document (`{user_id: 1, _id: 1}`), directions as `Int32`.
    pub fn key_document(&self) -> Document {
        if let Some(special) = &self.special_keys {
            return special.clone();
        }
        self.keys
            .iter()
            .map(|k| {
                let direction = if self.descending.contains(k) { -1 } else { 1 };
                (k.clone(), Bson::Int32(direction))
            })
            .collect()
    }

    /// Whether two definitions index the same way (names aside).
    pub fn same_definition(&self, other: &IndexSpec) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.name.clear();
        b.name.clear();
        a.descending.sort();
        b.descending.sort();
        a == b
    }

    /// The definition for an operator: keys with directions and options.
    pub fn describe(&self) -> String {
        let keys: Vec<String> = self
            .key_document()
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let mut text = format!("{{{}}}", keys.join(", "));
        if self.unique {
            text.push_str(" unique");
        }
        if self.sparse {
            text.push_str(" sparse");
        }
        if let Some(ttl) = self.expire_after_seconds {
            text.push_str(&format!(" expireAfterSeconds {ttl}"));
        }
        if let Some(filter) = &self.partial_filter {
            text.push_str(&format!(" partialFilterExpression {filter}"));
        }
        text
    }

    /// One entry of mongodump's `indexes` list.
    pub fn to_metadata(&self) -> Document {
        let mut index = doc! { "v": 2, "key": self.key_document(), "name": &self.name };
        if self.unique {
            index.insert("unique", true);
        }
        if self.sparse {
            index.insert("sparse", true);
        }
        if let Some(ttl) = self.expire_after_seconds {
            index.insert("expireAfterSeconds", ttl);
        }
        if let Some(filter) = &self.partial_filter {
            index.insert("partialFilterExpression", filter.clone());
        }
        index
    }

    /// An index as a store lists it: keys with their directions (anything
    /// but a number is kept as `special_keys`) and the options.
    pub fn listed(
        name: String,
        key: &Document,
        unique: bool,
        sparse: bool,
        expire_after_seconds: Option<i64>,
        partial_filter: Option<Document>,
    ) -> IndexSpec {
        let mut spec = IndexSpec {
            name,
            unique,
            sparse,
            expire_after_seconds,
            partial_filter,
            ..IndexSpec::default()
        };
        for (field, direction) in key {
            spec.keys.push(field.clone());
            match number(direction) {
                Some(n) if n < 0.0 => spec.descending.push(field.clone()),
                Some(n) if n > 0.0 => {}
                _ => spec.special_keys = Some(key.clone()),
            }
        }
        spec
    }

    /// Why a store cannot create this index, if it cannot.
    pub fn unsupported(&self) -> Option<String> {
        self.special_keys.as_ref().map(|k| {
            format!(
                "index {} has keys {k} that this tool cannot create; use mongorestore or create it by hand",
                self.name
            )
        })
    }

    /// Reads one entry of mongodump's `indexes` list. An option this tool
    /// cannot bring back exactly is an error naming it, never dropped.
    pub fn from_metadata(index: &Document) -> Result<IndexSpec, String> {
        let name = index
            .get_str("name")
            .map_err(|_| "an index has no name".to_string())?
            .to_string();
        let key = match index.get("key") {
            Some(Bson::Document(key)) if !key.is_empty() => key,
            _ => return Err(format!("index {name} has no key document")),
        };
        let mut spec = IndexSpec {
            name: name.clone(),
            ..IndexSpec::default()
        };
        for (field, direction) in key {
            match number(direction) {
                Some(n) if n > 0.0 => {}
                Some(n) if n < 0.0 => spec.descending.push(field.clone()),
                _ => {
                    return Err(format!(
                        "index {name}: key {field} is {direction}, which this tool cannot recreate; use mongorestore for it"
                    ))
                }
            }
            spec.keys.push(field.clone());
        }
        for (option, value) in index {
            match (option.as_str(), value) {
                ("v" | "key" | "name" | "ns" | "background", _) => {}
                ("unique", v) => spec.unique = flag(v).ok_or(format!("index {name}: unique is {v}"))?,
                ("sparse", v) => spec.sparse = flag(v).ok_or(format!("index {name}: sparse is {v}"))?,
                ("expireAfterSeconds", v) => {
                    let n = number(v).ok_or(format!("index {name}: expireAfterSeconds is {v}"))?;
                    spec.expire_after_seconds = Some(n as i64);
                }
                ("partialFilterExpression", Bson::Document(filter)) => {
                    spec.partial_filter = Some(filter.clone())
                }
                (other, _) => {
                    return Err(format!(
                        "index {name}: option {other} cannot be recreated by this tool; use mongorestore for it"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

fn flag(value: &Bson) -> Option<bool> {
    match value {
        Bson::Null => Some(false),
        Bson::Boolean(b) => Some(*b),
        other => number(other).map(|n| n != 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_survives_mongodumps_metadata() {
        let spec = IndexSpec {
            name: "expiring".into(),
            keys: vec!["at".into(), "user_id".into()],
            descending: vec!["user_id".into()],
            unique: true,
            sparse: true,
            expire_after_seconds: Some(3600),
            partial_filter: Some(doc! { "active": true }),
            special_keys: None,
        };
        let back = IndexSpec::from_metadata(&spec.to_metadata()).unwrap();
        assert_eq!(back, spec);
        assert!(IndexSpec::from_metadata(&doc! {"name": "t", "key": {"body": "text"}}).is_err());
        assert!(
            IndexSpec::from_metadata(&doc! {"name": "c", "key": {"a": 1}, "collation": {}})
                .is_err()
        );
    }
}
