//! A map's BTF, owned: standalone, or split on top of the kernel's.
//!
//! A map created by a program of a kernel module, or described by module BTF, carries
//! *split* BTF: its type ids continue after the last id of the kernel's (base) BTF, and
//! its name offsets after the size of the kernel's string section. [`MapBtf::split`]
//! keeps a shared handle ([`BaseBtf`], an `Arc`) to the kernel's indexed bytes, so
//! every map of a dump shares one index of the kernel's BTF.
//!
//! Lookups are those of [`BtfReader`](super::BtfReader): bounds checked, errors naming
//! the type id, chains capped.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::reader::{index, record, sections, str_at, Kind, TypeRef, MAX_TYPES, VOID};
use super::BtfError;

/// Raw BTF bytes, their header checked and their types indexed.
struct Indexed {
    bytes: Arc<Vec<u8>>,
    types: Range<usize>,
    strings: Range<usize>,
    /// `offsets[i]`: where the record of the section's `i`th type starts.
    offsets: Vec<u32>,
}

impl Indexed {
    fn new(bytes: Arc<Vec<u8>>) -> Result<Self, BtfError> {
        let (types, strings) = sections(&bytes)?;
        let offsets = index(
            bytes.get(types.clone()).unwrap_or_default(),
            bytes.get(strings.clone()).unwrap_or_default(),
            &mut [],
        )?;
        Ok(Self {
            bytes,
            types,
            strings,
            offsets,
        })
    }

    fn types(&self) -> &[u8] {
        self.bytes.get(self.types.clone()).unwrap_or_default()
    }

    fn strings(&self) -> &[u8] {
        self.bytes.get(self.strings.clone()).unwrap_or_default()
    }

    fn count(&self) -> u32 {
        // At most MAX_TYPES: the index stops there.
        u32::try_from(self.offsets.len()).unwrap_or(MAX_TYPES)
    }

    fn string_len(&self) -> u32 {
        // The header's `str_len` is a u32.
        u32::try_from(self.strings.len()).unwrap_or(u32::MAX)
    }

    /// The section's `local`th type (1-based), called `id` outside.
    fn get(&self, local: u32, id: u32) -> Option<TypeRef<'_>> {
        let at = *self
            .offsets
            .get(usize::try_from(local.checked_sub(1)?).ok()?)?;
        record(self.types(), id, usize::try_from(at).ok()?)
    }
}

/// The kernel's BTF, indexed once and shared by the split BTF of every map over it.
#[derive(Clone)]
pub struct BaseBtf(Arc<Indexed>);

impl BaseBtf {
    /// Checks the header of raw BTF and indexes its types.
    ///
    /// # Errors
    /// As [`BtfReader::new`](super::BtfReader::new).
    pub fn new(bytes: Vec<u8>) -> Result<Self, BtfError> {
        Self::shared(Arc::new(bytes))
    }

    /// As [`new`](Self::new), over bytes shared with their owner.
    ///
    /// # Errors
    /// As [`BtfReader::new`](super::BtfReader::new).
    pub fn shared(bytes: Arc<Vec<u8>>) -> Result<Self, BtfError> {
        Indexed::new(bytes).map(|i| Self(Arc::new(i)))
    }

    /// The number of types (ids `1..=count`).
    pub fn type_count(&self) -> u32 {
        self.0.count()
    }

    /// The size of the string section: where a split BTF's name offsets start.
    pub fn string_len(&self) -> u32 {
        self.0.string_len()
    }

    /// The raw bytes (header, types, strings), as given.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl fmt::Debug for BaseBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseBtf")
            .field("types", &self.0.count())
            .field("string_bytes", &self.0.strings.len())
            .finish()
    }
}

/// A map's BTF: its own bytes, and the kernel's when it is split BTF.
pub struct MapBtf {
    base: Option<BaseBtf>,
    own: Indexed,
}

impl fmt::Debug for MapBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBtf")
            .field("base", &self.base)
            .field("types", &self.own.count())
            .field("string_bytes", &self.own.strings.len())
            .finish()
    }
}

impl MapBtf {
    /// Standalone BTF (ids from 1, names in its own string section).
    ///
    /// # Errors
    /// As [`BtfReader::new`](super::BtfReader::new).
    pub fn new(bytes: Vec<u8>) -> Result<Self, BtfError> {
        Ok(Self {
            base: None,
            own: Indexed::new(Arc::new(bytes))?,
        })
    }

    /// Split BTF over `base`: its ids continue after `base`'s last id, its name offsets
    /// after `base`'s string section.
    ///
    /// # Errors
    /// As [`BtfReader::new`](super::BtfReader::new); [`BtfError::LimitExceeded`] when
    /// the two hold more than [`MAX_TYPES`] types together.
    pub fn split(bytes: Vec<u8>, base: &BaseBtf) -> Result<Self, BtfError> {
        let own = Indexed::new(Arc::new(bytes))?;
        if base
            .type_count()
            .checked_add(own.count())
            .is_none_or(|n| n > MAX_TYPES)
        {
            return Err(BtfError::LimitExceeded {
                what: "types in a BTF and its base",
                limit: MAX_TYPES,
            });
        }
        Ok(Self {
            base: Some(base.clone()),
            own,
        })
    }

    /// This BTF's own raw bytes (without the base's), as given.
    pub fn own_bytes(&self) -> &[u8] {
        &self.own.bytes
    }

    /// The kernel's BTF this one is split over.
    pub fn base(&self) -> Option<&BaseBtf> {
        self.base.as_ref()
    }

    /// The first id of this BTF's own types (1 when standalone).
    pub fn first_own_id(&self) -> u32 {
        self.base.as_ref().map_or(0, BaseBtf::type_count) + 1
    }

    /// The last type id (the base's and its own).
    pub fn last_id(&self) -> u32 {
        self.first_own_id() - 1 + self.own.count()
    }

    /// Type `id` (id 0 is `void`), looked up in the base first.
    ///
    /// # Errors
    /// [`BtfError::BadTypeId`] for an id past the last type; `from` names the type that
    /// refers to it (0 when the caller's).
    pub fn type_by_id(&self, id: u32, from: u32) -> Result<TypeRef<'_>, BtfError> {
        if id == 0 {
            return Ok(VOID);
        }
        let first = self.first_own_id();
        let found = match &self.base {
            Some(b) if id < first => b.0.get(id, id),
            _ => self.own.get(id - first + 1, id),
        };
        found.ok_or(BtfError::BadTypeId { id, from })
    }

    /// The NUL-terminated string at `offset` (without the NUL): in the base's string
    /// section below its size, in this BTF's own above.
    ///
    /// # Errors
    /// [`BtfError::BadString`] outside the sections or without a NUL.
    pub fn str_at(&self, offset: u32) -> Result<&[u8], BtfError> {
        let found = match &self.base {
            Some(b) if offset < b.string_len() => str_at(b.0.strings(), offset),
            Some(b) => str_at(self.own.strings(), offset - b.string_len()),
            None => str_at(self.own.strings(), offset),
        };
        found.ok_or(BtfError::BadString { offset })
    }

    /// The name of a type.
    ///
    /// # Errors
    /// As [`str_at`](Self::str_at).
    pub fn name(&self, ty: &TypeRef<'_>) -> Result<&[u8], BtfError> {
        self.str_at(ty.name_off)
    }

    /// Follows typedefs, qualifiers and type tags from `id` to the type they name.
    ///
    /// # Errors
    /// [`BtfError::BadTypeId`], or [`BtfError::LimitExceeded`] after
    /// [`MAX_CHAIN`](super::reader::MAX_CHAIN)
    /// links.
    pub fn strip(&self, id: u32) -> Result<TypeRef<'_>, BtfError> {
        super::reader::strip_chain(id, |id, from| self.type_by_id(id, from))
    }

    /// Every type id, from 1 to [`last_id`](Self::last_id), with its kind.
    pub fn kinds(&self) -> impl Iterator<Item = (u32, Kind)> + '_ {
        (1..=self.last_id()).filter_map(|id| self.type_by_id(id, 0).ok().map(|t| (id, t.kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Builder;
    use super::*;
    use crate::render::typed::TypeRenderer;

    fn base() -> Builder {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.agg(Kind::STRUCT, "kern", false, 4, &[("k", int, 0)]);
        b
    }

    #[test]
    fn split_ids_and_names_continue_after_the_base() {
        let base = BaseBtf::new(base().bytes()).unwrap();
        assert_eq!((base.type_count(), base.string_len()), (2, 12));
        let mut s = Builder::split(2, 12);
        let own = s.agg(Kind::STRUCT, "mine", false, 8, &[("a", 1, 0), ("b", 2, 32)]);
        assert_eq!(own, 3);
        let btf = MapBtf::split(s.bytes(), &base).unwrap();
        assert_eq!((btf.first_own_id(), btf.last_id()), (3, 3));
        let t = btf.type_by_id(3, 0).unwrap();
        assert_eq!(btf.name(&t).unwrap(), b"mine");
        assert_eq!(btf.name(&btf.type_by_id(2, 0).unwrap()).unwrap(), b"kern");
        let names: Vec<_> = t
            .members()
            .map(|m| btf.str_at(m.name_off).unwrap())
            .collect();
        assert_eq!(names, [b"a", b"b"]);
        assert_eq!(
            btf.type_by_id(4, 3).unwrap_err(),
            (BtfError::BadTypeId { id: 4, from: 3 })
        );
        assert_eq!(
            btf.str_at(12 + 99),
            Err(BtfError::BadString { offset: 111 })
        );
        assert_eq!(
            btf.kinds().collect::<Vec<_>>(),
            [(1, Kind::INT), (2, Kind::STRUCT), (3, Kind::STRUCT)]
        );
        assert_eq!(
            TypeRenderer::new(&btf).render_string(3, &[5, 0, 0, 0, 6, 0, 0, 0]),
            r#"{"a":5,"b":{"k":6}}"#
        );
        // The same bytes standalone: the ids they name are not there.
        let alone = MapBtf::new(s.bytes()).unwrap();
        assert_eq!(alone.last_id(), 1);
        assert_eq!(
            alone.type_by_id(3, 0).unwrap_err(),
            (BtfError::BadTypeId { id: 3, from: 0 })
        );
    }

    #[test]
    fn every_corruption_of_map_btf_is_survived() {
        let base = BaseBtf::new(base().bytes()).unwrap();
        let mut s = Builder::split(2, 12);
        let u8_t = s.int("u8", 1);
        let arr = s.array(u8_t, 1, 4);
        s.agg(
            Kind::STRUCT,
            "mine",
            true,
            8,
            &[("a", arr, 0), ("b", 2, (3 << 24) | 33)],
        );
        let good = s.bytes();
        let value = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let render = |btf: &MapBtf| {
            for id in 0..=btf.last_id() + 1 {
                let text = TypeRenderer::new(btf).render_string(id, &value);
                assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{text}"
                );
            }
        };
        for len in 0..good.len() {
            if let Ok(b) = MapBtf::split(good[..len].to_vec(), &base) {
                render(&b);
            }
        }
        for at in 0..good.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = v;
                if let Ok(b) = MapBtf::split(bad.clone(), &base) {
                    render(&b);
                }
                if let Ok(b) = MapBtf::new(bad) {
                    render(&b);
                }
            }
        }
    }
}
