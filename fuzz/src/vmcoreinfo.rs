//! Target `vmcoreinfo`: [`Vmcoreinfo::parse`] and its accessors on the input after a
//! small header, then [`find_vmcoreinfo`] and [`find_vmcoreinfo_with`] over a
//! [`Ram`] holding the same bytes at a fuzz-chosen page, with fuzz-chosen hints.
//!
//! Checks: what the search finds is plausible, lies in memory (inside the hint it names,
//! or at a page start or 24 bytes into one for a page probe), and is exactly what
//! [`Vmcoreinfo::parse`] makes of the memory from its address to the end of the range
//! searched (memory, a hint clipped to memory, or the part below or above 4 GiB); the
//! first line with a key is what [`Vmcoreinfo::get`] returns; the text form parses back
//! to the same entries (unless a value ends in `\r`, which the line split eats).

use arbitrary::Unstructured;
use mapwalk::describe::vmcoreinfo::{
    find_vmcoreinfo, find_vmcoreinfo_with, FindMethod, FindOptions, FoundVmcoreinfo, Vmcoreinfo,
    VMCOREINFO_MAX,
};
use mapwalk_core::{Pa, PhysRange, Ram};

use crate::{sink, Enc, Res};

/// Hints per input.
pub const HINTS: usize = 2;

/// The fixed part of an input; the text (and the RAM) follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The RAM's first page number (its base is `base_page * 4096`).
    pub base_page: u32,
    /// Hints: `(offset from the base, length)`; length 0 means no hint.
    pub hints: [(u32, u16); HINTS],
    /// Bit 0: no page probe; bit 1: no scan; bits 2..: the chunk length in KiB.
    pub flags: u8,
}

impl Header {
    /// Decodes the header (17 bytes).
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        let mut h = Self {
            base_page: u.arbitrary()?,
            ..Self::default()
        };
        for hint in &mut h.hints {
            *hint = (u.arbitrary()?, u.arbitrary()?);
        }
        h.flags = u.arbitrary()?;
        Ok(h)
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u32(self.base_page);
        for &(off, len) in &self.hints {
            e.u32(off).u16(len);
        }
        e.u8(self.flags);
    }
}

/// Calls every accessor of `v`, with the names its own lines use, and checks `get`
/// and the text form.
pub fn exercise(v: &Vmcoreinfo) {
    std::hint::black_box((
        v.len(),
        v.is_empty(),
        v.osrelease(),
        v.page_size(),
        v.kernel_offset(),
        v.is_plausible(),
    ));
    assert_eq!(v.len(), v.entries().count());
    let mut seen = std::collections::HashSet::new();
    let mut cr_end = false;
    for (k, val) in v.entries() {
        cr_end |= val.ends_with('\r');
        if seen.len() < 64 && seen.insert(k) {
            assert_eq!(v.get(k), Some(val), "the first line with key {k:?}");
            let inner = |p: &str| k.strip_prefix(p).and_then(|r| r.strip_suffix(')'));
            if let Some(n) = inner("SYMBOL(") {
                std::hint::black_box(v.symbol(n));
            } else if let Some(n) = inner("NUMBER(") {
                std::hint::black_box(v.number(n));
            } else if let Some(n) = inner("OFFSET(") {
                std::hint::black_box(v.offset(n));
            } else if let Some(n) = inner("SIZE(") {
                std::hint::black_box(v.size(n));
            } else if let Some(n) = inner("LENGTH(") {
                std::hint::black_box(v.length(n));
            }
        }
    }
    let text = v.to_string();
    if !cr_end {
        assert_eq!(&Vmcoreinfo::parse(text.as_bytes()), v, "text form {text:?}");
    }
    sink(v);
}

/// Where `found` says it is must hold what it says, parsed the same way.
fn check_found(ram: &Ram<&[u8]>, hints: &[PhysRange], found: &FoundVmcoreinfo) {
    const FOUR_GIB: u64 = 1 << 32;
    let base = ram.base().0;
    let ram_end = base + ram.bytes().len() as u64;
    let pa = found.pa.0;
    assert!(
        base <= pa && pa < ram_end,
        "found at {pa:#x}, outside memory"
    );
    assert!(found.vmcoreinfo.is_plausible(), "{:?}", found.vmcoreinfo);
    assert!(found.bytes_read > 0);
    let end = match found.method {
        FindMethod::Hint(i) => {
            let h = hints.get(i).expect("the hint exists");
            assert!(
                h.start.0 <= pa && pa < h.end(),
                "{pa:#x} outside hint {i} {h:?}"
            );
            h.end().min(ram_end)
        }
        m => {
            if m == FindMethod::PageProbe {
                assert!(matches!(pa % 4096, 0 | 24), "page probe hit at {pa:#x}");
            }
            if pa < FOUR_GIB {
                ram_end.min(FOUR_GIB)
            } else {
                ram_end
            }
        }
    };
    let at = (pa - base) as usize;
    let upto = ((end - base) as usize).min(at + VMCOREINFO_MAX);
    let expect = Vmcoreinfo::parse(&ram.bytes()[at..upto]);
    assert_eq!(
        found.vmcoreinfo, expect,
        "found at {pa:#x} by {:?}",
        found.method
    );
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = Header::decode(&mut u) else {
        return;
    };
    let text = u.take_rest();
    let v = Vmcoreinfo::parse(text);
    exercise(&v);

    let base = u64::from(h.base_page) * 4096;
    let ram = Ram::new(Pa(base), text);
    let hints: Vec<PhysRange> = h
        .hints
        .iter()
        .filter(|&&(_, len)| len != 0)
        .map(|&(off, len)| PhysRange {
            start: Pa(base + u64::from(off)),
            len: u64::from(len),
        })
        .collect();
    match find_vmcoreinfo(&ram, &hints) {
        Ok(Some(found)) => {
            check_found(&ram, &hints, &found);
            exercise(&found.vmcoreinfo);
        }
        Ok(None) => {}
        Err(e) => panic!("a search of plain RAM failed: {e}"),
    }
    let opts = FindOptions {
        hints: &hints,
        page_probe: h.flags & 1 == 0,
        scan: h.flags & 2 == 0,
        chunk_len: usize::from(h.flags >> 2) << 10,
        max_len: crate::elf_core::FIND_MAX,
    };
    match find_vmcoreinfo_with(&ram, &opts) {
        Ok(Some(found)) => check_found(&ram, &hints, &found),
        Ok(None) => {}
        Err(e) => sink(&e),
    }
}
