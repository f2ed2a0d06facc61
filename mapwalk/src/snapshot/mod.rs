//! Snapshots: every map of a source, with its metadata, BTF and entries, at one moment,
//! kept in memory ([`Snapshot`]) and in a file ([`Snapshot::write_to`],
//! [`Snapshot::read_from`]).
//!
//! A snapshot is a source like any other ([`crate::source::SnapshotSource`]): what a
//! dump of the snapshot prints is what a dump of the source printed when the snapshot
//! was taken. It is also one side of a comparison ([`crate::diff`]).
//!
//! The file format is documented in `docs/snapshot.md`: a short uncompressed header
//! (magic, format version, body length) and a zlib-compressed body of length-prefixed
//! little-endian fields. The reader caps every count and length ([`format`](mod@format)'s
//! constants) and answers a truncated, corrupt or newer file with a
//! [`SnapshotError`], never a panic.

pub mod format;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::source::{MapInfo, MapSelector, MapSource, MapState, SourceError, ValueRef};

pub use format::{SnapshotError, FORMAT_VERSION};

/// The most entries of one map [`Snapshot::capture`] sets room aside for before it
/// has read them.
const RESERVE: usize = 4096;

/// Which kernel, and which boot of it, a source reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelIdentity {
    /// The kernel release (`uname -r`), when known.
    pub release: Option<String>,
    /// What tells one boot from another, when known: the live host's
    /// `/proc/sys/kernel/random/boot_id`; for guest memory, the KASLR placement
    /// (`kaslr:SLIDE:PHYS_BASE`, which a kernel without KASLR repeats on every boot).
    pub boot: Option<String>,
}

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The kernel and boot read.
    pub kernel: KernelIdentity,
    /// The source, as the user named it (`live`, `ram:PATH`, ...).
    pub source: String,
    /// When it was taken.
    pub taken: SystemTime,
}

/// A map's BTF as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBtf {
    /// No BTF (or none asked for).
    None,
    /// Index into [`Snapshot::btfs`].
    Index(u32),
    /// The BTF could not be read; why.
    Error(String),
}

/// One BTF object: standalone, or split over [`Snapshot::base_btf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfBlob {
    /// Whether it is split over the kernel's BTF.
    pub split: bool,
    /// Its own raw bytes.
    pub bytes: Vec<u8>,
}

/// A value as stored: one copy, or one per CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    /// One copy.
    Single(Vec<u8>),
    /// `(cpu, copy)` for every possible CPU.
    PerCpu(Vec<(u32, Vec<u8>)>),
}

impl StoredValue {
    /// An owned copy of a value a source handed over.
    pub fn from_ref(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Single(b) => Self::Single(b.to_vec()),
            ValueRef::PerCpu(p) => Self::PerCpu(p.iter().map(|(c, b)| (c, b.to_vec())).collect()),
        }
    }
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value.
    pub value: StoredValue,
}

impl StoredEntry {
    /// Whether this is `key` with value `value`, as a source hands them over.
    pub fn matches(&self, key: &[u8], value: ValueRef<'_>) -> bool {
        if self.key != key {
            return false;
        }
        match (&self.value, value) {
            (StoredValue::Single(a), ValueRef::Single(b)) => a.as_slice() == b,
            (StoredValue::PerCpu(a), ValueRef::PerCpu(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ca, va), (cb, vb))| *ca == cb && va.as_slice() == vb)
            }
            _ => false,
        }
    }
}

/// One map as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMap {
    /// Its metadata.
    pub info: MapInfo,
    /// What was known beyond it.
    pub state: MapState,
    /// Its BTF.
    pub btf: StoredBtf,
    /// Its entries, in the order the source walked them.
    pub entries: Vec<StoredEntry>,
    /// Why the walk stopped early, when it did (the entries before are kept).
    pub error: Option<String>,
}

/// Every map of a source at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Which kernel, where from, when.
    pub meta: SnapshotMeta,
    /// The kernel's BTF, when a map's BTF is split over it.
    pub base_btf: Option<Vec<u8>>,
    /// The distinct BTF objects of the maps.
    pub btfs: Vec<BtfBlob>,
    /// The maps the listing could not read: their id when known, and why.
    pub unlisted: Vec<(Option<u32>, String)>,
    /// The maps, in id order.
    pub maps: Vec<StoredMap>,
    /// The programs.
    pub progs: StoredProgs,
}

/// What [`Snapshot::capture`] takes.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Only these maps (every map when empty).
    pub maps: Vec<MapSelector>,
    /// Leave the maps' BTF out (a watch keeps the first sample's).
    pub no_btf: bool,
    /// Read the program list too (a whole snapshot does; a watch sample does not).
    pub progs: bool,
}

/// A snapshot's programs: the source's list, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredProgs {
    /// Not read: the source cannot list programs, or the capture did not ask; why.
    NotRead(String),
    /// The source's list, with the programs it could not read.
    Read(crate::progs::ProgReport),
}

impl Snapshot {
    /// Reads every map of `src` (or those `opts` names) with its entries.
    ///
    /// A map whose walk fails keeps the entries read before and the reason; a map
    /// whose BTF cannot be read keeps the reason.
    ///
    /// # Errors
    /// When the maps cannot be listed, or a selector of `opts` names no map or several.
    pub fn capture(
        src: &dyn MapSource,
        source: &str,
        opts: &CaptureOptions,
    ) -> Result<Self, SourceError> {
        Self::capture_against(src, source, opts, None).map(|(snap, _)| snap)
    }

    /// [`capture`](Self::capture), comparing each map with the same map of `prev` as
    /// it is read: a map whose entries are all the same, in the same order, takes
    /// `prev`'s entries (which `prev` is left without) instead of copying them again.
    /// Returns the ids of those maps: `prev` no longer has their entries.
    ///
    /// # Errors
    /// As [`capture`](Self::capture).
    pub fn capture_against(
        src: &dyn MapSource,
        source: &str,
        opts: &CaptureOptions,
        mut prev: Option<&mut Snapshot>,
    ) -> Result<(Self, Vec<u32>), SourceError> {
        let mut unchanged = Vec::new();
        let report = src.maps_report()?;
        let wanted: Option<Vec<u32>> = if opts.maps.is_empty() {
            None
        } else {
            let mut ids = Vec::new();
            for sel in &opts.maps {
                // An id is taken as it is (a map gone since is no error); a name must
                // name one map.
                ids.push(match sel {
                    MapSelector::Id(id) => *id,
                    MapSelector::Name(_) => src.find(sel)?.id,
                });
            }
            Some(ids)
        };
        let mut snap = Self {
            meta: SnapshotMeta {
                kernel: src.kernel_identity(),
                source: source.to_owned(),
                taken: SystemTime::now(),
            },
            base_btf: None,
            btfs: Vec::new(),
            unlisted: if wanted.is_some() {
                Vec::new()
            } else {
                report.errors
            },
            maps: Vec::new(),
            progs: if opts.progs {
                match src.progs() {
                    Ok(report) => StoredProgs::Read(report),
                    Err(e) => StoredProgs::NotRead(e.to_string()),
                }
            } else {
                StoredProgs::NotRead("not asked for".into())
            },
        };
        let mut interned: HashMap<(bool, Vec<u8>), u32> = HashMap::new();
        for info in report.maps {
            if wanted.as_ref().is_some_and(|w| !w.contains(&info.id)) {
                continue;
            }
            let btf = if opts.no_btf {
                StoredBtf::None
            } else {
                snap.capture_btf(src, &info, &mut interned)
            };
            // The previous sample's map: where this one will be, as a rule (the same
            // maps in the same order), else found.
            let pos = snap.maps.len();
            let before = prev.as_deref_mut().and_then(|p| {
                let at = if p.maps.get(pos).is_some_and(|m| m.info == info) {
                    Some(pos)
                } else {
                    p.maps.iter().position(|m| m.info == info)
                };
                p.maps.get_mut(at?)
            });
            let old: &[StoredEntry] = before.as_ref().map_or(&[], |m| m.entries.as_slice());
            // Entries the same as `old` so far are only counted (`same`); the first
            // that differs makes them copies.
            let mut same = 0usize;
            let mut copied: Option<Vec<StoredEntry>> = before.is_none().then(Vec::new);
            let walked = src.for_each_entry(&info, &mut |k, v| {
                if copied.is_none() {
                    if old.get(same).is_some_and(|e| e.matches(k, v)) {
                        same += 1;
                        return ControlFlow::Continue(());
                    }
                    copied = Some(old.get(..same).unwrap_or_default().to_vec());
                }
                if let Some(entries) = copied.as_mut() {
                    if entries.capacity() == 0 {
                        // Room up front (at most `RESERVE`), rather than growing by
                        // copies.
                        entries.reserve(
                            usize::try_from(info.max_entries).map_or(0, |n| n.min(RESERVE)),
                        );
                    }
                    entries.push(StoredEntry {
                        key: k.to_vec(),
                        value: StoredValue::from_ref(v),
                    });
                }
                ControlFlow::Continue(())
            });
            let entries = match (copied, before) {
                (Some(entries), _) => entries,
                // Every entry read was the same as before: all of them, if no more.
                (None, Some(b))
                    if same == b.entries.len() && walked.is_ok() && b.error.is_none() =>
                {
                    unchanged.push(info.id);
                    std::mem::take(&mut b.entries)
                }
                (None, Some(b)) => b.entries.get(..same).unwrap_or_default().to_vec(),
                (None, None) => Vec::new(),
            };
            snap.maps.push(StoredMap {
                state: src.state(&info),
                info,
                btf,
                entries,
                error: walked.err().map(|e| e.to_string()),
            });
        }
        Ok((snap, unchanged))
    }

    fn capture_btf(
        &mut self,
        src: &dyn MapSource,
        info: &MapInfo,
        interned: &mut HashMap<(bool, Vec<u8>), u32>,
    ) -> StoredBtf {
        // As the dump decides: no BTF to render with unless a key or value type id.
        if !info.has_btf() || (info.btf_key_type_id == 0 && info.btf_value_type_id == 0) {
            return StoredBtf::None;
        }
        let btf = match src.btf(info) {
            Ok(Some(b)) => b,
            Ok(None) => return StoredBtf::None,
            Err(e) => return StoredBtf::Error(e.to_string()),
        };
        let split = match btf.base() {
            None => false,
            Some(base) => {
                match &self.base_btf {
                    None => self.base_btf = Some(base.bytes().to_vec()),
                    Some(b) if b.as_slice() == base.bytes() => {}
                    Some(_) => {
                        return StoredBtf::Error(format!(
                            "map {}: its BTF is split over another base BTF than the \
                             other maps'",
                            info.id
                        ))
                    }
                }
                true
            }
        };
        let key = (split, btf.own_bytes().to_vec());
        if let Some(&i) = interned.get(&key) {
            return StoredBtf::Index(i);
        }
        let i = u32::try_from(self.btfs.len()).unwrap_or(u32::MAX);
        self.btfs.push(BtfBlob {
            split,
            bytes: key.1.clone(),
        });
        interned.insert(key, i);
        StoredBtf::Index(i)
    }

    /// The stored map with id `id`.
    pub fn map(&self, id: u32) -> Option<&StoredMap> {
        self.maps.iter().find(|m| m.info.id == id)
    }

    /// The number of entries of every map together.
    pub fn entry_count(&self) -> usize {
        self.maps.iter().map(|m| m.entries.len()).sum()
    }

    /// Writes the snapshot in the file format (`docs/snapshot.md`).
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        format::write(self, out)
    }

    /// Reads a snapshot file, checking every length against the format's caps.
    ///
    /// # Errors
    /// [`SnapshotError`]: not a snapshot, a newer format version, truncated, corrupt,
    /// over a cap, or the read failing.
    pub fn read_from(input: &mut dyn io::Read) -> Result<Self, SnapshotError> {
        format::read(input)
    }

    /// Reads the snapshot file at `path`.
    ///
    /// # Errors
    /// As [`read_from`](Self::read_from); the error names the file.
    pub fn open(path: &std::path::Path) -> Result<Self, SnapshotError> {
        let named = |e: SnapshotError| e.in_file(path);
        let mut f = std::fs::File::open(path).map_err(|e| named(SnapshotError::Io(e)))?;
        Self::read_from(&mut io::BufReader::new(&mut f)).map_err(named)
    }
}

/// Seconds and nanoseconds since the Unix epoch (0 before it).
pub fn unix_time(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    (d.as_secs(), d.subsec_nanos())
}

impl fmt::Display for KernelIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel {}, boot {}",
            self.release.as_deref().unwrap_or("(unknown)"),
            self.boot.as_deref().unwrap_or("(unknown)")
        )
    }
}

#[cfg(test)]
mod tests;
