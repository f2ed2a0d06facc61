//! Where guest-physical memory lies in a file: [`Layout`] for RAM images, and the piece
//! map that both backends read through.

use std::fmt;
use std::str::FromStr;

use mapwalk_core::{Access, Pa, PhysRange};

use crate::error::{AccessError, Fault, LayoutError};
use crate::sys::{RawRegion, RegionError};

/// One range of a [`Layout`]: `len` bytes of guest-physical memory at `gpa`, stored at
/// file offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayoutRange {
    /// First guest-physical address.
    pub gpa: Pa,
    /// Where its bytes start in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl fmt::Display for LayoutRange {
    /// The text form, `GPA:OFFSET:LEN` in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}:{:#x}:{:#x}", self.gpa.0, self.offset, self.len)
    }
}

/// Where guest-physical ranges lie in a RAM file.
///
/// A QEMU `memory-backend-file` holds the guest's RAM blocks back to back. On q35 with at
/// most 2 GiB (at most 2.75 GiB on some machine versions) the file offset is the guest
/// physical address; a larger guest keeps the first 2 GiB below 4 GiB and the rest from
/// 4 GiB on:
///
/// ```
/// use mapwalk_file::Layout;
/// // A 3 GiB q35 guest: 2 GiB low, 1 GiB high.
/// let layout: Layout = "0:0:0x80000000,0x100000000:0x80000000:0x40000000".parse()?;
/// assert_eq!(layout.file_end(), 0xc000_0000);
/// # Ok::<(), mapwalk_file::LayoutError>(())
/// ```
///
/// The ranges are disjoint in guest-physical addresses and kept sorted by them; two ranges
/// may share file bytes (an alias). Take a guest's layout from QMP `info mtree -f` or from
/// the `PT_LOAD` segments of a `dump-guest-memory` core of the same guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    ranges: Vec<LayoutRange>,
    map: PieceMap,
}

impl Layout {
    /// A layout of the given ranges, in any order.
    ///
    /// # Errors
    /// [`LayoutError`] for no ranges, an empty range, a range that overflows 64 bits, or
    /// two ranges that overlap in guest-physical addresses.
    pub fn new(ranges: impl IntoIterator<Item = LayoutRange>) -> Result<Self, LayoutError> {
        let mut ranges: Vec<LayoutRange> = ranges.into_iter().collect();
        if ranges.is_empty() {
            return Err(LayoutError::Empty);
        }
        for r in &ranges {
            if r.len == 0 {
                return Err(LayoutError::ZeroLength(*r));
            }
            if r.gpa.0.checked_add(r.len).is_none() || r.offset.checked_add(r.len).is_none() {
                return Err(LayoutError::Overflow(*r));
            }
        }
        ranges.sort_by_key(|r| r.gpa);
        for pair in ranges.windows(2) {
            if let [a, b] = *pair {
                if a.gpa.0.saturating_add(a.len) > b.gpa.0 {
                    return Err(LayoutError::Overlap(a, b));
                }
            }
        }
        let pieces = ranges
            .iter()
            .map(|r| Piece {
                gpa: r.gpa.0,
                len: r.len,
                offset: r.offset,
                file_len: r.len,
            })
            .collect();
        Ok(Self {
            ranges,
            map: PieceMap::new(pieces),
        })
    }

    /// The layout of a plain image: guest-physical address = file offset, for `len`
    /// bytes (`len` is not zero).
    ///
    /// # Errors
    /// [`LayoutError::ZeroLength`] when `len` is zero.
    pub fn identity(len: u64) -> Result<Self, LayoutError> {
        Self::new([LayoutRange {
            gpa: Pa(0),
            offset: 0,
            len,
        }])
    }

    /// The ranges, sorted by guest-physical address.
    pub fn ranges(&self) -> &[LayoutRange] {
        &self.ranges
    }

    /// The guest-physical ranges, sorted (one per layout range, adjacent ones not merged).
    pub fn phys_ranges(&self) -> &[PhysRange] {
        self.map.ranges()
    }

    /// The file length the layout needs: the largest `offset + len`.
    pub fn file_end(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| r.offset.saturating_add(r.len))
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn map(&self) -> &PieceMap {
        &self.map
    }
}

impl FromStr for Layout {
    type Err = LayoutError;

    /// Parses `GPA:OFFSET:LEN` triples separated by commas or whitespace. Numbers are hex
    /// with a `0x` prefix or decimal; `_` separators are allowed (`0x1_0000_0000`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ranges = Vec::new();
        for piece in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            let syntax = |what| LayoutError::Syntax {
                piece: piece.to_owned(),
                what,
            };
            let mut fields = piece.split(':');
            let mut next = |name| {
                let field = fields.next().ok_or_else(|| syntax(name))?;
                parse_number(field).ok_or_else(|| syntax("bad number"))
            };
            let gpa = next("missing GPA")?;
            let offset = next("missing OFFSET")?;
            let len = next("missing LEN")?;
            if fields.next().is_some() {
                return Err(syntax("more than three fields"));
            }
            ranges.push(LayoutRange {
                gpa: Pa(gpa),
                offset,
                len,
            });
        }
        Self::new(ranges)
    }
}

/// A `u64` in hex with `0x` or in decimal, `_` allowed between digits.
fn parse_number(s: &str) -> Option<u64> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (digits, radix) = match clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (clean.as_str(), 10),
    };
    if digits.is_empty() || s.starts_with('_') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A piece of guest-physical memory in a file: `len` bytes at `gpa`, of which the first
/// `file_len` are stored at file offset `offset` and the rest read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) gpa: u64,
    pub(crate) len: u64,
    pub(crate) offset: u64,
    pub(crate) file_len: u64,
}

/// Disjoint pieces sorted by guest-physical address, found by binary search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PieceMap {
    pieces: Vec<Piece>,
    ranges: Vec<PhysRange>,
}

/// Where one fragment of an access comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// File bytes at this offset.
    File(u64),
    /// Zero fill (ELF `p_memsz` beyond `p_filesz`).
    Zero,
    /// Nothing.
    Hole,
}

/// One fragment of an access: `len` bytes at `pa`, all from one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fragment {
    pa: u64,
    len: u64,
    source: Source,
}

impl PieceMap {
    /// The map of `pieces`, which the caller has sorted by `gpa` and checked to be
    /// disjoint, non-empty, not overflowing and with `file_len <= len`.
    pub(crate) fn new(pieces: Vec<Piece>) -> Self {
        let ranges = pieces
            .iter()
            .map(|p| PhysRange {
                start: Pa(p.gpa),
                len: p.len,
            })
            .collect();
        Self { pieces, ranges }
    }

    pub(crate) fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    /// Splits `pa .. end` into fragments at piece boundaries, holes included.
    fn fragments(&self, pa: u64, end: u64) -> impl Iterator<Item = Fragment> + '_ {
        let mut cur = pa;
        core::iter::from_fn(move || {
            if cur >= end {
                return None;
            }
            let idx = self.pieces.partition_point(|p| p.gpa <= cur);
            let containing = idx
                .checked_sub(1)
                .and_then(|i| self.pieces.get(i))
                .filter(|p| cur.wrapping_sub(p.gpa) < p.len);
            let frag = match containing {
                Some(p) => {
                    let into = cur.wrapping_sub(p.gpa);
                    let piece_end = p.gpa.saturating_add(p.len).min(end);
                    if into < p.file_len {
                        let file_end = p.gpa.saturating_add(p.file_len).min(piece_end);
                        Fragment {
                            pa: cur,
                            len: file_end.saturating_sub(cur),
                            source: Source::File(p.offset.saturating_add(into)),
                        }
                    } else {
                        Fragment {
                            pa: cur,
                            len: piece_end.saturating_sub(cur),
                            source: Source::Zero,
                        }
                    }
                }
                None => {
                    let next = self.pieces.get(idx).map_or(end, |p| p.gpa.min(end));
                    Fragment {
                        pa: cur,
                        len: next.saturating_sub(cur),
                        source: Source::Hole,
                    }
                }
            };
            // Every fragment is at least one byte long: `cur` is inside a piece or before
            // the next one, and below `end`.
            cur = cur.saturating_add(frag.len.max(1));
            Some(frag)
        })
    }

    /// Fills `buf` from guest-physical `pa` out of `region` (the file's bytes). Reads
    /// fragment by fragment; on error `buf` holds no meaningful data.
    pub(crate) fn read(
        &self,
        region: RawRegion<'_>,
        pa: Pa,
        buf: &mut [u8],
    ) -> Result<(), AccessError> {
        let len = len_u64(buf.len());
        let fail = |at: u64, span: u64, fault| AccessError {
            access: Access::Read,
            pa,
            len,
            at: Pa(at),
            span,
            fault,
        };
        let end =
            pa.0.checked_add(len)
                .ok_or(fail(pa.0, len, Fault::AddressOverflow))?;
        let mut done = 0usize;
        for frag in self.fragments(pa.0, end) {
            let bad = || fail(frag.pa, frag.len, Fault::BeyondMapping);
            let n = usize::try_from(frag.len).map_err(|_| bad())?;
            let upto = done.saturating_add(n);
            let dst = buf.get_mut(done..upto).ok_or_else(bad)?;
            match frag.source {
                Source::File(offset) => {
                    let offset = usize::try_from(offset).map_err(|_| bad())?;
                    region.read(offset, dst).map_err(|_| bad())?;
                }
                Source::Zero => dst.fill(0),
                Source::Hole => return Err(fail(frag.pa, frag.len, Fault::Unmapped)),
            }
            done = upto;
        }
        Ok(())
    }

    /// Writes `data` at guest-physical `pa` into `region`. Every fragment is checked
    /// before the first byte is written; an aligned write of 1, 2, 4 or 8 bytes is one
    /// store or [`Fault::WouldTear`].
    pub(crate) fn write(
        &self,
        region: RawRegion<'_>,
        pa: Pa,
        data: &[u8],
    ) -> Result<(), AccessError> {
        let len = len_u64(data.len());
        let fail = |at: u64, span: u64, fault| AccessError {
            access: Access::Write,
            pa,
            len,
            at: Pa(at),
            span,
            fault,
        };
        if !region.is_writable() {
            return Err(fail(pa.0, len, Fault::ReadOnly));
        }
        let end =
            pa.0.checked_add(len)
                .ok_or(fail(pa.0, len, Fault::AddressOverflow))?;
        // Pass 1: every fragment must be file bytes inside the mapping.
        let mut pieces = 0usize;
        let mut single = None;
        for frag in self.fragments(pa.0, end) {
            let offset = match frag.source {
                Source::File(offset) => offset,
                Source::Zero => return Err(fail(frag.pa, frag.len, Fault::ReadOnly)),
                Source::Hole => return Err(fail(frag.pa, frag.len, Fault::Unmapped)),
            };
            let in_map = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(frag.len).ok())
                .and_then(|(o, n)| o.checked_add(n))
                .is_some_and(|e| e <= region.len());
            if !in_map {
                return Err(fail(frag.pa, frag.len, Fault::BeyondMapping));
            }
            pieces = pieces.saturating_add(1);
            single = Some(offset);
        }
        let scalar = matches!(len, 1 | 2 | 4 | 8) && pa.0.checked_rem(len) == Some(0);
        if scalar {
            // One piece, and aligned in host memory too: one store.
            let offset = single
                .filter(|_| pieces == 1)
                .and_then(|o| usize::try_from(o).ok())
                .filter(|&o| region.is_single_access(o, data.len()))
                .ok_or(fail(pa.0, len, Fault::WouldTear))?;
            return region
                .write(offset, data)
                .map_err(|e| fail(pa.0, len, region_fault(e)));
        }
        // Pass 2: copy.
        let mut done = 0usize;
        for frag in self.fragments(pa.0, end) {
            let bad = || fail(frag.pa, frag.len, Fault::BeyondMapping);
            let Source::File(offset) = frag.source else {
                return Err(bad());
            };
            let offset = usize::try_from(offset).map_err(|_| bad())?;
            let n = usize::try_from(frag.len).map_err(|_| bad())?;
            let upto = done.saturating_add(n);
            let src = data.get(done..upto).ok_or_else(bad)?;
            region
                .write(offset, src)
                .map_err(|e| fail(frag.pa, frag.len, region_fault(e)))?;
            done = upto;
        }
        Ok(())
    }
}

fn region_fault(e: RegionError) -> Fault {
    match e {
        RegionError::OutOfBounds => Fault::BeyondMapping,
        RegionError::ReadOnly => Fault::ReadOnly,
    }
}

/// A `usize` as `u64` (lossless on every supported target).
pub(crate) fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::pattern;
    use mapwalk_core::{PhysError, PhysErrorKind};

    fn lr(gpa: u64, offset: u64, len: u64) -> LayoutRange {
        LayoutRange {
            gpa: Pa(gpa),
            offset,
            len,
        }
    }

    #[test]
    fn parses_and_sorts() {
        let l: Layout =
            "0x1_0000_0000:0x8000_0000:0x4000_0000, 0:0:0x80000000\n0x9000_0000:0xc0000000:4096"
                .parse()
                .unwrap();
        assert_eq!(
            l.ranges(),
            [
                lr(0, 0, 0x8000_0000),
                lr(0x9000_0000, 0xc000_0000, 0x1000),
                lr(0x1_0000_0000, 0x8000_0000, 0x4000_0000)
            ]
        );
        let starts: Vec<u64> = l.phys_ranges().iter().map(|r| r.start.0).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(l.file_end(), 0xc000_1000);
        let text = l
            .ranges()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(text.parse::<Layout>().unwrap(), l);
    }

    #[test]
    fn rejects_bad_layouts() {
        let syntax = |s: &str| matches!(s.parse::<Layout>(), Err(LayoutError::Syntax { .. }));
        assert!(syntax("0:0"));
        assert!(syntax("0:0:1:2"));
        assert!(syntax("0x:0:1"));
        assert!(syntax("zz:0:1"));
        assert!(syntax("-1:0:1"));
        assert!(syntax("_1:0:1"));
        assert_eq!("".parse::<Layout>(), Err(LayoutError::Empty));
        assert_eq!(
            "0:0:0".parse::<Layout>(),
            Err(LayoutError::ZeroLength(lr(0, 0, 0)))
        );
        assert_eq!(
            "0xffffffffffffff00:0:0x1000".parse::<Layout>(),
            Err(LayoutError::Overflow(lr(0xffff_ffff_ffff_ff00, 0, 0x1000)))
        );
        assert_eq!(
            "0:0xffffffffffffff00:0x1000".parse::<Layout>(),
            Err(LayoutError::Overflow(lr(0, 0xffff_ffff_ffff_ff00, 0x1000)))
        );
        assert_eq!(
            "0x1000:0:0x1000,0:0x1000:0x1001".parse::<Layout>(),
            Err(LayoutError::Overlap(
                lr(0, 0x1000, 0x1001),
                lr(0x1000, 0, 0x1000)
            ))
        );
        let msg = "0:0:1:2".parse::<Layout>().unwrap_err().to_string();
        assert!(
            msg.contains("\"0:0:1:2\"") && msg.contains("GPA:OFFSET:LEN"),
            "{msg}"
        );
        // Aliases in the file are fine.
        "0:0:0x1000,0x2000:0:0x1000".parse::<Layout>().unwrap();
    }

    /// A layout over a 0x3000-byte "file": guest 0x0..0x1000 at 0x1000, guest
    /// 0x1000..0x1800 at 0x0 (adjacent in guest memory, swapped in the file), guest
    /// 0x4000..0x5000 at 0x2000. Holes: 0x1800..0x4000 and from 0x5000.
    fn swapped() -> Layout {
        "0:0x1000:0x1000,0x1000:0:0x800,0x4000:0x2000:0x1000"
            .parse()
            .unwrap()
    }

    #[test]
    fn reads_across_ranges_and_holes() {
        let file = pattern(0x3000, 0);
        let region = RawRegion::from_slice(&file);
        let l = swapped();
        let map = l.map();
        let mut buf = [0u8; 8];
        map.read(region, Pa(0x10), &mut buf).unwrap();
        assert_eq!(buf[..], file[0x1010..0x1018]);
        // Across the guest boundary at 0x1000, from file 0x1ffc.. then 0x0..
        map.read(region, Pa(0xffc), &mut buf).unwrap();
        assert_eq!(buf[..4], file[0x1ffc..0x2000]);
        assert_eq!(buf[4..], file[0..4]);
        // Into the hole at 0x1800: the piece in the hole fails on its own.
        let err = map.read(region, Pa(0x17fc), &mut buf).unwrap_err();
        assert_eq!(
            err,
            AccessError {
                access: Access::Read,
                pa: Pa(0x17fc),
                len: 8,
                at: Pa(0x1800),
                span: 4,
                fault: Fault::Unmapped
            }
        );
        assert_eq!(err.kind(), PhysErrorKind::Unmapped);
        assert!(
            err.to_string()
                .contains("0x1800..0x1804 is not backed by the file"),
            "{err}"
        );
        // Starting in a hole, past the end, across a whole hole.
        let e = map.read(region, Pa(0x3000), &mut buf).unwrap_err();
        assert_eq!((e.at, e.span, e.fault), (Pa(0x3000), 8, Fault::Unmapped));
        let e = map.read(region, Pa(0x4ffc), &mut buf).unwrap_err();
        assert_eq!((e.at, e.span), (Pa(0x5000), 4));
        let mut big = vec![0u8; 0x4000];
        let e = map.read(region, Pa(0x1000), &mut big).unwrap_err();
        assert_eq!((e.at, e.span), (Pa(0x1800), 0x2800));
        // A hole-free read over everything before the first hole.
        let mut low = vec![0u8; 0x1800];
        map.read(region, Pa(0), &mut low).unwrap();
        assert_eq!(low[..0x1000], file[0x1000..0x2000]);
        assert_eq!(low[0x1000..], file[..0x800]);
        // Empty reads succeed anywhere; overflowing ones fail.
        map.read(region, Pa(0x9999_0000), &mut []).unwrap();
        let e = map.read(region, Pa(u64::MAX - 3), &mut buf).unwrap_err();
        assert_eq!(e.fault, Fault::AddressOverflow);
        assert_eq!(e.kind(), PhysErrorKind::OutOfRange);
    }

    #[test]
    fn zero_tails_read_as_zero() {
        let file = pattern(0x100, 1);
        let region = RawRegion::from_slice(&file);
        let map = PieceMap::new(vec![Piece {
            gpa: 0x1000,
            len: 0x200,
            offset: 0x80,
            file_len: 0x80,
        }]);
        let mut buf = [0xffu8; 16];
        map.read(region, Pa(0x1078), &mut buf).unwrap();
        assert_eq!(buf[..8], file[0xf8..0x100]);
        assert_eq!(buf[8..], [0; 8]);
        map.read(region, Pa(0x11f0), &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        assert_eq!(
            map.read(region, Pa(0x11f8), &mut buf).unwrap_err().fault,
            Fault::Unmapped
        );
        // Zero fill is not writable, even in a writable region.
        let mut w = file.clone();
        let e = map
            .write(RawRegion::from_mut_slice(&mut w), Pa(0x1100), &[1, 2, 3])
            .unwrap_err();
        assert_eq!(e.fault, Fault::ReadOnly);
    }

    #[test]
    fn a_mapping_shorter_than_the_layout_is_an_error_not_a_panic() {
        let file = pattern(0x100, 0);
        let l: Layout = "0:0:0x1000".parse().unwrap();
        let mut buf = [0u8; 8];
        let e = l
            .map()
            .read(RawRegion::from_slice(&file), Pa(0xff8), &mut buf)
            .unwrap_err();
        assert_eq!(e.fault, Fault::BeyondMapping);
    }

    #[test]
    fn writes_split_across_ranges_and_check_everything_first() {
        let mut file = vec![0u8; 0x3000];
        let l = swapped();
        let map = l.map();
        {
            let region = RawRegion::from_mut_slice(&mut file);
            map.write(region, Pa(0xffe), &[1, 2, 3, 4, 5]).unwrap();
            // Partly in the hole: refused before anything is written.
            let e = map.write(region, Pa(0x17fe), &[9; 6]).unwrap_err();
            assert_eq!(
                (e.access, e.at, e.span, e.fault),
                (Access::Write, Pa(0x1800), 4, Fault::Unmapped)
            );
        }
        assert_eq!(file[0x1ffe..0x2000], [1, 2]);
        assert_eq!(file[0..3], [3, 4, 5]);
        assert_eq!(file[0x7fe..0x800], [0, 0]);
        // Read-only regions refuse.
        let ro = file.clone();
        let e = map
            .write(RawRegion::from_slice(&ro), Pa(0), &[1])
            .unwrap_err();
        assert_eq!(e.fault, Fault::ReadOnly);
        assert_eq!(e.kind(), PhysErrorKind::Denied);
        let e = map
            .write(RawRegion::from_mut_slice(&mut file), Pa(u64::MAX), &[1, 2])
            .unwrap_err();
        assert_eq!(e.fault, Fault::AddressOverflow);
    }

    #[test]
    fn aligned_scalar_writes_are_single_stores_or_refused() {
        // Guest 0x1000.. at file 0x1001: guest-aligned is host-misaligned. Guest 0..0x1004
        // at file 0x2000 ends off an 8-byte boundary.
        let l: Layout = "0x2000:0x1001:0x100,0:0x3000:0x1004,0x1004:0x5000:0x10"
            .parse()
            .unwrap();
        let mut file = vec![0u8; 0x6008];
        // The heap buffer may be misaligned (Miri places `u8` buffers anywhere): use the
        // first 8-byte aligned offset as file offset 0.
        let k = {
            let r = RawRegion::from_mut_slice(&mut file);
            (0..8).find(|&k| r.is_single_access(k, 8)).unwrap()
        };
        let map = l.map();
        let region = RawRegion::from_mut_slice(&mut file[k..]);
        let tear = |pa: u64, data: &[u8]| map.write(region, Pa(pa), data).map_err(|e| e.fault);
        // Host-misaligned: refused for aligned scalars ...
        assert_eq!(tear(0x2008, &7u64.to_le_bytes()), Err(Fault::WouldTear));
        assert_eq!(tear(0x2004, &7u32.to_le_bytes()), Err(Fault::WouldTear));
        assert_eq!(tear(0x2002, &7u16.to_le_bytes()), Err(Fault::WouldTear));
        // ... single bytes are always single stores, and unaligned writes need no promise.
        assert_eq!(tear(0x2001, &[7]), Ok(()));
        assert_eq!(tear(0x2003, &7u64.to_le_bytes()), Ok(()));
        // Spanning two ranges: refused for an aligned scalar, fine for 3 bytes.
        assert_eq!(tear(0x1000, &9u64.to_le_bytes()), Err(Fault::WouldTear));
        assert_eq!(tear(0x1002, &[1, 2, 3]), Ok(()));
        // Aligned in both: lands.
        assert_eq!(tear(0x08, &0x1122_3344_5566_7788u64.to_le_bytes()), Ok(()));
        let mut back = [0u8; 8];
        map.read(region, Pa(0x08), &mut back).unwrap();
        assert_eq!(u64::from_le_bytes(back), 0x1122_3344_5566_7788);
        let e = map.write(region, Pa(0x2008), &[0; 8]).unwrap_err();
        assert!(e.to_string().contains("one store"), "{e}");
        let file = &file[k..];
        assert_eq!(file[0x1002], 7);
        assert_eq!(file[0x3008..0x3010], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(file[0x4002..0x4004], [1, 2]);
        assert_eq!(file[0x5000], 3);
    }
}
