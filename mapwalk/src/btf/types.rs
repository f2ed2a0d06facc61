//! Typed views of one type record's kind-specific data: what a renderer needs of each
//! kind. Every accessor answers `None` (or nothing) for a type of another kind; the
//! index checked that the record's data has the length its kind and `vlen` give, and
//! each read is bounds checked again, so a short record ends an iteration rather than
//! panicking.

use super::reader::{le32, Kind, TypeRef};

/// `BTF_INT_SIGNED` in an INT's encoding.
pub const INT_SIGNED: u8 = 1;
/// `BTF_INT_CHAR` in an INT's encoding.
pub const INT_CHAR: u8 = 2;
/// `BTF_INT_BOOL` in an INT's encoding.
pub const INT_BOOL: u8 = 4;

/// The word after an INT record: encoding, bit offset and bit width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntInfo {
    /// `BTF_INT_ENCODING`: [`INT_SIGNED`], [`INT_CHAR`], [`INT_BOOL`] bits.
    pub encoding: u8,
    /// `BTF_INT_OFFSET`: bits to skip.
    pub offset: u8,
    /// `BTF_INT_BITS`: the width in bits.
    pub bits: u8,
}

impl IntInfo {
    /// Signed.
    pub fn is_signed(self) -> bool {
        self.encoding & INT_SIGNED != 0
    }

    /// A character type.
    pub fn is_char(self) -> bool {
        self.encoding & INT_CHAR != 0
    }

    /// A boolean.
    pub fn is_bool(self) -> bool {
        self.encoding & INT_BOOL != 0
    }
}

/// The data of an ARRAY record (`struct btf_array`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayInfo {
    /// The element type.
    pub elem: u32,
    /// The index type.
    pub index: u32,
    /// The number of elements.
    pub nelems: u32,
}

/// One value of an ENUM or ENUM64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    /// The offset of its name in the string section.
    pub name_off: u32,
    /// The value's bits: an ENUM's 32 zero-extended, an ENUM64's 64. Whether they are
    /// signed is the type's kind flag ([`TypeRef::is_signed_enum`]).
    pub value: u64,
}

/// One variable of a DATASEC (`struct btf_var_secinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    /// The variable's type (a VAR, normally).
    pub type_id: u32,
    /// Its offset in the section, in bytes.
    pub offset: u32,
    /// Its size in bytes.
    pub size: u32,
}

/// One parameter of a FUNC_PROTO (`struct btf_param`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The offset of its name in the string section.
    pub name_off: u32,
    /// Its type (0 for the `...` of a variadic function).
    pub type_id: u32,
}

/// The `i`th record of `N` little-endian words of `data`.
fn words<const N: usize>(data: &[u8], i: usize) -> Option<[u32; N]> {
    let at = i.checked_mul(N * 4)?;
    let mut out = [0u32; N];
    for (k, w) in out.iter_mut().enumerate() {
        *w = le32(data, at.checked_add(k * 4)?)?;
    }
    Some(out)
}

impl<'a> TypeRef<'a> {
    /// The size in bytes of a kind that has one (INT, STRUCT, UNION, ENUM, ENUM64,
    /// FLOAT, DATASEC).
    pub fn size(&self) -> Option<u32> {
        matches!(
            self.kind,
            Kind::INT
                | Kind::STRUCT
                | Kind::UNION
                | Kind::ENUM
                | Kind::ENUM64
                | Kind::FLOAT
                | Kind::DATASEC
        )
        .then_some(self.size_or_type)
    }

    /// The type a kind refers to (PTR, TYPEDEF, qualifiers, TYPE_TAG, DECL_TAG, VAR,
    /// FUNC, FUNC_PROTO's return type); an ARRAY's is [`array`](Self::array)`.elem`.
    pub fn type_id(&self) -> Option<u32> {
        (self.kind.is_alias()
            || matches!(
                self.kind,
                Kind::PTR | Kind::DECL_TAG | Kind::VAR | Kind::FUNC | Kind::FUNC_PROTO
            ))
        .then_some(self.size_or_type)
    }

    /// An INT's encoding, offset and bits.
    pub fn int(&self) -> Option<IntInfo> {
        if self.kind != Kind::INT {
            return None;
        }
        let v = le32(self.data, 0)?;
        Some(IntInfo {
            encoding: ((v >> 24) & 0x0f) as u8,
            offset: ((v >> 16) & 0xff) as u8,
            bits: (v & 0xff) as u8,
        })
    }

    /// An ARRAY's element type, index type and length.
    pub fn array(&self) -> Option<ArrayInfo> {
        if self.kind != Kind::ARRAY {
            return None;
        }
        let [elem, index, nelems] = words::<3>(self.data, 0)?;
        Some(ArrayInfo {
            elem,
            index,
            nelems,
        })
    }

    /// Whether an ENUM or ENUM64 is signed (its kind flag).
    pub fn is_signed_enum(&self) -> bool {
        matches!(self.kind, Kind::ENUM | Kind::ENUM64) && self.kind_flag
    }

    /// The values of an ENUM or ENUM64 (nothing for other kinds).
    pub fn enum_values(&self) -> impl Iterator<Item = EnumValue> + 'a {
        let (data, kind) = (self.data, self.kind);
        let n = match kind {
            Kind::ENUM | Kind::ENUM64 => usize::from(self.vlen),
            _ => 0,
        };
        (0..n).map_while(move |i| {
            if kind == Kind::ENUM {
                let [name_off, v] = words::<2>(data, i)?;
                Some(EnumValue {
                    name_off,
                    value: u64::from(v),
                })
            } else {
                let [name_off, lo, hi] = words::<3>(data, i)?;
                Some(EnumValue {
                    name_off,
                    value: (u64::from(hi) << 32) | u64::from(lo),
                })
            }
        })
    }

    /// The variables of a DATASEC (nothing for other kinds).
    pub fn var_secinfos(&self) -> impl Iterator<Item = VarSecinfo> + 'a {
        let data = self.data;
        let n = if self.kind == Kind::DATASEC {
            usize::from(self.vlen)
        } else {
            0
        };
        (0..n).map_while(move |i| {
            let [type_id, offset, size] = words::<3>(data, i)?;
            Some(VarSecinfo {
                type_id,
                offset,
                size,
            })
        })
    }

    /// The parameters of a FUNC_PROTO (nothing for other kinds).
    pub fn params(&self) -> impl Iterator<Item = Param> + 'a {
        let data = self.data;
        let n = if self.kind == Kind::FUNC_PROTO {
            usize::from(self.vlen)
        } else {
            0
        };
        (0..n).map_while(move |i| {
            let [name_off, type_id] = words::<2>(data, i)?;
            Some(Param { name_off, type_id })
        })
    }

    /// A VAR's linkage (0 static, 1 global, 2 extern).
    pub fn var_linkage(&self) -> Option<u32> {
        (self.kind == Kind::VAR)
            .then(|| le32(self.data, 0))
            .flatten()
    }

    /// A DECL_TAG's component index (-1: the declaration itself).
    pub fn decl_tag_component(&self) -> Option<i32> {
        (self.kind == Kind::DECL_TAG)
            .then(|| le32(self.data, 0))
            .flatten()
            .map(|v| v as i32)
    }

    /// A FWD's flavour: `true` for a union, `false` for a struct (the kind flag).
    pub fn fwd_is_union(&self) -> Option<bool> {
        (self.kind == Kind::FWD).then_some(self.kind_flag)
    }
}
