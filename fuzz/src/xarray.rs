//! Target `xarray`: [`XaWalk`] and [`xa_load`] over arbitrary nodes (raw RAM behind a
//! direct map) or over a synthetic guest's mutated `map_idr`.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::XarrayLayout;
use mapwalk_core::walk::xarray::{xa_load, XaWalk};
use mapwalk_core::{Kva, Limits, Pa, Paging, Ram};

use crate::{drain, guest, limits, sink, Enc, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Indices looked up with `xa_load` per input.
pub const LOADS: usize = 4;

/// Entries of a walk kept for the differential checks.
const KEEP: usize = 1 << 16;

/// Entries checked against `xa_load` one by one.
const CHECKED: usize = 64;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// `xa_head`, `xa_node.shift`, `xa_node.slots` offsets. Raw: the offsets.
    /// Synthetic: XORed into the guest's.
    pub layout: [u16; 3],
    /// Raw: the `xa_head` value. Synthetic: XORed into the one read from `map_idr`.
    pub head: u64,
    /// Raw: `head` is an offset into the RAM, made a node pointer.
    pub head_rel: bool,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Indices to look up.
    pub loads: [u64; LOADS],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, Limits)> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            layout: [u.arbitrary()?, u.arbitrary()?, u.arbitrary()?],
            head: u.arbitrary()?,
            head_rel: u.arbitrary()?,
            ..Self::default()
        };
        let raw: [u8; 8] = u.arbitrary()?;
        h.limits = raw;
        let limits = limits(&mut Unstructured::new(&raw))?;
        for l in &mut h.loads {
            *l = u.arbitrary()?;
        }
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.layout {
            e.u16(o);
        }
        e.u64(self.head).bool(self.head_rel).bytes(&self.limits);
        for &l in &self.loads {
            e.u64(l);
        }
        e.u16(self.base_page).u64(self.cr3);
    }
}

/// Walks the xarray at `head` to its end and checks it against `xa_load`.
pub fn check<K: KernelRead + ?Sized>(mem: &K, layout: XarrayLayout, head: u64, loads: &[u64]) {
    let mut walk = XaWalk::new(mem, layout, head);
    let (entries, err) = drain(&mut walk, KEEP, true);
    std::hint::black_box(walk.nodes_visited());
    sink(&format_args!("{walk:?}"));
    for e in entries.iter().take(CHECKED) {
        let loaded = xa_load(mem, &layout, head, e.index);
        assert_eq!(
            loaded,
            Ok(Some(e.entry)),
            "xa_load({:#x}) disagrees with the walk",
            e.index
        );
    }
    for (i, &index) in loads.iter().enumerate() {
        let loaded = xa_load(mem, &layout, head, index);
        if let Err(e) = &loaded {
            sink(e);
        }
        if err.is_none() && entries.len() < KEEP {
            // A complete walk and a lookup agree on every index the walk yielded. At
            // other indices a lookup may find a multi-index entry (a non-node entry in a
            // node of shift > 0 covers `1 << shift` indices; the walk yields it once, at
            // the first), which the walk must then have yielded at a lower index.
            let exact = entries.iter().find(|e| e.index == index).map(|e| e.entry);
            match (exact, loaded) {
                (Some(e), l) => assert_eq!(l, Ok(Some(e)), "xa_load({index:#x}) disagrees"),
                (None, Ok(Some(x))) => assert!(
                    entries.iter().any(|e| e.entry == x && e.index < index),
                    "xa_load({index:#x}) found {x:#x}, which a complete walk never yielded"
                ),
                (None, _) => {}
            }
        }
        // And one index the walk did yield, picked by the input.
        if let Some(e) = entries.get((index as usize).wrapping_add(i) % entries.len().max(1)) {
            assert_eq!(xa_load(mem, &layout, head, e.index), Ok(Some(e.entry)));
        }
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let base = g.g.layout.xarray;
        let layout = XarrayLayout {
            xa_head: base.xa_head ^ u32::from(h.layout[0]),
            node_shift: base.node_shift ^ u32::from(h.layout[1]),
            node_slots: base.node_slots ^ u32::from(h.layout[2]),
        };
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        let xa = Kva(g.g.map_idr.0 + u64::from(g.g.layout.idr.idr_rt));
        match XaWalk::from_xarray(&view, layout, xa) {
            Ok(mut w) => {
                drain(&mut w, 0, true);
            }
            Err(e) => sink(&e),
        }
        let Ok(head) = view.read_kernel_u64(Kva(xa.0.wrapping_add(u64::from(layout.xa_head))))
        else {
            return;
        };
        check(&view, layout, head ^ h.head, &h.loads);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let head = if h.head_rel {
            (RAW_DIRECT_MAP + base + h.head % len.max(1)) & !3 | 2
        } else {
            h.head
        };
        let layout = XarrayLayout {
            xa_head: u32::from(h.layout[0]),
            node_shift: u32::from(h.layout[1]),
            node_slots: u32::from(h.layout[2]),
        };
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        check(&view, layout, head, &h.loads);
    }
}
