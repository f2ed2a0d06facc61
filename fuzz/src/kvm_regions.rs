//! Target `kvm_regions`: the region table of `mapwalk-kvm` (which memory slot holds a
//! guest-physical access), against a brute-force model.
//!
//! Input: a count byte (up to 12 regions), then per region a mode byte and a start and
//! length (small page-granular numbers in one mode, raw 64-bit ones in the other, so
//! both ordinary layouts and the edges of the address space are reached); the rest is
//! accesses, each a start and a length the same way.
//!
//! Checks: the table is refused exactly when the model says the set is invalid (empty,
//! a zero length, an end past 2^64, an overlap); for every access the table's answer
//! equals the model's: the region (in the caller's numbering) and offset, or a hole, or
//! the end of the region the access runs out of, or an overflow.

use arbitrary::Unstructured;
use mapwalk_kvm::{Miss, RegionTable};

use crate::sink;

/// One number: page-granular and small (mode bit clear), or raw.
fn number(u: &mut Unstructured<'_>, raw: bool) -> u64 {
    if raw {
        u.arbitrary::<u64>().unwrap_or(0)
    } else {
        u64::from(u.arbitrary::<u16>().unwrap_or(0)) << 8
    }
}

/// The model's validity of a set of regions.
fn valid(regions: &[(u64, u64)]) -> bool {
    if regions.is_empty() || regions.len() > mapwalk_kvm::MAX_REGIONS {
        return false;
    }
    for (i, &(a, alen)) in regions.iter().enumerate() {
        if alen == 0 || a.checked_add(alen - 1).is_none() {
            return false;
        }
        if usize::try_from(alen).map_or(true, |l| isize::try_from(l).is_err()) {
            return false;
        }
        for &(b, blen) in &regions[i + 1..] {
            let (a_last, b_last) = (a + (alen - 1), b.wrapping_add(blen.wrapping_sub(1)));
            if blen != 0 && a <= b_last && b <= a_last {
                return false;
            }
        }
    }
    true
}

/// The model's answer for an access.
fn model(regions: &[(u64, u64)], gpa: u64, len: u64) -> Result<(usize, u64), Miss> {
    let Some(last) = gpa.checked_add(len.saturating_sub(1)) else {
        return Err(Miss::Overflow);
    };
    for (i, &(start, rlen)) in regions.iter().enumerate() {
        let rlast = start + (rlen - 1);
        if start <= gpa && gpa <= rlast {
            if last > rlast {
                return Err(Miss::CrossesEnd {
                    region_end: start.saturating_add(rlen),
                });
            }
            return Ok((i, gpa - start));
        }
    }
    Err(Miss::Hole)
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let count = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 13);
    let mut regions = Vec::with_capacity(count);
    for _ in 0..count {
        let raw = u.arbitrary::<u8>().unwrap_or(0) & 1 == 1;
        regions.push((number(&mut u, raw), number(&mut u, raw)));
    }
    let table = RegionTable::new(regions.iter().copied());
    assert_eq!(table.is_ok(), valid(&regions), "{regions:x?}: {table:?}");
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            sink(&e);
            return;
        }
    };
    let ranges = table.ranges();
    assert_eq!(ranges.len(), regions.len());
    assert!(ranges.windows(2).all(|w| w[0].start.0 < w[1].start.0));
    while !u.is_empty() {
        let raw = u.arbitrary::<u8>().unwrap_or(0) & 1 == 1;
        let (gpa, len) = (number(&mut u, raw), number(&mut u, raw) >> 4);
        assert_eq!(
            table.find(gpa, len),
            model(&regions, gpa, len),
            "{regions:x?}: {len:#x} bytes at {gpa:#x}"
        );
    }
}
