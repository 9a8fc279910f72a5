//! The k-way merge join: four legacy collections, each streamed in
//! `user_id` order, become one group of documents per user.
//!
//! Memory holds one user's documents plus one read batch per stream, however
//! large the collections are. Documents whose `user_id` is missing or null
//! sort first and come out as one group with no user, for quarantine.

use crate::drawer::{self, LegacyKind, LegacyUser};
use crate::store::keys::sort_key;
use crate::store::{After, Fetched, FetchedStream, Ns, Scan, Store, StoreResult};
use bson::{Bson, Document};

/// The legacy collections merged per user, in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Initial questionnaires.
    Submissions,
    /// Monthly follow-ups.
    Followups,
    /// Training plans.
    TrainingPlans,
    /// Nutrition plans.
    NutritionPlans,
}

impl Source {
    /// All sources, in merge order.
    pub const ALL: [Source; 4] = [
        Source::Submissions,
        Source::Followups,
        Source::TrainingPlans,
        Source::NutritionPlans,
    ];

    /// The kind of document this collection holds.
    pub fn kind(self) -> LegacyKind {
        match self {
            Source::Submissions => LegacyKind::Submission,
            Source::Followups => LegacyKind::Followup,
            Source::TrainingPlans => LegacyKind::TrainingPlan,
            Source::NutritionPlans => LegacyKind::NutritionPlan,
        }
    }
}

/// A document that failed `drawer::triage`: its kind, itself, and why.
pub type Rejected = (LegacyKind, Document, String);

/// One user's legacy documents (or the documents that name no user), as
/// the merge fetched them (`Group<Fetched>`); `into_user` decodes them.
/// What only counts the documents takes a group of any kind.
#[derive(Debug, Clone)]
pub struct Group<D = Document> {
    /// The shared `user_id` value; `Null` for documents without one.
    pub user_id: Bson,
    /// Documents per source, each in `_id` order.
    pub docs: [Vec<D>; 4],
}

impl<D> Default for Group<D> {
    fn default() -> Self {
        Group {
            user_id: Bson::Null,
            docs: Default::default(),
        }
    }
}

impl<D> Group<D> {
    /// The documents of one source.
    pub fn of(&self, source: Source) -> &[D] {
        &self.docs[source as usize]
    }

    /// How many legacy documents the group holds.
    pub fn len(&self) -> usize {
        self.docs.iter().map(Vec::len).sum()
    }

    /// Whether the group holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Group<Fetched> {
    /// Decodes the documents and moves them into a `LegacyUser` named
    /// `user_id`, source by source, each with its size as fetched where the
    /// store handed bytes (`LegacyUser::sizes`); those that fail
    /// `drawer::triage` come back aside, each with its kind and the reason.
    /// The first document that cannot be decoded fails it.
    pub fn into_user(self, user_id: String) -> StoreResult<(LegacyUser, Vec<Rejected>)> {
        let mut user = LegacyUser {
            user_id,
            ..LegacyUser::default()
        };
        let mut rejected = Vec::new();
        for (source, docs) in Source::ALL.into_iter().zip(self.docs) {
            let kind = source.kind();
            for fetched in docs {
                let size = match &fetched {
                    Fetched::Bytes(raw) => Some(raw.as_bytes().len()),
                    Fetched::Decoded(_) => None,
                };
                let doc = fetched.decode()?;
                match (drawer::triage(kind, &doc), size) {
                    (Ok(()), Some(size)) => user.push_sized(kind, doc, size),
                    (Ok(()), None) => user.push(kind, doc),
                    (Err(reason), _) => rejected.push((kind, doc, reason)),
                }
            }
        }
        Ok((user, rejected))
    }
}

/// One stream with the sort key of its next document already computed.
struct Head<'a> {
    stream: FetchedStream<'a>,
    next: Option<(Vec<u8>, Fetched)>,
}

impl Head<'_> {
    fn advance(&mut self) -> StoreResult<()> {
        self.next = match self.stream.next() {
            Some(doc) => {
                let doc = doc?;
                Some((doc.sort_key_of("user_id"), doc))
            }
            None => None,
        };
        Ok(())
    }
}

/// Iterates users in `user_id` order across the four sources. The groups
/// hold the documents as the store fetched them: decoding them is left to
/// whoever uses them, on as many threads as it likes.
pub struct PerUser<'a> {
    heads: Vec<Head<'a>>,
}

impl<'a> PerUser<'a> {
    /// Opens the four streams, each starting strictly after `after_user`
    /// (the last user a previous run finished, for `--resume`).
    pub fn open(
        store: &'a dyn Store,
        sources: [&Ns; 4],
        batch_size: u32,
        after_user: Option<&Bson>,
    ) -> StoreResult<PerUser<'a>> {
        let mut heads = Vec::with_capacity(4);
        for ns in sources {
            let mut scan = Scan::by_field("user_id", batch_size);
            scan.after = after_user.map(|user| After {
                field: Some(user.clone()),
                id: Bson::MaxKey,
            });
            let mut head = Head {
                stream: store.scan_fetched(ns, &scan)?,
                next: None,
            };
            head.advance()?;
            heads.push(head);
        }
        Ok(PerUser { heads })
    }

    fn next_group(&mut self) -> StoreResult<Option<Group<Fetched>>> {
        let Some(key) = self
            .heads
            .iter()
            .filter_map(|h| h.next.as_ref().map(|(k, _)| k.clone()))
            .min()
        else {
            return Ok(None);
        };
        let mut group = Group::default();
        for (slot, head) in self.heads.iter_mut().enumerate() {
            while head.next.as_ref().is_some_and(|(k, _)| *k == key) {
                if let Some((_, doc)) = head.next.take() {
                    if group.is_empty() {
                        group.user_id = doc.field("user_id").unwrap_or(Bson::Null);
                    }
                    group.docs[slot].push(doc);
                }
                head.advance()?;
            }
        }
        Ok(Some(group))
    }
}

impl Iterator for PerUser<'_> {
    type Item = StoreResult<Group<Fetched>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_group().transpose()
    }
}

/// Which of `n` partitions a user belongs to: FNV-1a of the user id's sort
/// key, stable across machines, runs and versions (unlike std's hasher).
pub fn partition_of(user_id: &Bson, n: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sort_key(Some(user_id)) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(n.max(1))) as u32
}

/// The partition of `n` a group's documents belong to. Documents without a
/// usable `user_id` (quarantined by whoever reads them) all belong to
/// partition 0, so exactly one worker of a partitioning writes their
/// quarantine records and validates them.
pub fn home_partition(user_id: &Bson, n: u32) -> u32 {
    match user_id {
        Bson::String(s) if !s.trim().is_empty() => partition_of(user_id, n),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use bson::doc;

    fn store_with(docs: [Vec<Document>; 4]) -> (SqliteStore, [Ns; 4]) {
        let store = SqliteStore::open(":memory:").unwrap();
        let names = ["subs", "fups", "tps", "nps"].map(|c| Ns::new("legacy", c));
        for (ns, docs) in names.iter().zip(docs) {
            store.create_collection(ns).unwrap();
            if !docs.is_empty() {
                store.insert_many(ns, &docs).unwrap();
            }
        }
        (store, names)
    }

    fn ids(group: &Group<Fetched>, source: Source) -> Vec<String> {
        group
            .of(source)
            .iter()
            .map(|d| d.field("_id").unwrap().as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn documents_meet_their_user_across_collections() {
        let (store, names) = store_with([
            vec![
                doc! {"_id": "s2", "user_id": "u2"},
                doc! {"_id": "s1", "user_id": "u1"},
            ],
            vec![doc! {"_id": "f1", "user_id": "u3"}, doc! {"_id": "f0"}],
            vec![
                doc! {"_id": "t2", "user_id": "u1"},
                doc! {"_id": "t1", "user_id": "u1"},
            ],
            vec![],
        ]);
        let groups: Vec<Group<Fetched>> = PerUser::open(&store, names.each_ref(), 1, None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let users: Vec<Bson> = groups.iter().map(|g| g.user_id.clone()).collect();
        assert_eq!(
            users,
            vec![Bson::Null, "u1".into(), "u2".into(), "u3".into()]
        );
        assert_eq!(ids(&groups[0], Source::Followups), ["f0"]);
        assert_eq!(ids(&groups[1], Source::Submissions), ["s1"]);
        assert_eq!(ids(&groups[1], Source::TrainingPlans), ["t1", "t2"]);
        assert_eq!(
            groups.iter().map(Group::len).sum::<usize>(),
            6,
            "no document lost"
        );
    }

    #[test]
    fn documents_fetched_as_bytes_keep_their_stored_size() {
        let sub = doc! {"_id": "s1", "user_id": "u1", "submitted_at": bson::DateTime::from_millis(1), "responses": {"peso": "80"}};
        let no_date = doc! {"_id": "s2", "user_id": "u1", "responses": {}};
        let (store, names) = store_with([vec![sub.clone(), no_date], vec![], vec![], vec![]]);
        let group = PerUser::open(&store, names.each_ref(), 10, None)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let (user, rejected) = group.into_user("u1".into()).unwrap();
        assert_eq!(user.submissions, vec![sub.clone()]);
        assert_eq!(rejected.len(), 1, "s2 has no date");
        let stored = bson::to_vec(&sub).unwrap().len();
        assert_eq!(user.sizes[LegacyKind::Submission as usize], vec![stored]);
        let decoded = Group {
            user_id: Bson::from("u1"),
            docs: [vec![Fetched::Decoded(sub)], vec![], vec![], vec![]],
        };
        let (user, _) = decoded.into_user("u1".into()).unwrap();
        assert!(user.sizes.iter().all(Vec::is_empty), "not known: measured");
    }

    #[test]
    fn resuming_skips_every_document_of_finished_users() {
        let (store, names) = store_with([
            vec![
                doc! {"_id": "s1", "user_id": "u1"},
                doc! {"_id": "s2", "user_id": "u2"},
            ],
            vec![
                doc! {"_id": "f1", "user_id": "u1"},
                doc! {"_id": "f9", "user_id": "u1"},
            ],
            vec![doc! {"_id": "t3", "user_id": "u3"}],
            vec![],
        ]);
        let after = Bson::from("u1");
        let groups: Vec<Group<Fetched>> = PerUser::open(&store, names.each_ref(), 1, Some(&after))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let users: Vec<Bson> = groups.iter().map(|g| g.user_id.clone()).collect();
        assert_eq!(users, vec![Bson::from("u2"), "u3".into()]);
    }

    #[test]
    fn partitions_are_stable_and_cover_every_user() {
        let users: Vec<Bson> = (0..1000)
            .map(|i| Bson::from(format!("17300000{i:08}")))
            .collect();
        let mut sizes = [0; 4];
        for u in &users {
            let p = partition_of(u, 4);
            assert_eq!(p, partition_of(u, 4));
            sizes[p as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 150), "unbalanced: {sizes:?}");
        assert_eq!(partition_of(&Bson::from("1762976907472415"), 1), 0);
    }
}
