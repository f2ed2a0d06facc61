//! The search for the VMCOREINFO text in guest memory, over any [`PhysRead`].

use mapwalk_core::{Pa, PhysRange, PhysRead, PhysReadExt, ReadOp};
use memchr::memmem;

use super::{Vmcoreinfo, VMCOREINFO_MAX};

/// `n` as a `u64` (a `usize` always fits on the hosts this crate builds for).
fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// How [`find_vmcoreinfo`] found the text.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindMethod {
    /// Inside the caller's hint with this index.
    Hint(usize),
    /// At the start of a page (the kernel's `vmcoreinfo_data` page) or of a page's first
    /// ELF note (its `vmcoreinfo_note` page).
    PageProbe,
    /// By the full scan.
    Scan,
}

/// The in-RAM VMCOREINFO and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVmcoreinfo {
    /// The parsed text.
    pub vmcoreinfo: Vmcoreinfo,
    /// The physical address of its first byte (the `O` of `OSRELEASE=`).
    pub pa: Pa,
    /// How it was found.
    pub method: FindMethod,
    /// How many bytes of memory the search read, candidates included.
    pub bytes_read: u64,
}

/// How [`find_vmcoreinfo_with`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindOptions<'a> {
    /// Physical ranges to scan first, in order, such as the page that the kernel's
    /// `vmcoreinfo_data` pointer points to, or the note address in the guest's
    /// `/sys/kernel/vmcoreinfo`. Parts outside the memory's ranges are ignored.
    pub hints: &'a [PhysRange],
    /// Probe the start of every 4 KiB page, lowest first (see [`find_vmcoreinfo`]).
    pub page_probe: bool,
    /// Scan all of memory as the last resort.
    pub scan: bool,
    /// Bytes per read of a scan (at least 4 KiB is used).
    pub chunk_len: usize,
    /// The most memory the page probe, and then the scan, may each cover, in bytes of
    /// address space. A corrupt core can claim exabytes of zero-filled memory; past this
    /// cap the search fails with [`Error::LimitExceeded`](mapwalk_core::Error) rather
    /// than run for days.
    pub max_len: u64,
}

impl Default for FindOptions<'_> {
    /// No hints, page probe, then the scan, in 8 MiB chunks, each step over at most
    /// [`MAX_SEARCH_LEN`].
    fn default() -> Self {
        Self {
            hints: &[],
            page_probe: true,
            scan: true,
            chunk_len: 8 << 20,
            max_len: MAX_SEARCH_LEN,
        }
    }
}

/// The default [`FindOptions::max_len`]: 1 TiB, more RAM than any guest this crate has
/// met, and about ten seconds of scanning.
pub const MAX_SEARCH_LEN: u64 = 1 << 40;

const NEEDLE: &[u8] = b"OSRELEASE=";
/// The ELF note name the `vmcoreinfo_note` page holds, padded to 4 bytes.
const NOTE_NAME: &[u8] = b"VMCOREINFO\0\0";
/// Where the text starts in a `vmcoreinfo_note` page: a 12-byte `Elf_Nhdr`, then the
/// 11-byte name padded to 12.
const NOTE_DESC_AT: usize = 24;
const PROBE_PAGE: u64 = 4096;
const PROBE_LEN: usize = NOTE_DESC_AT + NEEDLE.len();
const PROBE_BATCH: usize = 128;

/// Finds the kernel's VMCOREINFO text in guest RAM, with the default [`FindOptions`] and
/// `hints`.
///
/// The kernel keeps two copies from early boot: the text at the start of the page
/// `vmcoreinfo_data`, and an ELF note in the page `vmcoreinfo_note` (text at offset 24).
/// Both are page allocations of an early initcall. Since Linux 5.10 the pages freed at
/// the end of boot go to the tail of the free lists, so early allocations take the
/// lowest free pages of the preferred zone: `ZONE_NORMAL`, above 4 GiB when the guest
/// has RAM there, else the lowest zone, just past the kernel image. (Seen on Debian
/// guests: 18 and 62 MiB into a 512 MiB guest, 8.5 MiB past 4 GiB in a 3 GiB one.) The
/// search therefore tries, in order:
/// 1. the `hints`, scanned whole;
/// 2. the start of every 4 KiB page (34 bytes per page, batched through
///    [`PhysRead::read_phys_many`]), memory above 4 GiB first, each part from its lowest
///    address up;
/// 3. a scan of all memory in the same order, in large chunks, with a `memchr` substring
///    search.
///
/// A hit counts only when [`Vmcoreinfo::is_plausible`]: the `OSRELEASE=%s` format string
/// in the kernel's `.rodata` is skipped.
///
/// ```
/// use mapwalk_core::{Pa, Ram};
/// use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo, FindMethod};
/// let mut ram = vec![0u8; 0x10000];
/// ram[0x3000..0x3000 + 39].copy_from_slice(b"OSRELEASE=6.1.0-56-cloud\nPAGESIZE=4096\n");
/// let found = find_vmcoreinfo(&Ram::new(Pa(0), ram), &[])?.unwrap();
/// assert_eq!((found.pa, found.method), (Pa(0x3000), FindMethod::PageProbe));
/// assert_eq!(found.vmcoreinfo.osrelease(), Some("6.1.0-56-cloud"));
/// # Ok::<(), mapwalk_core::Error>(())
/// ```
///
/// # Errors
/// A read of memory inside [`PhysRead::ranges`] that fails. Not finding the text is
/// `Ok(None)`.
pub fn find_vmcoreinfo<M: PhysRead + ?Sized>(
    mem: &M,
    hints: &[PhysRange],
) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
    find_vmcoreinfo_with(
        mem,
        &FindOptions {
            hints,
            ..FindOptions::default()
        },
    )
}

/// [`find_vmcoreinfo`] with every step chosen.
///
/// # Errors
/// As [`find_vmcoreinfo`].
pub fn find_vmcoreinfo_with<M: PhysRead + ?Sized>(
    mem: &M,
    opts: &FindOptions<'_>,
) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
    let mut search = Search {
        mem,
        bytes_read: 0,
        chunk_len: opts.chunk_len.max(PROBE_PAGE_USIZE),
        covered: 0,
        max_len: opts.max_len,
        step: "",
        total: 0,
    };
    for (index, hint) in opts.hints.iter().enumerate() {
        for range in clip(mem.ranges(), *hint) {
            if let Some(found) = search.scan(range, FindMethod::Hint(index))? {
                return Ok(Some(found));
            }
        }
    }
    let order = search_order(mem.ranges());
    let total = order
        .iter()
        .fold(0u64, |t, r| t.saturating_add(r.len))
        .min(opts.max_len);
    if opts.page_probe {
        let found = search.step(PROBE_STEP, total, &order, |s, r| s.probe(r))?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if opts.scan {
        return search.step(SCAN_STEP, total, &order, |s, r| s.scan(r, FindMethod::Scan));
    }
    Ok(None)
}

/// Where the zones that `GFP_KERNEL` prefers begin: below it lie `ZONE_DMA32` (x86_64)
/// and `ZONE_DMA` (arm64).
const FOUR_GIB: u64 = 1 << 32;

/// `ranges` split at 4 GiB, the parts above it first, each group in ascending order:
/// early kernel allocations come from the lowest free pages of the highest zone.
fn search_order(ranges: &[PhysRange]) -> Vec<PhysRange> {
    let mut high = Vec::new();
    let mut low = Vec::new();
    for r in ranges {
        let (start, end) = (r.start.0, r.end());
        if end <= FOUR_GIB {
            low.push(*r);
        } else if start >= FOUR_GIB {
            high.push(*r);
        } else {
            low.push(PhysRange {
                start: r.start,
                len: FOUR_GIB.wrapping_sub(start),
            });
            high.push(PhysRange {
                start: Pa(FOUR_GIB),
                len: end.wrapping_sub(FOUR_GIB),
            });
        }
    }
    high.sort_by_key(|r| r.start);
    low.sort_by_key(|r| r.start);
    high.extend(low);
    high
}

const PROBE_PAGE_USIZE: usize = 4096;

/// The parts of `hint` inside `ranges`.
fn clip(ranges: &[PhysRange], hint: PhysRange) -> impl Iterator<Item = PhysRange> + '_ {
    ranges.iter().filter_map(move |r| {
        let start = r.start.0.max(hint.start.0);
        let end = r.end().min(hint.end());
        (start < end).then(|| PhysRange {
            start: Pa(start),
            len: end.wrapping_sub(start),
        })
    })
}

struct Search<'m, M: ?Sized> {
    mem: &'m M,
    bytes_read: u64,
    chunk_len: usize,
    /// Address space covered by the current step.
    covered: u64,
    max_len: u64,
    /// The current step, for [`crate::progress`], and the address space it covers.
    step: &'static str,
    total: u64,
}

/// The search's steps as [`crate::progress`] names them.
const PROBE_STEP: &str = "probing page starts for VMCOREINFO";
const SCAN_STEP: &str = "scanning memory for VMCOREINFO";

impl<M: PhysRead + ?Sized> Search<'_, M> {
    /// Runs one step of the search over `order`, reported to [`crate::progress`] as
    /// `step` over `total` bytes.
    fn step(
        &mut self,
        step: &'static str,
        total: u64,
        order: &[PhysRange],
        mut each: impl FnMut(
            &mut Self,
            PhysRange,
        ) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error>,
    ) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
        self.covered = 0;
        self.step = step;
        self.total = total;
        let mut found = Ok(None);
        for range in order {
            found = each(self, *range);
            if !matches!(found, Ok(None)) {
                break;
            }
        }
        crate::progress::finish(step);
        found
    }

    /// Counts `len` more bytes of address space covered at `pa`, or fails past the cap.
    fn cover(&mut self, pa: u64, len: u64) -> Result<(), mapwalk_core::Error> {
        self.covered = self.covered.saturating_add(len);
        crate::progress::update(self.step, self.covered.min(self.total), self.total);
        if self.covered > self.max_len {
            return Err(mapwalk_core::Error::LimitExceeded {
                what: "memory searched for VMCOREINFO",
                limit: self.max_len,
                at: pa,
            });
        }
        Ok(())
    }

    fn read(&mut self, pa: Pa, buf: &mut [u8]) -> Result<(), mapwalk_core::Error> {
        self.bytes_read = self.bytes_read.saturating_add(len_u64(buf.len()));
        self.mem.read_bytes(pa, buf)
    }

    /// Reads and checks the text at `pa`, inside `range`.
    fn candidate(
        &mut self,
        pa: u64,
        range: PhysRange,
        method: FindMethod,
    ) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
        let avail = range.end().saturating_sub(pa);
        let n = usize::try_from(avail).map_or(VMCOREINFO_MAX, |a| a.min(VMCOREINFO_MAX));
        let mut text = vec![0u8; n];
        self.read(Pa(pa), &mut text)?;
        let vmcoreinfo = Vmcoreinfo::parse(&text);
        Ok(vmcoreinfo.is_plausible().then_some(FoundVmcoreinfo {
            vmcoreinfo,
            pa: Pa(pa),
            method,
            bytes_read: self.bytes_read,
        }))
    }

    /// Probes the start of every page of `range`, lowest first.
    fn probe(&mut self, range: PhysRange) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
        let Some(mut page) = range.start.0.checked_next_multiple_of(PROBE_PAGE) else {
            return Ok(None);
        };
        let end = range.end();
        let mut bufs = vec![[0u8; PROBE_LEN]; PROBE_BATCH];
        while page < end {
            let mut ops = Vec::with_capacity(PROBE_BATCH);
            for buf in &mut bufs {
                if page >= end {
                    break;
                }
                // A page too close to the end of the range gets a shorter probe.
                let room =
                    usize::try_from(end.wrapping_sub(page)).map_or(PROBE_LEN, |r| r.min(PROBE_LEN));
                self.cover(page, PROBE_PAGE)?;
                ops.push(ReadOp {
                    pa: Pa(page),
                    buf: buf.get_mut(..room).unwrap_or_default(),
                });
                page = page.saturating_add(PROBE_PAGE);
            }
            self.mem.read_phys_many(&mut ops).map_err(|e| {
                let (pa, len) = ops
                    .get(e.index)
                    .map_or((Pa(0), 0), |op| (op.pa, len_u64(op.buf.len())));
                mapwalk_core::Error::Phys {
                    access: mapwalk_core::Access::Read,
                    pa,
                    len,
                    kind: mapwalk_core::PhysError::kind(&e.error),
                }
            })?;
            let hits: Vec<u64> = ops
                .iter()
                .filter_map(|op| probe_hit(op.buf).map(|at| op.pa.0.saturating_add(len_u64(at))))
                .collect();
            let n: usize = ops.iter().map(|op| op.buf.len()).sum();
            self.bytes_read = self.bytes_read.saturating_add(len_u64(n));
            drop(ops);
            for at in hits {
                if let Some(found) = self.candidate(at, range, FindMethod::PageProbe)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Scans all of `range` in chunks.
    fn scan(
        &mut self,
        range: PhysRange,
        method: FindMethod,
    ) -> Result<Option<FoundVmcoreinfo>, mapwalk_core::Error> {
        let finder = memmem::Finder::new(NEEDLE);
        // Consecutive chunks overlap by the needle's length less one, so that a match
        // across a chunk boundary is seen whole in the next chunk.
        let overlap = NEEDLE.len().saturating_sub(1);
        let mut chunk = Vec::new();
        let mut pa = range.start.0;
        let end = range.end();
        while pa < end {
            let n = usize::try_from(end.wrapping_sub(pa))
                .map_or(self.chunk_len, |left| left.min(self.chunk_len));
            chunk.resize(n, 0);
            self.cover(pa, len_u64(n))?;
            self.read(Pa(pa), &mut chunk)?;
            for at in finder.find_iter(&chunk) {
                // A release starts with a letter or digit; `OSRELEASE=%s` does not.
                let next = chunk.get(at.saturating_add(NEEDLE.len()));
                if next.is_some_and(|&b| !b.is_ascii_alphanumeric()) {
                    continue;
                }
                let cand = pa.saturating_add(len_u64(at));
                if let Some(found) = self.candidate(cand, range, method)? {
                    return Ok(Some(found));
                }
            }
            if pa.saturating_add(len_u64(n)) >= end {
                break;
            }
            pa = pa.saturating_add(len_u64(n.saturating_sub(overlap).max(1)));
        }
        Ok(None)
    }
}

/// Where the text starts in a probe of a page start, if it looks like either copy.
fn probe_hit(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(NEEDLE) {
        return Some(0);
    }
    let name = buf.get(12..NOTE_DESC_AT)?;
    let desc = buf.get(NOTE_DESC_AT..)?;
    (name == NOTE_NAME && desc.starts_with(NEEDLE)).then_some(NOTE_DESC_AT)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{RODATA, TEXT};
    use super::*;
    use mapwalk_core::{PhysErrorKind, Ram};

    /// Noise that holds no NUL-free `OSRELEASE=`: xorshift bytes.
    fn noise(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn put(mem: &mut [u8], at: usize, bytes: &[u8]) {
        mem[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn text_z() -> Vec<u8> {
        let mut t = TEXT.to_vec();
        t.push(0);
        t
    }

    /// An ELF note as the kernel writes one: header, name and descriptor, each padded
    /// to 4 bytes.
    fn note_bytes(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    /// Memory of several RAM pieces, as an ELF core or a RAM file with holes has.
    #[derive(Debug)]
    struct Pieces(Vec<Ram<Vec<u8>>>, Vec<PhysRange>);

    impl Pieces {
        fn new(pieces: Vec<Ram<Vec<u8>>>) -> Self {
            let ranges = pieces
                .iter()
                .map(|r| PhysRange {
                    start: r.base(),
                    len: r.bytes().len() as u64,
                })
                .collect();
            Self(pieces, ranges)
        }
    }

    impl PhysRead for Pieces {
        type Error = PhysErrorKind;
        fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
            let piece = self.0.iter().find(|r| {
                r.base().0 <= pa.0 && pa.0 + buf.len() as u64 <= r.base().0 + r.bytes().len() as u64
            });
            piece.ok_or(PhysErrorKind::OutOfRange)?.read_phys(pa, buf)
        }
        fn ranges(&self) -> &[PhysRange] {
            &self.1
        }
    }

    /// Memory that claims `len` bytes of zeros, as a corrupt core's huge zero-filled
    /// segment does.
    #[derive(Debug)]
    struct Zeros([PhysRange; 1]);

    impl PhysRead for Zeros {
        type Error = PhysErrorKind;
        fn read_phys(&self, _: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
            buf.fill(0);
            Ok(())
        }
        fn ranges(&self) -> &[PhysRange] {
            &self.0
        }
    }

    #[test]
    fn finds_the_data_page_by_probe() {
        let mut mem = noise(0x40000, 1);
        put(&mut mem, 0x2000, RODATA);
        put(&mut mem, 0x31000, &text_z());
        let ram = Ram::new(Pa(0x10_0000), mem);
        let found = find_vmcoreinfo(&ram, &[]).unwrap().unwrap();
        assert_eq!(
            (found.pa, found.method),
            (Pa(0x13_1000), FindMethod::PageProbe)
        );
        assert_eq!(found.vmcoreinfo, Vmcoreinfo::parse(TEXT));
        // One batch probes all 64 pages (34 bytes each), then the candidate is read up to
        // the end of memory.
        assert_eq!(found.bytes_read, 64 * 34 + 0x40000 - 0x31000);
    }

    #[test]
    fn finds_the_note_page_by_probe() {
        let mut mem = noise(0x20000, 2);
        let mut note = note_bytes("VMCOREINFO", 0, TEXT);
        note.extend_from_slice(&[0; 12]); // final_note
        put(&mut mem, 0x1b000, &note);
        let ram = Ram::new(Pa(0), mem);
        let found = find_vmcoreinfo(&ram, &[]).unwrap().unwrap();
        assert_eq!(
            (found.pa, found.method),
            (Pa(0x1b018), FindMethod::PageProbe)
        );
        assert_eq!(
            found.vmcoreinfo.osrelease(),
            Some("6.12.38+deb13-cloud-amd64")
        );
        // The note's padding and the empty final note end the text.
        assert_eq!(found.vmcoreinfo.len(), 11);
    }

    #[test]
    fn scan_skips_the_format_string_and_crosses_chunks() {
        let mut mem = noise(0x30000, 3);
        put(&mut mem, 0x1000, RODATA);
        // Unaligned, across the boundary of the first 0x1000-byte chunk at 0x2000.
        let at = 0x2000 - 4;
        put(&mut mem, at, &text_z());
        let ram = Ram::new(Pa(0), mem);
        let opts = FindOptions {
            chunk_len: 0x1000,
            ..FindOptions::default()
        };
        let found = find_vmcoreinfo_with(&ram, &opts).unwrap().unwrap();
        assert_eq!((found.pa, found.method), (Pa(at as u64), FindMethod::Scan));
        let none = FindOptions {
            scan: false,
            ..opts
        };
        assert_eq!(find_vmcoreinfo_with(&ram, &none).unwrap(), None);
    }

    #[test]
    fn hints_come_first() {
        let mut mem = noise(0x20000, 4);
        put(&mut mem, 0x1000, &text_z()); // a page-start copy the probe would find
        let mut other = TEXT.to_vec();
        other[10] = b'7';
        other.push(0);
        put(&mut mem, 0x18123, &other);
        let ram = Ram::new(Pa(0), mem);
        let hints = [
            PhysRange {
                start: Pa(0x9000_0000),
                len: 0x1000,
            }, // outside memory: ignored
            PhysRange {
                start: Pa(0x18000),
                len: 0x1000,
            },
        ];
        let found = find_vmcoreinfo(&ram, &hints).unwrap().unwrap();
        assert_eq!((found.pa, found.method), (Pa(0x18123), FindMethod::Hint(1)));
        assert_eq!(
            found.vmcoreinfo.osrelease(),
            Some("7.12.38+deb13-cloud-amd64")
        );
        assert!(found.bytes_read < 0x4000, "{}", found.bytes_read);
    }

    #[test]
    fn text_at_the_very_end_of_memory() {
        let mut mem = noise(0x3000, 5);
        let short = b"OSRELEASE=6.1\nPAGESIZE=4096\n";
        let at = mem.len() - short.len();
        put(&mut mem, at, short);
        let ram = Ram::new(Pa(0), mem);
        let found = find_vmcoreinfo(&ram, &[]).unwrap().unwrap();
        assert_eq!((found.pa, found.method), (Pa(at as u64), FindMethod::Scan));
        // Page probes near the end of a short range are clipped, not failed.
        let tiny = Ram::new(Pa(0x1000), b"OSRELEASE=6.1\nPAGESIZE=4096\n".to_vec());
        let found = find_vmcoreinfo(&tiny, &[]).unwrap().unwrap();
        assert_eq!(
            (found.pa, found.method),
            (Pa(0x1000), FindMethod::PageProbe)
        );
    }

    #[test]
    fn memory_above_4_gib_first() {
        // RAM below and above 4 GiB, a copy in each: the high one wins.
        let mut low = noise(0x8000, 6);
        let mut high = noise(0x8000, 7);
        put(&mut low, 0x1000, &text_z());
        let mut t = text_z();
        t[10] = b'9';
        put(&mut high, 0x6000, &t);
        let mem = Pieces::new(vec![Ram::new(Pa(0), low), Ram::new(Pa(1 << 32), high)]);
        let found = find_vmcoreinfo(&mem, &[]).unwrap().unwrap();
        assert_eq!(found.pa, Pa((1 << 32) + 0x6000));
        assert_eq!(
            search_order(&[
                PhysRange {
                    start: Pa(0x1000),
                    len: 0x1000
                },
                PhysRange {
                    start: Pa(0xf000_0000),
                    len: 0x2000_0000
                },
                PhysRange {
                    start: Pa(0x2_0000_0000),
                    len: 0x1000
                },
            ]),
            [
                PhysRange {
                    start: Pa(0x1_0000_0000),
                    len: 0x1000_0000
                },
                PhysRange {
                    start: Pa(0x2_0000_0000),
                    len: 0x1000
                },
                PhysRange {
                    start: Pa(0x1000),
                    len: 0x1000
                },
                PhysRange {
                    start: Pa(0xf000_0000),
                    len: 0x1000_0000
                },
            ]
        );
    }

    #[test]
    fn not_found_and_the_search_cap() {
        let ram = Ram::new(Pa(0), noise(0x10000, 8));
        assert_eq!(find_vmcoreinfo(&ram, &[]).unwrap(), None);
        let capped = FindOptions {
            max_len: 0x8000,
            ..FindOptions::default()
        };
        let e = find_vmcoreinfo_with(&ram, &capped).unwrap_err();
        assert!(
            matches!(e, mapwalk_core::Error::LimitExceeded { limit: 0x8000, .. }),
            "{e}"
        );
        // Memory that claims 2^60 bytes of zeros (a corrupt core) stops at the cap.
        let zeros = Zeros([PhysRange {
            start: Pa(0),
            len: 1 << 60,
        }]);
        let e = find_vmcoreinfo_with(
            &zeros,
            &FindOptions {
                max_len: 1 << 20,
                ..FindOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                mapwalk_core::Error::LimitExceeded {
                    limit: 0x10_0000,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn read_errors_propagate() {
        /// Memory whose ranges claim more than it can read.
        #[derive(Debug)]
        struct Liar(Ram<Vec<u8>>, [PhysRange; 1]);
        impl PhysRead for Liar {
            type Error = mapwalk_core::PhysErrorKind;
            fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
                self.0.read_phys(pa, buf)
            }
            fn ranges(&self) -> &[PhysRange] {
                &self.1
            }
        }
        let liar = Liar(
            Ram::new(Pa(0), vec![0; 0x1000]),
            [PhysRange {
                start: Pa(0),
                len: 0x3000,
            }],
        );
        let e = find_vmcoreinfo(&liar, &[]).unwrap_err();
        assert!(
            matches!(e, mapwalk_core::Error::Phys { pa: Pa(0x1000), .. }),
            "{e}"
        );
    }
}
