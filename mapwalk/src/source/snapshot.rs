//! A snapshot ([`crate::snapshot::Snapshot`]) read as a map source: the maps, BTF and
//! entries as they were when it was taken. Read-only.

use std::sync::OnceLock;

use super::{EntryFn, MapInfo, MapReport, MapSource, MapState, SourceError, ValueRef};
use crate::btf::{BaseBtf, MapBtf};
use crate::snapshot::{KernelIdentity, Snapshot, StoredBtf, StoredMap, StoredValue};

/// The maps of a snapshot.
#[derive(Debug)]
pub struct SnapshotSource {
    snap: Snapshot,
    base: OnceLock<Result<BaseBtf, String>>,
}

impl SnapshotSource {
    /// A source over `snap`.
    pub fn new(snap: Snapshot) -> Self {
        Self {
            snap,
            base: OnceLock::new(),
        }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    fn stored(&self, map: &MapInfo) -> Result<&StoredMap, SourceError> {
        self.snap
            .map(map.id)
            .ok_or_else(|| SourceError::NoSuchMap(format!("id:{} (not in the snapshot)", map.id)))
    }

    fn base(&self) -> Result<&BaseBtf, SourceError> {
        self.base
            .get_or_init(|| match &self.snap.base_btf {
                None => Err("the snapshot has no base BTF".into()),
                Some(b) => BaseBtf::new(b.clone()).map_err(|e| e.to_string()),
            })
            .as_ref()
            .map_err(|e| SourceError::Btf(format!("base BTF: {e}")))
    }
}

impl MapSource for SnapshotSource {
    /// The programs the snapshot holds, or why it holds none.
    fn progs(&self) -> Result<crate::progs::ProgReport, SourceError> {
        match &self.snapshot().progs {
            crate::snapshot::StoredProgs::Read(report) => Ok(report.clone()),
            crate::snapshot::StoredProgs::NotRead(why) => Err(SourceError::Unsupported(format!(
                "the snapshot holds no programs: {why}"
            ))),
        }
    }

    fn kernel_identity(&self) -> KernelIdentity {
        self.snap.meta.kernel.clone()
    }

    fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
        Ok(self.snap.maps.iter().map(|m| m.info).collect())
    }

    fn maps_report(&self) -> Result<MapReport, SourceError> {
        Ok(MapReport {
            maps: self.maps()?,
            errors: self.snap.unlisted.clone(),
        })
    }

    fn state(&self, map: &MapInfo) -> MapState {
        self.stored(map).map(|m| m.state).unwrap_or_default()
    }

    fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
        Ok(self.snap.map(id).map(|m| m.info))
    }

    /// A snapshot keeps a STRUCT_OPS map's bytes, not the kernel's BTF its struct is
    /// decoded through: an error, which a dump reports as a warning.
    fn struct_ops(&self, _: &MapInfo) -> Result<Option<crate::struct_ops::StructOps>, SourceError> {
        Err(SourceError::Unsupported(
            "a snapshot stores no kernel BTF to decode it through".into(),
        ))
    }

    fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
        let i = match &self.stored(map)?.btf {
            StoredBtf::None => return Ok(None),
            StoredBtf::Error(e) => return Err(SourceError::Recorded(e.clone())),
            StoredBtf::Index(i) => *i,
        };
        let blob = usize::try_from(i)
            .ok()
            .and_then(|i| self.snap.btfs.get(i))
            .ok_or_else(|| SourceError::Btf(format!("map {}: no BTF object {i}", map.id)))?;
        let parsed = if blob.split {
            MapBtf::split(blob.bytes.clone(), self.base()?)
        } else {
            MapBtf::new(blob.bytes.clone())
        };
        parsed
            .map(Some)
            .map_err(|e| SourceError::Btf(format!("map {}: {e}", map.id)))
    }

    fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
        let stored = self.stored(map)?;
        let (mut bytes, mut cpus) = (Vec::new(), Vec::new());
        for e in &stored.entries {
            let flow = match &e.value {
                StoredValue::Single(v) => f(&e.key, ValueRef::Single(v)),
                StoredValue::PerCpu(copies) => {
                    bytes.clear();
                    cpus.clear();
                    let size = copies.first().map_or(0, |(_, v)| v.len());
                    for (cpu, v) in copies {
                        cpus.push(*cpu);
                        // Copies of one value are one size; a shorter one is padded.
                        let start = bytes.len();
                        bytes.extend(v.iter().take(size));
                        bytes.resize(start.saturating_add(size), 0);
                    }
                    f(&e.key, ValueRef::per_cpu(&bytes, size, size, &cpus))
                }
            };
            if flow.is_break() {
                return Ok(());
            }
        }
        match &stored.error {
            Some(e) => Err(SourceError::Recorded(e.clone())),
            None => Ok(()),
        }
    }

    fn check_writable(&self, map: &MapInfo) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(format!(
            "map {} is in a snapshot, which is read-only",
            map.id
        )))
    }

    fn write(&self, map: &MapInfo, _: &[u8], _: u64, _: &[u8]) -> Result<(), SourceError> {
        self.check_writable(map)
    }
}
