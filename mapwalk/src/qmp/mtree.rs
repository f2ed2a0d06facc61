//! Where QEMU puts guest RAM: the guest-physical ranges of a RAM region, read from HMP
//! `info mtree -f` (the flat view of the `memory` address space).
//!
//! A line of that view reads
//! `0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000 KVM`:
//! the guest-physical span, the kind (`ram`, `rom`, `i/o`...), the memory region and
//! the offset in it. For a RAM backend's region the offset is the offset in its file
//! (memory-backend-file) or in its host mapping (anonymous RAM): a [`Layout`].

use std::fmt;

use mapwalk_core::Pa;
use mapwalk_file::{Layout, LayoutError, LayoutRange};

use crate::text::parse_hex;

/// The most lines of `info mtree -f` read (a q35 guest prints a few hundred).
pub const MAX_MTREE_LINES: usize = 100_000;

/// Why `info mtree -f` gave no layout.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtreeError {
    /// No range of the region in the `memory` address space.
    NoRanges {
        /// The region asked for (empty: any RAM region).
        region: String,
    },
    /// A line of the region that does not parse.
    BadLine {
        /// The line.
        line: String,
    },
    /// More lines than [`MAX_MTREE_LINES`].
    TooLong,
    /// The ranges are not a valid layout.
    Layout(LayoutError),
}

impl fmt::Display for MtreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRanges { region } if region.is_empty() => {
                f.write_str("info mtree -f: no RAM in address space \"memory\"")
            }
            Self::NoRanges { region } => write!(
                f,
                "info mtree -f: no range of region {region:?} in address space \"memory\""
            ),
            Self::BadLine { line } => write!(f, "info mtree -f: cannot read {line:?}"),
            Self::TooLong => write!(f, "info mtree -f: more than {MAX_MTREE_LINES} lines"),
            Self::Layout(e) => write!(f, "info mtree -f: {e}"),
        }
    }
}

impl std::error::Error for MtreeError {}

/// One `ram`/`rom` line of the flat view: span, region name, offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RamLine<'a> {
    lo: u64,
    len: u64,
    region: &'a str,
    offset: u64,
}

/// The `ram` and `rom` lines of the first flat view of address space `memory`.
fn ram_lines(mtree: &str) -> Result<Vec<RamLine<'_>>, MtreeError> {
    let mut out = Vec::new();
    let (mut in_memory, mut seen_memory) = (false, false);
    for (n, line) in mtree.lines().enumerate() {
        if n >= MAX_MTREE_LINES {
            return Err(MtreeError::TooLong);
        }
        let t = line.trim();
        if t.starts_with("FlatView #") {
            in_memory = false;
            continue;
        }
        if t.starts_with("AS \"memory\"") {
            in_memory = !seen_memory;
            seen_memory = true;
            continue;
        }
        if !in_memory {
            continue;
        }
        let Some((span, rest)) = t.split_once(' ') else {
            continue;
        };
        let Some((lo, hi)) = span.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (parse_hex(lo), parse_hex(hi)) else {
            continue;
        };
        let Some((attrs, what)) = rest.split_once("): ") else {
            continue;
        };
        let kind = attrs.rsplit(", ").next().unwrap_or("");
        if kind != "ram" && kind != "rom" {
            continue;
        }
        let bad = || MtreeError::BadLine {
            line: line.to_owned(),
        };
        let mut words = what.split_whitespace();
        let region = words.next().ok_or_else(bad)?;
        let offset = match words.next().and_then(|w| w.strip_prefix('@')) {
            Some(off) => parse_hex(off).map_err(|_| bad())?,
            None => 0,
        };
        let len = hi
            .checked_sub(lo)
            .and_then(|d| d.checked_add(1))
            .ok_or_else(bad)?;
        out.push(RamLine {
            lo,
            len,
            region,
            offset,
        });
    }
    Ok(out)
}

/// The guest-physical ranges of memory region `region` (type `ram` or `rom`) in the
/// flat view of address space `memory`, as a [`Layout`] of the region's backing (its
/// `@offset`s). Pieces contiguous both in guest-physical address and in offset are
/// merged.
///
/// # Errors
/// [`MtreeError`]: no such ranges, a malformed line of the region, or ranges that are
/// no layout.
pub fn ram_layout(mtree: &str, region: &str) -> Result<Layout, MtreeError> {
    let mut ranges: Vec<LayoutRange> = Vec::new();
    for l in ram_lines(mtree)?.into_iter().filter(|l| l.region == region) {
        let merged = ranges.last_mut().is_some_and(|last| {
            let joins = last.gpa.0.checked_add(last.len) == Some(l.lo)
                && last.offset.checked_add(last.len) == Some(l.offset);
            if joins {
                last.len = last.len.saturating_add(l.len);
            }
            joins
        });
        if !merged {
            ranges.push(LayoutRange {
                gpa: Pa(l.lo),
                offset: l.offset,
                len: l.len,
            });
        }
    }
    if ranges.is_empty() {
        return Err(MtreeError::NoRanges {
            region: region.to_owned(),
        });
    }
    Layout::new(ranges).map_err(MtreeError::Layout)
}

/// The name of the region that backs the most guest RAM (`pc.ram` for QEMU's default
/// RAM, the backend's id with `-object memory-backend-*`): where the kernel lives.
///
/// # Errors
/// [`MtreeError::NoRanges`] when the view has no RAM at all.
pub fn main_ram_region(mtree: &str) -> Result<String, MtreeError> {
    let mut sizes: Vec<(&str, u64)> = Vec::new();
    for l in ram_lines(mtree)? {
        match sizes.iter_mut().find(|(r, _)| *r == l.region) {
            Some((_, n)) => *n = n.saturating_add(l.len),
            None => sizes.push((l.region, l.len)),
        }
    }
    sizes
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(r, _)| r.to_owned())
        .ok_or(MtreeError::NoRanges {
            region: String::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3 GiB q35 guest: 2 GiB below the PCI hole, 1 GiB at 4 GiB (and a second
    /// flat view of `memory` that is not the first).
    const Q35_3G: &str = "FlatView #0\n AS \"I/O\", root: io\n Root memory region: io\n  \
        0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\n\
        FlatView #1\n AS \"memory\", root: system\n AS \"cpu-memory-0\", root: system\n \
        Root memory region: system\n  \
        0000000000000000-000000000009ffff (prio 0, ram): mem\n  \
        00000000000a0000-00000000000bffff (prio 1, i/o): smram-low\n  \
        00000000000c0000-00000000000dffff (prio 1, rom): mem @00000000000c0000\n  \
        00000000000e0000-00000000000fffff (prio 1, ram): mem @00000000000e0000\n  \
        0000000000100000-000000007fffffff (prio 0, ram): mem @0000000000100000\n  \
        00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram\n  \
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n  \
        00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n  \
        0000000100000000-000000013fffffff (prio 0, ram): mem @0000000080000000\n\
        FlatView #2\n AS \"memory\", root: system\n  \
        0000000200000000-000000020fffffff (prio 0, ram): mem @0000000000000000\n";

    #[test]
    fn layout_of_a_3g_q35_guest() {
        let layout = ram_layout(Q35_3G, "mem").unwrap();
        let got: Vec<(u64, u64, u64)> = layout
            .ranges()
            .iter()
            .map(|r| (r.gpa.0, r.offset, r.len))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, 0xa0000),
                (0xc0000, 0xc0000, 0x8000_0000 - 0xc0000),
                (0x1_0000_0000, 0x8000_0000, 0x4000_0000),
            ]
        );
        assert_eq!(
            ram_layout(Q35_3G, "nothing"),
            Err(MtreeError::NoRanges {
                region: "nothing".into()
            })
        );
        assert_eq!(main_ram_region(Q35_3G).unwrap(), "mem");
        assert_eq!(
            ram_layout(Q35_3G, "vga.vram").unwrap().ranges()[0].len,
            0x100_0000
        );
    }

    #[test]
    fn malformed_lines_of_the_region_are_errors() {
        let text = "FlatView #1\n AS \"memory\", root: system\n  \
            0000000000001000-0000000000000fff (prio 0, ram): mem\n";
        assert!(matches!(
            ram_layout(text, "mem"),
            Err(MtreeError::BadLine { .. })
        ));
        let text = "FlatView #1\n AS \"memory\", root: system\n  \
            0000000000000000-0000000000000fff (prio 0, ram): mem @zz\n";
        assert!(matches!(
            ram_layout(text, "mem"),
            Err(MtreeError::BadLine { .. })
        ));
        assert!(main_ram_region("").is_err());
    }
}
