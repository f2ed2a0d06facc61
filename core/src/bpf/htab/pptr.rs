//! Where a per-CPU hash map's elements keep their `__percpu` pointers.

use super::HtabMap;
use crate::addr::{align_up, low_mask, Kva};
use crate::bpf::percpu::{CpuCopy, PerCpuOffsets};
use crate::bpf::Bpf;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::PPTR_PROBE_ELEMS;

/// Where a PERCPU_HASH or LRU_PERCPU_HASH element keeps its `__percpu` pointer.
///
/// Older kernels (6.1 as Debian ships it) store it right after the key, at
/// `key + key_size`, unaligned when `key_size` is not a multiple of 8; upstream commit
/// 11ba7ce076e5 (2025, also in stable branches) moved it to `key + round_up(key_size,
/// 8)`. Neither BTF nor the version number settles which a kernel does, so
/// [`Bpf::percpu_htab`] decides per map from the data (see [`PptrEvidence`]) unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PptrPlacement {
    /// `key + key_size` (older kernels).
    KeySize,
    /// `key + round_up(key_size, 8)` (newer kernels).
    Aligned,
}

/// Why [`Bpf::percpu_htab`] chose a [`PptrPlacement`].
///
/// The rule: for each of the first [`PPTR_PROBE_ELEMS`] elements, a candidate pointer is
/// *plausible* when it is non-zero, 8-byte aligned, and the first and last byte of its
/// per-CPU copy translate for every possible CPU. A placement under which two probed
/// elements' per-CPU objects (`round_up(value_size, 8)` bytes each) would overlap is
/// plausible in none: real allocations never overlap (this unmasks a pointer read one
/// to seven bytes too far on, whose value is the real one shifted right by whole
/// bytes). Then a placement plausible in some element
/// where the other is not wins, unless the other also wins somewhere (then the elements
/// disagree: [`Error::Corrupt`]). When both are plausible in every element that has a
/// plausible one, the pointer at `key + key_size` may be the newer placement's pointer
/// shifted over the key's padding: if its low `round_up(key_size, 8) - key_size` bytes
/// are zero in all of them (padding, where a real pointer would have address bits), the
/// newer placement wins; otherwise [`Error::Ambiguous`], and the caller must force one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PptrEvidence {
    /// `key_size` is a multiple of 8: both placements are the same bytes.
    KeyAligned,
    /// The caller chose.
    Forced,
    /// In `elements` of the `probed` elements only the chosen placement was plausible
    /// (and in none only the other).
    Exclusive {
        /// Elements that voted for the placement alone.
        elements: u32,
        /// Elements looked at.
        probed: u32,
    },
    /// Both placements were plausible in `elements` elements, and the pointer at
    /// `key + key_size` had zero padding bytes in all of them.
    PaddingTieBreak {
        /// Elements where both were plausible.
        elements: u32,
    },
    /// No element had a plausible pointer at either placement (an empty map, or one
    /// whose per-CPU copies cannot be read): the newer placement is assumed, and reading
    /// any element's copies will fail on its own.
    NoEvidence {
        /// Elements looked at.
        probed: u32,
    },
}

/// The placement of a per-CPU hash map's `__percpu` pointers, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PptrDecision {
    /// The placement.
    pub placement: PptrPlacement,
    /// Why.
    pub evidence: PptrEvidence,
}

/// What the probe saw: elements where only one placement, or both, were plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Probe {
    probed: u32,
    only_key_size: u32,
    only_aligned: u32,
    both: u32,
    /// Whether the pointer at `key + key_size` had zero padding bytes in every element
    /// where both were plausible.
    both_padding_zero: bool,
}

impl Probe {
    /// The decision the [`PptrEvidence`] rule draws from what was seen.
    fn decide(&self, map: Kva) -> Result<PptrDecision> {
        let decision = |placement, evidence| {
            Ok(PptrDecision {
                placement,
                evidence,
            })
        };
        match (self.only_key_size, self.only_aligned) {
            (0, 0) => {}
            (a, 0) => {
                return decision(
                    PptrPlacement::KeySize,
                    PptrEvidence::Exclusive {
                        elements: a,
                        probed: self.probed,
                    },
                )
            }
            (0, b) => {
                return decision(
                    PptrPlacement::Aligned,
                    PptrEvidence::Exclusive {
                        elements: b,
                        probed: self.probed,
                    },
                )
            }
            (a, b) => {
                return Err(Error::Corrupt {
                    what: "per-CPU pointer placement (elements disagree: key_size votes << 32 \
                           | aligned votes)",
                    at: map,
                    value: (u64::from(a) << 32) | u64::from(b),
                })
            }
        }
        if self.both == 0 {
            return decision(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence {
                    probed: self.probed,
                },
            );
        }
        if self.both_padding_zero {
            return decision(
                PptrPlacement::Aligned,
                PptrEvidence::PaddingTieBreak {
                    elements: self.both,
                },
            );
        }
        Err(Error::Ambiguous {
            what: "the per-CPU pointer placement of a hash map (force one)",
            at: map,
        })
    }
}

/// Elements the probe looks at ([`PPTR_PROBE_ELEMS`]).
const PROBE_SLOTS: usize = PPTR_PROBE_ELEMS;

/// Whether objects of `stride` bytes at each of `starts` (at most [`PROBE_SLOTS`]) are
/// pairwise disjoint.
fn disjoint(starts: impl Iterator<Item = u64>, stride: u64) -> bool {
    let mut sorted = [0u64; PROBE_SLOTS];
    let mut n = 0usize;
    for (slot, s) in sorted.iter_mut().zip(starts) {
        *slot = s;
        n = n.saturating_add(1);
    }
    let sorted = sorted.get_mut(..n).unwrap_or_default();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .all(|w| matches!(w, [x, y] if y.wrapping_sub(*x) >= stride))
}

/// Whether `pptr` can be a `__percpu` pointer to `size` bytes: non-zero, aligned, and
/// the first and last byte of every possible CPU's copy translate.
fn plausible<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
    mem: &K,
    offsets: &PerCpuOffsets<B>,
    pptr: u64,
    size: u32,
) -> bool {
    if pptr == 0 || pptr & 7 != 0 {
        return false;
    }
    let last = u64::from(size.saturating_sub(1));
    (0..offsets.possible()).all(|cpu| match offsets.copy_kva(pptr, cpu) {
        CpuCopy::NoSuchCpu => true,
        CpuCopy::Present(va) => {
            va.checked_add(last)
                .is_some_and(|end| mem.kva_to_pa(end).is_ok())
                && mem.kva_to_pa(va).is_ok()
        }
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    pub(super) fn probe_pptr<B: AsRef<[u64]>>(
        &self,
        h: &HtabMap,
        offsets: &PerCpuOffsets<B>,
    ) -> Result<PptrDecision> {
        let ks = h.info.key_size;
        let size = h.info.value_size;
        let pad = align_up(u64::from(ks), 8)
            .unwrap_or(0)
            .saturating_sub(u64::from(ks));
        let pad_mask = low_mask(u32::try_from(pad.saturating_mul(8)).unwrap_or(64));
        // Per element: the two candidates and whether each is plausible on its own.
        let mut seen = [(0u64, 0u64, false, false); PROBE_SLOTS];
        let mut n = 0usize;
        let mut walk = h.walk_inner(self.mem, true);
        while let Some(slot) = seen.get_mut(n) {
            let entry = match walk.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) if walk.is_finished() => break,
                Some(Err(_)) => continue,
            };
            let Ok((a, b)) = walk.candidates(&entry) else {
                continue;
            };
            *slot = (
                a,
                b,
                plausible(self.mem, offsets, a, size),
                plausible(self.mem, offsets, b, size),
            );
            n = n.saturating_add(1);
        }
        let seen = seen.get(..n).unwrap_or_default();
        // Two elements' per-CPU objects never overlap: a placement under which they
        // would is wrong for every element.
        let stride = align_up(u64::from(size), 8).unwrap_or(u64::MAX);
        let a_ok = disjoint(seen.iter().filter(|e| e.2).map(|e| e.0), stride);
        let b_ok = disjoint(seen.iter().filter(|e| e.3).map(|e| e.1), stride);
        let mut p = Probe {
            probed: u32::try_from(n).unwrap_or(u32::MAX),
            both_padding_zero: true,
            ..Probe::default()
        };
        for &(a, _, pa, pb) in seen {
            match (pa && a_ok, pb && b_ok) {
                (true, false) => p.only_key_size = p.only_key_size.saturating_add(1),
                (false, true) => p.only_aligned = p.only_aligned.saturating_add(1),
                (true, true) => {
                    p.both = p.both.saturating_add(1);
                    if a & pad_mask != 0 {
                        p.both_padding_zero = false;
                    }
                }
                (false, false) => {}
            }
        }
        p.decide(h.info.kva)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::bpf::htab::testutil::*;
    use crate::bpf::htab::*;
    use crate::bpf::MapType;
    use crate::synth::{MapSpec, SynthArch};

    #[test]
    fn both_pointer_placements_are_detected_for_6_and_12_byte_keys() {
        for arch in ARCHES {
            for key_size in [6, 12] {
                for placement in [PptrPlacement::KeySize, PptrPlacement::Aligned] {
                    for t in [MapType::PERCPU_HASH, MapType::LRU_PERCPU_HASH] {
                        let spec = percpu_spec(9, t, key_size, 7, placement);
                        let g = build(arch, CPUS, vec![spec]);
                        let view = g.view();
                        let h = open_percpu(&g, &view, 9, None).unwrap();
                        let what = (arch, key_size, placement, t);
                        // On x86_64 the pointer at key + 6 of the newer placement is the
                        // real (small, zero-based) one shifted over two zero padding
                        // bytes, and lands in RAM too: the padding rule decides.
                        let x86 = matches!(arch, SynthArch::X86_64 { .. });
                        let evidence =
                            if x86 && key_size == 6 && placement == PptrPlacement::Aligned {
                                PptrEvidence::PaddingTieBreak { elements: 7 }
                            } else {
                                PptrEvidence::Exclusive {
                                    elements: 7,
                                    probed: 7,
                                }
                            };
                        assert_eq!(
                            h.pptr_decision(),
                            Some(PptrDecision {
                                placement,
                                evidence
                            }),
                            "{what:?}"
                        );
                        assert_eq!(h.elem_size(), 48 + key_size.next_multiple_of(8) + 8);
                        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
                        assert!(all.errors.is_empty() && all.end.is_none(), "{what:?}");
                        assert_eq!(all.entries, percpu_expect(key_size, 7), "{what:?}");
                        // The walk hands out the pointers the builder wrote.
                        let mut w = h.walk(&view);
                        let e = w.next().unwrap().unwrap();
                        let built = &g.htabs[&9].elems[0];
                        assert_eq!(e.value, HtabValue::PerCpu(built.pptr.unwrap()));
                        assert_eq!(w.value(), None);
                    }
                }
            }
        }
    }

    #[test]
    fn aligned_keys_need_no_probe_and_placement_can_be_forced() {
        let g = build(
            SynthArch::Aarch64 { granule_shift: 12 },
            CPUS,
            vec![
                percpu_spec(1, MapType::PERCPU_HASH, 8, 5, PptrPlacement::KeySize),
                percpu_spec(2, MapType::PERCPU_HASH, 6, 5, PptrPlacement::Aligned),
            ],
        );
        let view = g.view();
        let h = open_percpu(&g, &view, 1, None).unwrap();
        assert_eq!(
            h.pptr_decision().unwrap().evidence,
            PptrEvidence::KeyAligned
        );
        assert_eq!(
            h.percpu_entries(&view, &g.offsets()).unwrap().entries,
            percpu_expect(8, 5)
        );
        let forced = open_percpu(&g, &view, 2, Some(PptrPlacement::Aligned)).unwrap();
        assert_eq!(
            forced.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::Aligned,
                evidence: PptrEvidence::Forced
            })
        );
        assert_eq!(
            forced.percpu_entries(&view, &g.offsets()).unwrap().entries,
            percpu_expect(6, 5)
        );
        // Forced wrong: no element reads as data.
        let wrong = open_percpu(&g, &view, 2, Some(PptrPlacement::KeySize)).unwrap();
        let all = wrong.percpu_entries(&view, &g.offsets()).unwrap();
        assert!(all.entries.is_empty());
        assert_eq!(all.errors.len(), 5);
    }

    #[test]
    fn overlapping_objects_unmask_a_pointer_read_too_far_on() {
        // 7-byte keys, 2 KiB values whose per-CPU objects start 2 KiB-aligned (a
        // 0x700-byte array takes the first chunk up to 0x800). At key + 8 the probe
        // reads the real pointer shifted right by a byte: aligned, small, in RAM for
        // every CPU, and the real one has a zero low byte, like padding. Only the
        // objects it would designate, 8 bytes apart for 2 KiB values, give it away.
        let mut spec = MapSpec::new(2, MapType::PERCPU_HASH, "p", 7, 2048, 8)
            .pptr_placement(PptrPlacement::KeySize);
        for i in 0..8 {
            let values = (0..CPUS).map(|c| pv(i, c, 2048)).collect();
            spec = spec.percpu_entry_in_bucket(i, &key(i, 7), values);
        }
        let g = build(
            SynthArch::X86_64 { five_level: false },
            CPUS,
            vec![
                MapSpec::new(1, MapType::PERCPU_ARRAY, "a", 4, 0x700, 1),
                spec,
            ],
        );
        let pptrs: Vec<u64> = g.htabs[&2].elems.iter().map(|e| e.pptr.unwrap()).collect();
        assert!(pptrs.iter().all(|p| p % 2048 == 0), "{pptrs:x?}");
        let view = g.view();
        let h = open_percpu(&g, &view, 2, None).unwrap();
        assert_eq!(
            h.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::KeySize,
                evidence: PptrEvidence::Exclusive {
                    elements: 8,
                    probed: 8
                }
            })
        );
        assert!(disjoint([0, 16, 8].into_iter(), 8));
        assert!(!disjoint([0, 16, 7].into_iter(), 8));
        assert!(!disjoint([5, 5].into_iter(), 1));
        assert!(disjoint(core::iter::empty(), 8));
    }

    #[test]
    fn the_placement_rule() {
        let map = Kva(0xffff_8880_0000_1000);
        let p = |a, b, both, pad| Probe {
            probed: 8,
            only_key_size: a,
            only_aligned: b,
            both,
            both_padding_zero: pad,
        };
        let d = |placement, evidence| {
            Ok(PptrDecision {
                placement,
                evidence,
            })
        };
        assert_eq!(
            p(3, 0, 5, false).decide(map),
            d(
                PptrPlacement::KeySize,
                PptrEvidence::Exclusive {
                    elements: 3,
                    probed: 8
                }
            )
        );
        assert_eq!(
            p(0, 1, 0, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::Exclusive {
                    elements: 1,
                    probed: 8
                }
            )
        );
        assert_eq!(
            p(2, 1, 0, true).decide(map),
            Err(Error::Corrupt {
                what: "per-CPU pointer placement (elements disagree: key_size votes << 32 | \
                       aligned votes)",
                at: map,
                value: (2 << 32) | 1
            })
        );
        assert_eq!(
            p(0, 0, 4, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::PaddingTieBreak { elements: 4 }
            )
        );
        assert_eq!(
            p(0, 0, 4, false).decide(map),
            Err(Error::Ambiguous {
                what: "the per-CPU pointer placement of a hash map (force one)",
                at: map
            })
        );
        assert_eq!(
            p(0, 0, 0, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence { probed: 8 }
            )
        );
    }
}
