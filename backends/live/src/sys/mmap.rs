//! Memory maps of map descriptors.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::os::fd::{AsRawFd, BorrowedFd};

use mapwalk_core::bpf::BPF_F_MMAPABLE;
use mapwalk_core::MapType;

use super::{MapHandle, BPF_F_SEGV_ON_FAULT};
use crate::error::{Errno, Error, Result};

/// The page size.
pub fn page_size() -> usize {
    // SAFETY:
    // - `sysconf` has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A read-only shared mapping of a map descriptor, unmapped on drop.
///
/// The memory is written concurrently by BPF programs and the kernel, so it is never
/// handed out as a Rust reference: [`copy_out`](Self::copy_out) copies with volatile
/// reads, the positions of ring buffers are loaded through atomics.
///
/// Every constructor checks that reading any byte of the mapping cannot fault fatally:
/// arrays and ring buffers are fully backed; arena pages that the arena has not got are
/// allocated by the kernel on first touch (and arenas that would send `SIGSEGV`
/// instead, `BPF_F_SEGV_ON_FAULT`, are refused).
#[derive(Debug)]
pub struct MmapRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY:
// - `MmapRegion` owns its mapping exclusively (unmapped once, in `drop`); its methods only
//   read through raw pointers with volatile or atomic accesses, which any thread may do.
unsafe impl Send for MmapRegion {}
// SAFETY:
// - as for `Send`: `&MmapRegion` only allows volatile/atomic reads of shared memory.
unsafe impl Sync for MmapRegion {}

impl MmapRegion {
    /// `mmap(hint, len, PROT_READ, MAP_SHARED, fd, 0)`.
    fn map(fd: BorrowedFd<'_>, len: usize, hint: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::BufferSize { need: 1, have: 0 });
        }
        let hint_ptr = ptr::null_mut::<c_void>().wrapping_byte_add(hint);
        // SAFETY:
        // - no existing memory is replaced: no MAP_FIXED, `hint` is only a hint;
        // - `fd` is a live descriptor for the duration of the call; the mapping keeps
        //   its own reference to the map.
        let p = unsafe {
            libc::mmap(
                hint_ptr,
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap {
                what: "mmap",
                errno: Errno::last(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(Error::Mmap {
            what: "mmap",
            errno: Errno(libc::EFAULT),
        })?;
        Ok(Self { ptr, len })
    }

    /// Maps the values of an ARRAY created with `BPF_F_MMAPABLE`: `max_entries`
    /// values of `round_up(value_size, 8)` bytes, from offset 0.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Mmap`].
    pub fn array(map: &MapHandle) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::ARRAY || info.map_flags & BPF_F_MMAPABLE == 0 {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "mmap (only BPF_F_MMAPABLE arrays)",
            });
        }
        let elem = u64::from(info.value_size).next_multiple_of(8);
        let len = elem
            .checked_mul(u64::from(info.max_entries))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::LimitExceeded {
                what: "mmapable array bytes",
                limit: usize::MAX as u64,
                value: elem,
            })?;
        Self::map(map.fd(), len, 0)
    }

    /// Maps a RINGBUF (or USER_RINGBUF) read-only: the consumer page, the producer
    /// page, then the `max_entries` data bytes twice in a row (so a record that wraps
    /// is contiguous).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Mmap`].
    pub fn ringbuf(map: &MapHandle) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::RINGBUF && map.map_type() != MapType::USER_RINGBUF {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "ring buffer mmap",
            });
        }
        let data = usize::try_from(info.max_entries).unwrap_or(usize::MAX);
        let len = data
            .checked_mul(2)
            .and_then(|d| d.checked_add(2 * page_size()))
            .ok_or(Error::LimitExceeded {
                what: "ring buffer bytes",
                limit: usize::MAX as u64,
                value: u64::from(info.max_entries),
            })?;
        Self::map(map.fd(), len, 0)
    }

    /// Maps an ARENA read-only at its user address `addr` (every mapping of an arena
    /// must be at the same address).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps and for `BPF_F_SEGV_ON_FAULT` arenas;
    /// [`Error::ArenaAddress`] when the kernel placed the mapping elsewhere (the range is
    /// taken in this process); [`Error::Mmap`] (`EINVAL`, `EBUSY`: `addr` is not the
    /// arena's address).
    pub fn arena(map: &MapHandle, addr: u64) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::ARENA {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "arena mmap",
            });
        }
        if info.map_flags & BPF_F_SEGV_ON_FAULT != 0 {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "reading a BPF_F_SEGV_ON_FAULT arena (a page it has not got kills the reader)",
            });
        }
        let len = usize::try_from(info.max_entries)
            .ok()
            .and_then(|n| n.checked_mul(page_size()))
            .ok_or(Error::LimitExceeded {
                what: "arena bytes",
                limit: usize::MAX as u64,
                value: u64::from(info.max_entries),
            })?;
        let hint = usize::try_from(addr).map_err(|_| Error::ArenaAddress {
            id: info.id,
            wanted: addr,
            got: 0,
        })?;
        let m = Self::map(map.fd(), len, hint)?;
        if m.addr() != addr {
            return Err(Error::ArenaAddress {
                id: info.id,
                wanted: addr,
                got: m.addr(),
            });
        }
        Ok(m)
    }

    /// The mapping's address in this process.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as usize as u64
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: constructors refuse length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfRange {
                offset: offset as u64,
                len: len as u64,
                size: self.len as u64,
            }),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` with volatile reads (8 bytes at a
    /// time where aligned): the source may change while it is read, so a value that a
    /// BPF program updates concurrently can be torn, never undefined behaviour.
    ///
    /// # Errors
    /// [`Error::OutOfRange`].
    pub fn copy_out(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range(offset, buf.len())?;
        let base = self.ptr.as_ptr().wrapping_add(offset);
        let mut i = 0usize;
        while i < buf.len() {
            let src = base.wrapping_add(i);
            let rest = buf.len().wrapping_sub(i);
            if src.align_offset(8) == 0 && rest >= 8 {
                // SAFETY:
                // - `src..src + 8` lies inside the mapping (`range` checked
                //   `offset + buf.len() <= len`, and `i + 8 <= buf.len()`), which stays
                //   mapped while `self` lives and reads without a fatal fault (see the
                //   constructors); `src` is 8-byte aligned (checked);
                // - a volatile read of plain bytes: no reference to the shared memory is
                //   formed, concurrent writers cannot cause undefined behaviour.
                let word = unsafe { ptr::read_volatile(src.cast::<u64>()) };
                if let Some(d) = buf.get_mut(i..i.wrapping_add(8)) {
                    d.copy_from_slice(&word.to_ne_bytes());
                }
                i = i.wrapping_add(8);
            } else {
                // SAFETY:
                // - `src` lies inside the mapping (`i < buf.len()`, range checked), which
                //   stays mapped and readable while `self` lives; one byte needs no
                //   alignment; a volatile read forms no reference.
                let byte = unsafe { ptr::read_volatile(src) };
                if let Some(d) = buf.get_mut(i) {
                    *d = byte;
                }
                i = i.wrapping_add(1);
            }
        }
        Ok(())
    }

    /// The address of the `size`-byte word at `offset`: inside the mapping and aligned
    /// to `size`, or the error that says which it is not.
    fn aligned(&self, offset: usize, size: usize) -> Result<*mut u8> {
        self.range(offset, size)?;
        let p = self.ptr.as_ptr().wrapping_add(offset);
        if p.align_offset(size) != 0 {
            return Err(Error::Misaligned {
                offset: offset as u64,
            });
        }
        Ok(p)
    }

    /// Loads the `u64` at `offset` with acquire ordering (`smp_load_acquire`), as ring
    /// buffer consumers read `producer_pos` and `consumer_pos`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`], or [`Error::Misaligned`] when `offset` is not 8-aligned.
    pub fn load_u64_acquire(&self, offset: usize) -> Result<u64> {
        let p = self.aligned(offset, 8)?;
        // SAFETY:
        // - `p` is inside the mapping (range checked), 8-byte aligned (checked), and
        //   valid for the lifetime of the returned reference (it ends in this
        //   statement, while `self` keeps the mapping);
        // - every access to this word, by the kernel and BPF programs too, is atomic or
        //   made while no atomic access can race with it (the kernel writes positions
        //   with `smp_store_release`).
        let atomic = unsafe { AtomicU64::from_ptr(p.cast::<u64>()) };
        Ok(atomic.load(Ordering::Acquire))
    }

    /// Loads the `u32` at `offset` with acquire ordering (a ring buffer record header).
    ///
    /// # Errors
    /// [`Error::OutOfRange`], or [`Error::Misaligned`] when `offset` is not 4-aligned.
    pub fn load_u32_acquire(&self, offset: usize) -> Result<u32> {
        let p = self.aligned(offset, 4)?;
        // SAFETY:
        // - `p` is inside the mapping (range checked) and 4-byte aligned (checked); the
        //   reference lives only for this statement;
        // - the kernel publishes record headers with `smp_store_release`.
        let atomic = unsafe { AtomicU32::from_ptr(p.cast::<u32>()) };
        Ok(atomic.load(Ordering::Acquire))
    }

    /// `mincore(2)` over the mapping: for each page, whether it is resident in *this*
    /// mapping's page tables.
    ///
    /// # Errors
    /// [`Error::Mmap`] with `what = "mincore"`.
    pub fn resident(&self) -> Result<Vec<bool>> {
        let pages = self.len.div_ceil(page_size());
        let mut vec = vec![0u8; pages];
        // SAFETY:
        // - `self.ptr` is page-aligned (an mmap result) and `self.len` bytes from it are
        //   mapped while `self` lives;
        // - `vec` has one writable byte per page of that range, exclusively borrowed.
        let ret = unsafe {
            libc::mincore(
                self.ptr.as_ptr().cast::<c_void>(),
                self.len,
                vec.as_mut_ptr(),
            )
        };
        if ret != 0 {
            return Err(Error::Mmap {
                what: "mincore",
                errno: Errno::last(),
            });
        }
        Ok(vec.iter().map(|b| b & 1 != 0).collect())
    }
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY:
        // - `ptr`/`len` are exactly one mapping made by `MmapRegion::map` and owned by
        //   `self`; no reference into it exists (none is ever created), and it is
        //   unmapped only here, once.
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}
