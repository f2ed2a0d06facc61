//! A map's BTF object: where its `struct btf` keeps the raw BTF.

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::BtfObjectLayout;
use crate::limits::MAX_BTF_DATA_SIZE;

/// What a map's `struct btf` says: where the raw BTF is, how long, and whether it is
/// split (types on top of a base BTF, vmlinux's for a program's BTF in a kernel with
/// module BTF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BtfObject {
    /// The `struct btf` itself.
    pub kva: Kva,
    /// `btf.data`: the raw BTF, header first.
    pub data: Kva,
    /// `btf.data_size`: its length, at most [`MAX_BTF_DATA_SIZE`].
    pub data_size: u32,
    /// `btf.base_btf`: the base BTF of a split BTF, or [`Kva::NULL`] when standalone.
    pub base_btf: Kva,
    /// `btf.id`: the id `BPF_OBJ_GET_INFO_BY_FD` reports as the map's `btf_id`.
    pub id: u32,
}

impl BtfObject {
    /// Whether the BTF is split: its types extend a base BTF (parse it on top of
    /// vmlinux BTF).
    pub fn is_split(&self) -> bool {
        self.base_btf != Kva::NULL
    }

    /// The length of the raw BTF, for sizing a buffer.
    pub fn len(&self) -> usize {
        usize::try_from(self.data_size).unwrap_or(usize::MAX)
    }

    /// Whether the raw BTF is empty (never, for an object [`Bpf::map_btf`] returned).
    pub fn is_empty(&self) -> bool {
        self.data_size == 0
    }

    /// Fills `buf` (exactly [`len`](Self::len) bytes) with the raw BTF.
    ///
    /// # Errors
    /// [`Error::BufferSize`], or a translation or read error.
    pub fn read<K: KernelRead + ?Sized>(&self, mem: &K, buf: &mut [u8]) -> Result<()> {
        let have = crate::mem::len_u64(buf.len());
        if have != u64::from(self.data_size) {
            return Err(Error::BufferSize {
                need: u64::from(self.data_size),
                have,
            });
        }
        mem.read_kernel(self.data, buf)
    }

    /// The raw BTF in a new `Vec`.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    #[cfg(any(feature = "alloc", test))]
    pub fn to_vec<K: KernelRead + ?Sized>(&self, mem: &K) -> Result<alloc::vec::Vec<u8>> {
        let mut buf = alloc::vec![0u8; self.len()];
        self.read(mem, &mut buf)?;
        Ok(buf)
    }
}

/// The address of field `off` of the `struct btf` at `btf`.
fn field(btf: Kva, off: u32) -> Result<Kva> {
    btf.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: btf.0,
        len: u64::from(off),
    })
}

/// `btf->id` of the `struct btf` at `btf`.
pub(crate) fn read_btf_id<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &BtfObjectLayout,
    btf: Kva,
) -> Result<u32> {
    mem.read_kernel_u32(field(btf, layout.id)?)
}

/// Reads and checks the `struct btf` at `btf`.
fn read_btf_object<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &BtfObjectLayout,
    btf: Kva,
) -> Result<BtfObject> {
    let size_at = field(btf, layout.data_size)?;
    let data_size = mem.read_kernel_u32(size_at)?;
    if data_size == 0 {
        return Err(Error::Corrupt {
            what: "btf.data_size (zero)",
            at: size_at,
            value: 0,
        });
    }
    if data_size > MAX_BTF_DATA_SIZE {
        return Err(Error::LimitExceeded {
            what: "btf.data_size",
            limit: u64::from(MAX_BTF_DATA_SIZE),
            at: u64::from(data_size),
        });
    }
    let data_at = field(btf, layout.data)?;
    let data = Kva(mem.read_kernel_u64(data_at)?);
    if data == Kva::NULL || data.checked_add(u64::from(data_size)).is_none() {
        return Err(Error::Corrupt {
            what: "btf.data (NULL, or its data_size bytes overflow the address space)",
            at: data_at,
            value: data.0,
        });
    }
    Ok(BtfObject {
        kva: btf,
        data,
        data_size,
        base_btf: Kva(mem.read_kernel_u64(field(btf, layout.base_btf)?)?),
        id: read_btf_id(mem, layout, btf)?,
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// The BTF object of `map` (its `bpf_map.btf`), or `None` when the map has none.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a map that was not read out of memory,
    /// [`Error::LayoutMissing`] without `struct btf` offsets
    /// ([`KernelLayout::btf_object`](crate::KernelLayout::btf_object)),
    /// [`Error::Corrupt`] for a zero `data_size` or a NULL `data`,
    /// [`Error::LimitExceeded`] for a `data_size` above [`MAX_BTF_DATA_SIZE`], or a read
    /// error.
    pub fn map_btf(&self, map: &MapInfo) -> Result<Option<BtfObject>> {
        if !map.from_memory() {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "BTF objects from memory (the map was not read out of memory)",
            });
        }
        if map.btf == Kva::NULL {
            return Ok(None);
        }
        let layout = self
            .layout
            .btf_object
            .ok_or(Error::LayoutMissing { what: "btf" })?;
        read_btf_object(self.mem, &layout, map.btf).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::KernelLayout;
    use crate::synth::{GuestBuilder, MapSpec, SyntheticGuest};
    use crate::Pa;

    /// Writes a `struct btf` (and `data_size` bytes of data) into free RAM of `g`; points
    /// map `index`'s `bpf_map.btf` at it. Returns the `struct btf`'s address.
    fn give_btf(
        g: &mut SyntheticGuest,
        index: usize,
        data: &[u8],
        base: u64,
        id: u32,
    ) -> (Kva, Kva) {
        let l = g.layout.btf_object.unwrap();
        let dm = g.addrs.direct_map.unwrap();
        let kva_of = |pa: Pa, g: &SyntheticGuest| Kva(dm.virt.0 + (pa.0 - g.ram.base().0));
        let obj = g.ram.alloc(256, 64);
        let bytes = g.ram.alloc(data.len() as u64, 8);
        let (obj_kva, data_kva) = (kva_of(obj, g), kva_of(bytes, g));
        g.ram.write(bytes, data);
        g.ram.write_u64(Pa(obj.0 + u64::from(l.data)), data_kva.0);
        g.ram
            .write_u32(Pa(obj.0 + u64::from(l.data_size)), data.len() as u32);
        g.ram.write_u64(Pa(obj.0 + u64::from(l.base_btf)), base);
        g.ram.write_u32(Pa(obj.0 + u64::from(l.id)), id);
        let map = g.maps[index].kva;
        let field = g.pa_of(Kva(map.0 + u64::from(g.layout.bpf_map.btf)));
        g.ram.write_u64(field, obj_kva.0);
        (obj_kva, data_kva)
    }

    fn guest() -> SyntheticGuest {
        let mut b = GuestBuilder::x86_64(false);
        b.add_map(MapSpec::array(3, "plain", 8, 2))
            .add_map(MapSpec::array(4, "typed", 8, 2).vmalloc());
        b.build()
    }

    #[test]
    fn a_maps_btf_object_is_found_with_its_id() {
        let mut g = guest();
        let raw: alloc::vec::Vec<u8> = (0..200u8).collect();
        let (obj, data) = give_btf(&mut g, 1, &raw, 0xffff_8880_0123_4000, 57);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);

        let plain = bpf.map_by_id(3).unwrap().unwrap();
        assert_eq!(
            (plain.btf, plain.btf_id, plain.has_btf()),
            (Kva::NULL, 0, false)
        );
        assert_eq!(bpf.map_btf(&plain), Ok(None));

        let typed = bpf.map_by_id(4).unwrap().unwrap();
        assert_eq!((typed.btf, typed.btf_id, typed.has_btf()), (obj, 57, true));
        let found = bpf.map_btf(&typed).unwrap().unwrap();
        assert_eq!(
            found,
            BtfObject {
                kva: obj,
                data,
                data_size: 200,
                base_btf: Kva(0xffff_8880_0123_4000),
                id: 57,
            }
        );
        assert!(found.is_split());
        assert_eq!(found.to_vec(&view).unwrap(), raw);
        let mut short = [0u8; 10];
        assert_eq!(
            found.read(&view, &mut short),
            Err(Error::BufferSize {
                need: 200,
                have: 10
            })
        );
        // Discovery fills the id on every path.
        let listed: alloc::vec::Vec<u32> = bpf.maps().unwrap().map(|m| m.unwrap().btf_id).collect();
        assert_eq!(listed, [0, 57]);
    }

    #[test]
    fn a_standalone_btf_is_not_split() {
        let mut g = guest();
        give_btf(&mut g, 0, b"\x9f\xeb\x01\x00", 0, 1);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let found = bpf
            .map_btf(&bpf.map_by_id(3).unwrap().unwrap())
            .unwrap()
            .unwrap();
        assert!(!found.is_split());
        assert_eq!((found.id, found.data_size, found.len()), (1, 4, 4));
    }

    #[test]
    fn bad_sizes_and_pointers_are_typed_errors() {
        let mut g = guest();
        let (obj, _) = give_btf(&mut g, 1, &[1, 2, 3, 4], 0, 9);
        let l = g.layout.btf_object.unwrap();
        let size_pa = g.pa_of(Kva(obj.0 + u64::from(l.data_size)));
        let data_pa = g.pa_of(Kva(obj.0 + u64::from(l.data)));

        let check = |g: &SyntheticGuest, want: Error| {
            let view = g.view();
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            let map = bpf.map_by_id(4).unwrap().unwrap();
            assert_eq!(bpf.map_btf(&map), Err(want));
        };
        g.ram.write_u32(size_pa, MAX_BTF_DATA_SIZE + 1);
        check(
            &g,
            Error::LimitExceeded {
                what: "btf.data_size",
                limit: u64::from(MAX_BTF_DATA_SIZE),
                at: u64::from(MAX_BTF_DATA_SIZE) + 1,
            },
        );
        // At the cap is accepted (the data is not read here).
        g.ram.write_u32(size_pa, MAX_BTF_DATA_SIZE);
        {
            let view = g.view();
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            let map = bpf.map_by_id(4).unwrap().unwrap();
            assert_eq!(
                bpf.map_btf(&map).unwrap().unwrap().data_size,
                MAX_BTF_DATA_SIZE
            );
        }
        g.ram.write_u32(size_pa, 0);
        check(
            &g,
            Error::Corrupt {
                what: "btf.data_size (zero)",
                at: Kva(obj.0 + u64::from(l.data_size)),
                value: 0,
            },
        );
        g.ram.write_u32(size_pa, 4);
        g.ram.write_u64(data_pa, 0);
        check(
            &g,
            Error::Corrupt {
                what: "btf.data (NULL, or its data_size bytes overflow the address space)",
                at: Kva(obj.0 + u64::from(l.data)),
                value: 0,
            },
        );
    }

    #[test]
    fn without_btf_offsets_the_object_is_unknown_and_the_id_zero() {
        let mut g = guest();
        give_btf(&mut g, 1, &[1, 2, 3, 4], 0, 9);
        let layout = KernelLayout {
            btf_object: None,
            ..g.layout
        };
        let view = g.view();
        let bpf = Bpf::new(&view, &layout, g.map_idr);
        let map = bpf.map_by_id(4).unwrap().unwrap();
        assert_eq!((map.btf_id, map.has_btf()), (0, true));
        assert_eq!(bpf.map_btf(&map), Err(Error::LayoutMissing { what: "btf" }));
    }

    #[test]
    fn an_unreadable_btf_id_is_an_error_for_its_map_only() {
        let mut g = guest();
        let unmapped = Kva(0xffff_c900_4000_0000);
        let field = g.pa_of(Kva(g.maps[1].kva.0 + u64::from(g.layout.bpf_map.btf)));
        g.ram.write_u64(field, unmapped.0);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let items: alloc::vec::Vec<Result<MapInfo>> = bpf.maps().unwrap().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().id, 3);
        assert!(
            matches!(items[1], Err(Error::NotMapped { va, .. }) if va.0 >= unmapped.0),
            "{:?}",
            items[1]
        );
        assert!(bpf.map_by_id(4).is_err());
    }

    #[test]
    fn a_map_not_from_memory_has_no_btf_object_here() {
        let g = guest();
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let live = MapInfo {
            id: 8,
            btf_id: 3,
            ..MapInfo::default()
        };
        assert!(matches!(
            bpf.map_btf(&live),
            Err(Error::WrongMapType { id: 8, .. })
        ));
    }
}
