//! The live host's maps, through `bpf()`.

use super::{check_bounds, check_key, EntryFn, MapInfo, MapSource, SourceError};
use crate::btf::{BaseBtf, MapBtf};
use crate::describe::Symbols;
use crate::input::{read_capped, MAX_SYMBOLS_FILE};
use crate::stack::KernelSymbolizer;
use mapwalk_core::MapType;
use std::sync::OnceLock;

/// The live host's maps, through `bpf()`.
#[derive(Debug, Clone, Default)]
pub struct LiveSource {
    /// How dumps walk maps.
    pub dump: mapwalk_live::DumpOptions,
    /// `/proc/kallsyms` by address, read at the first STACK_TRACE map dumped (`None`
    /// when it cannot be read or its addresses are hidden).
    symbolizer: OnceLock<Option<KernelSymbolizer>>,
}

impl LiveSource {
    /// A source whose dumps walk maps as `dump` says.
    pub fn new(dump: mapwalk_live::DumpOptions) -> Self {
        Self {
            dump,
            symbolizer: OnceLock::new(),
        }
    }

    fn open(&self, map: &MapInfo) -> Result<mapwalk_live::LiveMap, SourceError> {
        mapwalk_live::LiveMap::open(map.id)?
            .ok_or_else(|| SourceError::NoSuchMap(format!("id:{} (it went away)", map.id)))
    }
}

/// Whether the running kernel's `struct bpf_ringbuf` has `pending_pos` (Linux 6.8, and
/// the stable kernels it was backported to), by its BTF; `false` without BTF.
fn ring_has_pending_pos() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::fs::read("/sys/kernel/btf/vmlinux")
            .ok()
            .and_then(|b| crate::btf::layout_from_bytes(&b).ok())
            .and_then(|r| r.layout.ringbuf)
            .is_some_and(|l| l.pending_pos.is_some())
    })
}

/// Parses program or module BTF, on top of vmlinux BTF when it is split.
fn parse_live_btf(obj: &mapwalk_live::BtfObject) -> Result<MapBtf, SourceError> {
    let standalone = if obj.kernel && obj.name != "vmlinux" {
        None
    } else {
        crate::btf::parse(&obj.bytes).ok()
    };
    if let Some(b) = standalone {
        return Ok(b);
    }
    let base = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| e.to_string())
        .and_then(|b| BaseBtf::new(b).map_err(|e| e.to_string()))
        .map_err(|e| SourceError::Btf(format!("/sys/kernel/btf/vmlinux: {e}")))?;
    MapBtf::split(obj.bytes.clone(), &base)
        .map_err(|e| SourceError::Btf(format!("BTF object {}: {e}", obj.id)))
}

impl MapSource for LiveSource {
    fn progs(&self) -> Result<crate::progs::ProgReport, SourceError> {
        crate::progs::live_progs()
    }

    /// `/proc/kallsyms` (at most [`MAX_SYMBOLS_FILE`] bytes); none when it cannot be
    /// read or shows no addresses (without `CAP_SYSLOG`).
    fn symbolizer(&self) -> Option<&KernelSymbolizer> {
        self.symbolizer
            .get_or_init(|| {
                let text = read_capped(std::path::Path::new("/proc/kallsyms"), MAX_SYMBOLS_FILE);
                let syms = Symbols::from_text(text.ok()?).ok()?;
                if syms.addresses_hidden() {
                    return None;
                }
                Some(syms.image_symbolizer()).filter(|s| !s.is_empty())
            })
            .as_ref()
    }

    /// `/proc/sys/kernel/osrelease` and `/proc/sys/kernel/random/boot_id`.
    fn kernel_identity(&self) -> crate::snapshot::KernelIdentity {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        crate::snapshot::KernelIdentity {
            release: read("/proc/sys/kernel/osrelease"),
            boot: read("/proc/sys/kernel/random/boot_id"),
        }
    }

    /// One `BPF_MAP_LOOKUP_ELEM`, not a walk.
    fn lookup(
        &self,
        map: &MapInfo,
        key: &[u8],
        f: &mut dyn FnMut(super::ValueRef<'_>),
    ) -> Result<bool, SourceError> {
        super::check_keyed(map)?;
        check_key(map, key)?;
        match self.open(map)?.lookup(key)? {
            None => Ok(false),
            Some(mapwalk_live::Value::Single(v)) => {
                f(super::ValueRef::Single(&v));
                Ok(true)
            }
            Some(mapwalk_live::Value::PerCpu(copies)) => {
                let size = usize::try_from(map.value_size).unwrap_or(0);
                let cpus: Vec<u32> = copies.iter().map(|c| c.cpu).collect();
                let bytes: Vec<u8> = copies
                    .iter()
                    .flat_map(|c| c.bytes.iter().copied())
                    .collect();
                f(super::ValueRef::per_cpu(&bytes, size, size, &cpus));
                Ok(true)
            }
        }
    }

    fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
        let mut out = Vec::new();
        for id in mapwalk_live::map_ids() {
            if let Some(m) = mapwalk_live::LiveMap::open(id?)? {
                out.push(*m.info());
            }
        }
        Ok(out)
    }

    fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
        Ok(mapwalk_live::LiveMap::open(id)?.map(|m| *m.info()))
    }

    fn state(&self, map: &MapInfo) -> super::MapState {
        use std::os::fd::AsRawFd;
        let Ok(live) = self.open(map) else {
            return super::MapState::default();
        };
        // The kernel's own account of the map, as bpftool reads it.
        let path = format!("/proc/self/fdinfo/{}", live.fd().as_raw_fd());
        std::fs::read_to_string(path)
            .map(|text| super::MapState::from_fdinfo(&text))
            .unwrap_or_default()
    }

    /// The value a lookup of key 0 returns, decoded through `/sys/kernel/btf/vmlinux`
    /// (at most [`crate::input::MAX_BTF_FILE`] bytes), each program named by
    /// `BPF_OBJ_GET_INFO_BY_FD` on its id.
    fn struct_ops(
        &self,
        map: &MapInfo,
    ) -> Result<Option<crate::struct_ops::StructOps>, SourceError> {
        let live = self.open(map)?;
        let value = match live.lookup(&0u32.to_ne_bytes())? {
            Some(mapwalk_live::Value::Single(v)) => v,
            Some(_) | None => {
                return Err(SourceError::Unsupported(format!(
                    "struct_ops map {} has no value at key 0",
                    map.id
                )))
            }
        };
        let raw = crate::input::read_capped(
            std::path::Path::new("/sys/kernel/btf/vmlinux"),
            crate::input::MAX_BTF_FILE,
        )
        .map_err(|e| SourceError::Btf(format!("/sys/kernel/btf/vmlinux: {e}")))?;
        let btf = crate::btf::BtfReader::new(&raw)
            .map_err(|e| SourceError::Btf(format!("/sys/kernel/btf/vmlinux: {e}")))?;
        let name_of = |id: u32| {
            let fd = mapwalk_live::sys::prog_get_fd_by_id(id).ok()??;
            let p = mapwalk_live::sys::prog_info(std::os::fd::AsFd::as_fd(&fd)).ok()?;
            crate::progs::from_live(&p).ok().map(|i| i.name.to_string())
        };
        crate::struct_ops::decode(&btf, map.btf_vmlinux_value_type_id, &value, &name_of).map(Some)
    }

    fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
        if map.btf_id == 0 {
            return Ok(None);
        }
        match mapwalk_live::btf_by_id(map.btf_id)? {
            None => Ok(None),
            Some(obj) => parse_live_btf(&obj).map(Some),
        }
    }

    fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
        let live = self.open(map)?;
        if matches!(map.map_type, MapType::RINGBUF | MapType::USER_RINGBUF) {
            // The mapped ring, in the form the memory path hands (docs/ringbuf.md).
            let view = live.map_ringbuf()?;
            view.for_each_form_entry(map.map_type, ring_has_pending_pos(), |k, v| {
                f(k, mapwalk_live::ValueRef::Single(v))
            })?;
            return Ok(());
        }
        live.for_each_entry(self.dump, f)?;
        Ok(())
    }

    fn write(
        &self,
        map: &MapInfo,
        key: &[u8],
        offset: u64,
        data: &[u8],
    ) -> Result<(), SourceError> {
        check_bounds(map, offset, data.len())?;
        check_key(map, key)?;
        let live = self.open(map)?;
        let current = live.lookup(key)?.ok_or_else(|| {
            SourceError::BadKey(format!(
                "map {} has no entry at key {}; nothing was written",
                map.id,
                crate::render::hex_spaced(key)
            ))
        })?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let patch = |v: &mut Vec<u8>| {
            if let Some(dst) = v.get_mut(start..start.saturating_add(data.len())) {
                dst.copy_from_slice(data);
            }
        };
        match current {
            mapwalk_live::Value::Single(mut v) => {
                patch(&mut v);
                live.update(key, &v, mapwalk_live::Update::Exist)?;
            }
            mapwalk_live::Value::PerCpu(copies) => {
                let mut values: Vec<Vec<u8>> = copies.into_iter().map(|c| c.bytes).collect();
                values.iter_mut().for_each(patch);
                let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                live.update_percpu(key, &refs, mapwalk_live::Update::Exist)?;
            }
        }
        Ok(())
    }
}
