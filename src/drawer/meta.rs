//! `meta.migration`: what migration runs added to a drawer, so `undo` can take
//! exactly that out again. See docs/drawer.md.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bson::{doc, Bson, Document};

use super::LegacyKind;
use crate::mapping::{id_key_ref, Warning};

/// One array the builder merges into, and the field that keys its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArraySpec {
    pub path: &'static str,
    /// `None`: the entries are plain values (strings) keyed by themselves.
    pub key: Option<&'static str>,
}

pub(crate) const SHARED: ArraySpec = ArraySpec {
    path: "services.shared_questionnaires",
    key: Some("submission_id"),
};
pub(crate) const FOLLOWUPS: ArraySpec = ArraySpec {
    path: "services.training.questionnaires.followups",
    key: Some("followup_id"),
};
pub(crate) const MEASUREMENTS: ArraySpec = ArraySpec {
    path: "services.training.measurements",
    key: Some("measurement_id"),
};
pub(crate) const SNAPSHOTS: ArraySpec = ArraySpec {
    path: "services.training.snapshots",
    key: Some("snapshot_id"),
};
pub(crate) const TRAINING_PLANS: ArraySpec = ArraySpec {
    path: "services.training.plans",
    key: Some("plan_id"),
};
pub(crate) const NUTRITION_PLANS: ArraySpec = ArraySpec {
    path: "services.nutrition.plans",
    key: Some("plan_id"),
};
pub(crate) const ACTIVE_SERVICES: ArraySpec = ArraySpec {
    path: "meta.active_services",
    key: None,
};
pub(crate) const ARRAYS: [ArraySpec; 7] = [
    SHARED,
    FOLLOWUPS,
    MEASUREMENTS,
    SNAPSHOTS,
    TRAINING_PLANS,
    NUTRITION_PLANS,
    ACTIVE_SERVICES,
];

impl ArraySpec {
    /// The key of one entry as an id key, `None` when the entry has none.
    pub fn key_of<'a>(&self, entry: &'a Bson) -> Option<Cow<'a, str>> {
        match self.key {
            None => Some(id_key_ref(entry)),
            Some(k) => entry.as_document()?.get(k).map(id_key_ref),
        }
    }
}

/// A path the migration set, and what was there before.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetRecord {
    pub path: String,
    pub existed: bool,
    pub before: Bson,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MigrationMeta {
    pub present: bool,
    pub run_id: Option<Bson>,
    pub migrated_at: Option<Bson>,
    pub created_drawer: bool,
    /// Per array (index into ARRAYS): keys the migration added, as values.
    pub added: Vec<Vec<Bson>>,
    pub set: Vec<SetRecord>,
    pub archived: Vec<String>,
    pub stamped: Vec<(LegacyKind, Bson)>,
    pub warnings: BTreeSet<Warning>,
    /// Paths the builder created in a drawer that existed (empty containers
    /// it needs before merging): undo removes each one it finds empty again.
    pub created: Vec<String>,
}

impl MigrationMeta {
    pub fn read(drawer: &Document) -> MigrationMeta {
        let mut m = MigrationMeta {
            added: vec![Vec::new(); ARRAYS.len()],
            ..Default::default()
        };
        let Some(mig) = super::path::get_doc(drawer, "meta.migration") else {
            return m;
        };
        m.present = true;
        m.run_id = mig.get("run_id").cloned();
        m.migrated_at = mig.get("migrated_at").cloned();
        m.created_drawer = mig.get_bool("created_drawer").unwrap_or(false);
        for entry in mig.get_array("added").into_iter().flatten() {
            let Some(e) = entry.as_document() else {
                continue;
            };
            let Ok(path) = e.get_str("path") else {
                continue;
            };
            if let Some(i) = ARRAYS.iter().position(|a| a.path == path) {
                m.added[i] = e.get_array("keys").cloned().unwrap_or_default();
            }
        }
        for entry in mig.get_array("set").into_iter().flatten() {
            let Some(e) = entry.as_document() else {
                continue;
            };
            let Ok(path) = e.get_str("path") else {
                continue;
            };
            m.set.push(SetRecord {
                path: path.to_owned(),
                existed: e.get_bool("existed").unwrap_or(false),
                before: e.get("before").cloned().unwrap_or(Bson::Null),
            });
        }
        for id in mig.get_array("archived_snapshot_ids").into_iter().flatten() {
            if let Some(s) = id.as_str() {
                m.archived.push(s.to_owned());
            }
        }
        for entry in mig.get_array("stamped").into_iter().flatten() {
            let Some(e) = entry.as_document() else {
                continue;
            };
            let kind = e
                .get_str("collection")
                .ok()
                .and_then(LegacyKind::from_collection);
            if let (Some(kind), Some(id)) = (kind, e.get("plan_id")) {
                m.stamped.push((kind, id.clone()));
            }
        }
        for w in mig.get_array("warnings").into_iter().flatten() {
            if let Some(w) = w.as_document().and_then(Warning::from_document) {
                m.warnings.insert(w);
            }
        }
        for p in mig.get_array("created").into_iter().flatten() {
            if let Some(p) = p.as_str() {
                m.created.push(p.to_owned());
            }
        }
        m
    }

    /// Records what the builder's containers changed in a drawer that
    /// existed (`before`, as stored; `after`, with the containers): each path
    /// `before` lacks goes to `created`, and a container that replaced
    /// another kind of value (`null` where an array is needed) gets a `set`
    /// record with that value, so undo gives the drawer back as it was.
    pub fn note_containers(&mut self, before: &Document, after: &Document) {
        self.note("", after, Some(before));
    }

    fn note(&mut self, prefix: &str, after: &Document, before: Option<&Document>) {
        for (k, v) in after {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match before.map(|b| b.get(k)) {
                None | Some(None) => {
                    if !self.created.contains(&path) {
                        self.created.push(path.clone());
                    }
                    if let Bson::Document(d) = v {
                        self.note(&path, d, None);
                    }
                }
                Some(Some(old)) => match (v, old) {
                    (Bson::Document(a), Bson::Document(b)) => self.note(&path, a, Some(b)),
                    (Bson::Document(_) | Bson::Array(_), old)
                        if old.element_type() != v.element_type()
                            && self.set_record(&path).is_none() =>
                    {
                        self.set.push(SetRecord {
                            path,
                            existed: true,
                            before: old.clone(),
                        });
                    }
                    _ => {}
                },
            }
        }
    }

    pub fn owns(&self, array: usize, key: &str) -> bool {
        self.added[array].iter().any(|k| id_key_ref(k) == key)
    }

    pub fn add(&mut self, array: usize, key: Bson) {
        if !self.owns(array, &id_key_ref(&key)) {
            self.added[array].push(key);
        }
    }

    pub fn set_record(&self, path: &str) -> Option<&SetRecord> {
        self.set.iter().find(|r| r.path == path)
    }

    /// The encoded size of [`MigrationMeta::to_document`], measured without
    /// building it: the builder asks it of every drawer to see whether the
    /// drawer fits, and building the document only to measure it was 3% of
    /// a dry run. `None` when the document cannot be encoded.
    pub fn encoded_len(&self) -> Option<usize> {
        use crate::encoded::{array_of, framed, value_len};
        let key = str::len;
        let text = |s: &str| 4 + s.len() + 1;
        let values = |items: &[Bson]| -> Option<usize> {
            Some(array_of(
                items.iter().map(value_len).collect::<Option<Vec<_>>>()?,
            ))
        };
        let mut added = Vec::new();
        for (spec, keys) in ARRAYS.iter().zip(&self.added) {
            if !keys.is_empty() {
                added.push(framed([
                    (key("path"), text(spec.path)),
                    (key("keys"), values(keys)?),
                ]));
            }
        }
        let mut set = Vec::with_capacity(self.set.len());
        for r in &self.set {
            set.push(framed([
                (key("path"), text(&r.path)),
                (key("existed"), 1),
                (key("before"), value_len(&r.before)?),
            ]));
        }
        let stamped: Vec<usize> = self
            .stamped_in_order()
            .iter()
            .map(|(k, id)| {
                Some(framed([
                    (key("collection"), text(k.collection())),
                    (key("plan_id"), value_len(id)?),
                ]))
            })
            .collect::<Option<_>>()?;
        let warnings: Vec<usize> = self
            .warnings
            .iter()
            .map(|w| {
                framed([
                    (key("kind"), text(w.kind.as_str())),
                    (key("source_id"), text(&w.source_id)),
                    (key("field"), text(&w.field)),
                ])
            })
            .collect();
        let optional = |v: &Option<Bson>| value_len(v.as_ref().unwrap_or(&Bson::Null));
        let mut fields = vec![
            (key("run_id"), optional(&self.run_id)?),
            (key("migrated_at"), optional(&self.migrated_at)?),
            (key("created_drawer"), 1),
            (key("added"), array_of(added)),
            (key("set"), array_of(set)),
            (
                key("archived_snapshot_ids"),
                array_of(distinct(self.archived.clone()).iter().map(|s| text(s))),
            ),
            (key("stamped"), array_of(stamped)),
            (key("warnings"), array_of(warnings)),
        ];
        if !self.created.is_empty() {
            fields.push((
                key("created"),
                array_of(distinct(self.created.clone()).iter().map(|s| text(s))),
            ));
        }
        Some(framed(fields))
    }

    /// `stamped` sorted by collection and id, one per plan.
    fn stamped_in_order(&self) -> Vec<(LegacyKind, Bson)> {
        in_order(self.stamped.clone())
    }

    pub fn to_document(&self) -> Document {
        self.clone().into_document()
    }

    /// [`MigrationMeta::to_document`] for the last use of the record: what
    /// it holds moves into the document instead of being copied.
    pub fn into_document(self) -> Document {
        let mut added = Vec::new();
        for (spec, mut keys) in ARRAYS.iter().zip(self.added) {
            if keys.is_empty() {
                continue;
            }
            keys.sort_by(|a, b| id_key_ref(a).cmp(&id_key_ref(b)));
            added.push(Bson::Document(doc! { "path": spec.path, "keys": keys }));
        }
        let mut set = self.set;
        set.sort_by(|a, b| a.path.cmp(&b.path));
        let set: Vec<Bson> = set
            .into_iter()
            .map(|r| {
                Bson::Document(doc! { "path": r.path, "existed": r.existed, "before": r.before })
            })
            .collect();
        let stamped: Vec<Bson> = in_order(self.stamped)
            .into_iter()
            .map(|(k, id)| Bson::Document(doc! { "collection": k.collection(), "plan_id": id }))
            .collect();
        let warnings: Vec<Bson> = self
            .warnings
            .iter()
            .map(|w| Bson::Document(w.to_document()))
            .collect();
        let mut out = doc! {
            "run_id": self.run_id.unwrap_or(Bson::Null),
            "migrated_at": self.migrated_at.unwrap_or(Bson::Null),
            "created_drawer": self.created_drawer,
            "added": added,
            "set": set,
            "archived_snapshot_ids": distinct(self.archived),
            "stamped": stamped,
            "warnings": warnings,
        };
        if !self.created.is_empty() {
            out.insert("created", distinct(self.created));
        }
        out
    }
}

/// Stamped plans sorted by collection and id, one per plan.
fn in_order(mut stamped: Vec<(LegacyKind, Bson)>) -> Vec<(LegacyKind, Bson)> {
    stamped.sort_by(|(ka, a), (kb, b)| {
        (ka.collection(), id_key_ref(a)).cmp(&(kb.collection(), id_key_ref(b)))
    });
    stamped.dedup_by(|a, b| a.0 == b.0 && id_key_ref(&a.1) == id_key_ref(&b.1));
    stamped
}

/// The strings sorted, each once.
fn distinct(mut strings: Vec<String>) -> Vec<String> {
    strings.sort();
    strings.dedup();
    strings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::WarningKind;

    fn size(m: &MigrationMeta) -> Option<usize> {
        crate::encoded::doc_len(&m.to_document())
    }

    #[test]
    fn the_measure_is_the_size_of_the_document() {
        let mut m = MigrationMeta {
            added: vec![Vec::new(); ARRAYS.len()],
            ..Default::default()
        };
        assert_eq!(m.encoded_len(), size(&m));
        m.run_id = Some(Bson::from("run-1"));
        m.migrated_at = Some(Bson::DateTime(bson::DateTime::from_millis(5)));
        m.created_drawer = true;
        for i in 0..12 {
            m.add(0, Bson::from(format!("submission_{i}")));
        }
        m.add(3, Bson::Int64(7));
        m.add(6, Bson::from("training"));
        m.set.push(SetRecord {
            path: "profile.email".into(),
            existed: true,
            before: Bson::Document(doc! { "a": [1, { "b": "ñ" }], "c": null }),
        });
        m.set.push(SetRecord {
            path: "services.training.active".into(),
            existed: false,
            before: Bson::Null,
        });
        m.archived = vec!["s2".into(), "s1".into(), "s2".into()];
        m.stamped = vec![
            (LegacyKind::TrainingPlan, Bson::from("p2")),
            (LegacyKind::TrainingPlan, Bson::from("p1")),
            (LegacyKind::TrainingPlan, Bson::from("p2")),
            (LegacyKind::NutritionPlan, Bson::Int32(3)),
        ];
        m.warnings.insert(Warning {
            kind: WarningKind::DrawerTooLarge,
            source_id: "client_1".into(),
            field: String::new(),
        });
        assert_eq!(m.encoded_len(), size(&m));
        m.created = vec!["profile".into(), "meta".into(), "profile".into()];
        assert_eq!(m.encoded_len(), size(&m));
        m.set[0].before = Bson::Document(doc! { "a\0b": 1 });
        assert_eq!(m.encoded_len(), None);
        assert_eq!(size(&m), None);
    }
}
