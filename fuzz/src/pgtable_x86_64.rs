//! Target `pgtable_x86_64`: 4- and 5-level walks, uncached and through a
//! [`TranslationCache`], over raw bytes or a mutated synthetic guest.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelView};
use mapwalk_core::{Pa, Paging, Ram, TranslationCache};

use crate::{
    check_translation, check_view_read, guest, pick_va, Enc, GuestKind, Mutated, Res, RAW_VAS,
    X86_KINDS,
};

/// Addresses translated per input.
pub const VAS: usize = 4;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest (4- or 5-level).
    pub guest: u8,
    /// Raw: 5-level paging. Synthetic: walk with the other level count.
    pub five_level: bool,
    /// Raw: CR3. Synthetic: XORed into the guest's CR3.
    pub cr3: u64,
    /// Raw: CR3 is an offset into the RAM rather than an address.
    pub cr3_rel: bool,
    /// Raw: the physical address of the first byte of RAM.
    pub base: u64,
    /// Addresses: `(pick, signed delta, absolute)` for [`pick_va`].
    pub vas: [(u8, u32, u64); VAS],
    /// The length of a kernel read at the first address ([`check_view_read`]).
    pub read_len: u16,
}

impl Header {
    /// Decodes the header.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            five_level: u.arbitrary()?,
            cr3: u.arbitrary()?,
            cr3_rel: u.arbitrary()?,
            base: u.arbitrary()?,
            vas: Default::default(),
            read_len: 0,
        };
        for va in &mut h.vas {
            *va = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
        }
        h.read_len = u.arbitrary()?;
        Ok(h)
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode)
            .u8(self.guest)
            .bool(self.five_level)
            .u64(self.cr3)
            .bool(self.cr3_rel)
            .u64(self.base);
        for &(pick, delta, absolute) in &self.vas {
            e.u8(pick).u32(delta).u64(absolute);
        }
        e.u16(self.read_len);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = Header::decode(&mut u) else {
        return;
    };
    let cache = Box::new(TranslationCache::new());
    if h.mode % 2 == 0 {
        let g = guest(GuestKind::pick(&X86_KINDS, h.guest));
        let Paging::X86_64(p) = g.g.paging else {
            unreachable!("an x86_64 guest")
        };
        let paging = Paging::X86_64(X86Paging::new(
            p.root().0 ^ h.cr3,
            p.five_level() ^ h.five_level,
        ));
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        for &(pick, delta, absolute) in &h.vas {
            check_translation(
                &mem,
                &paging,
                &cache,
                pick_va(&g.vas, pick, delta, absolute),
            );
        }
        let (pick, delta, absolute) = h.vas[0];
        let view = KernelView::new(mem, paging, g.g.addrs);
        check_view_read(
            &view,
            pick_va(&g.vas, pick, delta, absolute),
            usize::from(h.read_len),
        );
    } else {
        let bytes = u.take_rest();
        let len = (bytes.len() as u64).max(1);
        let cr3 = if h.cr3_rel {
            h.base.wrapping_add(h.cr3 % len)
        } else {
            h.cr3
        };
        let mem = Ram::new(Pa(h.base), bytes);
        let paging = Paging::X86_64(X86Paging::new(cr3, h.five_level));
        for &(pick, delta, absolute) in &h.vas {
            check_translation(
                &mem,
                &paging,
                &cache,
                pick_va(&RAW_VAS, pick, delta, absolute),
            );
        }
        // No linear maps: every page of the read is walked.
        let (pick, delta, absolute) = h.vas[0];
        let view = KernelView::new(mem, paging, KernelAddrs::default());
        check_view_read(
            &view,
            pick_va(&RAW_VAS, pick, delta, absolute),
            usize::from(h.read_len),
        );
    }
}
