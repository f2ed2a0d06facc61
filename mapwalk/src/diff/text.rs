//! A [`Diff`] as text for people: one line a map, one a change, fields indented;
//! coloured on a terminal (`+` green, `-` red, `~` yellow).

use std::io::{self, Write};

use mapwalk_core::bpf::storage::OwnerKind;
use mapwalk_core::MapType;

use super::{named, Diff, EntryChange, FieldChange, MapDiff};
use crate::render::hex_spaced;
use crate::render::storage::owner_text;
use crate::snapshot::{unix_time, SnapshotMeta, StoredValue};

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Colour the lines.
    pub colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn meta_line(m: &SnapshotMeta) -> String {
    let (secs, nanos) = unix_time(m.taken);
    format!(
        "{} ({}, at {secs}.{:03})",
        m.source,
        m.kernel,
        nanos / 1_000_000
    )
}

/// A value as hex bytes, or per CPU `cpu 0: .. | cpu 1: ..`.
pub fn value_text(v: &StoredValue) -> String {
    match v {
        StoredValue::Single(b) => hex_spaced(b),
        StoredValue::PerCpu(c) => c
            .iter()
            .map(|(cpu, b)| format!("cpu {cpu}: {}", hex_spaced(b)))
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

fn field_line(f: &FieldChange) -> String {
    let cpu = f.cpu.map(|c| format!("cpu {c} ")).unwrap_or_default();
    let path = if f.path.is_empty() { "value" } else { &f.path };
    format!("      {cpu}{path}: {} -> {}", f.old, f.new)
}

/// A key as text: `key 01 00 00 00`, or for a local-storage map (whose keys are owner
/// records) the owner, `owner task pid 1 tgid 1 comm init at 0x..`.
pub fn key_text(map_type: MapType, key: &[u8]) -> String {
    OwnerKind::of(map_type)
        .and_then(|kind| owner_text(kind, key))
        .map_or_else(
            || format!("key {}", hex_spaced(key)),
            |o| format!("owner {o}"),
        )
}

/// One change of a map of type `map_type` as lines (the change, then its fields),
/// without a newline at the end.
pub fn change_lines(map_type: MapType, c: &EntryChange, style: Style) -> Vec<String> {
    match c {
        EntryChange::Added { key, value } => vec![style.paint(
            "32",
            &format!("  + {}: {}", key_text(map_type, key), value_text(value)),
        )],
        EntryChange::Removed { key, value } => vec![style.paint(
            "31",
            &format!("  - {}: {}", key_text(map_type, key), value_text(value)),
        )],
        EntryChange::Changed {
            key,
            old,
            new,
            fields,
        } => {
            let mut lines = vec![style.paint(
                "33",
                &format!(
                    "  ~ {}: {} -> {}",
                    key_text(map_type, key),
                    value_text(old),
                    value_text(new)
                ),
            )];
            lines.extend(fields.iter().map(field_line));
            lines
        }
    }
}

/// `map id 7 (name) hash: 1 added, 0 removed, 2 changed (entries 4 -> 5)`.
pub fn map_line(m: &MapDiff) -> String {
    let count = |f: fn(&EntryChange) -> bool| m.changes.iter().filter(|c| f(c)).count();
    let moved = if m.a.id == m.b.id {
        String::new()
    } else {
        format!(" (id {} in A)", m.a.id)
    };
    format!(
        "{}{moved} {}: {} added, {} removed, {} changed (entries {} -> {})",
        named(&m.b),
        m.b.map_type,
        count(|c| matches!(c, EntryChange::Added { .. })),
        count(|c| matches!(c, EntryChange::Removed { .. })),
        count(|c| matches!(c, EntryChange::Changed { .. })),
        m.entries_a,
        m.entries_b
    )
}

/// Writes the whole diff.
///
/// # Errors
/// The writer's.
pub fn write_diff(out: &mut dyn Write, d: &Diff, style: Style) -> io::Result<()> {
    writeln!(out, "--- A: {}", meta_line(&d.a))?;
    writeln!(out, "+++ B: {}", meta_line(&d.b))?;
    if d.a.kernel.release != d.b.kernel.release {
        writeln!(
            out,
            "note: different kernels: maps matched by name, type and sizes"
        )?;
    } else if !d.same_boot {
        writeln!(
            out,
            "note: not known to be one boot: maps matched by name, type and sizes"
        )?;
    }
    for m in d.maps.iter().filter(|m| !m.changes.is_empty()) {
        writeln!(out, "{}", map_line(m))?;
        for c in &m.changes {
            for line in change_lines(m.b.map_type, c, style) {
                writeln!(out, "{line}")?;
            }
        }
    }
    for m in &d.added {
        writeln!(
            out,
            "{}",
            style.paint("32", &format!("+ {} {}: only in B", named(m), m.map_type))
        )?;
    }
    for m in &d.removed {
        writeln!(
            out,
            "{}",
            style.paint("31", &format!("- {} {}: only in A", named(m), m.map_type))
        )?;
    }
    for a in &d.ambiguous {
        writeln!(
            out,
            "? maps named {:?} ({}, key {} bytes, value {} bytes): ids {:?} in A, {:?} in B: \
             ambiguous, not compared",
            a.shape.name.to_string(),
            a.shape.map_type,
            a.shape.key_size,
            a.shape.value_size,
            a.ids_a,
            a.ids_b
        )?;
    }
    for i in &d.incomplete {
        writeln!(out, "! {i}: read in part")?;
    }
    if d.is_equal() {
        writeln!(out, "equal: {} maps compared", d.maps.len())?;
    } else {
        writeln!(
            out,
            "different: {} changed entries in {} maps, {} maps added, {} removed, {} ambiguous",
            d.change_count(),
            d.maps.iter().filter(|m| !m.changes.is_empty()).count(),
            d.added.len(),
            d.removed.len(),
            d.ambiguous.len()
        )?;
    }
    Ok(())
}
