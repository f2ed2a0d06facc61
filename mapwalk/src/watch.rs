//! Watching maps change: the maps are read again at each sample (the kernel described
//! once, the source's caches refreshed) and each sample is compared with the one
//! before ([`crate::diff`]).
//!
//! A [`Watcher`] keeps the previous sample and the first sample's BTF (a watch stays
//! within one boot, so a map's BTF does not change; maps that appear later are shown
//! without field names). Reading a sample ([`Watcher::capture`]) and comparing it
//! ([`Watcher::compare`]) are separate so that a caller can pause a guest around the
//! read alone.
//!
//! On a guest that runs while it is read, a sample is what the walkers' lockless
//! reads give (see DESIGN.md, "Running guests"): a value may be torn (read while it
//! was written), but a map or an entry that does not exist is never invented.

use std::time::{Duration, Instant, SystemTime};

use crate::btf::MapBtf;
use crate::diff::{self, Diff};
use crate::snapshot::{CaptureOptions, Snapshot};
use crate::source::{MapInfo, MapSelector, MapSource, SnapshotSource, SourceError};

/// One map's figures in a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct MapStat {
    /// The map.
    pub info: MapInfo,
    /// Its entries now.
    pub entries: usize,
    /// Entries added, removed or changed since the previous sample.
    pub changes: usize,
    /// `changes` over the time since the previous sample.
    pub changes_per_sec: f64,
}

/// One sample compared with the one before.
#[derive(Debug, Clone)]
pub struct Sample {
    /// 1 for the first sample.
    pub number: u64,
    /// When it was read.
    pub taken: SystemTime,
    /// Time since the previous sample (zero for the first).
    pub since: Duration,
    /// How long reading the maps took.
    pub read: Duration,
    /// Every watched map's figures.
    pub maps: Vec<MapStat>,
    /// The changes since the previous sample (`None` for the first).
    pub diff: Option<Diff>,
}

/// Reads samples of a source and compares each with the one before.
#[derive(Debug)]
pub struct Watcher {
    opts: CaptureOptions,
    source: String,
    first: Option<SnapshotSource>,
    prev: Option<(Snapshot, Instant)>,
    /// The maps of the last capture whose entries it took from `prev` (unchanged).
    unchanged: Vec<u32>,
    /// A capture not compared yet.
    awaiting: bool,
    number: u64,
}

impl Watcher {
    /// A watcher of the maps `maps` names (every map when empty) of the source named
    /// `source` (for the records).
    pub fn new(source: &str, maps: Vec<MapSelector>) -> Self {
        Self {
            opts: CaptureOptions {
                maps,
                no_btf: false,
                progs: false,
            },
            source: source.to_owned(),
            first: None,
            prev: None,
            unchanged: Vec::new(),
            awaiting: false,
            number: 0,
        }
    }

    /// Reads the watched maps of `src` now (its caches refreshed first), with how long
    /// it took. A map whose entries did not change since the previous sample takes
    /// that sample's entries rather than copying them again
    /// ([`Snapshot::capture_against`]), so each capture is to be handed to
    /// [`compare`](Self::compare) before the next; a capture that follows another
    /// uncompared one starts afresh (its comparison is a first sample's).
    ///
    /// # Errors
    /// When the maps cannot be listed, or a name names no map (first sample).
    pub fn capture(&mut self, src: &dyn MapSource) -> Result<(Snapshot, Duration), SourceError> {
        let started = Instant::now();
        if self.awaiting {
            self.prev = None;
        }
        self.awaiting = true;
        src.refresh();
        let prev = self.prev.as_mut().map(|(s, _)| s);
        let (snap, mut unchanged) = Snapshot::capture_against(src, &self.source, &self.opts, prev)?;
        unchanged.sort_unstable();
        self.unchanged = unchanged;
        Ok((snap, started.elapsed()))
    }

    /// Compares `snap` (read in `read`) with the previous sample and keeps it.
    pub fn compare(&mut self, snap: Snapshot, read: Duration) -> Sample {
        let now = Instant::now();
        self.number += 1;
        self.awaiting = false;
        let unchanged = std::mem::take(&mut self.unchanged);
        let (diff, since) = match &self.prev {
            Some((prev, at)) => {
                let first = self.first.as_ref();
                let btf = |m: &MapInfo| -> Option<MapBtf> {
                    let f = first?;
                    let info = f.snapshot().map(m.id)?.info;
                    f.btf(&info).ok().flatten()
                };
                // The maps whose entries the capture took from `prev` did not change
                // (and `prev` no longer has their entries).
                let keep = |m: &MapInfo| unchanged.binary_search(&m.id).is_err();
                (
                    Some(diff::diff_where(prev, &snap, &keep, &btf)),
                    now.duration_since(*at),
                )
            }
            None => (None, Duration::ZERO),
        };
        let secs = since.as_secs_f64();
        let changed: std::collections::HashMap<u32, usize> = diff
            .as_ref()
            .map(|d| d.maps.iter().map(|x| (x.b.id, x.changes.len())).collect())
            .unwrap_or_default();
        let maps = snap
            .maps
            .iter()
            .map(|m| {
                let changes = changed.get(&m.info.id).copied().unwrap_or(0);
                MapStat {
                    info: m.info,
                    entries: m.entries.len(),
                    changes,
                    changes_per_sec: if secs > 0.0 {
                        changes as f64 / secs
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        let sample = Sample {
            number: self.number,
            taken: snap.meta.taken,
            since,
            read,
            maps,
            diff,
        };
        if self.first.is_none() {
            // Later samples leave the BTF out; the names given become ids, so a map
            // that goes away is reported removed rather than failing the sample.
            if !self.opts.maps.is_empty() {
                self.opts.maps = snap
                    .maps
                    .iter()
                    .map(|m| MapSelector::Id(m.info.id))
                    .collect();
            }
            self.opts.no_btf = true;
            self.first = Some(SnapshotSource::new(snap.clone()));
        }
        self.prev = Some((snap, now));
        sample
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use mapwalk_core::bpf::MapName;
    use mapwalk_core::MapType;

    use super::*;
    use crate::diff::EntryChange;
    use crate::snapshot::{
        KernelIdentity, SnapshotMeta, StoredBtf, StoredEntry, StoredMap, StoredValue,
    };
    use crate::source::MapState;

    /// A map: id, name, and its (key, value) entries.
    type Spec<'a> = (u32, &'a str, &'a [(u32, u8)]);

    fn source(maps: &[Spec<'_>]) -> SnapshotSource {
        let maps = maps
            .iter()
            .map(|&(id, name, entries)| {
                let mut field = [0u8; 16];
                field[..name.len()].copy_from_slice(name.as_bytes());
                StoredMap {
                    info: MapInfo {
                        id,
                        map_type: MapType::HASH,
                        name: MapName::from_field(&field),
                        key_size: 4,
                        value_size: 1,
                        max_entries: 8,
                        ..MapInfo::default()
                    },
                    state: MapState::default(),
                    btf: StoredBtf::None,
                    entries: entries
                        .iter()
                        .map(|&(k, v)| StoredEntry {
                            key: k.to_le_bytes().to_vec(),
                            value: StoredValue::Single(vec![v]),
                        })
                        .collect(),
                    error: None,
                }
            })
            .collect();
        SnapshotSource::new(Snapshot {
            meta: SnapshotMeta {
                kernel: KernelIdentity {
                    release: Some("r".into()),
                    boot: Some("b".into()),
                },
                source: "s".into(),
                taken: UNIX_EPOCH,
            },
            base_btf: None,
            progs: crate::snapshot::StoredProgs::NotRead("none".into()),
            btfs: Vec::new(),
            unlisted: Vec::new(),
            maps,
        })
    }

    #[test]
    fn each_sample_is_compared_with_the_one_before() {
        let first = source(&[
            (1, "a", &[(1, 1), (2, 2)]),
            (2, "b", &[(1, 1)]),
            (3, "c", &[]),
        ]);
        let second = source(&[(1, "a", &[(1, 1), (2, 9), (3, 3)]), (3, "c", &[])]);
        let mut w = Watcher::new("s", vec![MapSelector::parse("a"), MapSelector::parse("b")]);
        let (snap, read) = w.capture(&first).unwrap();
        let s1 = w.compare(snap, read);
        assert_eq!(s1.number, 1);
        assert!(s1.diff.is_none());
        assert_eq!(
            s1.maps
                .iter()
                .map(|m| (m.info.id, m.entries))
                .collect::<Vec<_>>(),
            [(1, 2), (2, 1)]
        );
        // Map b goes away: reported removed, not an error; c is not watched.
        std::thread::sleep(Duration::from_millis(5));
        let (snap, read) = w.capture(&second).unwrap();
        let s2 = w.compare(snap, read);
        let d = s2.diff.as_ref().unwrap();
        assert_eq!(d.removed.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
        assert!(d.added.is_empty());
        let ops: Vec<(bool, Vec<u8>)> = d.maps[0]
            .changes
            .iter()
            .map(|c| (matches!(c, EntryChange::Added { .. }), c.key().to_vec()))
            .collect();
        assert_eq!(
            ops,
            [
                (false, 2u32.to_le_bytes().to_vec()),
                (true, 3u32.to_le_bytes().to_vec())
            ]
        );
        assert_eq!(s2.maps[0].changes, 2);
        assert!(s2.since >= Duration::from_millis(5));
        assert!(s2.maps[0].changes_per_sec > 0.0);
        // The same again: nothing changed, and map a's entries are the previous
        // sample's, not copied again.
        let (snap, read) = w.capture(&second).unwrap();
        assert_eq!(w.unchanged, [1]);
        let s3 = w.compare(snap, read);
        assert!(s3.diff.as_ref().unwrap().is_equal());
        assert_eq!(s3.maps[0].entries, 3);
        // Back to the first state: compared with the third sample (whose entries were
        // taken over), key 2 changed back, key 3 removed, map b back.
        let (snap, read) = w.capture(&first).unwrap();
        assert!(w.unchanged.is_empty());
        let s4 = w.compare(snap, read);
        let d = s4.diff.as_ref().unwrap();
        assert_eq!(d.added.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
        let ops: Vec<(bool, Vec<u8>)> = d.maps[0]
            .changes
            .iter()
            .map(|c| (matches!(c, EntryChange::Removed { .. }), c.key().to_vec()))
            .collect();
        assert_eq!(
            ops,
            [
                (false, 2u32.to_le_bytes().to_vec()),
                (true, 3u32.to_le_bytes().to_vec())
            ]
        );
        // A capture not compared: the next starts afresh, with no diff.
        let _ = w.capture(&second).unwrap();
        let (snap, read) = w.capture(&second).unwrap();
        assert!(w.compare(snap, read).diff.is_none());
    }
}
