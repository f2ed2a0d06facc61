//! The kernel view: memory, paging state and the kernel's address-space layout together.
//!
//! [`KernelView`] translates any kernel virtual address: the direct map and the kernel
//! image by arithmetic, everything else (vmalloc, modules, per-CPU chunks) by a cached
//! page walk. The walkers read kernel memory through the [`KernelRead`] trait, which
//! `KernelView` implements; a test can implement it more simply.

use crate::addr::{Kva, Pa};
use crate::arch::{self, Paging, TranslationCache};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::mem::{len_u64, PhysRange, PhysRead, PhysReadExt, PhysWrite, PhysWriteExt, ReadOp};

/// Reads kernel virtual memory.
pub trait KernelRead {
    /// The physical address of `va` and how many bytes from there on are physically
    /// contiguous with it (at least one).
    ///
    /// # Errors
    /// [`Error::NotMapped`] and the other translation errors.
    fn kva_to_pa(&self, va: Kva) -> Result<PhysRange>;

    /// Fills `buf` from `va .. va + buf.len()`, which may span pages.
    ///
    /// # Errors
    /// A translation or read error for the first byte that could not be read; nothing
    /// in `buf` is then meaningful.
    fn read_kernel(&self, va: Kva, buf: &mut [u8]) -> Result<()>;

    /// The limits walkers over this memory obey.
    fn limits(&self) -> &Limits;

    /// Reads a little-endian `u32`.
    ///
    /// # Errors
    /// As [`read_kernel`](Self::read_kernel).
    fn read_kernel_u32(&self, va: Kva) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_kernel(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    ///
    /// # Errors
    /// As [`read_kernel`](Self::read_kernel).
    fn read_kernel_u64(&self, va: Kva) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_kernel(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl<K: KernelRead + ?Sized> KernelRead for &K {
    fn kva_to_pa(&self, va: Kva) -> Result<PhysRange> {
        (**self).kva_to_pa(va)
    }
    fn read_kernel(&self, va: Kva, buf: &mut [u8]) -> Result<()> {
        (**self).read_kernel(va, buf)
    }
    fn limits(&self) -> &Limits {
        (**self).limits()
    }
}

/// A virtual range mapped linearly onto physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearRegion {
    /// First virtual address.
    pub virt: Kva,
    /// The physical address `virt` maps to.
    pub phys: Pa,
    /// Length in bytes.
    pub len: u64,
}

impl LinearRegion {
    /// The physical span of `va`, if the region holds it. The physical address wraps
    /// rather than overflows: a wrapped address is simply not RAM, and reading it fails.
    pub fn lookup(&self, va: Kva) -> Option<PhysRange> {
        let off = va.offset_from(self.virt).filter(|&off| off < self.len)?;
        Some(PhysRange {
            start: Pa(self.phys.0.wrapping_add(off)),
            len: self.len.wrapping_sub(off),
        })
    }
}

/// `__START_KERNEL_map`: where x86_64 maps the kernel image (before the virtual KASLR
/// slide, which moves symbols, not this mapping).
pub const X86_START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// `KERNEL_IMAGE_SIZE` on x86_64 with KASLR: the image mapping's length.
pub const X86_KERNEL_IMAGE_SIZE: u64 = 1 << 30;

// The x86_64 kernel address space, as the kernel's
// `Documentation/arch/x86/x86_64/mm.rst` lays it out. The direct map, vmalloc and
// vmemmap bases are the unrandomized ones: with `CONFIG_RANDOMIZE_MEMORY` (memory
// KASLR, on in distribution kernels) `arch/x86/mm/kaslr.c` moves each region up at
// boot and records its base in the variables `page_offset_base`, `vmalloc_base` and
// `vmemmap_base`. Read those when the symbols are known; these constants are the
// defaults and fallbacks.

/// `__PAGE_OFFSET_BASE_L4`: the base of the direct map of all physical memory with
/// 4-level paging (64 TiB at `ffff888000000000`), before KASLR moves it (see
/// `page_offset_base`). Kernels before 4.20 used `ffff880000000000`.
pub const X86_DIRECT_MAP_BASE_L4: u64 = 0xffff_8880_0000_0000;

/// `__PAGE_OFFSET_BASE_L5`: the base of the direct map with 5-level paging (32 PiB at
/// `ff11000000000000`), before KASLR moves it (see `page_offset_base`).
pub const X86_DIRECT_MAP_BASE_L5: u64 = 0xff11_0000_0000_0000;

/// `__VMALLOC_BASE_L4`: the base of the vmalloc/ioremap space with 4-level paging
/// (32 TiB at `ffffc90000000000`), before KASLR moves it (see `vmalloc_base`).
pub const X86_VMALLOC_BASE_L4: u64 = 0xffff_c900_0000_0000;

/// `__VMALLOC_BASE_L5`: the base of the vmalloc/ioremap space with 5-level paging
/// (12.5 PiB at `ffa0000000000000`), before KASLR moves it (see `vmalloc_base`).
pub const X86_VMALLOC_BASE_L5: u64 = 0xffa0_0000_0000_0000;

/// `__VMEMMAP_BASE_L4`: the base of the virtual memory map (the `struct page` array)
/// with 4-level paging (`ffffea0000000000`), before KASLR moves it (see
/// `vmemmap_base`).
pub const X86_VMEMMAP_BASE_L4: u64 = 0xffff_ea00_0000_0000;

/// `__VMEMMAP_BASE_L5`: the base of the virtual memory map with 5-level paging
/// (`ffd4000000000000`), before KASLR moves it (see `vmemmap_base`).
pub const X86_VMEMMAP_BASE_L5: u64 = 0xffd4_0000_0000_0000;

/// The lowest kernel address with 5-level paging (`ff00000000000000`, the start of the
/// upper half of the 57-bit address space, where the guard hole begins). Every kernel
/// address of either paging mode lies at or above it, the randomized direct map base
/// included.
pub const X86_KERNEL_SPACE_START_L5: u64 = 0xff00_0000_0000_0000;

/// The unrandomized direct map base for the paging mode: [`X86_DIRECT_MAP_BASE_L5`]
/// with 5-level paging, else [`X86_DIRECT_MAP_BASE_L4`]. A default: KASLR moves it.
pub const fn x86_direct_map_base(five_level: bool) -> u64 {
    if five_level {
        X86_DIRECT_MAP_BASE_L5
    } else {
        X86_DIRECT_MAP_BASE_L4
    }
}

/// The unrandomized vmalloc base for the paging mode: [`X86_VMALLOC_BASE_L5`] with
/// 5-level paging, else [`X86_VMALLOC_BASE_L4`]. A default: KASLR moves it.
pub const fn x86_vmalloc_base(five_level: bool) -> u64 {
    if five_level {
        X86_VMALLOC_BASE_L5
    } else {
        X86_VMALLOC_BASE_L4
    }
}

/// The unrandomized vmemmap base for the paging mode: [`X86_VMEMMAP_BASE_L5`] with
/// 5-level paging, else [`X86_VMEMMAP_BASE_L4`]. A default: KASLR moves it.
pub const fn x86_vmemmap_base(five_level: bool) -> u64 {
    if five_level {
        X86_VMEMMAP_BASE_L5
    } else {
        X86_VMEMMAP_BASE_L4
    }
}

/// Whether `v` can be the x86_64 direct map base (`page_offset_base`) of either paging
/// mode, randomized or not: page-aligned, in the kernel half and below the kernel
/// image mapping ([`X86_START_KERNEL_MAP`]).
pub const fn x86_is_direct_map_base(v: u64) -> bool {
    v >= X86_KERNEL_SPACE_START_L5 && v < X86_START_KERNEL_MAP && v & 0xfff == 0
}

/// The kernel's linear mappings. Addresses in neither are translated by a page walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelAddrs {
    /// The direct map of all RAM (`page_offset_base` on x86_64, `PAGE_OFFSET` on arm64).
    pub direct_map: Option<LinearRegion>,
    /// The kernel image (text, data, bss): `__START_KERNEL_map` + `phys_base` on x86_64,
    /// `kimage_voffset` on arm64.
    pub image: Option<LinearRegion>,
}

impl KernelAddrs {
    /// The x86_64 layout: the direct map at `page_offset_base` covering physical
    /// `0 .. ram_end`, and the kernel image at `__START_KERNEL_map` loaded at `phys_base`.
    pub const fn x86_64(page_offset_base: u64, ram_end: u64, phys_base: u64) -> Self {
        Self {
            direct_map: Some(LinearRegion {
                virt: Kva(page_offset_base),
                phys: Pa(0),
                len: ram_end,
            }),
            image: Some(LinearRegion {
                virt: Kva(X86_START_KERNEL_MAP),
                phys: Pa(phys_base),
                len: X86_KERNEL_IMAGE_SIZE,
            }),
        }
    }
}

/// Physically contiguous runs a multi-page read gathers before it reads them.
const READ_BATCH: usize = 32;

/// Memory, paging state and kernel layout: reads any kernel virtual address.
///
/// Translations are cached; call [`invalidate`](Self::invalidate) whenever the guest may
/// have run since the last read (one pause of the guest is one epoch).
///
/// ```
/// use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
/// use mapwalk_core::arch::{x86_64::X86Paging, Paging};
/// use mapwalk_core::{Kva, Pa, Ram};
///
/// let mut bytes = vec![0u8; 0x4000];
/// bytes[0x2000..0x2008].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
/// let view = KernelView::new(
///     Ram::new(Pa(0), bytes),
///     Paging::X86_64(X86Paging::new(0, false)),
///     KernelAddrs::x86_64(0xffff_8880_0000_0000, 0x4000, 0),
/// );
/// // A direct-map address needs no page walk.
/// assert_eq!(view.read_kernel_u64(Kva(0xffff_8880_0000_2000)).unwrap(), 0x1122_3344_5566_7788);
/// ```
#[derive(Debug)]
pub struct KernelView<M> {
    mem: M,
    paging: Paging,
    addrs: KernelAddrs,
    cache: TranslationCache,
    limits: Limits,
}

impl<M: PhysRead> KernelView<M> {
    /// A view of the kernel in `mem`, with default [`Limits`].
    pub fn new(mem: M, paging: Paging, addrs: KernelAddrs) -> Self {
        Self {
            mem,
            paging,
            addrs,
            cache: TranslationCache::new(),
            limits: Limits::DEFAULT,
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The paging state.
    pub fn paging(&self) -> &Paging {
        &self.paging
    }

    /// The linear mappings.
    pub fn addrs(&self) -> &KernelAddrs {
        &self.addrs
    }

    /// The translation cache (for statistics or sharing its epoch).
    pub fn cache(&self) -> &TranslationCache {
        &self.cache
    }

    /// Forgets cached translations: the guest may have changed its page tables.
    pub fn invalidate(&self) {
        self.cache.invalidate();
    }

    /// Finds `phys_base` (x86_64) by walking the page tables to the kernel's own
    /// `phys_base` variable at `symbol`, reads it, checks that it agrees with the walk,
    /// and makes the image mapping use it. Returns the value.
    ///
    /// # Errors
    /// [`Error::LayoutMissing`] without an image mapping, a translation or read error,
    /// or [`Error::Corrupt`] when the value read contradicts the walk.
    pub fn resolve_phys_base(&mut self, symbol: Kva) -> Result<u64> {
        let image = self.addrs.image.ok_or(Error::LayoutMissing {
            what: "kernel image mapping",
        })?;
        let walked = arch::translate(&self.mem, &self.paging, symbol)?.mapped(symbol)?;
        let value = self.mem.read_u64(walked.pa)?;
        let off = symbol
            .offset_from(image.virt)
            .filter(|&o| o < image.len)
            .ok_or(Error::Corrupt {
                what: "phys_base symbol outside the kernel image",
                at: symbol,
                value: symbol.0,
            })?;
        if value.wrapping_add(off) != walked.pa.0 {
            return Err(Error::Corrupt {
                what: "phys_base (disagrees with the page walk)",
                at: symbol,
                value,
            });
        }
        self.addrs.image = Some(LinearRegion {
            phys: Pa(value),
            ..image
        });
        self.cache.invalidate();
        Ok(value)
    }

    /// Fills several buffers from kernel addresses with as few backend calls as
    /// possible: each piece that is physically contiguous becomes one piece of one
    /// vectored read. A piece that spans a physical discontinuity is read separately.
    ///
    /// # Errors
    /// The first translation or read error.
    pub fn read_kernel_many(&self, ops: &mut [(Kva, &mut [u8])]) -> Result<()> {
        const BATCH: usize = 16;
        for chunk in ops.chunks_mut(BATCH) {
            let mut reqs: [ReadOp<'_>; BATCH] = core::array::from_fn(|_| ReadOp {
                pa: Pa(0),
                buf: &mut [],
            });
            let mut n = 0usize;
            for (va, buf) in chunk.iter_mut() {
                let span = self.kva_to_pa(*va)?;
                match reqs.get_mut(n) {
                    Some(slot) if span.len >= len_u64(buf.len()) => {
                        *slot = ReadOp {
                            pa: span.start,
                            buf,
                        };
                        n = n.saturating_add(1);
                    }
                    _ => self.read_kernel(*va, buf)?,
                }
            }
            let live = reqs.get_mut(..n).unwrap_or_default();
            self.mem.read_many(live)?;
        }
        Ok(())
    }

    /// Calls `f` with each physically contiguous run of `va .. va + len`, in order:
    /// `(offset into the range, physical address, run length)`. Translates every page
    /// before the first call when `pretranslate` is set, so that an unmapped page fails
    /// the whole operation before anything happened.
    fn for_each_run(
        &self,
        va: Kva,
        len: u64,
        pretranslate: bool,
        f: &mut dyn FnMut(u64, Pa, u64) -> Result<()>,
    ) -> Result<()> {
        va.checked_add(len)
            .ok_or(Error::AddrOverflow { addr: va.0, len })?;
        if pretranslate {
            self.for_each_run(va, len, false, &mut |_, _, _| Ok(()))?;
        }
        let mut done = 0u64;
        // The loop advances by at least one byte per page translated, and `len` is the
        // caller's own length: it ends without a separate cap.
        while done < len {
            let here = Kva(va.0.wrapping_add(done));
            let first = self.kva_to_pa(here)?;
            let mut run = first.len.min(len.wrapping_sub(done));
            // Merge physically contiguous pages into one run.
            while done.wrapping_add(run) < len {
                let next = self.kva_to_pa(Kva(here.0.wrapping_add(run)))?;
                if next.start.0 != first.start.0.wrapping_add(run) {
                    break;
                }
                run = run.saturating_add(next.len).min(len.wrapping_sub(done));
            }
            f(done, first.start, run)?;
            done = done.saturating_add(run);
        }
        Ok(())
    }
}

impl<M: PhysRead> KernelRead for KernelView<M> {
    fn kva_to_pa(&self, va: Kva) -> Result<PhysRange> {
        if let Some(span) = self.addrs.direct_map.and_then(|r| r.lookup(va)) {
            return Ok(span);
        }
        if let Some(span) = self.addrs.image.and_then(|r| r.lookup(va)) {
            return Ok(span);
        }
        let m = arch::translate_cached(&self.mem, &self.paging, &self.cache, va)?.mapped(va)?;
        Ok(PhysRange {
            start: m.pa,
            len: m.bytes_to_page_end(),
        })
    }

    fn read_kernel(&self, va: Kva, buf: &mut [u8]) -> Result<()> {
        // Nothing to read, nothing to translate (as `write_kernel` of nothing).
        if buf.is_empty() {
            return Ok(());
        }
        // Fast path: the whole buffer inside one contiguous span.
        let span = self.kva_to_pa(va)?;
        let len = len_u64(buf.len());
        if span.len >= len {
            return self.mem.read_bytes(span.start, buf);
        }
        va.checked_add(len)
            .ok_or(Error::AddrOverflow { addr: va.0, len })?;
        // Translate a batch of pages first, merging physically contiguous ones, then
        // fetch the whole batch with one vectored backend call: copies run back to back
        // instead of alternating with page walks, and a backend with a per-call cost is
        // called once per batch.
        let mut rest: &mut [u8] = buf;
        let mut done = 0u64;
        let mut next = Some(span);
        while done < len {
            let mut runs = [PhysRange {
                start: Pa(0),
                len: 0,
            }; READ_BATCH];
            let mut n = 0usize;
            while done < len {
                let here = Kva(va.0.wrapping_add(done));
                let span = match next.take() {
                    Some(span) => span,
                    None => self.kva_to_pa(here)?,
                };
                let run = span.len.min(len.wrapping_sub(done));
                let merged = n
                    .checked_sub(1)
                    .and_then(|last| runs.get_mut(last))
                    .filter(|prev| prev.end() == span.start.0);
                match merged {
                    Some(prev) => prev.len = prev.len.saturating_add(run),
                    None => match runs.get_mut(n) {
                        Some(slot) => {
                            *slot = PhysRange {
                                start: span.start,
                                len: run,
                            };
                            n = n.saturating_add(1);
                        }
                        None => {
                            // The batch is full: this page starts the next one.
                            next = Some(span);
                            break;
                        }
                    },
                }
                done = done.saturating_add(run);
            }
            let mut ops: [ReadOp<'_>; READ_BATCH] = core::array::from_fn(|_| ReadOp {
                pa: Pa(0),
                buf: &mut [],
            });
            for (op, r) in ops.iter_mut().zip(runs.iter().take(n)) {
                let k =
                    usize::try_from(r.len).map_err(|_| Error::AddrOverflow { addr: va.0, len })?;
                if k > rest.len() {
                    return Err(Error::AddrOverflow { addr: va.0, len });
                }
                let (head, tail) = core::mem::take(&mut rest).split_at_mut(k);
                *op = ReadOp {
                    pa: r.start,
                    buf: head,
                };
                rest = tail;
            }
            let live = ops.get_mut(..n).unwrap_or_default();
            self.mem.read_many(live)?;
        }
        Ok(())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes kernel virtual memory.
pub trait KernelWrite: KernelRead {
    /// Writes `data` at kernel address `va`, which may span pages.
    ///
    /// Implementations translate every page before writing anything, and land an
    /// aligned write of 1, 2, 4 or 8 bytes as one store.
    ///
    /// # Errors
    /// A translation error (nothing written), or the backend's write error.
    fn write_kernel(&self, va: Kva, data: &[u8]) -> Result<()>;
}

impl<K: KernelWrite + ?Sized> KernelWrite for &K {
    fn write_kernel(&self, va: Kva, data: &[u8]) -> Result<()> {
        (**self).write_kernel(va, data)
    }
}

impl<M: PhysWrite> KernelWrite for KernelView<M> {
    /// Writes `data` at kernel address `va`, which may span pages.
    ///
    /// Every page is translated before anything is written, so an unmapped page refuses
    /// the whole write. A write of 1, 2, 4 or 8 bytes that is aligned to its size lies in
    /// one page and reaches the backend as one call, which [`PhysWrite`] lands as one
    /// store.
    ///
    /// # Errors
    /// A translation error (nothing written), or the backend's write error.
    fn write_kernel(&self, va: Kva, data: &[u8]) -> Result<()> {
        let len = len_u64(data.len());
        self.for_each_run(va, len, true, &mut |off, pa, run| {
            let lo = usize::try_from(off).map_err(|_| Error::AddrOverflow { addr: va.0, len })?;
            let hi = usize::try_from(off.saturating_add(run))
                .map_err(|_| Error::AddrOverflow { addr: va.0, len })?;
            let piece = data
                .get(lo..hi)
                .ok_or(Error::AddrOverflow { addr: va.0, len })?;
            self.mem.write_bytes(pa, piece)
        })
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::Cell;

    use super::*;
    use crate::arch::x86_64::X86Paging;
    use crate::error::PhysErrorKind;
    use crate::mem::{Ram, ReadManyError, ReadOp};
    use crate::synth::{GuestBuilder, SynthRam, X86PageTables};

    #[test]
    fn x86_address_space_defaults() {
        assert_eq!(x86_direct_map_base(false), 0xffff_8880_0000_0000);
        assert_eq!(x86_direct_map_base(true), 0xff11_0000_0000_0000);
        assert_eq!(x86_vmalloc_base(false), 0xffff_c900_0000_0000);
        assert_eq!(x86_vmalloc_base(true), 0xffa0_0000_0000_0000);
        assert_eq!(x86_vmemmap_base(false), 0xffff_ea00_0000_0000);
        assert_eq!(x86_vmemmap_base(true), 0xffd4_0000_0000_0000);
        for l5 in [false, true] {
            let bases = [
                X86_KERNEL_SPACE_START_L5,
                x86_direct_map_base(l5),
                x86_vmalloc_base(l5),
                x86_vmemmap_base(l5),
                X86_START_KERNEL_MAP,
            ];
            assert!(bases.windows(2).all(|w| w[0] < w[1]), "{l5}: {bases:x?}");
            // Canonical: the bits above the top virtual-address bit copy it.
            let top = if l5 { 56 } else { 47 };
            assert!(
                bases[1..4].iter().all(|b| b >> top == u64::MAX >> top),
                "{l5}"
            );
            assert!(x86_is_direct_map_base(x86_direct_map_base(l5)));
        }
        // The pre-4.20 4-level base, and a randomized one.
        assert!(x86_is_direct_map_base(0xffff_8800_0000_0000));
        assert!(x86_is_direct_map_base(0xffff_9a41_c000_0000));
        assert!(!x86_is_direct_map_base(X86_KERNEL_SPACE_START_L5 - 0x1000));
        assert!(!x86_is_direct_map_base(X86_START_KERNEL_MAP));
        assert!(!x86_is_direct_map_base(0xffff_8880_0000_0800));
        assert!(!x86_is_direct_map_base(0));
    }

    /// Counts the backend calls a read makes, page-table entries (8-byte reads) aside.
    struct Counting<M> {
        inner: M,
        reads: Cell<u32>,
        batches: Cell<u32>,
        pieces: Cell<u32>,
    }

    impl<M: PhysRead> PhysRead for Counting<M> {
        type Error = M::Error;
        fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> core::result::Result<(), M::Error> {
            if buf.len() != 8 {
                self.reads.set(self.reads.get() + 1);
            }
            self.inner.read_phys(pa, buf)
        }
        fn ranges(&self) -> &[PhysRange] {
            self.inner.ranges()
        }
        fn read_phys_many(
            &self,
            ops: &mut [ReadOp<'_>],
        ) -> core::result::Result<(), ReadManyError<M::Error>> {
            self.batches.set(self.batches.get() + 1);
            self.pieces.set(self.pieces.get() + ops.len() as u32);
            for (index, op) in ops.iter_mut().enumerate() {
                self.inner
                    .read_phys(op.pa, op.buf)
                    .map_err(|error| ReadManyError { index, error })?;
            }
            Ok(())
        }
    }

    const VA: u64 = 0xffff_c900_0000_0000;

    /// Eight 4 KiB pages at `VA`: pages 0-3 physically contiguous, 4-7 scattered.
    fn paged() -> (SynthRam, X86PageTables, Vec<Pa>) {
        let mut ram = SynthRam::new(Pa(0), 4 << 20);
        let pt = X86PageTables::new(&mut ram, false);
        let run = ram.alloc(4 * 4096, 4096);
        let mut pages: Vec<Pa> = (0..4).map(|i| Pa(run.0 + i * 4096)).collect();
        for _ in 0..4 {
            ram.alloc_page(12);
            pages.push(ram.alloc_page(12));
        }
        for (i, pa) in pages.iter().enumerate() {
            pt.map(&mut ram, Kva(VA + i as u64 * 4096), *pa, 12);
            let fill: Vec<u8> = (0..4096u32).map(|b| (b as u8) ^ (i as u8 * 17)).collect();
            ram.write(*pa, &fill);
        }
        (ram, pt, pages)
    }

    fn expected(from: u64, len: usize) -> Vec<u8> {
        (from..from + len as u64)
            .map(|o| ((o % 4096) as u8) ^ ((o / 4096) as u8 * 17))
            .collect()
    }

    #[test]
    fn contiguous_pages_are_read_in_one_piece() {
        let (ram, pt, _) = paged();
        let mem = Counting {
            inner: ram.as_ram(),
            reads: Cell::new(0),
            batches: Cell::new(0),
            pieces: Cell::new(0),
        };
        let view = KernelView::new(&mem, pt.paging(), KernelAddrs::default());
        let mut buf = vec![0u8; 4 * 4096 - 100];
        view.read_kernel(Kva(VA + 50), &mut buf).unwrap();
        assert_eq!(buf, expected(50, buf.len()));
        assert_eq!(
            (mem.batches.get(), mem.pieces.get(), mem.reads.get()),
            (1, 1, 0),
            "four contiguous pages, one piece of one backend call"
        );

        mem.batches.set(0);
        mem.pieces.set(0);
        let mut buf = vec![0u8; 3 * 4096];
        view.read_kernel(Kva(VA + 4 * 4096 + 10), &mut buf).unwrap();
        assert_eq!(buf, expected(4 * 4096 + 10, buf.len()));
        assert_eq!(
            (mem.batches.get(), mem.pieces.get(), mem.reads.get()),
            (1, 4, 0),
            "four scattered pages, four pieces of one backend call"
        );
    }

    #[test]
    fn an_unmapped_page_fails_the_read() {
        let (ram, pt, _) = paged();
        let view = KernelView::new(ram.as_ram(), pt.paging(), KernelAddrs::default());
        let mut buf = vec![0u8; 2 * 4096];
        let err = view.read_kernel(Kva(VA + 7 * 4096), &mut buf).unwrap_err();
        assert_eq!(
            err,
            Error::NotMapped {
                va: Kva(VA + 8 * 4096),
                level: 0
            }
        );
        assert!(matches!(
            view.read_kernel(Kva(u64::MAX - 3), &mut buf),
            Err(Error::AddrOverflow { .. }) | Err(_)
        ));
    }

    #[test]
    fn many_pieces_are_one_batch() {
        let (ram, pt, _) = paged();
        let mem = Counting {
            inner: ram.as_ram(),
            reads: Cell::new(0),
            batches: Cell::new(0),
            pieces: Cell::new(0),
        };
        let view = KernelView::new(&mem, pt.paging(), KernelAddrs::default());
        let mut bufs = [[0u8; 16]; 8];
        let mut ops: Vec<(Kva, &mut [u8])> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (Kva(VA + i as u64 * 4096 + 8), &mut b[..]))
            .collect();
        view.read_kernel_many(&mut ops).unwrap();
        assert_eq!((mem.batches.get(), mem.reads.get()), (1, 0));
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(b[..], expected(i as u64 * 4096 + 8, 16)[..]);
        }
    }

    #[test]
    fn translations_are_cached_until_invalidated() {
        let (mut ram, pt, pages) = paged();
        let fresh = ram.alloc_page(12);
        ram.write(fresh, &[0x5a; 4096]);
        let mut bytes = ram.bytes().to_vec();
        {
            let view = KernelView::new(
                Ram::new(Pa(0), &bytes[..]),
                pt.paging(),
                KernelAddrs::default(),
            );
            assert_eq!(
                view.read_kernel_u32(Kva(VA)).unwrap(),
                u32::from_le_bytes([0, 1, 2, 3])
            );
        }
        // Remap page 0 to the fresh page; a view that kept its cache keeps the old page.
        let pte = pt.entry_addr(&ram, Kva(VA), 0);
        let old = u64::from_le_bytes(
            bytes[pte.0 as usize..pte.0 as usize + 8]
                .try_into()
                .unwrap(),
        );
        assert_eq!(old & 0x000f_ffff_ffff_f000, pages[0].0);
        let new = (old & 0xfff) | fresh.0;
        bytes[pte.0 as usize..pte.0 as usize + 8].copy_from_slice(&new.to_le_bytes());
        let view = KernelView::new(
            Ram::new(Pa(0), &bytes[..]),
            pt.paging(),
            KernelAddrs::default(),
        );
        assert_eq!(view.read_kernel_u32(Kva(VA)).unwrap(), 0x5a5a_5a5a);
        view.invalidate();
        assert_eq!(view.read_kernel_u32(Kva(VA + 4)).unwrap(), 0x5a5a_5a5a);
    }

    #[test]
    fn phys_base_is_found_by_walking_to_its_symbol() {
        let g = GuestBuilder::x86_64(false).build();
        let wrong = KernelAddrs::x86_64(g.addrs.direct_map.unwrap().virt.0, g.ram.len(), 0);
        let mut view = KernelView::new(g.ram.as_ram(), g.paging, wrong);
        assert_ne!(
            view.read_kernel_u64(g.symbols.phys_base).ok(),
            Some(g.phys_base)
        );
        assert_eq!(
            view.resolve_phys_base(g.symbols.phys_base).unwrap(),
            g.phys_base
        );
        assert_eq!(
            view.read_kernel_u64(g.symbols.phys_base).unwrap(),
            g.phys_base
        );
        assert_eq!(
            view.read_kernel_u64(g.symbols.page_offset_base).unwrap(),
            g.addrs.direct_map.unwrap().virt.0
        );
    }

    #[test]
    fn a_phys_base_that_contradicts_the_walk_is_corrupt() {
        let mut g = GuestBuilder::x86_64(true).build();
        let pa = g.pa_of(g.symbols.phys_base);
        g.ram.write_u64(pa, 0x1234_5000);
        let mut view = KernelView::new(g.ram.as_ram(), g.paging, g.addrs);
        assert_eq!(
            view.resolve_phys_base(g.symbols.phys_base),
            Err(Error::Corrupt {
                what: "phys_base (disagrees with the page walk)",
                at: g.symbols.phys_base,
                value: 0x1234_5000
            })
        );
        let mut no_image = KernelView::new(g.ram.as_ram(), g.paging, KernelAddrs::default());
        assert_eq!(
            no_image.resolve_phys_base(g.symbols.phys_base),
            Err(Error::LayoutMissing {
                what: "kernel image mapping"
            })
        );
    }

    #[test]
    fn the_direct_map_needs_no_page_tables() {
        let mut bytes = vec![0u8; 0x3000];
        bytes[0x2ff8..].copy_from_slice(&7u64.to_le_bytes());
        let view = KernelView::new(
            Ram::new(Pa(0), bytes),
            Paging::X86_64(X86Paging::new(0x10_0000, false)),
            KernelAddrs::x86_64(0xffff_8880_0000_0000, 0x3000, 0),
        );
        assert_eq!(view.read_kernel_u64(Kva(0xffff_8880_0000_2ff8)).unwrap(), 7);
        // Past the end of RAM the direct map gives way to a page walk, whose root is not RAM.
        assert!(matches!(
            view.read_kernel_u64(Kva(0xffff_8880_0000_3000)),
            Err(Error::Phys {
                kind: PhysErrorKind::Unmapped,
                ..
            })
        ));
    }
}
