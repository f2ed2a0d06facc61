//! A [`Diff`] as JSON, and one change as a JSON record (the lines of `watch --json`).

use serde_json::{json, Map, Value};

use mapwalk_core::bpf::storage::OwnerKind;
use mapwalk_core::MapType;

use super::{value_json, Diff, EntryChange, FieldChange, MapDiff, MatchedBy};
use crate::render::storage::owner_json;
use crate::render::{hex_value, map_json};
use crate::snapshot::{unix_time, SnapshotMeta};

fn meta_json(m: &SnapshotMeta) -> Value {
    let (secs, nanos) = unix_time(m.taken);
    json!({
        "source": m.source,
        "kernel": m.kernel.release,
        "boot": m.kernel.boot,
        "time": secs as f64 + f64::from(nanos) / 1e9,
    })
}

fn fields_json(fields: &[FieldChange]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| {
                let mut o = Map::new();
                if let Some(cpu) = f.cpu {
                    o.insert("cpu".into(), json!(cpu));
                }
                o.insert("field".into(), json!(f.path));
                o.insert("old".into(), f.old.clone());
                o.insert("new".into(), f.new.clone());
                Value::Object(o)
            })
            .collect(),
    )
}

/// One change of a map of type `map_type`: `{"op":"added"|"removed"|"changed",
/// "key":[..],...}`; a local-storage map's change also has `"owner"`, the owner its key
/// records (as `dump --json` shows it, docs/local-storage.md).
pub fn change_json(map_type: MapType, c: &EntryChange) -> Value {
    let (key, mut o) = match c {
        EntryChange::Added { key, value } => (
            key,
            json!({"op": "added", "key": hex_value(key), "value": value_json(value)}),
        ),
        EntryChange::Removed { key, value } => (
            key,
            json!({"op": "removed", "key": hex_value(key), "value": value_json(value)}),
        ),
        EntryChange::Changed {
            key,
            old,
            new,
            fields,
        } => (
            key,
            json!({
                "op": "changed",
                "key": hex_value(key),
                "old": value_json(old),
                "new": value_json(new),
                "fields": fields_json(fields),
            }),
        ),
    };
    if let (Some(owner), Value::Object(o)) = (
        OwnerKind::of(map_type).and_then(|kind| owner_json(kind, key)),
        &mut o,
    ) {
        o.insert("owner".into(), owner);
    }
    o
}

fn map_diff_json(m: &MapDiff) -> Value {
    let mut o = match map_json(&m.b) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    if m.a.id != m.b.id {
        o.insert("id_a".into(), json!(m.a.id));
    }
    o.insert(
        "matched_by".into(),
        json!(match m.matched_by {
            MatchedBy::Id => "id",
            MatchedBy::Shape => "shape",
        }),
    );
    o.insert("entries_a".into(), json!(m.entries_a));
    o.insert("entries_b".into(), json!(m.entries_b));
    o.insert(
        "changes".into(),
        Value::Array(
            m.changes
                .iter()
                .map(|c| change_json(m.b.map_type, c))
                .collect(),
        ),
    );
    Value::Object(o)
}

/// The whole diff: both snapshots, the maps with changes (`"maps"`), the maps added,
/// removed and ambiguous, and the maps read in part.
pub fn diff_json(d: &Diff) -> Value {
    json!({
        "equal": d.is_equal(),
        "a": meta_json(&d.a),
        "b": meta_json(&d.b),
        "same_boot": d.same_boot,
        "maps": d.maps.iter().filter(|m| !m.changes.is_empty()).map(map_diff_json).collect::<Vec<_>>(),
        "maps_added": d.added.iter().map(map_json).collect::<Vec<_>>(),
        "maps_removed": d.removed.iter().map(map_json).collect::<Vec<_>>(),
        "ambiguous": d.ambiguous.iter().map(|a| {
            let mut v = map_json(&a.shape);
            if let Value::Object(o) = &mut v {
                o.remove("id");
                o.insert("ids_a".into(), json!(a.ids_a));
                o.insert("ids_b".into(), json!(a.ids_b));
            }
            v
        }).collect::<Vec<_>>(),
        "incomplete": d.incomplete,
    })
}
