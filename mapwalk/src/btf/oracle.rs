//! The btf-rs based resolver this crate used before its own reader: kept for tests,
//! as an oracle the reader's results must equal.
#![allow(dead_code)]

use super::{BtfError, ResolvedLayout};
use btf_rs::{Btf, Type};

/// Parses BTF with btf-rs (the oracle's view of the same bytes).
pub(crate) fn parse(bytes: &[u8]) -> Btf {
    Btf::from_bytes(bytes).expect("btf-rs parses the BTF")
}

/// Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type
/// they name.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type, String> {
    for _ in 0..64 {
        match ty {
            Type::Typedef(_)
            | Type::Volatile(_)
            | Type::Const(_)
            | Type::Restrict(_)
            | Type::TypeTag(_) => {
                let bt = ty.as_btf_type().ok_or("untyped qualifier")?;
                ty = btf.resolve_chained_type(bt).map_err(|e| e.to_string())?;
            }
            _ => return Ok(ty),
        }
    }
    Err("typedef chain too long".into())
}

/// The members of a struct or union type.
fn members(ty: &Type) -> Option<&[btf_rs::Member]> {
    match ty {
        Type::Struct(s) | Type::Union(s) => Some(&s.members),
        _ => None,
    }
}

/// Finds `name` among the members of `ty`, looking into anonymous struct/union
/// members. Returns the member's bit offset from the start of `ty` and its type.
fn find_member(btf: &Btf, ty: &Type, name: &str, depth: u32) -> Option<(u64, Type)> {
    if depth > 16 {
        return None;
    }
    for m in members(ty)? {
        let mname = btf.resolve_name(m).unwrap_or_default();
        let bit = u64::from(m.bit_offset());
        if mname == name {
            // A bitfield's offset is in bits too: the caller refuses one not on a byte.
            let mty = btf.resolve_chained_type(m).ok()?;
            return Some((bit, mty));
        }
        if mname.is_empty() {
            let inner = btf
                .resolve_chained_type(m)
                .ok()
                .and_then(|t| strip(btf, t).ok())?;
            if let Some((off, t)) = find_member(btf, &inner, name, depth + 1) {
                return Some((bit + off, t));
            }
        }
    }
    None
}

/// The bit offset of the member path `path` (`"a"`, `"a.b"`) in `ty`.
fn path_bits(btf: &Btf, ty: &Type, owner: &str, path: &str) -> Result<u64, BtfError> {
    let mut total = 0u64;
    let mut cur = ty.clone();
    let mut done = String::new();
    for part in path.split('.') {
        if !done.is_empty() {
            done.push('.');
        }
        done.push_str(part);
        let here = format!("{owner}.{done}");
        let stripped = strip(btf, cur).map_err(|_| BtfError::NotAggregate(here.clone()))?;
        if members(&stripped).is_none() {
            return Err(BtfError::NotAggregate(here));
        }
        let (bit, mty) = find_member(btf, &stripped, part, 0).ok_or(BtfError::NoMember(here))?;
        total += bit;
        cur = mty;
    }
    Ok(total)
}

/// The struct (or union) types named `name`, those with members first.
fn aggregates(btf: &Btf, name: &str) -> Result<Vec<Type>, BtfError> {
    let types = btf
        .resolve_types_by_name(name)
        .map_err(|_| BtfError::NoStruct(name.to_owned()))?;
    let found: Vec<Type> = types
        .into_iter()
        .filter(|t| matches!(t, Type::Struct(_) | Type::Union(_)))
        .collect();
    if found.is_empty() {
        return Err(BtfError::NoStruct(name.to_owned()));
    }
    Ok(found)
}

/// The bit offset of member path `path` in struct `struct_name`. When several structs
/// share the name (the kernel has two `struct bucket`s), the first one that has the
/// whole path wins.
///
/// # Errors
/// [`BtfError::NoStruct`] or [`BtfError::NoMember`] (naming `struct.path`), or
/// [`BtfError::NotAggregate`] when a path component is not a struct or union.
pub fn member_bit_offset(btf: &Btf, struct_name: &str, path: &str) -> Result<u64, BtfError> {
    let mut first_err = None;
    for ty in aggregates(btf, struct_name)? {
        match path_bits(btf, &ty, struct_name, path) {
            Ok(bits) => return Ok(bits),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| BtfError::NoMember(format!("{struct_name}.{path}"))))
}

/// The byte offset of member path `path` (such as `"idr_rt.xa_head"`) in struct
/// `struct_name`; members of anonymous unions and structs count as members of the
/// struct that holds them.
///
/// # Errors
/// As [`member_bit_offset`], and [`BtfError::Bitfield`] when the member does not start
/// on a byte boundary.
pub fn member_offset(btf: &Btf, struct_name: &str, path: &str) -> Result<u32, BtfError> {
    let bits = member_bit_offset(btf, struct_name, path)?;
    let name = || format!("{struct_name}.{path}");
    if bits % 8 != 0 {
        return Err(BtfError::Bitfield(name()));
    }
    u32::try_from(bits / 8).map_err(|_| BtfError::TooFar(name()))
}

/// The size in bytes of struct `struct_name` (the first struct of that name).
///
/// # Errors
/// [`BtfError::NoStruct`].
pub fn struct_size(btf: &Btf, struct_name: &str) -> Result<usize, BtfError> {
    match aggregates(btf, struct_name)?.first() {
        Some(Type::Struct(s) | Type::Union(s)) => Ok(s.size()),
        _ => Err(BtfError::NoStruct(struct_name.to_owned())),
    }
}

/// The size in bytes of the first struct named `struct_name` that has member `path`
/// (the kernel has more than one `struct bucket`, for instance).
///
/// # Errors
/// [`BtfError::NoStruct`] or the member's resolution error.
pub fn struct_size_having(btf: &Btf, struct_name: &str, path: &str) -> Result<u32, BtfError> {
    let mut first_err = None;
    for ty in aggregates(btf, struct_name)? {
        match path_bits(btf, &ty, struct_name, path) {
            Ok(_) => {
                if let Type::Struct(s) | Type::Union(s) = &ty {
                    return u32::try_from(s.size())
                        .map_err(|_| BtfError::TooFar(format!("sizeof({struct_name})")));
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| BtfError::NoStruct(struct_name.to_owned())))
}

/// Every group of [`KernelLayout`](mapwalk_core::KernelLayout) from `btf`, with the
/// same grouping as the reader's [`resolve_layout`](super::resolve_layout).
///
/// # Errors
/// The first required field that cannot be resolved, as `struct.field`.
pub fn resolve_layout(btf: &Btf) -> Result<ResolvedLayout, BtfError> {
    super::layout::layout_with(
        |s, f| member_offset(btf, s, f),
        |s, p| struct_size_having(btf, s, p),
        |s, f| member_bit_offset(btf, s, f),
    )
}
