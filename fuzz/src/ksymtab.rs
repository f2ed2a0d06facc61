//! Target `ksymtab`: [`Ksymtab::read`] of the kernel's own symbol table from guest
//! memory: the input after a small header is a kernel image (loaded at physical 0,
//! mapped at `__START_KERNEL_map`), the header says where in it the table's parts are.
//!
//! Checks: a table that reads holds as many symbols as `kallsyms_num_syms` says, at
//! most [`MAX_SYMS`], each with a type letter and a name of 1 to `KSYM_NAME_LEN` - 1
//! bytes (names that are UTF-8), in index order; [`Ksymtab::find`] of the first names
//! gives the symbol the documented preference picks (the first global one of that
//! name, else the first); the names span at most [`MAX_NAMES_BYTES`]. Errors are
//! formatted.

use arbitrary::Unstructured;
use mapwalk::describe::ksymtab::{
    Ksymtab, KsymtabLocation, KSYM_NAME_LEN, MAX_NAMES_BYTES, MAX_SYMS,
};
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView, X86_START_KERNEL_MAP};
use mapwalk_core::{Kva, Pa, Paging, Ram};

use crate::{sink, Enc, Res};

/// Names checked against [`Ksymtab::find`] per input.
const FIND: usize = 32;

/// The fixed part of an input; the kernel image follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Offsets in the image of `kallsyms_num_syms`, `kallsyms_names`,
    /// `kallsyms_token_table`, `kallsyms_token_index`, `kallsyms_offsets` and
    /// `kallsyms_relative_base`.
    pub offsets: [u32; 6],
    /// Bit 0: there is a `kallsyms_relative_base`.
    pub flags: u8,
}

impl Header {
    /// Decodes the header (25 bytes).
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        let mut h = Self::default();
        for o in &mut h.offsets {
            *o = u.arbitrary()?;
        }
        h.flags = u.arbitrary()?;
        Ok(h)
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        for &o in &self.offsets {
            e.u32(o);
        }
        e.u8(self.flags);
    }

    /// The header of a table at the start of the image, as `loc` places it.
    pub fn of(loc: &KsymtabLocation) -> Self {
        let off = |k: Kva| u32::try_from(k.0 - X86_START_KERNEL_MAP).unwrap();
        Self {
            offsets: [
                off(loc.num_syms),
                off(loc.names),
                off(loc.token_table),
                off(loc.token_index),
                off(loc.offsets),
                loc.relative_base.map_or(0, off),
            ],
            flags: u8::from(loc.relative_base.is_some()),
        }
    }

    /// Where the header puts the table.
    pub fn location(&self) -> KsymtabLocation {
        let kva = |o: u32| Kva(X86_START_KERNEL_MAP.wrapping_add(u64::from(o)));
        let [num_syms, names, token_table, token_index, offsets, base] = self.offsets;
        KsymtabLocation {
            names: kva(names),
            num_syms: kva(num_syms),
            token_table: kva(token_table),
            token_index: kva(token_index),
            offsets: kva(offsets),
            relative_base: (self.flags & 1 != 0).then(|| kva(base)),
        }
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = Header::decode(&mut u) else {
        return;
    };
    let image = u.take_rest();
    let addrs = KernelAddrs {
        direct_map: None,
        ..KernelAddrs::x86_64(0, 0, 0)
    };
    let view = KernelView::new(
        Ram::new(Pa(0), image),
        Paging::X86_64(X86Paging::new(0, false)),
        addrs,
    );
    let loc = h.location();
    let table = match Ksymtab::read(&view, &loc) {
        Ok(t) => t,
        Err(e) => {
            sink(&e);
            return;
        }
    };
    // Through the same view: an offset past 2 GiB wraps below the kernel map, where
    // the image's own bytes serve as page tables.
    let count = view
        .read_kernel_u32(loc.num_syms)
        .expect("the count was read");
    assert!((1..=MAX_SYMS).contains(&count));
    assert_eq!(table.len(), count as usize);
    assert!(table.names_len() <= MAX_NAMES_BYTES);
    assert_eq!(table.location(), loc);
    let entries: Vec<_> = table.iter().collect();
    assert_eq!(entries.len(), table.len());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.index as usize, i);
        let len = e.name.len();
        // Bytes that are not UTF-8 grow when replaced; a name of ASCII does not.
        if e.name.is_ascii() {
            assert!((1..KSYM_NAME_LEN).contains(&len), "name of {len} bytes");
        }
    }
    let names: Vec<&str> = entries.iter().take(FIND).map(|e| e.name.as_str()).collect();
    let found = table.find(&names);
    for (name, got) in names.iter().zip(&found) {
        if name.contains('\u{fffd}') {
            continue;
        }
        let same = || entries.iter().filter(|e| e.name == *name);
        let want = same().find(|e| e.is_global()).or_else(|| same().next());
        assert_eq!(got.as_ref(), want, "find({name:?})");
    }
    sink(&format_args!("{table:?}"));
}
