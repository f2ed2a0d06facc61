//! Target `pgtable_aarch64`: TTBR1 walks with every granule (4, 16, 64 KiB), any
//! T1SZ, FEAT_LPA, FEAT_LPA2 (DS, five levels) and TBI1, uncached and through a [`TranslationCache`], over raw bytes
//! or a mutated synthetic guest.

use arbitrary::Unstructured;
use mapwalk_core::arch::aarch64::Aarch64Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelView};
use mapwalk_core::{Pa, Paging, Ram, TranslationCache};

use crate::{
    check_translation, check_view_read, guest, pick_va, sink, Enc, GuestKind, Mutated, Res,
    A64_KINDS, RAW_VAS,
};

/// Addresses translated per input.
pub const VAS: usize = 4;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest (4, 16 or 64 KiB granule; LPA2 with 4 or 16 KiB).
    pub guest: u8,
    /// Raw: TTBR1_EL1. Synthetic: XORed into the guest's.
    pub ttbr1: u64,
    /// Raw: TCR_EL1. Synthetic: XORed into the guest's.
    pub tcr: u64,
    /// Raw: TTBR1's base address is an offset into the RAM rather than an address.
    pub ttbr1_rel: bool,
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
            ttbr1: u.arbitrary()?,
            tcr: u.arbitrary()?,
            ttbr1_rel: u.arbitrary()?,
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
            .u64(self.ttbr1)
            .u64(self.tcr)
            .bool(self.ttbr1_rel)
            .u64(self.base);
        for &(pick, delta, absolute) in &self.vas {
            e.u8(pick).u32(delta).u64(absolute);
        }
        e.u16(self.read_len);
    }
}

fn paging(ttbr1: u64, tcr: u64) -> Option<Paging> {
    match Aarch64Paging::new(ttbr1, tcr) {
        Ok(p) => {
            // The accessors are total.
            std::hint::black_box((
                p.asid(),
                p.levels(),
                p.start_level(),
                p.va_bits(),
                p.first_address(),
                p.granule_shift(),
                p.lpa(),
                p.lpa2(),
                p.pa_52_bits(),
            ));
            Some(Paging::Aarch64(p))
        }
        Err(e) => {
            sink(&e);
            None
        }
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
        let g = guest(GuestKind::pick(&A64_KINDS, h.guest));
        let Paging::Aarch64(p) = g.g.paging else {
            unreachable!("an aarch64 guest")
        };
        let Some(paging) = paging(p.ttbr1() ^ h.ttbr1, p.tcr() ^ h.tcr) else {
            return;
        };
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
        let ttbr1 = if h.ttbr1_rel {
            // Keep the ASID and CnP bits, move the base into the RAM.
            (h.ttbr1 & 0xffff_0000_0000_003f) | (h.base.wrapping_add(h.ttbr1 % len) & !0x3f)
        } else {
            h.ttbr1
        };
        let Some(paging) = paging(ttbr1, h.tcr) else {
            return;
        };
        let mem = Ram::new(Pa(h.base), bytes);
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
