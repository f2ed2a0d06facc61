//! A zero-copy reader of raw BTF.
//!
//! [`BtfReader::new`] checks the header, then makes one pass over the type section:
//! each record's length follows from its kind and `vlen`, so the pass records where
//! every type starts (a `Vec<u32>`, four bytes per type) and, on the way, which
//! structs and unions carry the names asked for in advance. Nothing else is decoded
//! until asked: a type, its members and its name are read from the input bytes when
//! they are needed.
//!
//! The input may come out of guest memory, so it is hostile: every read is bounds
//! checked, every count is checked before it sizes anything, and every loop that
//! follows type references has a named cap ([`MAX_TYPES`], [`MAX_CHAIN`]). Errors name
//! the type id and the offset in the type section.
//!
//! Only little-endian BTF (every kernel mapwalk reads) is accepted.

use std::ops::Range;

use super::BtfError;

/// The magic number at the start of raw BTF (`0xeb9f`, little-endian `9f eb`).
pub const BTF_MAGIC: u16 = 0xeb9f;
/// The only BTF version there is.
pub const BTF_VERSION: u8 = 1;
/// The size of the header this reader knows (`struct btf_header`).
pub const HEADER_LEN: usize = 24;
/// Bytes of a type record before its kind-specific data (`struct btf_type`).
const TYPE_HEAD: usize = 12;
/// The most types one BTF may hold: the kernel's own limit (`BTF_MAX_TYPE`).
pub const MAX_TYPES: u32 = 0x000f_ffff;
/// The longest chain of typedefs and qualifiers followed to the type they name.
pub const MAX_CHAIN: u32 = 32;
/// The most structs or unions that may share one of the names asked for in advance.
pub const MAX_SAME_NAME: usize = 64;

/// A BTF kind (`BTF_KIND_*`, bits 24–28 of a type's `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub u8);

#[allow(missing_docs)]
impl Kind {
    pub const VOID: Self = Self(0);
    pub const INT: Self = Self(1);
    pub const PTR: Self = Self(2);
    pub const ARRAY: Self = Self(3);
    pub const STRUCT: Self = Self(4);
    pub const UNION: Self = Self(5);
    pub const ENUM: Self = Self(6);
    pub const FWD: Self = Self(7);
    pub const TYPEDEF: Self = Self(8);
    pub const VOLATILE: Self = Self(9);
    pub const CONST: Self = Self(10);
    pub const RESTRICT: Self = Self(11);
    pub const FUNC: Self = Self(12);
    pub const FUNC_PROTO: Self = Self(13);
    pub const VAR: Self = Self(14);
    pub const DATASEC: Self = Self(15);
    pub const FLOAT: Self = Self(16);
    pub const DECL_TAG: Self = Self(17);
    pub const TYPE_TAG: Self = Self(18);
    pub const ENUM64: Self = Self(19);
}

impl Kind {
    /// Whether the kind has members (struct or union).
    pub fn is_aggregate(self) -> bool {
        self == Self::STRUCT || self == Self::UNION
    }

    /// Whether the kind only names another type (typedef, const, volatile, restrict,
    /// type tag).
    pub fn is_alias(self) -> bool {
        matches!(
            self,
            Self::TYPEDEF | Self::CONST | Self::VOLATILE | Self::RESTRICT | Self::TYPE_TAG
        )
    }

    /// The bytes of kind-specific data after the type record, for `vlen` entries;
    /// `None` for a kind this reader does not know (its length is unknown).
    fn extra_len(self, vlen: usize) -> Option<usize> {
        Some(match self {
            Self::INT | Self::VAR | Self::DECL_TAG => 4,
            Self::PTR
            | Self::FWD
            | Self::TYPEDEF
            | Self::VOLATILE
            | Self::CONST
            | Self::RESTRICT
            | Self::FUNC
            | Self::FLOAT
            | Self::TYPE_TAG => 0,
            Self::ARRAY => 12,
            // vlen < 2^16: these products cannot overflow.
            Self::STRUCT | Self::UNION | Self::DATASEC | Self::ENUM64 => vlen * 12,
            Self::ENUM | Self::FUNC_PROTO => vlen * 8,
            _ => return None,
        })
    }
}

pub(super) fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// One type record, borrowed from the type section.
#[derive(Debug, Clone, Copy)]
pub struct TypeRef<'a> {
    /// Its id.
    pub id: u32,
    /// Its kind.
    pub kind: Kind,
    /// The kind flag (bit 31 of `info`): bitfield offsets in a struct's members.
    pub kind_flag: bool,
    /// `vlen` (bits 0–15 of `info`): the number of members, values, parameters...
    pub vlen: u16,
    /// The offset of its name in the string section.
    pub name_off: u32,
    /// `size` (ints, structs, enums...) or `type` (pointers, typedefs, qualifiers...).
    pub size_or_type: u32,
    /// The kind-specific data after the record (its length checked by the index).
    pub(super) data: &'a [u8],
}

/// A member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The offset of its name in the string section (0: anonymous).
    pub name_off: u32,
    /// Its type.
    pub type_id: u32,
    /// Its offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Its width in bits when it is a bitfield of a struct with the kind flag.
    pub bitfield_size: Option<u8>,
}

impl<'a> TypeRef<'a> {
    /// The members of a struct or union (nothing for other kinds).
    pub fn members(&self) -> impl Iterator<Item = Member> + 'a {
        let n = if self.kind.is_aggregate() {
            usize::from(self.vlen)
        } else {
            0
        };
        let (data, kind_flag) = (self.data, self.kind_flag);
        // The index checked that `vlen` records fit: `le32` cannot fail, but a failure
        // would end the members rather than panic.
        (0..n).map_while(move |i| {
            let at = i.checked_mul(12)?;
            let name_off = le32(data, at)?;
            let type_id = le32(data, at.checked_add(4)?)?;
            let offset = le32(data, at.checked_add(8)?)?;
            Some(if kind_flag {
                Member {
                    name_off,
                    type_id,
                    bit_offset: offset & 0x00ff_ffff,
                    bitfield_size: u8::try_from(offset >> 24).ok().filter(|&b| b != 0),
                }
            } else {
                Member {
                    name_off,
                    type_id,
                    bit_offset: offset,
                    bitfield_size: None,
                }
            })
        })
    }
}

/// Raw BTF, its header checked and its types indexed.
#[derive(Clone)]
pub struct BtfReader<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// `offsets[i]`: where the record of type `i + 1` starts in `types`.
    offsets: Vec<u32>,
    /// For each name asked for in advance, the structs and unions that carry it, in id
    /// order.
    named: Vec<(&'a str, Vec<u32>)>,
}

impl std::fmt::Debug for BtfReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtfReader")
            .field("types", &self.offsets.len())
            .field("type_bytes", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .finish_non_exhaustive()
    }
}

/// The section `what` of `len` bytes at `off` after the header, inside `bytes`.
fn section(
    bytes: &[u8],
    hdr_len: usize,
    off: u32,
    len: u32,
    what: &'static str,
) -> Result<Range<usize>, BtfError> {
    let bad = || BtfError::Header {
        what,
        value: u64::from(off).wrapping_add(u64::from(len)),
    };
    let start = usize::try_from(off)
        .ok()
        .and_then(|o| o.checked_add(hdr_len))
        .ok_or_else(bad)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(start))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(bad)?;
    Ok(start..end)
}

/// Checks the header of raw BTF: where its type and string sections are.
///
/// # Errors
/// [`BtfError::Parse`] without the magic, [`BtfError::Header`] for a header whose
/// sections do not fit the bytes.
pub(super) fn sections(bytes: &[u8]) -> Result<(Range<usize>, Range<usize>), BtfError> {
    let magic = bytes
        .get(..2)
        .map(|m| u16::from_le_bytes([m[0], m[1]]))
        .unwrap_or(0);
    if magic == BTF_MAGIC.swap_bytes() {
        return Err(BtfError::Header {
            what: "big-endian BTF (not supported)",
            value: u64::from(magic),
        });
    }
    if magic != BTF_MAGIC {
        return Err(BtfError::Parse(format!(
            "no BTF magic (first bytes {:02x?})",
            bytes.get(..bytes.len().min(4)).unwrap_or_default()
        )));
    }
    let version = bytes.get(2).copied().unwrap_or(0);
    if version != BTF_VERSION {
        return Err(BtfError::Header {
            what: "version",
            value: u64::from(version),
        });
    }
    let field = |at, what| {
        le32(bytes, at).ok_or(BtfError::Header {
            what,
            value: bytes.len() as u64,
        })
    };
    let hdr_len = field(4, "header length (input too short)")?;
    let hdr = usize::try_from(hdr_len)
        .ok()
        .filter(|&h| h >= HEADER_LEN && h <= bytes.len())
        .ok_or(BtfError::Header {
            what: "header length",
            value: u64::from(hdr_len),
        })?;
    let types = section(
        bytes,
        hdr,
        field(8, "type_off")?,
        field(12, "type_len")?,
        "type section outside the input",
    )?;
    let strings = section(
        bytes,
        hdr,
        field(16, "str_off")?,
        field(20, "str_len")?,
        "string section outside the input",
    )?;
    Ok((types, strings))
}

/// The record of type `id` at `at` in `types` (an offset the index produced).
pub(super) fn record(types: &[u8], id: u32, at: usize) -> Option<TypeRef<'_>> {
    let name_off = le32(types, at)?;
    let info = le32(types, at.checked_add(4)?)?;
    let size_or_type = le32(types, at.checked_add(8)?)?;
    let kind = Kind(u8::try_from((info >> 24) & 0x1f).ok()?);
    let vlen = u16::try_from(info & 0xffff).ok()?;
    let start = at.checked_add(TYPE_HEAD)?;
    let len = kind.extra_len(usize::from(vlen))?;
    let data = types.get(start..start.checked_add(len)?)?;
    Some(TypeRef {
        id,
        kind,
        kind_flag: info >> 31 != 0,
        vlen,
        name_off,
        size_or_type,
        data,
    })
}

/// The type `void` (id 0).
pub(super) const VOID: TypeRef<'static> = TypeRef {
    id: 0,
    kind: Kind::VOID,
    kind_flag: false,
    vlen: 0,
    name_off: 0,
    size_or_type: 0,
    data: &[],
};

impl<'a> BtfReader<'a> {
    /// Checks the header of raw BTF and indexes its types.
    ///
    /// # Errors
    /// [`BtfError::Parse`] without the magic, [`BtfError::Header`] for a header whose
    /// sections do not fit the bytes, and the errors of a type section that does not
    /// decode ([`BtfError::Truncated`], [`BtfError::UnknownKind`],
    /// [`BtfError::LimitExceeded`]).
    pub fn new(bytes: &'a [u8]) -> Result<Self, BtfError> {
        Self::with_names(bytes, &[])
    }

    /// As [`new`](Self::new), also noting on the way the structs and unions called
    /// one of `names`, so that [`aggregates_named`](Self::aggregates_named) finds them
    /// without another pass.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`BtfError::LimitExceeded`] when more than
    /// [`MAX_SAME_NAME`] aggregates share one of `names`.
    pub fn with_names(bytes: &'a [u8], names: &[&'a str]) -> Result<Self, BtfError> {
        let (types, strings) = sections(bytes)?;
        let types = bytes.get(types).unwrap_or_default();
        let strings = bytes.get(strings).unwrap_or_default();
        let mut named: Vec<(&'a str, Vec<u32>)> = names.iter().map(|&n| (n, Vec::new())).collect();
        let offsets = index(types, strings, &mut named)?;
        Ok(Self {
            types,
            strings,
            offsets,
            named,
        })
    }

    /// The number of types (ids `1..=count`; id 0 is `void`).
    pub fn type_count(&self) -> u32 {
        // At most MAX_TYPES: the index stops there.
        u32::try_from(self.offsets.len()).unwrap_or(MAX_TYPES)
    }

    /// Type `id`. Id 0 is `void` (kind [`Kind::VOID`], no name, size 0).
    ///
    /// # Errors
    /// [`BtfError::BadTypeId`] for an id past the last type; `from` names the type that
    /// refers to it (0 when the caller's).
    pub fn type_by_id(&self, id: u32, from: u32) -> Result<TypeRef<'a>, BtfError> {
        if id == 0 {
            return Ok(VOID);
        }
        let bad = BtfError::BadTypeId { id, from };
        let at = usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.offsets.get(i))
            .copied()
            .ok_or(bad.clone())?;
        let at = usize::try_from(at).map_err(|_| bad.clone())?;
        self.record(id, at).ok_or(bad)
    }

    /// The record at `at` (an offset the index produced).
    fn record(&self, id: u32, at: usize) -> Option<TypeRef<'a>> {
        record(self.types, id, at)
    }

    /// The NUL-terminated string at `offset` in the string section (without the NUL).
    ///
    /// # Errors
    /// [`BtfError::BadString`] when the offset is past the section or the string has no
    /// terminating NUL inside it.
    pub fn str_at(&self, offset: u32) -> Result<&'a [u8], BtfError> {
        str_at(self.strings, offset).ok_or(BtfError::BadString { offset })
    }

    /// The name of a type.
    ///
    /// # Errors
    /// As [`str_at`](Self::str_at).
    pub fn name(&self, ty: &TypeRef<'_>) -> Result<&'a [u8], BtfError> {
        self.str_at(ty.name_off)
    }

    /// Follows typedefs and qualifiers from `id` to the type they name.
    ///
    /// # Errors
    /// [`BtfError::BadTypeId`], or [`BtfError::LimitExceeded`] after [`MAX_CHAIN`]
    /// links.
    pub fn strip(&self, id: u32) -> Result<TypeRef<'a>, BtfError> {
        strip_chain(id, |id, from| self.type_by_id(id, from))
    }

    /// The structs and unions called `name`, in id order.
    ///
    /// A name given to [`with_names`](Self::with_names) is answered from the index;
    /// any other costs a pass over the types.
    ///
    /// # Errors
    /// [`BtfError::BadString`] for a type name outside the string section.
    pub fn aggregates_named(&self, name: &str) -> Result<Vec<TypeRef<'a>>, BtfError> {
        let ids: Vec<u32> = match self.named.iter().find(|(n, _)| *n == name) {
            Some((_, ids)) => ids.clone(),
            None => {
                let mut ids = Vec::new();
                for (i, &at) in self.offsets.iter().enumerate() {
                    let at = usize::try_from(at).unwrap_or(usize::MAX);
                    let (Some(name_off), Some(info)) = (
                        le32(self.types, at),
                        at.checked_add(4).and_then(|a| le32(self.types, a)),
                    ) else {
                        continue;
                    };
                    let kind = Kind(u8::try_from((info >> 24) & 0x1f).unwrap_or(0));
                    if kind.is_aggregate() && name_is(self.strings, name_off, name.as_bytes()) {
                        ids.push(u32::try_from(i).unwrap_or(MAX_TYPES).saturating_add(1));
                    }
                }
                ids
            }
        };
        ids.into_iter().map(|id| self.type_by_id(id, 0)).collect()
    }
}

pub(super) fn str_at(strings: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = strings.get(usize::try_from(offset).ok()?..)?;
    let end = memchr::memchr(0, rest)?;
    rest.get(..end)
}

/// Whether the string at `offset` is `name` (without finding its end first).
fn name_is(strings: &[u8], offset: u32, name: &[u8]) -> bool {
    let Ok(start) = usize::try_from(offset) else {
        return false;
    };
    let Some(end) = start.checked_add(name.len()) else {
        return false;
    };
    strings.get(start..end) == Some(name) && strings.get(end) == Some(&0)
}

/// One pass over the type section: where each record starts, and the aggregates
/// called one of `named`.
pub(super) fn index(
    types: &[u8],
    strings: &[u8],
    named: &mut [(&str, Vec<u32>)],
) -> Result<Vec<u32>, BtfError> {
    // A type record is at least 12 bytes: this bounds the count before it sizes the
    // vector (real kernels average about 40 bytes a type).
    let mut offsets = Vec::with_capacity((types.len() / 32).min(MAX_TYPES as usize));
    let mut at = 0usize;
    let mut id = 1u32;
    while at < types.len() {
        if id > MAX_TYPES {
            return Err(BtfError::LimitExceeded {
                what: "types in one BTF",
                limit: MAX_TYPES,
            });
        }
        let truncated = |what| BtfError::Truncated {
            what,
            id,
            offset: at,
        };
        let head = types
            .get(at..at.saturating_add(TYPE_HEAD))
            .ok_or_else(|| truncated("type record"))?;
        let name_off = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let info = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let kind = Kind(((info >> 24) & 0x1f) as u8);
        let vlen = (info & 0xffff) as usize;
        let extra = kind.extra_len(vlen).ok_or(BtfError::UnknownKind {
            id,
            kind: kind.0,
            offset: at,
        })?;
        let end = at
            .checked_add(TYPE_HEAD)
            .and_then(|s| s.checked_add(extra))
            .filter(|&e| e <= types.len())
            .ok_or_else(|| truncated("kind-specific data"))?;
        if kind.is_aggregate() && name_off != 0 {
            for (name, ids) in named.iter_mut() {
                if name_is(strings, name_off, name.as_bytes()) {
                    if ids.len() >= MAX_SAME_NAME {
                        return Err(BtfError::LimitExceeded {
                            what: "structs of one name",
                            limit: MAX_SAME_NAME as u32,
                        });
                    }
                    ids.push(id);
                }
            }
        }
        offsets.push(u32::try_from(at).map_err(|_| truncated("type section over 4 GiB"))?);
        at = end;
        id += 1;
    }
    Ok(offsets)
}

/// Follows typedefs, qualifiers and type tags from `id` through `lookup` (a type by
/// id, and the id it was reached from) to the type they name: the one chain walk of
/// [`BtfReader::strip`] and [`super::MapBtf::strip`].
///
/// # Errors
/// `lookup`'s, or [`BtfError::LimitExceeded`] after [`MAX_CHAIN`] links.
pub(crate) fn strip_chain<'t>(
    mut id: u32,
    lookup: impl Fn(u32, u32) -> Result<TypeRef<'t>, BtfError>,
) -> Result<TypeRef<'t>, BtfError> {
    let mut from = 0;
    for _ in 0..=MAX_CHAIN {
        let t = lookup(id, from)?;
        if !t.kind.is_alias() {
            return Ok(t);
        }
        from = id;
        id = t.size_or_type;
    }
    Err(BtfError::LimitExceeded {
        what: "chain of typedefs and qualifiers",
        limit: MAX_CHAIN,
    })
}
