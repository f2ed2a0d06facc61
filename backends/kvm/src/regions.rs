//! Which region holds a guest-physical address: the table a VMM's memory slots make.
//!
//! A VMM registers its guest RAM with KVM as a few memory slots: guest-physical ranges
//! with holes between them (the PCI hole below 4 GiB on a q35 machine, for one). The
//! table is checked once, when it is made (no empty, overlapping or overflowing region,
//! at most [`MAX_REGIONS`]), and then answers every access with a binary search: an
//! access lies wholly inside one region, or it is refused, saying whether it starts in
//! a hole or runs out of the region it starts in. Nothing here touches memory.

use core::fmt;

use mapwalk_core::{Pa, PhysRange};

/// The most regions one table holds. KVM allows 509 user memory slots on older kernels
/// and 32,764 on newer ones; VMMs use a handful. A table asked for more is refused.
pub const MAX_REGIONS: usize = 4096;

/// Why a set of regions was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionsError {
    /// No regions at all.
    Empty,
    /// More regions than [`MAX_REGIONS`].
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A region of length zero.
    ZeroLength {
        /// Its guest-physical start.
        gpa: u64,
    },
    /// A region whose end overflows 64 bits, or that this machine cannot address.
    Overflow {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// A region whose host address is null.
    NullHost {
        /// Its guest-physical start.
        gpa: u64,
    },
    /// Two regions claim the same guest-physical bytes.
    Overlap {
        /// The first region's start.
        first: u64,
        /// The second region's start.
        second: u64,
    },
}

impl fmt::Display for RegionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("no guest memory regions"),
            Self::TooMany { count } => {
                write!(f, "{count} guest memory regions: at most {MAX_REGIONS}")
            }
            Self::ZeroLength { gpa } => write!(f, "the guest memory region at {gpa:#x} is empty"),
            Self::Overflow { gpa, len } => write!(
                f,
                "the guest memory region at {gpa:#x} of {len:#x} bytes overflows the address space"
            ),
            Self::NullHost { gpa } => {
                write!(
                    f,
                    "the guest memory region at {gpa:#x} has a null host address"
                )
            }
            Self::Overlap { first, second } => write!(
                f,
                "the guest memory regions at {first:#x} and {second:#x} overlap"
            ),
        }
    }
}

impl std::error::Error for RegionsError {}

/// Why an access was refused by the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The access starts in no region.
    Hole,
    /// The access starts in a region and runs past its end (into a hole or another
    /// region: a copy never spans two mappings).
    CrossesEnd {
        /// One past the region's last byte.
        region_end: u64,
    },
    /// The access's own end overflows 64 bits.
    Overflow,
}

/// Guest-physical regions, sorted, disjoint and non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTable {
    /// The regions in ascending order (as [`PhysRange`]s: what `PhysRead::ranges` says).
    ranges: Vec<PhysRange>,
    /// `order[i]`: the index, in the order the caller gave them, of `ranges[i]`.
    order: Vec<usize>,
}

impl RegionTable {
    /// Checks `regions` (guest-physical start, length), in any order.
    ///
    /// # Errors
    /// [`RegionsError`] for an empty set, too many regions, an empty, overflowing or
    /// overlapping region.
    pub fn new(regions: impl IntoIterator<Item = (u64, u64)>) -> Result<Self, RegionsError> {
        let mut indexed: Vec<(PhysRange, usize)> = Vec::new();
        for (i, (gpa, len)) in regions.into_iter().enumerate() {
            if i >= MAX_REGIONS {
                return Err(RegionsError::TooMany {
                    count: i.saturating_add(1),
                });
            }
            if len == 0 {
                return Err(RegionsError::ZeroLength { gpa });
            }
            // The last byte must be addressable, and the length must fit this host's
            // pointers (the region is mapped whole).
            let fits = usize::try_from(len).is_ok_and(|l| isize::try_from(l).is_ok());
            if gpa.checked_add(len - 1).is_none() || !fits {
                return Err(RegionsError::Overflow { gpa, len });
            }
            indexed.push((
                PhysRange {
                    start: Pa(gpa),
                    len,
                },
                i,
            ));
        }
        if indexed.is_empty() {
            return Err(RegionsError::Empty);
        }
        indexed.sort_by_key(|(r, _)| r.start.0);
        for pair in indexed.windows(2) {
            if let [(a, _), (b, _)] = pair {
                // `a.start + a.len - 1` cannot overflow (checked above).
                if b.start.0 <= a.start.0 + (a.len - 1) {
                    return Err(RegionsError::Overlap {
                        first: a.start.0,
                        second: b.start.0,
                    });
                }
            }
        }
        Ok(Self {
            ranges: indexed.iter().map(|(r, _)| *r).collect(),
            order: indexed.iter().map(|&(_, i)| i).collect(),
        })
    }

    /// The regions in ascending order.
    pub fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    /// The region that holds all of `gpa .. gpa + len`: the caller's index of that
    /// region, and the offset of `gpa` in it. An empty access is looked up by `gpa`.
    ///
    /// # Errors
    /// [`Miss`]: where the access is not wholly inside one region.
    pub fn find(&self, gpa: u64, len: u64) -> Result<(usize, u64), Miss> {
        let last = gpa
            .checked_add(len.saturating_sub(1))
            .ok_or(Miss::Overflow)?;
        // The last region that starts at or before `gpa`.
        let i = self.ranges.partition_point(|r| r.start.0 <= gpa);
        let i = i.checked_sub(1).ok_or(Miss::Hole)?;
        let (Some(r), Some(&caller)) = (self.ranges.get(i), self.order.get(i)) else {
            return Err(Miss::Hole);
        };
        let offset = gpa - r.start.0;
        if offset >= r.len {
            return Err(Miss::Hole);
        }
        if last - r.start.0 >= r.len {
            return Err(Miss::CrossesEnd {
                region_end: r.end(),
            });
        }
        Ok((caller, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// QEMU's q35 machine with 3 GiB: 2 GiB below the PCI hole, 1 GiB above 4 GiB
    /// (given out of order on purpose).
    fn q35() -> RegionTable {
        RegionTable::new([(4 * GIB, GIB), (0, 2 * GIB)]).unwrap()
    }

    #[test]
    fn finds_the_region_and_offset_in_the_callers_numbering() {
        let t = q35();
        assert_eq!(t.find(0, 8), Ok((1, 0)));
        assert_eq!(t.find(0x1234, 8), Ok((1, 0x1234)));
        assert_eq!(t.find(4 * GIB + 0x10, 4), Ok((0, 0x10)));
        // The last byte of each region.
        assert_eq!(t.find(2 * GIB - 1, 1), Ok((1, 2 * GIB - 1)));
        assert_eq!(t.find(5 * GIB - 8, 8), Ok((0, GIB - 8)));
        assert_eq!(
            t.ranges(),
            &[
                PhysRange {
                    start: Pa(0),
                    len: 2 * GIB
                },
                PhysRange {
                    start: Pa(4 * GIB),
                    len: GIB
                }
            ]
        );
    }

    #[test]
    fn holes_and_region_ends_are_refused_by_name() {
        let t = q35();
        // In the PCI hole, and past the top of RAM.
        assert_eq!(t.find(3 * GIB, 1), Err(Miss::Hole));
        assert_eq!(t.find(5 * GIB, 1), Err(Miss::Hole));
        // Starting in RAM, running into the hole: never a partial copy.
        assert_eq!(
            t.find(2 * GIB - 4, 8),
            Err(Miss::CrossesEnd {
                region_end: 2 * GIB
            })
        );
        assert_eq!(
            t.find(5 * GIB - 1, 2),
            Err(Miss::CrossesEnd {
                region_end: 5 * GIB
            })
        );
        assert_eq!(t.find(u64::MAX, 2), Err(Miss::Overflow));
    }

    #[test]
    fn adjacent_regions_never_serve_one_access_together() {
        let t = RegionTable::new([(0, 0x1000), (0x1000, 0x1000)]).unwrap();
        assert_eq!(t.find(0xffc, 4), Ok((0, 0xffc)));
        assert_eq!(t.find(0x1000, 4), Ok((1, 0)));
        assert_eq!(
            t.find(0xffc, 8),
            Err(Miss::CrossesEnd { region_end: 0x1000 })
        );
    }

    #[test]
    fn bad_region_sets_are_refused() {
        assert_eq!(RegionTable::new([]), Err(RegionsError::Empty));
        assert_eq!(
            RegionTable::new([(0x1000, 0)]),
            Err(RegionsError::ZeroLength { gpa: 0x1000 })
        );
        assert_eq!(
            RegionTable::new([(u64::MAX - 0xfff, 0x2000)]),
            Err(RegionsError::Overflow {
                gpa: u64::MAX - 0xfff,
                len: 0x2000
            })
        );
        assert_eq!(
            RegionTable::new([(0x2000, 0x1000), (0, 0x2001)]),
            Err(RegionsError::Overlap {
                first: 0,
                second: 0x2000
            })
        );
        let many = (0..=MAX_REGIONS as u64).map(|i| (i * 0x1000, 0x1000));
        assert_eq!(
            RegionTable::new(many),
            Err(RegionsError::TooMany {
                count: MAX_REGIONS + 1
            })
        );
        // The very top of the address space is a valid place for a region.
        let top = RegionTable::new([(u64::MAX - 0xfff, 0x1000)]).unwrap();
        assert_eq!(top.find(u64::MAX, 1), Ok((0, 0xfff)));
    }
}
