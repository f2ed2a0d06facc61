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
            },
            source: source.to_owned(),
            first: None,
            prev: None,
            number: 0,
        }
    }

    /// Reads the watched maps of `src` now (its caches refreshed first), with how long
    /// it took.
    ///
    /// # Errors
    /// When the maps cannot be listed, or a name names no map (first sample).
    pub fn capture(&self, src: &dyn MapSource) -> Result<(Snapshot, Duration), SourceError> {
        let started = Instant::now();
        src.refresh();
        let snap = Snapshot::capture(src, &self.source, &self.opts)?;
        Ok((snap, started.elapsed()))
    }

    /// Compares `snap` (read in `read`) with the previous sample and keeps it.
    pub fn compare(&mut self, snap: Snapshot, read: Duration) -> Sample {
        let now = Instant::now();
        self.number += 1;
        let (diff, since) = match &self.prev {
            Some((prev, at)) => {
                let first = self.first.as_ref();
                let btf = |m: &MapInfo| -> Option<MapBtf> {
                    let f = first?;
                    let info = f.snapshot().map(m.id)?.info;
                    f.btf(&info).ok().flatten()
                };
                (
                    Some(diff::diff(prev, &snap, &[], &btf)),
                    now.duration_since(*at),
                )
            }
            None => (None, Duration::ZERO),
        };
        let secs = since.as_secs_f64();
        let maps = snap
            .maps
            .iter()
            .map(|m| {
                let changes = diff
                    .as_ref()
                    .and_then(|d| d.maps.iter().find(|x| x.b.id == m.info.id))
                    .map_or(0, |x| x.changes.len());
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
