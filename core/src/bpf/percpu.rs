//! Per-CPU data: `__per_cpu_offset`, per-CPU copies, and PERCPU_ARRAY maps (see
//! [`PerCpuOffsets`]).

use core::fmt;
use core::iter::FusedIterator;
use core::num::NonZeroU32;

use zerocopy::IntoBytes;

use crate::addr::{align_up, Kva};
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::{MAX_ARRAY_ENTRIES, MAX_CPUS, PCPU_MIN_UNIT_SIZE};
use crate::mem::len_u64;

/// How many CPUs are possible, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PossibleCpus {
    /// The count itself: from `/sys/devices/system/cpu/possible`, the VMM's vCPU count,
    /// or a crash dump's notes.
    Count(NonZeroU32),
    /// Read from the kernel-image variable `nr_cpu_ids` (an `unsigned int`) at this
    /// address.
    NrCpuIds(Kva),
}

impl PossibleCpus {
    /// `Count(n)`, or `None` for zero.
    pub const fn count(n: u32) -> Option<Self> {
        match NonZeroU32::new(n) {
            Some(n) => Some(Self::Count(n)),
            None => None,
        }
    }

    /// The count, read from the guest if need be.
    ///
    /// # Errors
    /// A read error, [`Error::Corrupt`] for an `nr_cpu_ids` of zero, or
    /// [`Error::LimitExceeded`] above [`MAX_CPUS`].
    pub fn resolve<K: KernelRead + ?Sized>(self, mem: &K) -> Result<u32> {
        let n = match self {
            Self::Count(n) => n.get(),
            Self::NrCpuIds(sym) => {
                let n = mem.read_kernel_u32(sym)?;
                if n == 0 {
                    return Err(Error::Corrupt {
                        what: "nr_cpu_ids (zero)",
                        at: sym,
                        value: 0,
                    });
                }
                n
            }
        };
        check_cpus(n)?;
        Ok(n)
    }
}

fn check_cpus(n: u32) -> Result<()> {
    if n > MAX_CPUS {
        return Err(Error::LimitExceeded {
            what: "possible CPUs",
            limit: u64::from(MAX_CPUS),
            at: u64::from(n),
        });
    }
    Ok(())
}

/// One CPU's copy of a per-CPU value: there, or the CPU does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuCopy<T = ()> {
    /// The CPU exists; its copy (or, from a reader that fills a buffer, `()`).
    Present(T),
    /// No such CPU: past the possible count, or its `__per_cpu_offset` slot is zero.
    NoSuchCpu,
}

impl<T> CpuCopy<T> {
    /// The copy, if the CPU exists.
    pub fn present(self) -> Option<T> {
        match self {
            Self::Present(t) => Some(t),
            Self::NoSuchCpu => None,
        }
    }

    /// Whether the CPU exists.
    pub const fn is_present(&self) -> bool {
        matches!(self, Self::Present(_))
    }

    /// A `CpuCopy` of a reference to the copy.
    pub const fn as_ref(&self) -> CpuCopy<&T> {
        match self {
            Self::Present(t) => CpuCopy::Present(t),
            Self::NoSuchCpu => CpuCopy::NoSuchCpu,
        }
    }
}

/// One CPU's copy of a per-CPU value, as an allocating reader returns it.
#[cfg(any(feature = "alloc", test))]
pub type PerCpuValue = CpuCopy<alloc::vec::Vec<u8>>;

/// `__per_cpu_offset[0 .. possible]`: where each possible CPU's per-CPU copies are.
///
/// A `__percpu` pointer `pptr` designates one copy of a value per possible CPU: CPU
/// `n`'s copy is at `pptr + __per_cpu_offset[n]`, with wrapping arithmetic (on arm64 the
/// offsets are differences of addresses and may be "negative"). The copies live in the
/// per-CPU chunks, which are in the direct map (the first chunk) or vmalloc'd (later
/// chunks); [`KernelRead`] reaches both, and a copy may span pages.
///
/// This holds `__per_cpu_offset[0 .. possible]`, read once. A slot that is
/// zero for a CPU other than 0 means that the CPU does not exist (generic kernels leave
/// the slots of CPUs that are not possible at zero): such a CPU reads as
/// [`CpuCopy::NoSuchCpu`], never as anyone's bytes. On x86_64 the slots of impossible
/// CPUs hold the boot offset instead of zero, which looks like a CPU: pass the real
/// possible count (or `nr_cpu_ids`), not `NR_CPUS`.
///
/// `B` holds the offsets: an array, a slice or a `Vec` of `u64`. Read them once per
/// guest pause with [`read`](Self::read); they do not change while the kernel runs,
/// except when CPUs are hot-added.
///
/// ```
/// use mapwalk_core::bpf::{CpuCopy, PerCpuOffsets};
/// use mapwalk_core::Kva;
/// // Two CPUs; the third slot is zero: no such CPU.
/// let offsets = PerCpuOffsets::new([0xffff_8880_1000_0000, 0xffff_8880_1010_0000, 0]).unwrap();
/// assert_eq!(offsets.copy_kva(0x2_0040, 1), CpuCopy::Present(Kva(0xffff_8880_1012_0040)));
/// assert_eq!(offsets.copy_kva(0x2_0040, 2), CpuCopy::NoSuchCpu);
/// assert_eq!(offsets.copy_kva(0x2_0040, 3), CpuCopy::NoSuchCpu);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerCpuOffsets<B> {
    offsets: B,
    possible: u32,
}

impl<B: AsRef<[u64]>> PerCpuOffsets<B> {
    /// Offsets the caller already holds: `offsets[n]` is CPU `n`'s, and their number is
    /// the possible count.
    ///
    /// # Errors
    /// [`Error::BufferSize`] for no offsets at all, [`Error::LimitExceeded`] for more
    /// than [`MAX_CPUS`].
    pub fn new(offsets: B) -> Result<Self> {
        let len = offsets.as_ref().len();
        let possible = u32::try_from(len).unwrap_or(u32::MAX);
        if possible == 0 {
            return Err(Error::BufferSize { need: 8, have: 0 });
        }
        check_cpus(possible)?;
        Ok(Self { offsets, possible })
    }

    /// Reads `__per_cpu_offset[0 .. possible]` (a kernel-image array of `u64`, `NR_CPUS`
    /// long, at `per_cpu_offset`) into `buf`, in one read.
    ///
    /// # Errors
    /// As [`PossibleCpus::resolve`], [`Error::BufferSize`] when `buf` holds fewer than
    /// `possible` offsets, or a read error.
    pub fn read<K: KernelRead + ?Sized>(
        mem: &K,
        per_cpu_offset: Kva,
        cpus: PossibleCpus,
        mut buf: B,
    ) -> Result<Self>
    where
        B: AsMut<[u64]>,
    {
        let possible = cpus.resolve(mem)?;
        let slots = buf.as_mut();
        let have = len_u64(slots.len()).saturating_mul(8);
        let slots = usize::try_from(possible)
            .ok()
            .and_then(|n| slots.get_mut(..n))
            .ok_or(Error::BufferSize {
                need: u64::from(possible).saturating_mul(8),
                have,
            })?;
        mem.read_kernel(per_cpu_offset, slots.as_mut_bytes())?;
        for slot in slots.iter_mut() {
            *slot = u64::from_le(*slot);
        }
        Ok(Self {
            offsets: buf,
            possible,
        })
    }

    /// The number of possible CPUs.
    pub fn possible(&self) -> u32 {
        self.possible
    }

    /// The offsets of the possible CPUs.
    pub fn as_slice(&self) -> &[u64] {
        let all = self.offsets.as_ref();
        usize::try_from(self.possible)
            .ok()
            .and_then(|n| all.get(..n))
            .unwrap_or(all)
    }

    /// CPU `cpu`'s offset, or `None` when it does not exist (past the possible count, or
    /// a zero slot other than CPU 0's).
    #[inline]
    pub fn offset(&self, cpu: u32) -> Option<u64> {
        let off = *usize::try_from(cpu)
            .ok()
            .and_then(|i| self.as_slice().get(i))?;
        (cpu == 0 || off != 0).then_some(off)
    }

    /// The address of CPU `cpu`'s copy of `pptr`.
    #[inline]
    pub fn copy_kva(&self, pptr: u64, cpu: u32) -> CpuCopy<Kva> {
        match self.offset(cpu) {
            Some(off) => CpuCopy::Present(Kva(pptr.wrapping_add(off))),
            None => CpuCopy::NoSuchCpu,
        }
    }

    /// Fills `buf` with CPU `cpu`'s copy of the per-CPU object `pptr` (its first
    /// `buf.len()` bytes). Nothing is read for a CPU that does not exist.
    ///
    /// # Errors
    /// A translation or read error: the copy cannot be read.
    pub fn read_copy<K: KernelRead + ?Sized>(
        &self,
        mem: &K,
        pptr: u64,
        cpu: u32,
        buf: &mut [u8],
    ) -> Result<CpuCopy> {
        match self.copy_kva(pptr, cpu) {
            CpuCopy::NoSuchCpu => Ok(CpuCopy::NoSuchCpu),
            CpuCopy::Present(va) => {
                mem.read_kernel(va, buf)?;
                Ok(CpuCopy::Present(()))
            }
        }
    }

    /// Every possible CPU's copy of the `size`-byte per-CPU object `pptr`, by CPU.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for a size above [`crate::Limits::value_size`], or the
    /// first copy that cannot be read.
    #[cfg(any(feature = "alloc", test))]
    pub fn read_copies<K: KernelRead + ?Sized>(
        &self,
        mem: &K,
        pptr: u64,
        size: u32,
    ) -> Result<alloc::vec::Vec<PerCpuValue>> {
        let n = alloc_len(mem, size, "per-CPU value size")?;
        let mut out = alloc::vec::Vec::with_capacity(self.as_slice().len());
        for cpu in 0..self.possible {
            let mut v = alloc::vec![0u8; n];
            out.push(match self.read_copy(mem, pptr, cpu, &mut v)? {
                CpuCopy::Present(()) => CpuCopy::Present(v),
                CpuCopy::NoSuchCpu => CpuCopy::NoSuchCpu,
            });
        }
        Ok(out)
    }
}

#[cfg(any(feature = "alloc", test))]
impl PerCpuOffsets<alloc::vec::Vec<u64>> {
    /// [`read`](Self::read) into a `Vec` of the right length.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_vec<K: KernelRead + ?Sized>(
        mem: &K,
        per_cpu_offset: Kva,
        cpus: PossibleCpus,
    ) -> Result<Self> {
        let n = usize::try_from(cpus.resolve(mem)?).unwrap_or(0);
        Self::read(mem, per_cpu_offset, cpus, alloc::vec![0u64; n])
    }
}

/// A size read from the guest, checked against [`crate::Limits::value_size`] before it
/// sizes an allocation.
#[cfg(any(feature = "alloc", test))]
pub(crate) fn alloc_len<K: KernelRead + ?Sized>(
    mem: &K,
    size: u32,
    what: &'static str,
) -> Result<usize> {
    let limit = mem.limits().value_size;
    let size = u64::from(size);
    usize::try_from(size)
        .ok()
        .filter(|_| size <= limit)
        .ok_or(Error::LimitExceeded {
            what,
            limit,
            at: size,
        })
}

/// Checks a `__percpu` pointer read from `at`: per-CPU allocations of BPF maps are
/// 8-byte aligned and never at offset zero.
pub(crate) fn check_pptr(pptr: u64, at: Kva) -> Result<u64> {
    if pptr == 0 || pptr & 7 != 0 {
        return Err(Error::Corrupt {
            what: "__percpu pointer (zero or misaligned)",
            at,
            value: pptr,
        });
    }
    Ok(pptr)
}

/// Checks a per-CPU map's value size against [`PCPU_MIN_UNIT_SIZE`].
pub(crate) fn check_percpu_value_size(value_size: u32) -> Result<()> {
    let rounded = align_up(u64::from(value_size), 8).unwrap_or(u64::MAX);
    if rounded > u64::from(PCPU_MIN_UNIT_SIZE) {
        return Err(Error::LimitExceeded {
            what: "per-CPU value size (round_up(value_size, 8), PCPU_MIN_UNIT_SIZE)",
            limit: u64::from(PCPU_MIN_UNIT_SIZE),
            at: u64::from(value_size),
        });
    }
    Ok(())
}

/// A PERCPU_ARRAY map, checked and ready to read: `bpf_array.pptrs[key]` is the
/// `__percpu` pointer of the value of `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerCpuArrayMap {
    info: MapInfo,
    pptrs: Kva,
}

impl PerCpuArrayMap {
    /// The map's metadata.
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// The kernel address of `pptrs[key]`.
    ///
    /// # Errors
    /// [`Error::KeyOutOfRange`] for a key at or past `max_entries`.
    pub fn pptr_kva(&self, key: u32) -> Result<Kva> {
        if key >= self.info.max_entries {
            return Err(Error::KeyOutOfRange {
                key,
                max_entries: self.info.max_entries,
            });
        }
        let off = u64::from(key).saturating_mul(8);
        self.pptrs.checked_add(off).ok_or(Error::AddrOverflow {
            addr: self.pptrs.0,
            len: off,
        })
    }

    /// The `__percpu` pointer of the value of `key`.
    ///
    /// # Errors
    /// As [`pptr_kva`](Self::pptr_kva), a read error, or [`Error::Corrupt`] for a zero or
    /// misaligned pointer.
    pub fn pptr<K: KernelRead + ?Sized>(&self, mem: &K, key: u32) -> Result<u64> {
        let at = self.pptr_kva(key)?;
        check_pptr(mem.read_kernel_u64(at)?, at)
    }

    /// Fills `buf` with the bytes at `offset` in CPU `cpu`'s copy of the value of `key`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] when the range leaves the value, as [`pptr`](Self::pptr),
    /// or the error reading the copy.
    pub fn read_cpu<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
        &self,
        mem: &K,
        offsets: &PerCpuOffsets<B>,
        key: u32,
        cpu: u32,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<CpuCopy> {
        let size = u64::from(self.info.value_size);
        let len = len_u64(buf.len());
        match offset.checked_add(len) {
            Some(end) if end <= size => {}
            _ => return Err(Error::OutOfBounds { offset, len, size }),
        }
        let pptr = self.pptr(mem, key)?;
        offsets.read_copy(mem, pptr.wrapping_add(offset), cpu, buf)
    }

    /// Every key's `__percpu` pointer, in key order (see [`PerCpuArrayWalk`]).
    pub fn walk<'a, K: KernelRead + ?Sized>(&self, mem: &'a K) -> PerCpuArrayWalk<'a, K> {
        PerCpuArrayWalk {
            mem,
            pptrs: self.pptrs,
            max_entries: self.info.max_entries,
            next_key: 0,
            batch: [0; PPTR_BATCH],
            batch_first: 0,
            batch_len: 0,
            batch_ok: false,
        }
    }

    /// Every possible CPU's copy of the value of `key`, by CPU.
    ///
    /// # Errors
    /// As [`pptr`](Self::pptr) and [`PerCpuOffsets::read_copies`].
    #[cfg(any(feature = "alloc", test))]
    pub fn values<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
        &self,
        mem: &K,
        offsets: &PerCpuOffsets<B>,
        key: u32,
    ) -> Result<alloc::vec::Vec<PerCpuValue>> {
        let pptr = self.pptr(mem, key)?;
        offsets.read_copies(mem, pptr, self.info.value_size)
    }
}

/// Pointers read per call by [`PerCpuArrayWalk`] (one 4 KiB read).
const PPTR_BATCH: usize = 512;

/// One key of a PERCPU_ARRAY and the `__percpu` pointer of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerCpuArrayEntry {
    /// The key.
    pub key: u32,
    /// `pptrs[key]`.
    pub pptr: u64,
}

/// Every key of a PERCPU_ARRAY with its `__percpu` pointer, in key order.
///
/// Reads the pointer array 512 pointers per call. A pointer that cannot be read, or is
/// zero or misaligned, is an error for its key and the walk goes on: no error ends it,
/// and it ends after `max_entries` keys (at most [`MAX_ARRAY_ENTRIES`], checked when the
/// handle was made). Fused.
pub struct PerCpuArrayWalk<'a, K: ?Sized> {
    mem: &'a K,
    pptrs: Kva,
    max_entries: u32,
    next_key: u32,
    batch: [u64; PPTR_BATCH],
    batch_first: u32,
    batch_len: u32,
    batch_ok: bool,
}

impl<K: ?Sized> fmt::Debug for PerCpuArrayWalk<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerCpuArrayWalk")
            .field("pptrs", &self.pptrs)
            .field("max_entries", &self.max_entries)
            .field("next_key", &self.next_key)
            .finish_non_exhaustive()
    }
}

impl<K: KernelRead + ?Sized> PerCpuArrayWalk<'_, K> {
    fn load(&mut self, key: u32) {
        let room = u32::try_from(PPTR_BATCH).unwrap_or(u32::MAX);
        let n = self.max_entries.saturating_sub(key).min(room);
        self.batch_first = key;
        self.batch_len = n;
        let off = u64::from(key).saturating_mul(8);
        let slots = usize::try_from(n)
            .ok()
            .and_then(|n| self.batch.get_mut(..n));
        self.batch_ok = match (self.pptrs.checked_add(off), slots) {
            (Some(at), Some(slots)) => self.mem.read_kernel(at, slots.as_mut_bytes()).is_ok(),
            _ => false,
        };
    }

    fn pptr_of(&mut self, key: u32) -> Result<u64> {
        let inside = key
            .checked_sub(self.batch_first)
            .filter(|&i| i < self.batch_len);
        let i = match inside {
            Some(i) => i,
            None => {
                self.load(key);
                0
            }
        };
        let off = u64::from(key).saturating_mul(8);
        let at = self.pptrs.checked_add(off).ok_or(Error::AddrOverflow {
            addr: self.pptrs.0,
            len: off,
        })?;
        let cached = usize::try_from(i)
            .ok()
            .and_then(|i| self.batch.get(i))
            .filter(|_| self.batch_ok);
        let raw = match cached {
            Some(&raw) => u64::from_le(raw),
            // The batch could not be read whole: this key on its own.
            None => self.mem.read_kernel_u64(at)?,
        };
        check_pptr(raw, at)
    }
}

impl<K: KernelRead + ?Sized> Iterator for PerCpuArrayWalk<'_, K> {
    type Item = Result<PerCpuArrayEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.next_key;
        if key >= self.max_entries {
            return None;
        }
        self.next_key = key.saturating_add(1);
        Some(self.pptr_of(key).map(|pptr| PerCpuArrayEntry { key, pptr }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.max_entries.saturating_sub(self.next_key)).ok();
        (left.unwrap_or(0), left)
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for PerCpuArrayWalk<'_, K> {}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// `map` as a PERCPU_ARRAY: checks its type, key size, element stride and sizes.
    ///
    /// # Errors
    /// [`Error::WrongMapType`], [`Error::LayoutMissing`] without `bpf_array` offsets,
    /// [`Error::Corrupt`] when `elem_size` is not `round_up(value_size, 8)` (or
    /// `key_size` is not 4, or `value_size` is 0), [`Error::LimitExceeded`] for a value
    /// above [`PCPU_MIN_UNIT_SIZE`] or more than [`MAX_ARRAY_ENTRIES`] entries, or a read
    /// error.
    pub fn percpu_array(&self, map: &MapInfo) -> Result<PerCpuArrayMap> {
        if map.map_type != MapType::PERCPU_ARRAY {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "per-CPU array access",
            });
        }
        // Without `bpf_array` offsets that is the error, whatever else is wrong.
        self.layout
            .array
            .ok_or(Error::LayoutMissing { what: "bpf_array" })?;
        check_percpu_value_size(map.value_size)?;
        if map.max_entries > MAX_ARRAY_ENTRIES {
            return Err(Error::LimitExceeded {
                what: "array max_entries",
                limit: u64::from(MAX_ARRAY_ENTRIES),
                at: u64::from(map.max_entries),
            });
        }
        let (_, pptrs) = self.array_geometry(map)?;
        Ok(PerCpuArrayMap { info: *map, pptrs })
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::error::PhysErrorKind;
    use crate::kernel::KernelView;
    use crate::limits::Limits;
    use crate::synth::{FaultyMem, GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

    const ARCHES: [SynthArch; 4] = [
        SynthArch::X86_64 { five_level: false },
        SynthArch::X86_64 { five_level: true },
        SynthArch::Aarch64 { granule_shift: 12 },
        SynthArch::Aarch64 { granule_shift: 16 },
    ];

    fn pv(key: u32, cpu: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(13) ^ key.wrapping_mul(71) ^ cpu.wrapping_mul(29))
            .map(|b| b as u8)
            .collect()
    }

    const BIG: u32 = 3 * 4096 + 100;

    fn guest(arch: SynthArch, cpus: u32) -> SyntheticGuest {
        let mut b = GuestBuilder::new(arch).possible_cpus(cpus);
        b.add_map(
            MapSpec::new(1, MapType::PERCPU_ARRAY, "small", 4, 12, 5)
                .with_cpu_values(cpus, |k, c| pv(k, c, 12)),
        )
        .add_map(
            MapSpec::new(2, MapType::PERCPU_ARRAY, "big", 4, BIG, 3)
                .vmalloc()
                .percpu_vmalloc()
                .with_cpu_values(cpus, |k, c| pv(k, c, BIG as usize)),
        )
        .add_map(MapSpec::array(3, "plain", 4, 1));
        b.build()
    }

    fn open(
        g: &SyntheticGuest,
        view: &KernelView<impl crate::PhysRead>,
        id: u32,
    ) -> PerCpuArrayMap {
        let bpf = Bpf::new(view, &g.layout, g.map_idr);
        bpf.percpu_array(&bpf.map_by_id(id).unwrap().unwrap())
            .unwrap()
    }

    #[test]
    fn every_cpu_copy_of_every_key() {
        for arch in ARCHES {
            let g = guest(arch, 3);
            let view = g.view();
            let offsets = PerCpuOffsets::read(
                &view,
                g.symbols.per_cpu_offset,
                PossibleCpus::NrCpuIds(g.symbols.nr_cpu_ids),
                [0u64; 16],
            )
            .unwrap();
            assert_eq!(offsets.possible(), 3);
            assert_eq!(offsets.as_slice(), &g.per_cpu_offsets[..3]);
            for (id, size) in [(1, 12), (2, BIG)] {
                let a = open(&g, &view, id);
                for key in 0..a.info().max_entries {
                    assert_eq!(
                        a.pptr(&view, key).unwrap(),
                        g.percpu_arrays[&id][key as usize]
                    );
                    let values = a.values(&view, &offsets, key).unwrap();
                    let expect: Vec<PerCpuValue> = (0..3)
                        .map(|c| CpuCopy::Present(pv(key, c, size as usize)))
                        .collect();
                    assert_eq!(values, expect, "{arch:?} map {id} key {key}");
                    // A piece of CPU 2's copy, across a page boundary for the big one.
                    let mut piece = vec![0u8; 10];
                    let at = u64::from(size) - 10;
                    assert_eq!(
                        a.read_cpu(&view, &offsets, key, 2, at, &mut piece),
                        Ok(CpuCopy::Present(()))
                    );
                    assert_eq!(piece, pv(key, 2, size as usize)[at as usize..]);
                }
            }
        }
    }

    #[test]
    fn the_walk_yields_every_key_and_pointer() {
        for arch in ARCHES {
            let g = guest(arch, 2);
            let view = g.view();
            let a = open(&g, &view, 1);
            let got: Vec<PerCpuArrayEntry> = a.walk(&view).map(Result::unwrap).collect();
            let want: Vec<PerCpuArrayEntry> = g.percpu_arrays[&1]
                .iter()
                .enumerate()
                .map(|(k, &pptr)| PerCpuArrayEntry {
                    key: k as u32,
                    pptr,
                })
                .collect();
            assert_eq!(got, want);
            let mut w = a.walk(&view);
            assert_eq!(w.size_hint(), (5, Some(5)));
            assert_eq!(w.by_ref().count(), 5);
            assert!(w.next().is_none());
        }
    }

    #[test]
    fn a_bad_pointer_is_an_error_for_its_key() {
        let mut g = guest(SynthArch::X86_64 { five_level: false }, 2);
        let view = g.view();
        let a = open(&g, &view, 1);
        let at = a.pptr_kva(2).unwrap();
        let pa = g.pa_of(at);
        g.ram.write_u64(pa, 0);
        let view = g.view();
        let items: Vec<Result<PerCpuArrayEntry>> = a.walk(&view).collect();
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[2],
            Err(Error::Corrupt {
                what: "__percpu pointer (zero or misaligned)",
                at,
                value: 0
            })
        );
        assert!(items.iter().enumerate().all(|(k, i)| k == 2 || i.is_ok()));
        // An unreadable pointer: the batch fails, the other keys are read one by one.
        let mem = FaultyMem::new(
            g.ram.as_ram(),
            g.pa_of(a.pptr_kva(3).unwrap()),
            8,
            PhysErrorKind::Io,
        );
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let items: Vec<Result<PerCpuArrayEntry>> = a.walk(&view).collect();
        assert!(matches!(
            items[3],
            Err(Error::Phys {
                kind: PhysErrorKind::Io,
                ..
            })
        ));
        assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 3);
    }

    #[test]
    fn an_unreadable_copy_is_an_error_and_a_missing_cpu_is_not_cpu_0() {
        let g = guest(SynthArch::Aarch64 { granule_shift: 12 }, 2);
        let view = g.view();
        let a = open(&g, &view, 2);
        // Over-counted CPUs: slots 2..4 of `__per_cpu_offset` are zero.
        let offsets = PerCpuOffsets::read(
            &view,
            g.symbols.per_cpu_offset,
            PossibleCpus::count(4).unwrap(),
            vec![0u64; 4],
        )
        .unwrap();
        let values = a.values(&view, &offsets, 1).unwrap();
        assert_eq!(values.len(), 4);
        assert_eq!(values[0], CpuCopy::Present(pv(1, 0, BIG as usize)));
        assert_eq!(values[1], CpuCopy::Present(pv(1, 1, BIG as usize)));
        assert_eq!(values[2], CpuCopy::NoSuchCpu);
        assert_eq!(values[3], CpuCopy::NoSuchCpu);
        assert_eq!(offsets.offset(0), Some(g.per_cpu_offsets[0]));
        assert_eq!((offsets.offset(2), offsets.offset(4)), (None, None));
        let mut buf = [0u8; 8];
        assert_eq!(
            a.read_cpu(&view, &offsets, 1, 3, 0, &mut buf),
            Ok(CpuCopy::NoSuchCpu)
        );
        // CPU 1's copy of key 1 cannot be read: an error, not zeros.
        let pptr = g.percpu_arrays[&2][1];
        let copy = Kva(pptr.wrapping_add(g.per_cpu_offsets[1]) + 5000);
        let mem = FaultyMem::new(g.ram.as_ram(), g.pa_of(copy), 1, PhysErrorKind::Io);
        let view = KernelView::new(&mem, g.paging, g.addrs);
        assert!(matches!(
            a.values(&view, &offsets, 1),
            Err(Error::Phys {
                kind: PhysErrorKind::Io,
                ..
            })
        ));
        assert_eq!(a.values(&view, &offsets, 0).unwrap().len(), 4);
    }

    #[test]
    fn a_zero_slot_of_cpu_0_is_cpu_0() {
        let offsets = PerCpuOffsets::new([0u64, 0x1000, 0]).unwrap();
        assert_eq!(
            offsets.copy_kva(0xffff_8880_0000_0000, 0),
            CpuCopy::Present(Kva(0xffff_8880_0000_0000))
        );
        assert_eq!(
            offsets.copy_kva(0xffff_8880_0000_0000, 1),
            CpuCopy::Present(Kva(0xffff_8880_0000_1000))
        );
        assert_eq!(
            offsets.copy_kva(0xffff_8880_0000_0000, 2),
            CpuCopy::NoSuchCpu
        );
        assert_eq!(offsets.copy_kva(0, u32::MAX), CpuCopy::NoSuchCpu);
        // Offsets wrap, as arm64's do.
        let offsets = PerCpuOffsets::new(vec![0xffff_7fff_8000_0000u64]).unwrap();
        assert_eq!(
            offsets.copy_kva(0xffff_8000_9000_0040, 0),
            CpuCopy::Present(Kva(0xffff_0000_1000_0040))
        );
        assert_eq!(CpuCopy::Present(3).present(), Some(3));
        assert_eq!(CpuCopy::<u8>::NoSuchCpu.as_ref(), CpuCopy::NoSuchCpu);
    }

    #[test]
    fn the_cpu_cap_holds_at_and_fails_past_its_limit() {
        let g = GuestBuilder::x86_64(false)
            .possible_cpus(MAX_CPUS)
            .nr_cpus(MAX_CPUS)
            .build();
        let view = g.view();
        let offsets = PerCpuOffsets::read_vec(
            &view,
            g.symbols.per_cpu_offset,
            PossibleCpus::NrCpuIds(g.symbols.nr_cpu_ids),
        )
        .unwrap();
        assert_eq!(offsets.possible(), MAX_CPUS);
        assert!(offsets.as_slice().iter().all(|&o| o != 0));
        let past = Error::LimitExceeded {
            what: "possible CPUs",
            limit: u64::from(MAX_CPUS),
            at: u64::from(MAX_CPUS) + 1,
        };
        assert_eq!(
            PossibleCpus::count(MAX_CPUS + 1).unwrap().resolve(&view),
            Err(past)
        );
        assert_eq!(
            PerCpuOffsets::new(vec![1u64; MAX_CPUS as usize + 1]).unwrap_err(),
            past
        );
        assert_eq!(
            PerCpuOffsets::new([0u64; 0]).unwrap_err(),
            Error::BufferSize { need: 8, have: 0 }
        );
        assert_eq!(PossibleCpus::count(0), None);
        // A buffer too small for the possible CPUs.
        assert_eq!(
            PerCpuOffsets::read(
                &view,
                g.symbols.per_cpu_offset,
                PossibleCpus::count(4).unwrap(),
                [0u64; 3]
            )
            .unwrap_err(),
            Error::BufferSize { need: 32, have: 24 }
        );
        // An nr_cpu_ids of zero.
        let mut g = GuestBuilder::x86_64(false).build();
        let pa = g.pa_of(g.symbols.nr_cpu_ids);
        g.ram.write_u32(pa, 0);
        let view = g.view();
        assert_eq!(
            PossibleCpus::NrCpuIds(g.symbols.nr_cpu_ids).resolve(&view),
            Err(Error::Corrupt {
                what: "nr_cpu_ids (zero)",
                at: g.symbols.nr_cpu_ids,
                value: 0
            })
        );
    }

    #[test]
    fn the_value_size_caps_hold_at_and_fail_past_their_limits() {
        let limit = PCPU_MIN_UNIT_SIZE;
        let mut b = GuestBuilder::x86_64(false);
        b.add_map(
            MapSpec::new(1, MapType::PERCPU_ARRAY, "at", 4, limit, 1)
                .with_cpu_values(2, |_, c| vec![c as u8 + 1; limit as usize]),
        )
        .add_map(MapSpec::new(
            2,
            MapType::PERCPU_ARRAY,
            "past",
            4,
            limit + 1,
            1,
        ));
        let g = b.build();
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let a = bpf
            .percpu_array(&bpf.map_by_id(1).unwrap().unwrap())
            .unwrap();
        let values = a.values(&view, &g.offsets(), 0).unwrap();
        assert_eq!(values[1], CpuCopy::Present(vec![2; limit as usize]));
        assert_eq!(
            bpf.percpu_array(&bpf.map_by_id(2).unwrap().unwrap()),
            Err(Error::LimitExceeded {
                what: "per-CPU value size (round_up(value_size, 8), PCPU_MIN_UNIT_SIZE)",
                limit: u64::from(limit),
                at: u64::from(limit) + 1
            })
        );
        // The allocating reader's cap.
        let at = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
            value_size: u64::from(limit),
            ..Limits::DEFAULT
        });
        assert_eq!(a.values(&at, &g.offsets(), 0).unwrap().len(), 2);
        let past = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
            value_size: u64::from(limit) - 1,
            ..Limits::DEFAULT
        });
        assert_eq!(
            a.values(&past, &g.offsets(), 0),
            Err(Error::LimitExceeded {
                what: "per-CPU value size",
                limit: u64::from(limit) - 1,
                at: u64::from(limit)
            })
        );
    }

    #[test]
    fn bad_maps_and_reads_are_refused() {
        let mut g = guest(SynthArch::X86_64 { five_level: false }, 2);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let plain = bpf.map_by_id(3).unwrap().unwrap();
        assert_eq!(
            bpf.percpu_array(&plain),
            Err(Error::WrongMapType {
                id: 3,
                map_type: MapType::ARRAY,
                op: "per-CPU array access"
            })
        );
        let a = open(&g, &view, 1);
        let offsets = g.offsets();
        let mut buf = [0u8; 4];
        assert_eq!(
            a.read_cpu(&view, &offsets, 5, 0, 0, &mut buf),
            Err(Error::KeyOutOfRange {
                key: 5,
                max_entries: 5
            })
        );
        assert_eq!(
            a.read_cpu(&view, &offsets, 0, 0, 9, &mut buf),
            Err(Error::OutOfBounds {
                offset: 9,
                len: 4,
                size: 12
            })
        );
        let no_array = crate::layout::KernelLayout {
            array: None,
            ..g.layout
        };
        let info = bpf.map_by_id(1).unwrap().unwrap();
        assert_eq!(
            Bpf::new(&view, &no_array, g.map_idr).percpu_array(&info),
            Err(Error::LayoutMissing { what: "bpf_array" })
        );
        let at = Kva(g.maps[0].kva.0 + u64::from(g.layout.array.unwrap().elem_size));
        let pa = g.pa_of(at);
        g.ram.write_u32(pa, 8);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        assert!(matches!(
            bpf.percpu_array(&info),
            Err(Error::Corrupt { value: 8, .. })
        ));
    }
}
