//! What changed between two snapshots ([`crate::snapshot::Snapshot`]): maps added,
//! removed and matched, and in each matched map the entries added, removed and
//! changed, with the BTF fields that changed and, for per-CPU values, the CPUs.
//!
//! Maps are matched by id when both snapshots come from one boot (the same kernel
//! release and the same boot identity, both known: see
//! [`KernelIdentity`](crate::snapshot::KernelIdentity)), since ids are never reused
//! within a boot; otherwise by (name, type, key size, value size). When several maps
//! of one side share that shape, the match is [`Ambiguous`] and the maps are not
//! compared: a match is never guessed.
//!
//! [`text`] and [`json`] show a [`Diff`]; both are what the `mapwalk diff` and
//! `mapwalk watch` commands print.

mod fields;
pub mod json;
pub mod text;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::btf::MapBtf;
use crate::snapshot::{Snapshot, SnapshotMeta, StoredMap, StoredValue};
use crate::source::{MapInfo, MapSelector, MapSource, SnapshotSource};

pub use fields::FieldChange;

/// How two maps were matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The same id, in one boot.
    Id,
    /// The same name, type, key size and value size, across boots.
    Shape,
}

/// One entry's change.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryChange {
    /// In B only.
    Added {
        /// The key.
        key: Vec<u8>,
        /// The value in B.
        value: StoredValue,
    },
    /// In A only.
    Removed {
        /// The key.
        key: Vec<u8>,
        /// The value in A.
        value: StoredValue,
    },
    /// In both, with other bytes.
    Changed {
        /// The key.
        key: Vec<u8>,
        /// The value in A.
        old: StoredValue,
        /// The value in B.
        new: StoredValue,
        /// The BTF fields that changed (per CPU for a per-CPU value); empty without
        /// BTF.
        fields: Vec<FieldChange>,
    },
}

impl EntryChange {
    /// The entry's key.
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Added { key, .. } | Self::Removed { key, .. } | Self::Changed { key, .. } => key,
        }
    }
}

/// Two matched maps and what changed between them.
#[derive(Debug, Clone, PartialEq)]
pub struct MapDiff {
    /// The map in A.
    pub a: MapInfo,
    /// The map in B.
    pub b: MapInfo,
    /// How they were matched.
    pub matched_by: MatchedBy,
    /// Entries in A.
    pub entries_a: usize,
    /// Entries in B.
    pub entries_b: usize,
    /// The changes, by key.
    pub changes: Vec<EntryChange>,
}

/// Maps of one shape that could not be paired one to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous {
    /// One of the maps (their shape is the same).
    pub shape: MapInfo,
    /// Their ids in A.
    pub ids_a: Vec<u32>,
    /// Their ids in B.
    pub ids_b: Vec<u32>,
}

/// What changed between snapshot A and snapshot B.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// A's description.
    pub a: SnapshotMeta,
    /// B's description.
    pub b: SnapshotMeta,
    /// Whether both come from one boot (maps matched by id).
    pub same_boot: bool,
    /// The matched maps, with or without changes, in B's id order.
    pub maps: Vec<MapDiff>,
    /// Maps only in B.
    pub added: Vec<MapInfo>,
    /// Maps only in A.
    pub removed: Vec<MapInfo>,
    /// Maps whose match is ambiguous, not compared.
    pub ambiguous: Vec<Ambiguous>,
    /// Maps read only in part in A or B (`map id N (name) in A: why`): what was read
    /// is compared, but the comparison may miss changes.
    pub incomplete: Vec<String>,
}

impl Diff {
    /// Whether A and B hold the same maps and entries.
    pub fn is_equal(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.ambiguous.is_empty()
            && self.maps.iter().all(|m| m.changes.is_empty())
    }

    /// The number of entry changes.
    pub fn change_count(&self) -> usize {
        self.maps.iter().map(|m| m.changes.len()).sum()
    }
}

/// Whether `sel` names `m`: its id, its name, or a suffix of its name.
pub fn selects(sel: &MapSelector, m: &MapInfo) -> bool {
    match sel {
        MapSelector::Id(id) => m.id == *id,
        MapSelector::Name(n) => m.name.as_bytes().ends_with(n.as_bytes()),
    }
}

/// The shape maps are matched by across boots.
type Shape = (Vec<u8>, u32, u32, u32);

fn shape(m: &MapInfo) -> Shape {
    (
        m.name.as_bytes().to_vec(),
        m.map_type.0,
        m.key_size,
        m.value_size,
    )
}

/// Compares `a` with `b`, the maps `maps` names (every map when empty), the fields of
/// changed values through the BTF `btf` gives for a map of B.
pub fn diff(
    a: &Snapshot,
    b: &Snapshot,
    maps: &[MapSelector],
    btf: &dyn Fn(&MapInfo) -> Option<MapBtf>,
) -> Diff {
    let keep = |m: &MapInfo| maps.is_empty() || maps.iter().any(|s| selects(s, m));
    diff_where(a, b, &keep, btf)
}

/// [`diff`] of the maps `keep` accepts (on either side).
pub fn diff_where(
    a: &Snapshot,
    b: &Snapshot,
    keep: &dyn Fn(&MapInfo) -> bool,
    btf: &dyn Fn(&MapInfo) -> Option<MapBtf>,
) -> Diff {
    let keep = |m: &&StoredMap| keep(&m.info);
    let ma: Vec<&StoredMap> = a.maps.iter().filter(keep).collect();
    let mb: Vec<&StoredMap> = b.maps.iter().filter(keep).collect();
    let (ka, kb) = (&a.meta.kernel, &b.meta.kernel);
    let same_boot =
        ka.release.is_some() && ka.release == kb.release && ka.boot.is_some() && ka.boot == kb.boot;
    let mut out = Diff {
        a: a.meta.clone(),
        b: b.meta.clone(),
        same_boot,
        maps: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
        ambiguous: Vec::new(),
        incomplete: Vec::new(),
    };
    for (side, list) in [("A", &ma), ("B", &mb)] {
        for m in list.iter().filter(|m| m.error.is_some()) {
            out.incomplete.push(format!(
                "{} in {side}: {}",
                named(&m.info),
                m.error.as_deref().unwrap_or_default()
            ));
        }
    }
    let mut pairs: Vec<(&StoredMap, &StoredMap, MatchedBy)> = Vec::new();
    if same_boot {
        let by_id: HashMap<u32, &StoredMap> = ma.iter().map(|m| (m.info.id, *m)).collect();
        let mut used = Vec::new();
        for m in &mb {
            match by_id.get(&m.info.id) {
                Some(old) if shape(&old.info) == shape(&m.info) => {
                    used.push(m.info.id);
                    pairs.push((old, m, MatchedBy::Id));
                }
                _ => out.added.push(m.info),
            }
        }
        out.removed = ma
            .iter()
            .filter(|m| !used.contains(&m.info.id))
            .map(|m| m.info)
            .collect();
    } else {
        let mut groups: BTreeMap<Shape, (Vec<&StoredMap>, Vec<&StoredMap>)> = BTreeMap::new();
        for m in &ma {
            groups.entry(shape(&m.info)).or_default().0.push(m);
        }
        for m in &mb {
            groups.entry(shape(&m.info)).or_default().1.push(m);
        }
        for (ga, gb) in groups.into_values() {
            match (ga.as_slice(), gb.as_slice()) {
                ([one_a], [one_b]) => pairs.push((one_a, one_b, MatchedBy::Shape)),
                (_, []) => out.removed.extend(ga.iter().map(|m| m.info)),
                ([], _) => out.added.extend(gb.iter().map(|m| m.info)),
                _ => out.ambiguous.push(Ambiguous {
                    shape: gb.first().map_or(MapInfo::default(), |m| m.info),
                    ids_a: ga.iter().map(|m| m.info.id).collect(),
                    ids_b: gb.iter().map(|m| m.info.id).collect(),
                }),
            }
        }
        out.added.sort_by_key(|m| m.id);
        out.removed.sort_by_key(|m| m.id);
    }
    pairs.sort_by_key(|(_, m, _)| m.info.id);
    for (old, new, matched_by) in pairs {
        out.maps.push(diff_map(old, new, matched_by, btf));
    }
    out
}

/// [`diff`] of two snapshot sources, the fields through B's BTF (or A's).
pub fn diff_sources(a: &SnapshotSource, b: &SnapshotSource, maps: &[MapSelector]) -> Diff {
    let btf = |m: &MapInfo| -> Option<MapBtf> {
        let from = |src: &SnapshotSource, id: u32| {
            let info = src.snapshot().map(id)?.info;
            src.btf(&info).ok().flatten()
        };
        from(b, m.id).or_else(|| {
            // A's map of the same shape (its id may differ across boots).
            let same = a.snapshot().maps.iter().find(|o| {
                shape(&o.info) == shape(m) && o.info.btf_value_type_id == m.btf_value_type_id
            })?;
            from(a, same.info.id)
        })
    };
    diff(a.snapshot(), b.snapshot(), maps, &btf)
}

fn diff_map(
    a: &StoredMap,
    b: &StoredMap,
    matched_by: MatchedBy,
    btf: &dyn Fn(&MapInfo) -> Option<MapBtf>,
) -> MapDiff {
    if a.entries == b.entries {
        // The common case of a watch: nothing moved; no index needed.
        return MapDiff {
            a: a.info,
            b: b.info,
            matched_by,
            entries_a: a.entries.len(),
            entries_b: b.entries.len(),
            changes: Vec::new(),
        };
    }
    let old: HashMap<&[u8], &StoredValue> = a
        .entries
        .iter()
        .map(|e| (e.key.as_slice(), &e.value))
        .collect();
    let mut seen: HashMap<&[u8], ()> = HashMap::with_capacity(b.entries.len());
    let mut changes = Vec::new();
    let mut map_btf: Option<Option<MapBtf>> = None;
    for e in &b.entries {
        seen.insert(&e.key, ());
        match old.get(e.key.as_slice()) {
            None => changes.push(EntryChange::Added {
                key: e.key.clone(),
                value: e.value.clone(),
            }),
            Some(v) if **v == e.value => {}
            Some(v) => {
                let btf = map_btf.get_or_insert_with(|| {
                    (crate::dump::value_type_id(&b.info) != 0)
                        .then(|| btf(&b.info))
                        .flatten()
                });
                let fields = btf.as_ref().map_or_else(Vec::new, |t| {
                    fields::changed_fields(t, crate::dump::value_type_id(&b.info), v, &e.value)
                });
                changes.push(EntryChange::Changed {
                    key: e.key.clone(),
                    old: (*v).clone(),
                    new: e.value.clone(),
                    fields,
                });
            }
        }
    }
    for e in &a.entries {
        if !seen.contains_key(e.key.as_slice()) {
            changes.push(EntryChange::Removed {
                key: e.key.clone(),
                value: e.value.clone(),
            });
        }
    }
    changes.sort_by(|x, y| x.key().cmp(y.key()));
    MapDiff {
        a: a.info,
        b: b.info,
        matched_by,
        entries_a: a.entries.len(),
        entries_b: b.entries.len(),
        changes,
    }
}

/// `map id 7 (name)`, or `map id 7` for a map without a name.
pub fn named(m: &MapInfo) -> String {
    if m.name.as_bytes().is_empty() {
        format!("map id {}", m.id)
    } else {
        format!("map id {} ({})", m.id, m.name)
    }
}

/// A value as `["0x01",..]`, or per CPU `[{"cpu":0,"value":[..]},..]` (as `bpftool -j`
/// shows them).
pub fn value_json(v: &StoredValue) -> Value {
    match v {
        StoredValue::Single(b) => crate::render::hex_value(b),
        StoredValue::PerCpu(c) => Value::Array(
            c.iter()
                .map(|(cpu, b)| serde_json::json!({"cpu": cpu, "value": crate::render::hex_value(b)}))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
