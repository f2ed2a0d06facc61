//! Opening a hash map: reading `bpf_htab` and checking it.

use super::{is_kernel_ptr, Geometry, HtabMap, PptrDecision, PptrEvidence, PptrPlacement, Values};
use crate::addr::{align_up, Kva};
use crate::bpf::percpu::{check_percpu_value_size, PerCpuOffsets};
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Reads `bpf_htab` and checks it against `map`.
    fn open_htab(&self, map: &MapInfo, values: Values) -> Result<HtabMap> {
        let layout = self
            .layout
            .htab
            .ok_or(Error::LayoutMissing { what: "bpf_htab" })?;
        if layout.bucket_size < 8 || layout.bucket_head.saturating_add(8) > layout.bucket_size {
            return Err(Error::LayoutMissing {
                what: "struct bucket (its head does not fit its stride)",
            });
        }
        if map.key_size == 0 || map.value_size == 0 || map.max_entries == 0 {
            return Err(Error::Corrupt {
                what: "hash map key_size, value_size or max_entries (zero)",
                at: map.kva,
                value: 0,
            });
        }
        let percpu = matches!(values, Values::PerCpu(_));
        if percpu {
            check_percpu_value_size(map.value_size)?;
        }
        let field = |off: u32| {
            map.kva
                .checked_add(u64::from(off))
                .ok_or(Error::AddrOverflow {
                    addr: map.kva.0,
                    len: u64::from(off),
                })
        };
        let n_at = field(layout.n_buckets)?;
        let n_buckets = self.mem.read_kernel_u32(n_at)?;
        if !n_buckets.is_power_of_two() {
            return Err(Error::Corrupt {
                what: "bpf_htab.n_buckets (not a power of two)",
                at: n_at,
                value: u64::from(n_buckets),
            });
        }
        if u64::from(map.max_entries).checked_next_power_of_two() != Some(u64::from(n_buckets)) {
            return Err(Error::Corrupt {
                what: "bpf_htab.n_buckets (not roundup_pow_of_two(max_entries))",
                at: n_at,
                value: u64::from(n_buckets),
            });
        }
        let limit = self.mem.limits().htab_buckets;
        if n_buckets > limit {
            return Err(Error::LimitExceeded {
                what: "hash map buckets",
                limit: u64::from(limit),
                at: u64::from(n_buckets),
            });
        }
        let es_at = field(layout.elem_size)?;
        let elem_size = self.mem.read_kernel_u32(es_at)?;
        let round8 = |v: u32| align_up(u64::from(v), 8).unwrap_or(u64::MAX);
        let tail = if percpu { 8 } else { round8(map.value_size) };
        let expected = u64::from(layout.elem_key)
            .saturating_add(round8(map.key_size))
            .saturating_add(tail);
        if u64::from(elem_size) != expected {
            return Err(Error::Corrupt {
                what: "bpf_htab.elem_size (not key offset + round_up(key_size, 8) + value or \
                       pointer)",
                at: es_at,
                value: u64::from(elem_size),
            });
        }
        let b_at = field(layout.buckets)?;
        let buckets = self.mem.read_kernel_u64(b_at)?;
        if !is_kernel_ptr(buckets) {
            return Err(Error::Corrupt {
                what: "bpf_htab.buckets (not a kernel pointer)",
                at: b_at,
                value: buckets,
            });
        }
        let span = u64::from(n_buckets).saturating_mul(u64::from(layout.bucket_size));
        Kva(buckets).checked_add(span).ok_or(Error::AddrOverflow {
            addr: buckets,
            len: span,
        })?;
        Ok(HtabMap {
            info: *map,
            layout,
            buckets: Kva(buckets),
            n_buckets,
            elem_size,
            values,
            geo: Geometry::new(&layout, map, values),
        })
    }

    /// `map` as a HASH or LRU_HASH map: reads and checks `bpf_htab` (see the
    /// [`HtabMap`]).
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for other types (the per-CPU ones go through
    /// [`percpu_htab`](Self::percpu_htab)), [`Error::LayoutMissing`] without `bpf_htab`
    /// offsets, [`Error::Corrupt`] for a zero size, a bad `n_buckets`, `elem_size` or
    /// `buckets`, [`Error::LimitExceeded`] for more buckets than
    /// [`Limits::htab_buckets`](crate::Limits), or a read error.
    pub fn htab(&self, map: &MapInfo) -> Result<HtabMap> {
        if !matches!(map.map_type, MapType::HASH | MapType::LRU_HASH) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "hash map access",
            });
        }
        self.open_htab(map, Values::Inline)
    }

    /// `map` as a PERCPU_HASH or LRU_PERCPU_HASH map: reads and checks `bpf_htab` as
    /// [`htab`](Self::htab) does, then places the elements' `__percpu` pointers: as
    /// `force` says, else from the data by the [`PptrEvidence`] rule, probing the first
    /// [`PPTR_PROBE_ELEMS`](crate::limits::PPTR_PROBE_ELEMS) elements against `offsets`.
    /// [`HtabMap::pptr_decision`] says what was decided and why.
    ///
    /// The decision holds for the map as it was probed: an empty map's is a default.
    ///
    /// ```
    /// # #[cfg(feature = "synth")]
    /// # fn main() -> Result<(), mapwalk_core::Error> {
    /// use mapwalk_core::bpf::{CpuCopy, PerCpuOffsets, PossibleCpus, PptrPlacement};
    /// use mapwalk_core::synth::{GuestBuilder, MapSpec};
    /// use mapwalk_core::{Bpf, MapType};
    ///
    /// // A 6.1-style PERCPU_HASH (pointer right after the 6-byte key), 3 possible CPUs.
    /// let mut g = GuestBuilder::x86_64(false).possible_cpus(3);
    /// g.add_map(
    ///     MapSpec::new(4, MapType::PERCPU_HASH, "pkts", 6, 8, 64)
    ///         .pptr_placement(PptrPlacement::KeySize)
    ///         .percpu_entry(
    ///             b"\x0a\0\0\x01\x00\x50",
    ///             (1..=3u64).map(|n| n.to_le_bytes().to_vec()).collect(),
    ///         ),
    /// );
    /// let guest = g.build();
    /// let view = guest.view();
    /// let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
    /// let cpus = PossibleCpus::NrCpuIds(guest.symbols.nr_cpu_ids);
    /// let offsets = PerCpuOffsets::read_vec(&view, guest.symbols.per_cpu_offset, cpus)?;
    /// let map = bpf.percpu_htab(&bpf.find_by_name("pkts")?.unwrap(), &offsets, None)?;
    /// assert_eq!(map.pptr_decision().unwrap().placement, PptrPlacement::KeySize);
    /// let all = map.percpu_entries(&view, &offsets)?;
    /// let per_cpu: Vec<u64> = all.entries[0].1.iter()
    ///     .map(|v| u64::from_le_bytes(v.as_ref().present().unwrap()[..].try_into().unwrap()))
    ///     .collect();
    /// assert_eq!(per_cpu, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "synth"))]
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// As [`htab`](Self::htab) (with a per-CPU value above
    /// [`PCPU_MIN_UNIT_SIZE`](crate::limits::PCPU_MIN_UNIT_SIZE) as
    /// [`Error::LimitExceeded`]), [`Error::Corrupt`] when the probed elements disagree,
    /// or [`Error::Ambiguous`] when the data cannot decide.
    pub fn percpu_htab<B: AsRef<[u64]>>(
        &self,
        map: &MapInfo,
        offsets: &PerCpuOffsets<B>,
        force: Option<PptrPlacement>,
    ) -> Result<HtabMap> {
        if !matches!(
            map.map_type,
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
        ) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "per-CPU hash map access",
            });
        }
        let decision = |placement, evidence| {
            Values::PerCpu(PptrDecision {
                placement,
                evidence,
            })
        };
        let aligned_key = map.key_size.checked_rem(8) == Some(0);
        let first = match force {
            Some(p) => decision(p, PptrEvidence::Forced),
            None if aligned_key => decision(PptrPlacement::Aligned, PptrEvidence::KeyAligned),
            None => decision(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence { probed: 0 },
            ),
        };
        let mut h = self.open_htab(map, first)?;
        if force.is_some() || aligned_key {
            return Ok(h);
        }
        let d = self.probe_pptr(&h, offsets)?;
        h.values = Values::PerCpu(d);
        h.geo = Geometry::new(&h.layout, &h.info, h.values);
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::bpf::htab::testutil::*;
    use crate::bpf::htab::*;
    use crate::bpf::{Bpf, MapType};
    use crate::layout::KernelLayout;
    use crate::limits::Limits;
    use crate::synth::{MapSpec, SynthArch};

    #[test]
    fn the_bucket_cap_holds_at_and_fails_past_its_limit() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![MapSpec::hash(1, "h", 4, 4, 16).entry(&[1, 2, 3, 4], &[5, 6, 7, 8])],
        );
        let at = limited(
            &g,
            Limits {
                htab_buckets: 16,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(walk_all(&open(&g, &at, 1), &at).items.len(), 1);
        let past = limited(
            &g,
            Limits {
                htab_buckets: 15,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(
            open_err(&g, &past, 1),
            Error::LimitExceeded {
                what: "hash map buckets",
                limit: 15,
                at: 16
            }
        );
    }

    #[test]
    fn bad_headers_are_refused_before_the_buckets_are_read() {
        let h = crate::synth::default_layout().htab.unwrap();
        let m = crate::synth::default_layout().bpf_map;
        let fresh = || build(SynthArch::X86_64 { five_level: false }, 2, sample());
        // The bucket pointer is garbage in every case: nothing reads it before the
        // count is checked.
        let cases: [(&[(u32, u32)], Error); 5] = [
            (
                &[(h.n_buckets, 12)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not a power of two)",
                    at: Kva(0),
                    value: 12,
                },
            ),
            (
                &[(h.n_buckets, 0)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not a power of two)",
                    at: Kva(0),
                    value: 0,
                },
            ),
            (
                &[(h.n_buckets, 1 << 31)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not roundup_pow_of_two(max_entries))",
                    at: Kva(0),
                    value: 1 << 31,
                },
            ),
            (
                &[(h.n_buckets, 1 << 31), (m.max_entries, 1 << 31)],
                Error::LimitExceeded {
                    what: "hash map buckets",
                    limit: 1 << 28,
                    at: 1 << 31,
                },
            ),
            (
                &[(h.elem_size, 64)],
                Error::Corrupt {
                    what: "bpf_htab.elem_size (not key offset + round_up(key_size, 8) + value \
                           or pointer)",
                    at: Kva(0),
                    value: 64,
                },
            ),
        ];
        for (writes, want) in cases {
            let mut g = fresh();
            for &(off, v) in writes {
                corrupt_u32(&mut g, 1, off, v);
            }
            corrupt_u32(&mut g, 1, h.buckets, 0x1234);
            corrupt_u32(&mut g, 1, h.buckets + 4, 0x1234);
            let view = g.view();
            let got = open_err(&g, &view, 1);
            let at_of = |off: u32| Kva(g.maps[0].kva.0 + u64::from(off));
            let want = match want {
                Error::Corrupt { what, value, .. } => Error::Corrupt {
                    what,
                    value,
                    at: at_of(if what.contains("elem_size") {
                        h.elem_size
                    } else {
                        h.n_buckets
                    }),
                },
                other => other,
            };
            assert_eq!(got, want);
        }
        // A bucket pointer that is not a kernel pointer, once the count is right.
        let mut g = fresh();
        corrupt_u32(&mut g, 1, h.buckets + 4, 0x1234);
        let view = g.view();
        assert!(matches!(
            open_err(&g, &view, 1),
            Error::Corrupt {
                what: "bpf_htab.buckets (not a kernel pointer)",
                ..
            }
        ));
        // A zero key size.
        let mut g = fresh();
        corrupt_u32(&mut g, 1, m.key_size, 0);
        let view = g.view();
        assert!(matches!(
            open_err(&g, &view, 1),
            Error::Corrupt { value: 0, .. }
        ));
    }

    #[test]
    fn wrong_types_and_missing_offsets_are_refused() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![
                MapSpec::array(1, "a", 4, 1),
                MapSpec::new(2, MapType::PERCPU_HASH, "p", 8, 8, 1),
                MapSpec::hash(3, "h", 4, 4, 1),
            ],
        );
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let info = |id| bpf.map_by_id(id).unwrap().unwrap();
        assert!(matches!(
            bpf.htab(&info(1)),
            Err(Error::WrongMapType { id: 1, .. })
        ));
        assert!(matches!(
            bpf.htab(&info(2)),
            Err(Error::WrongMapType { id: 2, .. })
        ));
        assert!(matches!(
            bpf.percpu_htab(&info(3), &g.offsets(), None),
            Err(Error::WrongMapType { id: 3, .. })
        ));
        let h = bpf.htab(&info(3)).unwrap();
        assert!(matches!(
            h.percpu_entries(&view, &g.offsets()),
            Err(Error::WrongMapType { .. })
        ));
        let no_htab = KernelLayout {
            htab: None,
            ..g.layout
        };
        let bpf = Bpf::new(&view, &no_htab, g.map_idr);
        assert_eq!(
            bpf.htab(&info(3)),
            Err(Error::LayoutMissing { what: "bpf_htab" })
        );
        let bad_stride = KernelLayout {
            htab: Some(HtabLayout {
                bucket_head: 12,
                ..g.layout.htab.unwrap()
            }),
            ..g.layout
        };
        let bpf = Bpf::new(&view, &bad_stride, g.map_idr);
        assert!(matches!(
            bpf.htab(&info(3)),
            Err(Error::LayoutMissing { .. })
        ));
    }

    #[test]
    fn the_per_cpu_value_cap_holds_at_and_fails_past_its_limit() {
        let limit = crate::limits::PCPU_MIN_UNIT_SIZE;
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![
                MapSpec::new(1, MapType::PERCPU_HASH, "at", 8, limit, 1)
                    .percpu_entry(&[1; 8], vec![vec![7; limit as usize]; 2]),
                MapSpec::new(2, MapType::PERCPU_HASH, "past", 8, limit - 7, 1),
                MapSpec::new(3, MapType::PERCPU_HASH, "past", 8, limit + 1, 1),
            ],
        );
        let view = g.view();
        let h = open_percpu(&g, &view, 1, None).unwrap();
        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
        assert_eq!(
            all.entries[0].1[1],
            CpuCopy::Present(vec![7; limit as usize])
        );
        open_percpu(&g, &view, 2, None).unwrap();
        assert_eq!(
            open_percpu(&g, &view, 3, None),
            Err(Error::LimitExceeded {
                what: "per-CPU value size (round_up(value_size, 8), PCPU_MIN_UNIT_SIZE)",
                limit: u64::from(limit),
                at: u64::from(limit) + 1
            })
        );
    }
}
