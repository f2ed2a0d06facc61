//! ARRAY maps: values inline in `struct bpf_array`.

use crate::addr::{align_up, Kva};
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::{KernelRead, KernelWrite};
use crate::mem::len_u64;

/// An ARRAY map, checked and ready to read: its element stride has been read from the
/// kernel and found consistent with its value size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayMap {
    info: MapInfo,
    values: Kva,
    elem_size: u32,
}

impl ArrayMap {
    /// The map's metadata.
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// The distance between two values (`round_up(value_size, 8)`).
    pub fn elem_size(&self) -> u32 {
        self.elem_size
    }

    /// The kernel address of the value of `key`.
    ///
    /// # Errors
    /// [`Error::KeyOutOfRange`] for a key at or past `max_entries`.
    pub fn value_kva(&self, key: u32) -> Result<Kva> {
        if key >= self.info.max_entries {
            return Err(Error::KeyOutOfRange {
                key,
                max_entries: self.info.max_entries,
            });
        }
        let off = u64::from(key).saturating_mul(u64::from(self.elem_size));
        self.values.checked_add(off).ok_or(Error::AddrOverflow {
            addr: self.values.0,
            len: off,
        })
    }

    /// The kernel address of `len` bytes at `offset` in the value of `key`, after
    /// checking that they lie inside the value.
    fn range_kva(&self, key: u32, offset: u64, len: u64) -> Result<Kva> {
        let size = u64::from(self.info.value_size);
        match offset.checked_add(len) {
            Some(end) if end <= size => {}
            _ => return Err(Error::OutOfBounds { offset, len, size }),
        }
        let base = self.value_kva(key)?;
        base.checked_add(offset).ok_or(Error::AddrOverflow {
            addr: base.0,
            len: offset,
        })
    }

    /// Fills `buf` with the bytes at `offset` in the value of `key`. The whole value is
    /// `offset` 0 and a buffer of `value_size` bytes.
    ///
    /// # Errors
    /// [`Error::KeyOutOfRange`], [`Error::OutOfBounds`] when the range leaves the value,
    /// or a translation or read error.
    pub fn read<K: KernelRead + ?Sized>(
        &self,
        mem: &K,
        key: u32,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let va = self.range_kva(key, offset, len_u64(buf.len()))?;
        mem.read_kernel(va, buf)
    }

    /// Writes `data` at `offset` in the value of `key`.
    ///
    /// Nothing outside the value can be written: a range that leaves it is refused.
    /// Every page is translated before the first byte is written, so a value is never
    /// half-written because of an unmapped page; an aligned write of 8 bytes or fewer
    /// lands as one store.
    ///
    /// # Errors
    /// As [`read`](Self::read), or the backend's write error.
    pub fn write<K: KernelWrite + ?Sized>(
        &self,
        mem: &K,
        key: u32,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let va = self.range_kva(key, offset, len_u64(data.len()))?;
        mem.write_kernel(va, data)
    }

    /// The whole value of `key`.
    ///
    /// # Errors
    /// As [`read`](Self::read), or [`Error::LimitExceeded`] when `value_size` is above
    /// [`crate::Limits::value_size`].
    #[cfg(any(feature = "alloc", test))]
    pub fn value<K: KernelRead + ?Sized>(&self, mem: &K, key: u32) -> Result<alloc::vec::Vec<u8>> {
        let size = u64::from(self.info.value_size);
        let limit = mem.limits().value_size;
        let n =
            usize::try_from(size)
                .ok()
                .filter(|_| size <= limit)
                .ok_or(Error::LimitExceeded {
                    what: "map value size",
                    limit,
                    at: size,
                })?;
        let mut v = alloc::vec![0u8; n];
        self.read(mem, key, 0, &mut v)?;
        Ok(v)
    }
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// `map` as an ARRAY: checks its type, key size and element stride.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a map that is not an ARRAY, [`Error::LayoutMissing`]
    /// without `bpf_array` offsets, [`Error::Corrupt`] when the stride the kernel holds
    /// is not `round_up(value_size, 8)`, or a read error.
    pub fn array(&self, map: &MapInfo) -> Result<ArrayMap> {
        if map.map_type != MapType::ARRAY {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "array access",
            });
        }
        let (elem_size, values) = self.array_geometry(map)?;
        Ok(ArrayMap {
            info: *map,
            values,
            elem_size,
        })
    }

    /// The stride and the start of the value (or `pptrs`) array of a `struct bpf_array`,
    /// after checking that the stride the kernel holds is `round_up(value_size, 8)`,
    /// that the key is 4 bytes and that the value is not empty.
    ///
    /// # Errors
    /// [`Error::LayoutMissing`] without `bpf_array` offsets, [`Error::Corrupt`], or a
    /// read error.
    pub(crate) fn array_geometry(&self, map: &MapInfo) -> Result<(u32, Kva)> {
        let layout = self
            .layout
            .array
            .ok_or(Error::LayoutMissing { what: "bpf_array" })?;
        let stride_at =
            map.kva
                .checked_add(u64::from(layout.elem_size))
                .ok_or(Error::AddrOverflow {
                    addr: map.kva.0,
                    len: u64::from(layout.elem_size),
                })?;
        let elem_size = self.mem.read_kernel_u32(stride_at)?;
        let expected = align_up(u64::from(map.value_size), 8);
        if expected != Some(u64::from(elem_size)) || map.key_size != 4 || map.value_size == 0 {
            return Err(Error::Corrupt {
                what: "bpf_array.elem_size (not round_up(value_size, 8), or key_size not 4, \
                       or value_size 0)",
                at: stride_at,
                value: u64::from(elem_size),
            });
        }
        let values = map
            .kva
            .checked_add(u64::from(layout.value))
            .ok_or(Error::AddrOverflow {
                addr: map.kva.0,
                len: u64::from(layout.value),
            })?;
        Ok((elem_size, values))
    }

    /// Reads `buf.len()` bytes at `offset` in the value of `key` of ARRAY `map`.
    ///
    /// # Errors
    /// As [`Bpf::array`] and [`ArrayMap::read`].
    pub fn read_array_value(
        &self,
        map: &MapInfo,
        key: u32,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        self.array(map)?.read(self.mem, key, offset, buf)
    }
}

impl<K: KernelWrite + ?Sized> Bpf<'_, K> {
    /// Writes `data` at `offset` in the value of `key` of ARRAY `map` (see
    /// [`ArrayMap::write`]).
    ///
    /// # Errors
    /// As [`Bpf::array`] and [`ArrayMap::write`].
    pub fn write_array_value(
        &self,
        map: &MapInfo,
        key: u32,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        self.array(map)?.write(self.mem, key, offset, data)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use super::*;
    use crate::addr::Pa;
    use crate::error::PhysErrorKind;
    use crate::kernel::KernelView;
    use crate::mem::{PhysRange, PhysRead, PhysWrite, RamCell};
    use crate::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

    fn pattern(key: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(31)
                    .wrapping_add(key.wrapping_mul(7)) as u8
            })
            .collect()
    }

    fn guest(arch: SynthArch) -> SyntheticGuest {
        let mut b = GuestBuilder::new(arch);
        b.add_map(MapSpec::array(1, "small", 12, 5).with_values(|k| pattern(k, 12)))
            .add_map(
                MapSpec::array(2, "spans", 3 * 4096 + 100, 3)
                    .vmalloc()
                    .with_values(|k| pattern(k, 3 * 4096 + 100)),
            )
            .add_map(
                MapSpec::array(3, "mm", 8192, 4)
                    .mmapable()
                    .with_values(|k| pattern(k, 8192)),
            )
            .add_map(MapSpec::new(4, MapType::HASH, "h", 4, 4, 4));
        b.build()
    }

    const ARCHES: [SynthArch; 5] = [
        SynthArch::X86_64 { five_level: false },
        SynthArch::X86_64 { five_level: true },
        SynthArch::Aarch64 { granule_shift: 12 },
        SynthArch::Aarch64 { granule_shift: 16 },
        SynthArch::Aarch64Lpa2 { granule_shift: 14 },
    ];

    #[test]
    fn reads_whole_values_and_pieces_of_every_key() {
        for arch in ARCHES {
            let g = guest(arch);
            let view = g.view();
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            for id in [1, 2, 3] {
                let info = bpf.map_by_id(id).unwrap().unwrap();
                let a = bpf.array(&info).unwrap();
                let size = info.value_size as usize;
                for key in 0..info.max_entries {
                    assert_eq!(
                        a.value(&view, key).unwrap(),
                        pattern(key, size),
                        "{arch:?} map {id} key {key}"
                    );
                    let mut piece = vec![0u8; 10];
                    a.read(&view, key, (size - 10) as u64, &mut piece).unwrap();
                    assert_eq!(piece, pattern(key, size)[size - 10..]);
                }
            }
        }
    }

    #[test]
    fn a_value_over_more_scattered_pages_than_one_batch_reads_whole() {
        let size = 70 * 4096 + 12;
        let mut b = GuestBuilder::x86_64(true);
        b.add_map(
            MapSpec::array(1, "huge", size, 1)
                .vmalloc()
                .with_values(|k| pattern(k, size as usize)),
        );
        let g = b.build();
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let a = bpf.array(&bpf.map_by_id(1).unwrap().unwrap()).unwrap();
        assert_eq!(a.value(&view, 0).unwrap(), pattern(0, size as usize));
        let mut piece = vec![0u8; 40 * 4096];
        a.read(&view, 0, 4096 * 20 + 7, &mut piece).unwrap();
        assert_eq!(
            piece[..],
            pattern(0, size as usize)[4096 * 20 + 7..4096 * 60 + 7]
        );
    }

    #[test]
    fn mmapable_values_are_page_aligned() {
        let g = guest(SynthArch::X86_64 { five_level: false });
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let a = bpf.array(&bpf.map_by_id(3).unwrap().unwrap()).unwrap();
        assert_eq!(a.value_kva(0).unwrap().0 & 0xfff, 0);
        assert_eq!(a.value_kva(1).unwrap().0 - a.value_kva(0).unwrap().0, 8192);
        assert_eq!(a.elem_size(), 8192);
    }

    #[test]
    fn reads_outside_the_value_are_refused() {
        let g = guest(SynthArch::X86_64 { five_level: false });
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let info = bpf.map_by_id(1).unwrap().unwrap();
        let a = bpf.array(&info).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            a.read(&view, 5, 0, &mut buf),
            Err(Error::KeyOutOfRange {
                key: 5,
                max_entries: 5
            })
        );
        assert_eq!(
            a.read(&view, 0, 9, &mut buf),
            Err(Error::OutOfBounds {
                offset: 9,
                len: 4,
                size: 12
            })
        );
        assert_eq!(
            a.read(&view, 0, u64::MAX, &mut buf),
            Err(Error::OutOfBounds {
                offset: u64::MAX,
                len: 4,
                size: 12
            })
        );
        a.read(&view, 0, 8, &mut buf).unwrap();
        let hash = bpf.map_by_id(4).unwrap().unwrap();
        assert_eq!(
            bpf.array(&hash),
            Err(Error::WrongMapType {
                id: 4,
                map_type: MapType::HASH,
                op: "array access"
            })
        );
    }

    #[test]
    fn the_value_size_cap_holds_at_and_fails_past_its_limit() {
        let g = guest(SynthArch::X86_64 { five_level: false });
        let size = 3 * 4096 + 100;
        let at = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(crate::Limits {
            value_size: size,
            ..crate::Limits::DEFAULT
        });
        let bpf = Bpf::new(&at, &g.layout, g.map_idr);
        let a = bpf.array(&bpf.map_by_id(2).unwrap().unwrap()).unwrap();
        assert_eq!(a.value(&at, 0).unwrap().len() as u64, size);
        let below = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(crate::Limits {
            value_size: size - 1,
            ..crate::Limits::DEFAULT
        });
        assert_eq!(
            a.value(&below, 0),
            Err(Error::LimitExceeded {
                what: "map value size",
                limit: size - 1,
                at: size
            })
        );
    }

    #[test]
    fn a_corrupt_stride_is_refused() {
        let mut g = guest(SynthArch::X86_64 { five_level: false });
        let at = Kva(g.maps[0].kva.0 + u64::from(g.layout.array.unwrap().elem_size));
        let pa = g.pa_of(at);
        g.ram.write_u32(pa, 0xffff_fff8);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let info = bpf.map_by_id(1).unwrap().unwrap();
        assert!(matches!(
            bpf.array(&info),
            Err(Error::Corrupt {
                value: 0xffff_fff8,
                ..
            })
        ));
    }

    #[test]
    fn without_array_offsets_only_arrays_are_disabled() {
        let g = guest(SynthArch::X86_64 { five_level: false });
        let layout = crate::layout::KernelLayout {
            array: None,
            ..g.layout
        };
        let view = g.view();
        let bpf = Bpf::new(&view, &layout, g.map_idr);
        assert_eq!(bpf.maps().unwrap().count(), 4);
        let info = bpf.map_by_id(1).unwrap().unwrap();
        assert_eq!(
            bpf.array(&info),
            Err(Error::LayoutMissing { what: "bpf_array" })
        );
    }

    #[test]
    fn writes_land_and_stay_inside_the_value() {
        for arch in ARCHES {
            let g = guest(arch);
            let view = g.view_mut();
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            let info = bpf.map_by_id(2).unwrap().unwrap();
            let a = bpf.array(&info).unwrap();
            // Across the page boundaries of a vmalloc'd value.
            let data = pattern(99, 5000);
            a.write(&view, 1, 3000, &data).unwrap();
            let v = a.value(&view, 1).unwrap();
            assert_eq!(v[3000..8000], data[..]);
            assert_eq!(v[..3000], pattern(1, info.value_size as usize)[..3000]);
            // One byte too many: refused, nothing written.
            let before = a.value(&view, 1).unwrap();
            let size = u64::from(info.value_size);
            assert_eq!(
                a.write(&view, 1, size - 4, &[1u8; 5]),
                Err(Error::OutOfBounds {
                    offset: size - 4,
                    len: 5,
                    size
                })
            );
            assert_eq!(a.value(&view, 1).unwrap(), before);
            assert_eq!(
                a.value(&view, 2).unwrap(),
                pattern(2, info.value_size as usize)
            );
            // Through Bpf, a u64 at an aligned offset.
            bpf.write_array_value(&info, 0, 8, &0x0123_4567_89ab_cdefu64.to_le_bytes())
                .unwrap();
            let mut b = [0u8; 8];
            bpf.read_array_value(&info, 0, 8, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), 0x0123_4567_89ab_cdef);
        }
    }

    /// Records every write the backend sees.
    struct Recording {
        inner: RamCell<Vec<u8>>,
        writes: RefCell<Vec<(Pa, usize)>>,
    }

    impl PhysRead for Recording {
        type Error = PhysErrorKind;
        fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> core::result::Result<(), PhysErrorKind> {
            self.inner.read_phys(pa, buf)
        }
        fn ranges(&self) -> &[PhysRange] {
            self.inner.ranges()
        }
    }

    impl PhysWrite for Recording {
        fn write_phys(&self, pa: Pa, data: &[u8]) -> core::result::Result<(), PhysErrorKind> {
            self.writes.borrow_mut().push((pa, data.len()));
            self.inner.write_phys(pa, data)
        }
    }

    #[test]
    fn an_aligned_scalar_is_one_store_and_an_unmapped_page_writes_nothing() {
        let g = guest(SynthArch::X86_64 { five_level: false });
        let mem = Recording {
            inner: RamCell::new(g.ram.base(), g.ram.bytes().to_vec()),
            writes: RefCell::default(),
        };
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let info = bpf.map_by_id(2).unwrap().unwrap();
        let a = bpf.array(&info).unwrap();
        a.write(&view, 0, 4096, &7u64.to_le_bytes()).unwrap();
        let va = a.value_kva(0).unwrap().0 + 4096;
        assert_eq!(*mem.writes.borrow(), [(g.pa_of(Kva(va)), 8)]);

        // Unmap the third page of key 0's value, then write across it: refused whole.
        mem.writes.borrow_mut().clear();
        let victim = a.value_kva(0).unwrap().0 + 2 * 4096 + 64;
        let pte = x86_leaf_pte(&g, victim & !0xfff);
        mem.inner.write_phys(pte, &[0u8; 8]).unwrap();
        mem.writes.borrow_mut().clear();
        view.invalidate();
        let err = a.write(&view, 0, 4000, &[0xaa; 5000]).unwrap_err();
        assert!(matches!(err, Error::NotMapped { level: 0, .. }), "{err:?}");
        assert!(mem.writes.borrow().is_empty());
        let mut buf = [0u8; 8];
        a.read(&view, 0, 4000, &mut buf).unwrap();
        assert_eq!(buf[..], pattern(0, 4008)[4000..]);
    }

    /// The physical address of the 4 KiB leaf entry mapping `va` (4-level x86_64).
    fn x86_leaf_pte(g: &SyntheticGuest, va: u64) -> Pa {
        let crate::arch::Paging::X86_64(p) = g.paging else {
            panic!("x86_64 guest")
        };
        let mut table = p.root().0;
        for shift in [39u32, 30, 21] {
            let e = g.ram.read_u64(Pa(table + ((va >> shift) & 511) * 8));
            table = e & 0x000f_ffff_ffff_f000;
        }
        Pa(table + ((va >> 12) & 511) * 8)
    }
}
