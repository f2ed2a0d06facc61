//! Target `elf_core`: [`ElfCore::from_bytes`] on the input after a small header, then
//! everything a user reads of a core that parses: segments, aliases, notes, vCPUs (CR3,
//! CR4), the VMCOREINFO note, and physical reads at segment-derived or absolute
//! addresses, checked against what [`PhysRead::ranges`] promises.
//!
//! Checks: `segments()` are sorted, disjoint and are exactly `ranges()`; each alias lies
//! inside a segment; a read succeeds exactly when every byte of it lies in `ranges()`,
//! and equals its two halves read apart; bytes past a segment's `p_filesz` read as zero.
//! A search for VMCOREINFO in the core's memory ends (capped at [`FIND_MAX`]).

use arbitrary::Unstructured;
use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo_with, FindOptions, Vmcoreinfo};
use mapwalk_core::{Pa, PhysRange, PhysRead};
use mapwalk_file::ElfCore;

use crate::{sink, Enc, Res};

/// Reads per input.
pub const READS: usize = 4;

/// The longest read.
pub const MAX_READ: usize = 0x2000;

/// The address space the VMCOREINFO search may cover per step.
pub const FIND_MAX: u64 = 1 << 20;

/// One physical read: `delta` (signed) from the start of segment `pick` (or from its
/// end, with bit 7 of `pick`; from 0 when the core has no segment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
    /// Which segment, bit 7: from its end.
    pub pick: u8,
    /// Added to the segment's start or end, as an `i32`.
    pub delta: u32,
    /// The length (`% (MAX_READ + 1)`).
    pub len: u16,
}

/// The fixed part of an input; the ELF core follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The reads.
    pub reads: [Read; READS],
}

impl Header {
    /// Decodes the header (28 bytes).
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        let mut h = Self::default();
        for r in &mut h.reads {
            *r = Read {
                pick: u.arbitrary()?,
                delta: u.arbitrary()?,
                len: u.arbitrary()?,
            };
        }
        Ok(h)
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        for r in &self.reads {
            e.u8(r.pick).u32(r.delta).u16(r.len);
        }
    }
}

/// Whether `[pa, pa + len)` lies inside the union of `ranges` (sorted and disjoint).
pub fn covered(ranges: &[PhysRange], pa: u64, len: u64) -> bool {
    let Some(end) = pa.checked_add(len) else {
        return false;
    };
    let mut at = pa;
    for r in ranges {
        if at >= end {
            break;
        }
        if r.end() <= at {
            continue;
        }
        if r.start.0 > at {
            return false;
        }
        at = r.end();
    }
    at >= end
}

/// Reads `len` bytes at `pa` and checks the result against `ranges()` and against the
/// two halves read apart.
fn check_read(core: &ElfCore, pa: u64, len: usize) {
    let mut whole = vec![0u8; len];
    let r = core.read_phys(Pa(pa), &mut whole);
    let inside = covered(core.ranges(), pa, len as u64);
    match &r {
        Ok(()) => assert!(inside, "read {pa:#x}+{len:#x} outside ranges() succeeded"),
        Err(e) => {
            sink(e);
            // An empty read never fails, nor one inside the segments.
            assert!(
                !inside || pa.checked_add(len as u64).is_none(),
                "read {pa:#x}+{len:#x} inside ranges() failed: {e}"
            );
        }
    }
    if r.is_ok() && len >= 2 {
        let mid = len / 2;
        let mut halves = vec![0u8; len];
        let (a, b) = halves.split_at_mut(mid);
        core.read_phys(Pa(pa), a).expect("first half");
        core.read_phys(Pa(pa + mid as u64), b).expect("second half");
        assert_eq!(
            whole, halves,
            "read {pa:#x}+{len:#x} differs from its halves"
        );
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = Header::decode(&mut u) else {
        return;
    };
    let core = match ElfCore::from_bytes(u.take_rest()) {
        Ok(c) => c,
        Err(e) => {
            sink(&e);
            std::hint::black_box(e.kind());
            return;
        }
    };
    std::hint::black_box((
        core.path(),
        core.file_len(),
        core.is_64bit(),
        core.machine(),
    ));
    let segs = core.segments();
    let ranges = core.ranges();
    assert_eq!(segs.len(), ranges.len(), "one range per segment");
    for (s, r) in segs.iter().zip(ranges) {
        assert_eq!(s.phys_range(), *r, "segment {} vs its range", s.index);
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size, "{s:?}");
        assert!(s
            .offset
            .checked_add(s.file_size)
            .is_some_and(|e| e <= core.file_len()));
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].end() <= w[1].start.0,
            "ranges not sorted and disjoint: {w:?}"
        );
    }
    for a in core.aliases() {
        let r = a.phys_range();
        assert!(
            ranges
                .iter()
                .any(|s| s.start.0 <= r.start.0 && r.end() <= s.end()),
            "alias {a:?} inside no segment"
        );
    }
    for n in core.notes().iter().take(64) {
        std::hint::black_box((n.name.len(), n.n_type, n.desc.len()));
    }
    for cpu in core.vcpus().iter().take(64) {
        std::hint::black_box((cpu.index, cpu.cr3(), cpu.cr4(), format!("{cpu:?}")));
        if let Some(q) = &cpu.qemu {
            assert_eq!(Some(q.cr3()), cpu.cr3());
        }
    }
    if let Some(note) = core.vmcoreinfo_note() {
        crate::vmcoreinfo::exercise(&Vmcoreinfo::parse(note));
    }
    // Zero tails.
    for s in segs.iter().take(8) {
        if s.file_size < s.mem_size {
            let mut b = [0xffu8; 1];
            core.read_phys(Pa(s.paddr.0 + s.file_size), &mut b)
                .expect("a zero tail reads");
            assert_eq!(b, [0], "the zero tail of segment {}", s.index);
        }
    }
    for r in &h.reads {
        let len = usize::from(r.len) % (MAX_READ + 1);
        let delta = i64::from(r.delta as i32) as u64;
        let pa = match ranges.get(usize::from(r.pick & 0x7f) % ranges.len().max(1)) {
            Some(s) if r.pick & 0x80 != 0 => s.end().wrapping_add(delta),
            Some(s) => s.start.0.wrapping_add(delta),
            None => u64::from(r.delta),
        };
        check_read(&core, pa, len);
    }
    let opts = FindOptions {
        max_len: FIND_MAX,
        chunk_len: 1 << 16,
        ..FindOptions::default()
    };
    match find_vmcoreinfo_with(&core, &opts) {
        Ok(found) => std::hint::black_box(found).map_or((), |f| sink(&f.vmcoreinfo)),
        Err(e) => sink(&e),
    }
}
