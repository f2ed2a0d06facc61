//! The maps of a kernel in guest memory: the core's walkers over a described kernel.

use super::settle::{unsettled, OnceEach, Settle};
use super::{
    check_bounds, check_key, EntryFn, MapInfo, MapReport, MapSource, SourceError, ValueRef,
};
use crate::btf::MapBtf;
use crate::describe::Kernel;
use mapwalk_core::bpf::{Bpf, EntryValue, PerCpuOffsets, WALKABLE_MAP_TYPES};
use mapwalk_core::MapType;
use mapwalk_core::{KernelRead, KernelView, PhysRead};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::stack::KernelSymbolizer;

/// Whether (and how) a memory backend can be written.
pub trait GuestWrite: PhysRead + Sized {
    /// Writes `data` at `offset` in ARRAY `map`'s value at index `key`.
    ///
    /// # Errors
    /// [`SourceError::Unsupported`] for read-only memory; the walker's error.
    fn write_array(
        bpf: &Bpf<'_, KernelView<Self>>,
        map: &MapInfo,
        key: u32,
        offset: u64,
        data: &[u8],
    ) -> Result<(), SourceError>;
}

/// A memory that can be written: `$refuse` says why not at the moment (read-only
/// mapping), or `None`.
macro_rules! writable {
    ($(#[$attr:meta])* [$($gen:tt)*] $ty:ty, $refuse:expr) => {
        $(#[$attr])*
        impl<$($gen)*> GuestWrite for $ty {
            fn write_array(
                bpf: &Bpf<'_, KernelView<Self>>,
                map: &MapInfo,
                key: u32,
                offset: u64,
                data: &[u8],
            ) -> Result<(), SourceError> {
                let refuse: fn(&Self) -> Option<&'static str> = $refuse;
                if let Some(why) = refuse(bpf.mem().mem()) {
                    return Err(SourceError::Unsupported(why.into()));
                }
                bpf.write_array_value(map, key, offset, data)?;
                Ok(())
            }
        }
    };
}

/// A memory that can only be read, and why.
macro_rules! read_only {
    ($ty:ty, $why:literal) => {
        impl GuestWrite for $ty {
            fn write_array(
                _: &Bpf<'_, KernelView<Self>>,
                _: &MapInfo,
                _: u32,
                _: u64,
                _: &[u8],
            ) -> Result<(), SourceError> {
                Err(SourceError::Unsupported($why.into()))
            }
        }
    };
}

writable!([] mapwalk_file::RamFile, |m| (!m.is_writable())
    .then_some("the RAM file was opened read-only"));
writable!([] mapwalk_kvm::GuestRam, |m| (!m.is_writable())
    .then_some("the guest RAM was mapped read-only"));
writable!(
    #[cfg(feature = "vm-memory")]
    [G: vm_memory::GuestMemoryBackend + ?Sized] mapwalk_kvm::vm_memory::VmMemory<'_, G>,
    |_| None
);
#[cfg(test)]
read_only!(
    mapwalk_core::synth::ChangingRam,
    "synthetic memory that changes while it is read"
);
read_only!(
    mapwalk_file::ElfCore,
    "an ELF core is read-only; writes need --ram"
);
read_only!(
    mapwalk_kvm::ProcessRam,
    "a VMM process read from outside is read-only; writes need --ram"
);

/// The maps of a kernel in guest memory.
#[derive(Debug)]
pub struct MemorySource<M> {
    kernel: Kernel<M>,
    offsets: Option<Result<PerCpuOffsets<Vec<u64>>, String>>,
    settle: Settle,
    /// Hash buckets read again because they changed under a walk, since creation.
    rereads: AtomicU64,
    /// The kernel's symbols by address, made at the first STACK_TRACE map dumped.
    symbolizer: OnceLock<KernelSymbolizer>,
}

impl<M: PhysRead> MemorySource<M> {
    /// The maps of a described kernel.
    pub fn new(kernel: Kernel<M>) -> Self {
        let offsets = kernel.per_cpu_offset.map(|pco| {
            let cpus = kernel
                .possible_cpus()
                .ok_or("no nr_cpu_ids symbol: the possible CPUs are unknown")?;
            PerCpuOffsets::read_vec(&kernel.view, pco, cpus).map_err(|e| e.to_string())
        });
        Self {
            kernel,
            offsets,
            settle: Settle::Once,
            rereads: AtomicU64::new(0),
            symbolizer: OnceLock::new(),
        }
    }

    /// Reads each map as `settle` says (see [`Settle`]): once (the default), or again
    /// until two reads agree, for a guest that runs while it is read.
    pub fn with_settle(mut self, settle: Settle) -> Self {
        self.settle = settle;
        self
    }

    /// How each map is read.
    pub fn settle(&self) -> Settle {
        self.settle
    }

    /// How many times, since this source was made, a hash bucket was read again
    /// because it changed under the walk (see the core's `HtabWalk::rereads`): 0 for
    /// a paused guest or a dump; a measure of how much a running guest moved.
    pub fn rereads(&self) -> u64 {
        self.rereads.load(Ordering::Relaxed)
    }

    /// The described kernel.
    pub fn kernel(&self) -> &Kernel<M> {
        &self.kernel
    }

    #[cfg(test)]
    pub(super) fn kernel_mut_for_tests(&mut self) -> &mut Kernel<M> {
        &mut self.kernel
    }

    /// Forgets every cached translation, so the next walk sees the guest's page
    /// tables as they are now. Call it once per pause of a running guest: the
    /// description (symbols, layout, placement) stays valid for the whole boot; the
    /// page tables do not.
    pub fn refresh(&self) {
        self.kernel.view.invalidate();
    }

    fn bpf(&self) -> Bpf<'_, KernelView<M>> {
        Bpf::new(&self.kernel.view, &self.kernel.layout, self.kernel.map_idr)
    }

    fn info(&self, map: &MapInfo) -> Result<MapInfo, SourceError> {
        self.bpf()
            .map_by_id(map.id)?
            .ok_or_else(|| SourceError::NoSuchMap(format!("id:{}", map.id)))
    }

    fn offsets(&self) -> Result<&PerCpuOffsets<Vec<u64>>, SourceError> {
        match &self.offsets {
            Some(Ok(o)) => Ok(o),
            Some(Err(e)) => Err(SourceError::Unsupported(format!(
                "per-CPU values: cannot read __per_cpu_offset: {e}"
            ))),
            None => Err(SourceError::Unsupported(
                "per-CPU values: the kernel description has no __per_cpu_offset".into(),
            )),
        }
    }
}

impl<M: PhysRead + GuestWrite> MapSource for MemorySource<M> {
    fn kernel_identity(&self) -> crate::snapshot::KernelIdentity {
        crate::snapshot::KernelIdentity {
            release: self.kernel.release.clone(),
            boot: Some(format!(
                "kaslr:{:#x}:{:#x}",
                self.kernel.slide, self.kernel.phys_base
            )),
        }
    }

    fn refresh(&self) {
        self.kernel.view.invalidate();
    }

    fn symbolizer(&self) -> Option<&KernelSymbolizer> {
        let s = self.symbolizer.get_or_init(|| {
            let s = self.kernel.symbols.image_symbolizer();
            crate::timing::mark("stack symbols indexed");
            s
        });
        (!s.is_empty()).then_some(s)
    }

    fn struct_ops(
        &self,
        map: &MapInfo,
    ) -> Result<Option<crate::struct_ops::StructOps>, SourceError> {
        crate::struct_ops::from_memory(&self.kernel, map).map(Some)
    }

    fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
        let list = self.maps_report()?;
        if let Some((id, e)) = list.errors.first() {
            eprintln!(
                "mapwalk: warning: {} map(s) could not be read (first: {}{e})",
                list.errors.len(),
                id.map(|i| format!("id {i}: ")).unwrap_or_default()
            );
        }
        Ok(list.maps)
    }

    fn maps_report(&self) -> Result<MapReport, SourceError> {
        let list = self.bpf().collect_maps()?;
        Ok(MapReport {
            maps: list.maps,
            errors: list
                .errors
                .into_iter()
                .map(|(id, e)| (id, e.to_string()))
                .collect(),
        })
    }

    fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
        Ok(self.bpf().map_by_id(id)?)
    }

    fn progs(&self) -> Result<crate::progs::ProgReport, SourceError> {
        crate::progs::memory_progs(&self.kernel)
    }

    fn state(&self, map: &MapInfo) -> super::MapState {
        // `bpf_map.frozen`, when the BTF has it; memory holds no memlock figure.
        let frozen = self
            .kernel
            .layout
            .bpf_map
            .frozen
            .filter(|_| map.from_memory())
            .and_then(|off| map.kva.checked_add(u64::from(off)))
            .and_then(|at| {
                let mut b = [0u8; 1];
                self.kernel
                    .view
                    .read_kernel(at, &mut b)
                    .ok()
                    .map(|()| b != [0])
            });
        super::MapState {
            frozen,
            memlock: None,
        }
    }

    fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
        let info = self.info(map)?;
        let btf_err = |e: mapwalk_core::Error| SourceError::Btf(format!("map {}: {e}", map.id));
        let Some(obj) = self.bpf().map_btf(&info).map_err(btf_err)? else {
            return Ok(None);
        };
        let bytes = obj.to_vec(&self.kernel.view).map_err(btf_err)?;
        let parsed = if obj.is_split() {
            let vmlinux = self
                .kernel
                .btf
                .base()
                .map_err(|e| SourceError::Btf(format!("map {}: base BTF: {e}", map.id)))?;
            MapBtf::split(bytes, vmlinux)
        } else {
            MapBtf::new(bytes)
        };
        parsed
            .map(Some)
            .map_err(|e| SourceError::Btf(format!("map {}: {e}", map.id)))
    }

    fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
        let info = self.info(map)?;
        let bpf = self.bpf();
        let offsets = if info.map_type.is_percpu() && WALKABLE_MAP_TYPES.contains(&info.map_type) {
            Some(self.offsets()?)
        } else {
            None
        };
        let possible = offsets.map_or(0, |o| o.possible());
        let unsupported = |e| match e {
            e @ mapwalk_core::Error::UnsupportedMapType { .. } => {
                SourceError::Unsupported(e.to_string())
            }
            e => SourceError::Core(e),
        };
        let lens = bpf
            .entry_buffer_lens(&info, possible)
            .map_err(unsupported)?;
        let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
        let cpus: Vec<u32> = (0..possible).collect();
        let (stride, size) = (
            usize::try_from(info.percpu_stride()).unwrap_or(usize::MAX),
            usize::try_from(info.value_size).unwrap_or(usize::MAX),
        );
        let percpu = info.map_type.is_percpu();
        // Each key once, and no more keys than the map holds (see `settle`).
        let mut once = OnceEach::new(&info);
        let mut hand = |k: &[u8], v: &[u8]| -> ControlFlow<()> {
            match once.admit(k) {
                ControlFlow::Break(()) => return ControlFlow::Break(()),
                ControlFlow::Continue(false) => return ControlFlow::Continue(()),
                ControlFlow::Continue(true) => {}
            }
            if percpu {
                f(k, ValueRef::per_cpu(v, stride, size, &cpus))
            } else {
                f(k, ValueRef::Single(v))
            }
        };
        match self.settle {
            Settle::Once => {
                let mut rereads = 0;
                let walked = bpf.for_each_entry_counted(
                    &info,
                    offsets,
                    &mut key,
                    &mut value,
                    &mut rereads,
                    |k, v| hand(k, bytes(v)),
                );
                self.rereads.fetch_add(rereads, Ordering::Relaxed);
                walked.map_err(unsupported)?;
            }
            Settle::Agree(reads) => {
                // Records of key and value bytes, back to back: every record is the
                // same size for one map.
                let (kl, rec) = (lens.key, lens.key.saturating_add(lens.value));
                let mut last: Option<Vec<u8>> = None;
                let mut last_err = None;
                let mut agreed = None;
                for _ in 0..reads.max(2) {
                    let mut cur = Vec::new();
                    let walked =
                        bpf.for_each_entry(&info, offsets, &mut key, &mut value, |k, v| {
                            cur.extend_from_slice(k);
                            cur.extend_from_slice(bytes(v));
                            ControlFlow::Continue(())
                        });
                    match walked {
                        Ok(_) if last.as_ref() == Some(&cur) => {
                            agreed = Some(cur);
                            break;
                        }
                        Ok(_) => last = Some(cur),
                        Err(e @ mapwalk_core::Error::UnsupportedMapType { .. }) => {
                            return Err(unsupported(e))
                        }
                        Err(e) => {
                            last = None;
                            last_err = Some(SourceError::Core(e));
                        }
                    }
                    self.kernel.view.invalidate();
                }
                let Some(all) = agreed else {
                    return Err(unsettled(&info, reads.max(2), last_err.as_ref()));
                };
                for r in all.chunks_exact(rec.max(1)) {
                    let (k, v) = r.split_at(kl);
                    if hand(k, v).is_break() {
                        break;
                    }
                }
            }
        }
        once.finish()
    }

    fn check_writable(&self, map: &MapInfo) -> Result<(), SourceError> {
        if map.map_type == MapType::ARRAY {
            return Ok(());
        }
        Err(SourceError::Unsupported(format!(
            "map {} is of type {}: writes to guest memory support array maps only",
            map.id, map.map_type
        )))
    }

    fn write(
        &self,
        map: &MapInfo,
        key: &[u8],
        offset: u64,
        data: &[u8],
    ) -> Result<(), SourceError> {
        self.check_writable(map)?;
        check_bounds(map, offset, data.len())?;
        check_key(map, key)?;
        let info = self.info(map)?;
        self.check_writable(&info)?;
        let index = <[u8; 4]>::try_from(key)
            .map(u32::from_le_bytes)
            .map_err(|_| SourceError::BadKey("array keys are 4 bytes".into()))?;
        if index >= info.max_entries {
            return Err(SourceError::BadKey(format!(
                "index {index} is past map {}'s {} entries; nothing was written",
                map.id, info.max_entries
            )));
        }
        M::write_array(&self.bpf(), &info, index, offset, data)
    }
}

/// The bytes of one value as the core hands it over: per-CPU copies back to back.
fn bytes(v: EntryValue<'_>) -> &[u8] {
    match v {
        EntryValue::Single(v) => v,
        EntryValue::PerCpu(c) => c.as_bytes(),
    }
}
