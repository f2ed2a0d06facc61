//! The memory's guest-physical layout checked against the kernel's own memory map
//! (x86_64: its e820 table), and the layout a QEMU RAM file must have when it holds RAM
//! above 4 GiB.
//!
//! A RAM file of a q35 guest with more than about 2.75 GiB keeps 2 GiB below 4 GiB and
//! the rest at 4 GiB, one after the other in the file (`pc` keeps 3.5 GiB below). Read
//! from offset 0 as one range, such a file puts the high RAM at the wrong addresses. The
//! kernel records what RAM it has: `e820_table` points at a `struct e820_table` whose
//! entries of type `E820_TYPE_RAM` are its RAM ranges. A description whose memory
//! leaves part of them out is refused
//! ([`DescribeError::RamLayout`](super::DescribeError::RamLayout)), with the kernel's
//! ranges, and [`qemu_layout`] gives the layout QEMU uses for them, which the caller
//! can check by describing again.

use mapwalk_core::{KernelRead, Kva, Pa, PhysRange};
use mapwalk_file::{Layout, LayoutRange};

use crate::btf::{member_offset, struct_size, BtfReader};

/// The most entries read from an `e820_table` (`E820_MAX_ENTRIES` is 128 + 3 ×
/// `MAX_NUMNODES`: 3,200 with 1,024 nodes).
pub const MAX_E820_ENTRIES: u32 = 4096;

/// `E820_TYPE_RAM`.
const E820_TYPE_RAM: u32 = 1;

/// 4 GiB: where QEMU puts the RAM that does not fit below the PCI hole.
const FOUR_GIB: u64 = 1 << 32;

/// Offsets in `struct e820_table` and `struct e820_entry`, from BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Layout {
    /// `e820_table.nr_entries` (u32).
    pub nr_entries: u32,
    /// `e820_table.entries` (the array).
    pub entries: u32,
    /// `sizeof(struct e820_entry)` (20: packed).
    pub entry_size: u32,
    /// `e820_entry.addr` (u64).
    pub addr: u32,
    /// `e820_entry.size` (u64).
    pub size: u32,
    /// `e820_entry.type` (u32).
    pub kind: u32,
}

impl E820Layout {
    /// The offsets from the kernel's BTF, or `None` when it lacks them (then nothing is
    /// checked).
    pub fn from_btf(r: &BtfReader<'_>) -> Option<Self> {
        let l = Self {
            nr_entries: member_offset(r, "e820_table", "nr_entries").ok()?,
            entries: member_offset(r, "e820_table", "entries").ok()?,
            entry_size: struct_size(r, "e820_entry").ok()?,
            addr: member_offset(r, "e820_entry", "addr").ok()?,
            size: member_offset(r, "e820_entry", "size").ok()?,
            kind: member_offset(r, "e820_entry", "type").ok()?,
        };
        let fits = |off: u32, len: u32| off.checked_add(len).is_some_and(|e| e <= l.entry_size);
        (fits(l.addr, 8) && fits(l.size, 8) && fits(l.kind, 4)).then_some(l)
    }
}

/// The kernel's RAM ranges `(start, length)`, in its order, from the `struct e820_table`
/// that the pointer variable at `e820_table` points at.
///
/// # Errors
/// What could not be read, or an entry count above [`MAX_E820_ENTRIES`].
pub fn kernel_ram<K: KernelRead + ?Sized>(
    view: &K,
    e820_table: Kva,
    l: &E820Layout,
) -> Result<Vec<(u64, u64)>, String> {
    let table = Kva(view
        .read_kernel_u64(e820_table)
        .map_err(|e| format!("e820_table at {e820_table}: {e}"))?);
    let at = |off: u32| {
        table
            .checked_add(u64::from(off))
            .ok_or_else(|| format!("e820_table {table} + {off}"))
    };
    let n = view
        .read_kernel_u32(at(l.nr_entries)?)
        .map_err(|e| format!("e820_table.nr_entries at {table}: {e}"))?;
    if n > MAX_E820_ENTRIES {
        return Err(format!(
            "e820_table at {table} claims {n} entries, more than {MAX_E820_ENTRIES}"
        ));
    }
    let stride = usize::try_from(l.entry_size).map_err(|e| e.to_string())?;
    let len = stride
        .checked_mul(usize::try_from(n).map_err(|e| e.to_string())?)
        .ok_or("e820 table size")?;
    let mut raw = vec![0u8; len];
    view.read_kernel(at(l.entries)?, &mut raw)
        .map_err(|e| format!("e820_table.entries at {table}: {e}"))?;
    let field = |e: &[u8], off: u32, n: usize| -> u64 {
        let off = usize::try_from(off).unwrap_or(usize::MAX);
        e.get(off..off.saturating_add(n)).map_or(0, |b| {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(b);
            u64::from_le_bytes(w)
        })
    };
    Ok(raw
        .chunks_exact(stride.max(1))
        .filter(|e| field(e, l.kind, 4) == u64::from(E820_TYPE_RAM))
        .map(|e| (field(e, l.addr, 8), field(e, l.size, 8)))
        .filter(|&(_, len)| len > 0)
        .collect())
}

/// The kernel's RAM as its `max_pfn` and `max_low_pfn` (the variables at `max_pfn` and
/// `max_low_pfn`) bound it, x86_64 pages of 4 KiB: `[4 GiB, max_pfn)` when `max_pfn`
/// is past 4 GiB, and `[0, max_low_pfn)` when `max_low_pfn` ends at or below 4 GiB.
/// Linux 6.1 sets `max_low_pfn` to the end of the RAM below 4 GiB, Linux 6.12 to
/// `max_pfn` on x86_64: there the RAM below 4 GiB is left out (not known from these
/// variables). Holes inside are not known either: coarser than the e820 table, for when
/// that cannot be read.
///
/// # Errors
/// What could not be read, or values that are no page frame numbers of RAM.
pub fn pfn_ram<K: KernelRead + ?Sized>(
    view: &K,
    max_pfn: Kva,
    max_low_pfn: Kva,
) -> Result<Vec<(u64, u64)>, String> {
    let read = |at: Kva, what: &str| {
        view.read_kernel_u64(at)
            .map_err(|e| format!("{what} at {at}: {e}"))?
            .checked_mul(4096)
            .ok_or_else(|| format!("{what} is no page frame number"))
    };
    let (end, low_end) = (read(max_pfn, "max_pfn")?, read(max_low_pfn, "max_low_pfn")?);
    pfn_ranges(end, low_end)
}

/// [`pfn_ram`]'s ranges for RAM ending at `end` with `max_low_pfn` at `low_end`.
fn pfn_ranges(end: u64, low_end: u64) -> Result<Vec<(u64, u64)>, String> {
    if low_end > end || end == 0 {
        return Err(format!(
            "max_low_pfn ({low_end:#x}) past max_pfn ({end:#x}), or no RAM"
        ));
    }
    let mut ram = Vec::new();
    if low_end <= FOUR_GIB {
        ram.push((0, low_end));
    }
    if end > FOUR_GIB {
        ram.push((FOUR_GIB, end - FOUR_GIB));
    }
    Ok(ram)
}

/// The parts of `ram` that `have` does not hold.
pub fn uncovered(ram: &[(u64, u64)], have: &[PhysRange]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(start, len) in ram {
        let end = start.saturating_add(len);
        let mut at = start;
        // Walk the piece through the ranges that hold it, in address order.
        let mut ranges: Vec<&PhysRange> = have.iter().collect();
        ranges.sort_by_key(|r| r.start.0);
        for r in ranges {
            if r.start.0 <= at && at < r.end() {
                at = r.end().min(end);
            }
        }
        if at < end {
            out.push((at, end - at));
        }
    }
    out
}

/// The layout QEMU gives a RAM file of `file_len` bytes that holds `ram` (the kernel's
/// RAM ranges): the RAM below 4 GiB from offset 0, as many bytes as the file holds
/// before the RAM above 4 GiB, which follows it. `None` when `ram` has nothing above 4
/// GiB or does not fit the file.
pub fn qemu_layout(ram: &[(u64, u64)], file_len: u64) -> Option<Layout> {
    let high_end = ram
        .iter()
        .map(|&(s, l)| s.saturating_add(l))
        .filter(|&e| e > FOUR_GIB)
        .max()?;
    let high = high_end - FOUR_GIB;
    let low = file_len.checked_sub(high)?;
    let low_ram_end = ram
        .iter()
        .filter(|&&(s, _)| s < FOUR_GIB)
        .map(|&(s, l)| s.saturating_add(l))
        .max()
        .unwrap_or(0);
    if low > FOUR_GIB || low < low_ram_end {
        return None;
    }
    Layout::new(vec![
        LayoutRange {
            gpa: Pa(0),
            offset: 0,
            len: low,
        },
        LayoutRange {
            gpa: Pa(FOUR_GIB),
            offset: low,
            len: high,
        },
    ])
    .ok()
}

/// QEMU's x86 machines split guest RAM at these sizes below 4 GiB: `q35` keeps 2 GiB
/// below the PCI hole once the guest has 2.75 GiB or more; `pc` keeps 3 GiB (its
/// gigabyte alignment) or 3.5 GiB once the guest has more than 3.5 GiB.
const QEMU_SPLITS: [(u64, u64); 3] = [
    (0xb000_0000, 0x8000_0000),
    (0xe000_0001, 0xc000_0000),
    (0xe000_0001, 0xe000_0000),
];

/// The layouts QEMU could have given a RAM file of `file_len` bytes, most common first
/// (`q35`, then `pc`), for when a read of the file as one range fails before the
/// kernel's RAM is known (the kernel image itself lies in the part above 4 GiB). Each is
/// only a candidate: a description through it checks it against the kernel's own record
/// of its RAM. Empty when QEMU keeps such a file in one range.
pub fn qemu_candidates(file_len: u64) -> Vec<Layout> {
    QEMU_SPLITS
        .iter()
        .filter(|&&(min, _)| file_len >= min)
        .filter_map(|&(_, low)| {
            Layout::new(vec![
                LayoutRange {
                    gpa: Pa(0),
                    offset: 0,
                    len: low,
                },
                LayoutRange {
                    gpa: Pa(FOUR_GIB),
                    offset: low,
                    len: file_len.checked_sub(low)?,
                },
            ])
            .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    /// A 3 GiB q35 guest's e820 RAM: below 640 KiB, 1 MiB to 2 GiB (less the BIOS's
    /// last pages), 4 to 5 GiB.
    fn q35_3g() -> Vec<(u64, u64)> {
        vec![
            (0, 0x9_fc00),
            (0x10_0000, 2 * G - 0x10_0000 - 0x2_0000),
            (4 * G, G),
        ]
    }

    #[test]
    fn a_flat_view_of_a_split_file_leaves_the_high_ram_out() {
        let flat = [PhysRange {
            start: Pa(0),
            len: 3 * G,
        }];
        assert_eq!(uncovered(&q35_3g(), &flat), [(4 * G, G)]);
        let split = qemu_layout(&q35_3g(), 3 * G).unwrap();
        let ranges: Vec<(u64, u64, u64)> = split
            .ranges()
            .iter()
            .map(|r| (r.gpa.0, r.offset, r.len))
            .collect();
        assert_eq!(ranges, [(0, 0, 2 * G), (4 * G, 2 * G, G)]);
        let have: Vec<PhysRange> = split
            .ranges()
            .iter()
            .map(|r| PhysRange {
                start: r.gpa,
                len: r.len,
            })
            .collect();
        assert!(uncovered(&q35_3g(), &have).is_empty());
    }

    #[test]
    fn max_pfn_bounds_the_ram_as_each_kernel_sets_max_low_pfn() {
        // Linux 6.1: max_low_pfn ends the RAM below 4 GiB.
        assert_eq!(
            pfn_ranges(5 * G, 2 * G - 0x2_1000),
            Ok(vec![(0, 2 * G - 0x2_1000), (4 * G, G)])
        );
        // Linux 6.12 (x86_64): max_low_pfn is max_pfn; the low RAM is not known.
        assert_eq!(pfn_ranges(5 * G, 5 * G), Ok(vec![(4 * G, G)]));
        let flat = [PhysRange {
            start: Pa(0),
            len: 3 * G,
        }];
        assert_eq!(
            uncovered(&pfn_ranges(5 * G, 5 * G).unwrap(), &flat),
            [(4 * G, G)]
        );
        // All RAM below 4 GiB.
        assert_eq!(pfn_ranges(G, G), Ok(vec![(0, G)]));
        // Nonsense is refused.
        assert!(pfn_ranges(G, 2 * G).is_err());
        assert!(pfn_ranges(0, 0).is_err());
    }

    #[test]
    fn a_pc_guest_keeps_three_and_a_half_gib_below_the_hole() {
        // `pc` with 4 GiB: 3.5 GiB below 4 GiB (less the BIOS's last pages), 0.5 above.
        let ram = [
            (0, 0x9_fc00),
            (0x10_0000, 3 * G + G / 2 - 0x10_0000 - 0x2_0000),
            (4 * G, G / 2),
        ];
        let split = qemu_layout(&ram, 4 * G).unwrap();
        let ranges: Vec<(u64, u64, u64)> = split
            .ranges()
            .iter()
            .map(|r| (r.gpa.0, r.offset, r.len))
            .collect();
        assert_eq!(
            ranges,
            [(0, 0, 3 * G + G / 2), (4 * G, 3 * G + G / 2, G / 2)]
        );
    }

    #[test]
    fn candidates_by_file_size() {
        let lows = |len: u64| -> Vec<(u64, u64)> {
            qemu_candidates(len)
                .iter()
                .map(|l| (l.ranges()[0].len, l.ranges()[1].len))
                .collect()
        };
        assert!(lows(2 * G).is_empty(), "QEMU keeps 2 GiB in one range");
        assert!(lows(0xb000_0000 - 1).is_empty());
        assert_eq!(lows(3 * G), [(2 * G, G)]);
        assert_eq!(
            lows(4 * G),
            [(2 * G, 2 * G), (3 * G, G), (3 * G + G / 2, G / 2)]
        );
    }

    #[test]
    fn no_split_when_it_cannot_be() {
        // All RAM below 4 GiB: nothing to split.
        assert!(qemu_layout(&[(0, G)], G).is_none());
        // A file too short for the high RAM, or for the low RAM before it.
        assert!(qemu_layout(&q35_3g(), G / 2).is_none());
        assert!(qemu_layout(&q35_3g(), G + G / 2).is_none());
        // Covered ranges: nothing uncovered, pieces reported exactly.
        let have = [
            PhysRange {
                start: Pa(0),
                len: G,
            },
            PhysRange {
                start: Pa(G),
                len: G,
            },
        ];
        assert_eq!(uncovered(&[(0, 2 * G)], &have), []);
        assert_eq!(uncovered(&[(G / 2, 2 * G)], &have), [(2 * G, G / 2)]);
    }
}
