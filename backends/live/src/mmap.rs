//! Maps read through `mmap(2)`: `BPF_F_MMAPABLE` arrays, ring buffers and arenas.
//!
//! All three are written concurrently by BPF programs (and, for ring buffers, by the
//! consumer), so their bytes are copied out of the mapping into owned buffers with
//! volatile reads ([`MmapRegion::copy_out`]); nothing hands out a `&[u8]` over them.
//!
//! # Arenas: which pages exist
//! An arena (`BPF_MAP_TYPE_ARENA`, Linux 6.9+) is a sparse region of up to 4 GiB whose
//! pages are allocated by BPF programs (`bpf_arena_alloc_pages`) or by user-space page
//! faults. What user space can learn about them, from kernel/bpf/arena.c:
//! - every mapping of an arena must be at the same user address (`user_vm_start`): the
//!   one given in `map_extra` at creation, or else the one the first `mmap` got.
//!   Another address fails with `EINVAL`/`EBUSY`, without side effects, so
//!   [`ArenaAddr::Auto`] tries `map_extra` and then the `anon_inode:bpf-map` mappings
//!   of the right length in `/proc/PID/maps` of the processes that hold the arena
//!   (`map_id` in `/proc/PID/fdinfo`). The first mapping of an arena *sets* its
//!   address: were none made yet, mapping it here would pin the address its owner
//!   must then use; an arena never mapped has no pages either (BPF programs using it
//!   cannot load before the address is set), so there is nothing to read;
//! - a fresh mapping has no page-table entries: `mincore(2)`
//!   ([`ArenaView::resident`]) reports only the pages *this mapping* has touched, not
//!   the arena's pages;
//! - touching a page the arena has not got **allocates** it (zero-filled, charged to
//!   the arena's memory cgroup, and from then on counted as allocated by
//!   `bpf_arena_alloc_pages`), or kills the reader with `SIGSEGV` for arenas created
//!   with `BPF_F_SEGV_ON_FAULT` (refused here), or when that allocation fails.
//!
//! So no system call tells which pages exist without changing the arena: reading a page
//! is the only probe, and it has that side effect. A guest-memory reader
//! (mapwalk-core) has no such problem: there the kernel's page tables are the truth.

use std::io::BufRead;

use mapwalk_core::MapType;

use crate::error::{Error, Result};
use crate::map::LiveMap;
use crate::sys::{page_size, MmapRegion};

/// A `BPF_F_MMAPABLE` ARRAY mapped read-only.
#[derive(Debug)]
pub struct MmapArray {
    mapping: MmapRegion,
    value_size: usize,
    stride: usize,
    entries: u32,
}

impl MmapArray {
    /// The number of values (`max_entries`).
    pub fn len(&self) -> u32 {
        self.entries
    }

    /// Whether the array has no values.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Copies value `index` into `buf` (`value_size` bytes).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::OutOfRange`] for an index past the end.
    pub fn value_into(&self, index: u32, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.value_size {
            return Err(Error::BufferSize {
                need: self.value_size,
                have: buf.len(),
            });
        }
        let off = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(self.stride))
            .unwrap_or(usize::MAX);
        self.mapping.copy_out(off, buf)
    }

    /// Value `index`, copied.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an index past the end.
    pub fn value(&self, index: u32) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.value_size];
        self.value_into(index, &mut v)?;
        Ok(v)
    }

    /// Every value, copied (one pass over the mapping: values a program updates during
    /// the copy may be torn).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] (not for a well-formed mapping).
    pub fn values(&self) -> Result<Vec<Vec<u8>>> {
        let mut all = vec![
            0u8;
            self.stride
                .saturating_mul(usize::try_from(self.entries).unwrap_or(0))
        ];
        self.mapping.copy_out(0, &mut all)?;
        Ok(all
            .chunks_exact(self.stride.max(1))
            .map(|c| c.get(..self.value_size).unwrap_or_default().to_vec())
            .collect())
    }
}

/// A ring buffer record still waiting for its consumer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The record's position (its header's logical offset in the ring).
    pub pos: u64,
    /// The payload.
    pub data: Vec<u8>,
}

/// What a ring buffer held at one moment, without consuming it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RingbufSnapshot {
    /// The data area's size in bytes (`max_entries`).
    pub size: u64,
    /// `consumer_pos` when the read started.
    pub consumer_pos: u64,
    /// `producer_pos` when the read started.
    pub producer_pos: u64,
    /// Committed records between the two, in order, that were still unconsumed when
    /// the read ended.
    pub records: Vec<Record>,
    /// Records discarded by their producer (`BPF_RINGBUF_DISCARD_BIT`): skipped.
    pub discarded: u64,
    /// Whether the walk stopped at a record still being written
    /// (`BPF_RINGBUF_BUSY_BIT`); later records are not read.
    pub stopped_at_busy: bool,
    /// `consumer_pos` when the read ended; records before it were consumed meanwhile
    /// and dropped from [`records`](Self::records).
    pub consumer_pos_after: u64,
}

mod ringbuf_form;

pub use ringbuf_form::RINGBUF_FORM_READS;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR: u64 = 8;

/// A RINGBUF (or USER_RINGBUF) mapped read-only.
#[derive(Debug)]
pub struct RingbufView {
    mapping: MmapRegion,
    size: u64,
    page: usize,
}

impl RingbufView {
    /// The data area's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `(consumer_pos, producer_pos)` now.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] (not for a well-formed mapping).
    pub fn positions(&self) -> Result<(u64, u64)> {
        Ok((
            self.mapping.load_u64_acquire(0)?,
            self.mapping.load_u64_acquire(self.page)?,
        ))
    }

    /// The unconsumed records, copied; the ring is not changed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the positions or a record header contradict the ring's
    /// size.
    pub fn snapshot(&self) -> Result<RingbufSnapshot> {
        let (cons, prod) = self.positions()?;
        let used = prod.checked_sub(cons).ok_or(Error::Corrupt {
            what: "ring buffer positions (producer behind consumer)",
            value: prod,
        })?;
        if used > self.size {
            return Err(Error::Corrupt {
                what: "ring buffer positions (more pending than the ring holds)",
                value: used,
            });
        }
        let mask = self.size.wrapping_sub(1);
        let data = 2u64.saturating_mul(self.page as u64);
        let mut snap = RingbufSnapshot {
            size: self.size,
            consumer_pos: cons,
            producer_pos: prod,
            ..RingbufSnapshot::default()
        };
        let mut pos = cons;
        while pos < prod {
            let hdr_off = usize::try_from(data.saturating_add(pos & mask)).unwrap_or(usize::MAX);
            let word = self.mapping.load_u32_acquire(hdr_off)?;
            if word & BUSY_BIT != 0 {
                snap.stopped_at_busy = true;
                break;
            }
            let len = u64::from(word & !(BUSY_BIT | DISCARD_BIT));
            let total = len.saturating_add(HDR).next_multiple_of(8);
            if total > self.size || pos.saturating_add(total) > prod {
                return Err(Error::Corrupt {
                    what: "ring buffer record length",
                    value: len,
                });
            }
            if word & DISCARD_BIT != 0 {
                snap.discarded = snap.discarded.saturating_add(1);
            } else {
                // The data pages are mapped twice in a row, so the payload is
                // contiguous even when it wraps.
                let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
                self.mapping
                    .copy_out(hdr_off.saturating_add(HDR as usize), &mut buf)?;
                snap.records.push(Record { pos, data: buf });
            }
            pos = pos.saturating_add(total);
        }
        // The producer never writes below `consumer_pos + size`: records at or after
        // the consumer position read now were intact throughout the copy. Records
        // before it were consumed meanwhile and their space may be reused.
        let after = self.mapping.load_u64_acquire(0)?;
        snap.consumer_pos_after = after;
        if after != cons {
            snap.records.retain(|r| r.pos >= after);
        }
        Ok(snap)
    }
}

/// Where to map an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ArenaAddr {
    /// `map_extra` when the arena was created with a fixed address, else a mapping of
    /// the arena found in `/proc/*/maps`.
    #[default]
    Auto,
    /// This user address (the owner's, from its skeleton or `/proc/PID/maps`).
    At(u64),
}

/// An ARENA mapped read-only at its user address.
///
/// See the [module docs](self): reading a page the arena has not got allocates it.
#[derive(Debug)]
pub struct ArenaView {
    mapping: MmapRegion,
    pages: u32,
    page: usize,
}

impl ArenaView {
    /// The arena's user address (where its page 0 is in every process).
    pub fn user_addr(&self) -> u64 {
        self.mapping.addr()
    }

    /// The arena's size in pages (`max_entries`).
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// Copies `buf.len()` bytes at `offset` from the arena's start.
    ///
    /// **Side effect:** pages the arena has not got are allocated by the kernel
    /// (zero-filled) when touched.
    ///
    /// # Errors
    /// [`Error::OutOfRange`].
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let off = usize::try_from(offset).map_err(|_| Error::OutOfRange {
            offset,
            len: buf.len() as u64,
            size: self.mapping.len() as u64,
        })?;
        self.mapping.copy_out(off, buf)
    }

    /// Page `index`, copied (with the side effect of [`read`](Self::read)).
    ///
    /// # Errors
    /// [`Error::OutOfRange`].
    pub fn read_page(&self, index: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.page];
        self.read(u64::from(index).saturating_mul(self.page as u64), &mut buf)?;
        Ok(buf)
    }

    /// Which pages are resident in *this* mapping (`mincore(2)`): the pages it has
    /// read, not the pages the arena has (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::Mmap`].
    pub fn resident(&self) -> Result<Vec<bool>> {
        self.mapping.resident()
    }
}

/// Whether the process at `/proc/PID` holds a descriptor for map `id`.
fn holds_map(proc_dir: &std::path::Path, id: u32) -> bool {
    let want = format!("map_id:\t{id}");
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fdinfo")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|t| t.lines().any(|l| l == want)))
}

/// Start addresses of `anon_inode:bpf-map` mappings of `len` bytes at offset 0 in the
/// processes that hold a descriptor for map `id`.
fn bpf_map_mappings(len: u64, id: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for ent in dir.flatten() {
        let name = ent.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !holds_map(&ent.path(), id) {
            continue;
        }
        let Ok(f) = std::fs::File::open(ent.path().join("maps")) else {
            continue;
        };
        for line in std::io::BufReader::new(f)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if !line.ends_with("anon_inode:bpf-map") {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(range), Some(_perms), Some(offset)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            if b.checked_sub(a) == Some(len)
                && offset.trim_start_matches('0').is_empty()
                && !out.contains(&a)
            {
                out.push(a);
            }
        }
    }
    out
}

impl LiveMap {
    /// Maps a `BPF_F_MMAPABLE` ARRAY read-only: faster than lookups for large values,
    /// and the only way to read them without a system call per value.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Mmap`] (`ENOTSUPP` for arrays
    /// whose values hold spin locks or timers).
    pub fn mmap_array(&self) -> Result<MmapArray> {
        let mapping = MmapRegion::array(self.handle())?;
        Ok(MmapArray {
            mapping,
            value_size: usize::try_from(self.info().value_size).unwrap_or(0),
            stride: crate::map::percpu_stride(self.info()),
            entries: self.info().max_entries,
        })
    }

    /// Maps a RINGBUF or USER_RINGBUF read-only.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Corrupt`] when `max_entries` is
    /// not a power of two; [`Error::Mmap`].
    pub fn map_ringbuf(&self) -> Result<RingbufView> {
        let size = u64::from(self.info().max_entries);
        if !size.is_power_of_two() {
            return Err(Error::Corrupt {
                what: "ring buffer size (not a power of two)",
                value: size,
            });
        }
        Ok(RingbufView {
            mapping: MmapRegion::ringbuf(self.handle())?,
            size,
            page: page_size(),
        })
    }

    /// Maps an ARENA read-only at its user address.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps and `BPF_F_SEGV_ON_FAULT` arenas;
    /// [`Error::ArenaAddress`] when the address is unknown or taken in this process;
    /// [`Error::Mmap`].
    pub fn map_arena(&self, addr: ArenaAddr) -> Result<ArenaView> {
        let info = self.info();
        if info.map_type != MapType::ARENA {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: info.map_type,
                op: "arena mmap",
            });
        }
        let view = |mapping| ArenaView {
            mapping,
            pages: info.max_entries,
            page: page_size(),
        };
        let wanted = match addr {
            ArenaAddr::At(a) => a,
            ArenaAddr::Auto if self.map_extra() != 0 => self.map_extra(),
            ArenaAddr::Auto => {
                let len = u64::from(info.max_entries).saturating_mul(page_size() as u64);
                let mut last = None;
                for cand in bpf_map_mappings(len, info.id) {
                    // A wrong address fails in the kernel's get_unmapped_area or mmap
                    // hook, before anything is mapped or recorded.
                    match MmapRegion::arena(self.handle(), cand) {
                        Ok(m) => return Ok(view(m)),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(match last {
                    Some(e @ Error::ArenaAddress { .. }) => e,
                    _ => Error::ArenaAddress {
                        id: info.id,
                        wanted: 0,
                        got: 0,
                    },
                });
            }
        };
        Ok(view(MmapRegion::arena(self.handle(), wanted)?))
    }
}
