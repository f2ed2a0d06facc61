//! A [`KernelLayout`] resolved from the kernel's BTF.
//!
//! The input is raw BTF: the bytes between the `__start_BTF` and `__stop_BTF` symbols
//! of a kernel image (read out of guest memory), or `/sys/kernel/btf/vmlinux`. Parsing
//! is done by the `btf-rs` crate; this module only looks members up.
//!
//! [`member_offset`] is the generic piece: the byte offset of a member path such as
//! `"idr_rt.xa_head"` in a named struct, looking through anonymous unions and structs
//! (their members count as members of the enclosing struct, offsets added up). A layout
//! group is a handful of such lookups: [`resolve_layout`] fills the required groups
//! (a missing field is an error naming `struct.field`) and the optional ones (a missing
//! group becomes `None` and a warning).
//!
//! ```no_run
//! let bytes = std::fs::read("/sys/kernel/btf/vmlinux")?;
//! let resolved = mapwalk::btf::layout_from_bytes(&bytes)?;
//! println!("bpf_map.id at {}", resolved.layout.bpf_map.id);
//! for w in &resolved.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use btf_rs::{Btf, Type};
use mapwalk_core::layout::{ArrayLayout, BpfMapLayout, HtabLayout, IdrLayout, XarrayLayout};
use mapwalk_core::KernelLayout;
use std::fmt;

/// The magic number at the start of raw BTF (`0xeb9f`, little-endian `9f eb`).
pub const BTF_MAGIC: u16 = 0xeb9f;

/// Why a layout could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfError {
    /// The bytes are not BTF that `btf-rs` can parse.
    Parse(String),
    /// No struct (or union) of this name.
    NoStruct(String),
    /// The struct has no such member (path), as `struct.field`.
    NoMember(String),
    /// The member exists but is a bitfield that does not start on a byte, as
    /// `struct.field`.
    Bitfield(String),
    /// A path component is not a struct or union, as `struct.field`.
    NotAggregate(String),
    /// The offset does not fit the layout's `u32`, as `struct.field`.
    TooFar(String),
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "BTF: cannot parse: {e}"),
            Self::NoStruct(s) => write!(f, "BTF: no struct {s}"),
            Self::NoMember(m) => write!(f, "BTF: no member {m}"),
            Self::Bitfield(m) => write!(f, "BTF: {m} is a bitfield not on a byte boundary"),
            Self::NotAggregate(m) => write!(f, "BTF: {m}: not a struct or union"),
            Self::TooFar(m) => write!(f, "BTF: {m}: offset too large"),
        }
    }
}

impl std::error::Error for BtfError {}

/// A resolved layout and what could not be resolved but was not required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLayout {
    /// The layout.
    pub layout: KernelLayout,
    /// One line per optional group or field left out, and why.
    pub warnings: Vec<String>,
}

/// Parses raw BTF bytes (checking the magic first).
///
/// # Errors
/// [`BtfError::Parse`].
pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
    match bytes.get(..2) {
        Some(m) if u16::from_le_bytes([m[0], m[1]]) == BTF_MAGIC => {}
        _ => {
            return Err(BtfError::Parse(format!(
                "no BTF magic (first bytes {:02x?})",
                &bytes[..bytes.len().min(4)]
            )))
        }
    }
    Btf::from_bytes(bytes).map_err(|e| BtfError::Parse(e.to_string()))
}

/// Parses raw BTF and resolves the layout (see [`resolve_layout`]).
///
/// # Errors
/// As [`parse`] and [`resolve_layout`].
pub fn layout_from_bytes(bytes: &[u8]) -> Result<ResolvedLayout, BtfError> {
    resolve_layout(&parse(bytes)?)
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

/// Resolves every group of [`KernelLayout`] from `btf`.
///
/// Required: `xarray`, `idr`, `bpf_map` (except `btf_vmlinux_value_type_id`).
/// Optional: `array` (`None` and a warning when `bpf_array` cannot be resolved), and
/// `bpf_map.btf_vmlinux_value_type_id` (`None` and a warning).
///
/// # Errors
/// The first required field that cannot be resolved, as `struct.field`.
pub fn resolve_layout(btf: &Btf) -> Result<ResolvedLayout, BtfError> {
    let mut warnings = Vec::new();
    let off = |s: &str, f: &str| member_offset(btf, s, f);
    let xarray = XarrayLayout {
        xa_head: off("xarray", "xa_head")?,
        node_shift: off("xa_node", "shift")?,
        node_slots: off("xa_node", "slots")?,
    };
    let idr = IdrLayout {
        idr_rt: off("idr", "idr_rt")?,
        idr_next: off("idr", "idr_next")?,
    };
    let bpf_map = BpfMapLayout {
        map_type: off("bpf_map", "map_type")?,
        key_size: off("bpf_map", "key_size")?,
        value_size: off("bpf_map", "value_size")?,
        max_entries: off("bpf_map", "max_entries")?,
        map_flags: off("bpf_map", "map_flags")?,
        id: off("bpf_map", "id")?,
        name: off("bpf_map", "name")?,
        btf: off("bpf_map", "btf")?,
        btf_key_type_id: off("bpf_map", "btf_key_type_id")?,
        btf_value_type_id: off("bpf_map", "btf_value_type_id")?,
        btf_vmlinux_value_type_id: optional(
            &mut warnings,
            off("bpf_map", "btf_vmlinux_value_type_id"),
        ),
    };
    let array = group(&mut warnings, "bpf_array (ARRAY maps)", || {
        Ok(ArrayLayout {
            elem_size: off("bpf_array", "elem_size")?,
            value: off("bpf_array", "value")?,
        })
    });
    let htab = group(&mut warnings, "bpf_htab (HASH maps)", || {
        Ok(HtabLayout {
            buckets: off("bpf_htab", "buckets")?,
            n_buckets: off("bpf_htab", "n_buckets")?,
            elem_size: off("bpf_htab", "elem_size")?,
            bucket_head: off("bucket", "head")?,
            bucket_size: struct_size_having(btf, "bucket", "head")?,
            elem_hash_node: off("htab_elem", "hash_node")?,
            elem_key: off("htab_elem", "key")?,
        })
    });
    Ok(ResolvedLayout {
        layout: KernelLayout {
            xarray,
            idr,
            bpf_map,
            array,
            htab,
        },
        warnings,
    })
}

/// An optional field: `None` and a warning when it cannot be resolved.
fn optional<T>(warnings: &mut Vec<String>, r: Result<T, BtfError>) -> Option<T> {
    r.map_err(|e| warnings.push(format!("optional field left out: {e}")))
        .ok()
}

/// An optional group: `None` and a warning naming the group when any of its fields
/// cannot be resolved.
pub fn group<T>(
    warnings: &mut Vec<String>,
    what: &str,
    resolve: impl FnOnce() -> Result<T, BtfError>,
) -> Option<T> {
    resolve()
        .map_err(|e| warnings.push(format!("{what} disabled: {e}")))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

    fn host_btf(test: &str) -> Option<Vec<u8>> {
        if !Path::new(HOST_BTF).exists() {
            crate::e2e::unavailable(test, &format!("{HOST_BTF} (kernel without BTF)"));
            return None;
        }
        Some(std::fs::read(HOST_BTF).unwrap())
    }

    /// One type of a `bpftool btf dump ... format raw` listing.
    struct Ty {
        kind: String,
        name: String,
        target: u32,
        /// (name, type id, bit offset) of each member.
        members: Vec<(String, u32, u64)>,
    }

    type Types = std::collections::HashMap<u32, Ty>;

    /// Parses `bpftool btf dump file F format raw`: `[ID] KIND 'name' ... type_id=N`
    /// lines, each followed by member lines `'name' type_id=N bits_offset=B`.
    fn parse_bpftool(dump: &str) -> Types {
        let mut types = Types::default();
        let mut cur: Option<u32> = None;
        for line in dump.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                let Some((id, rest)) = rest.split_once("] ") else {
                    continue;
                };
                let mut words = rest.split_whitespace();
                let (Ok(id), Some(kind), Some(name)) = (id.parse(), words.next(), words.next())
                else {
                    continue;
                };
                let target = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("type_id="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                types.insert(
                    id,
                    Ty {
                        kind: kind.to_owned(),
                        name: name.trim_matches('\'').to_owned(),
                        target,
                        members: Vec::new(),
                    },
                );
                cur = Some(id);
            } else if let (Some(id), Some(m)) = (cur, line.trim_start().strip_prefix('\'')) {
                let Some((name, rest)) = m.split_once('\'') else {
                    continue;
                };
                let field = |key: &str| {
                    rest.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                };
                // Enum values, function parameters and the like have no offset.
                let (Some(type_id), Some(bits)) = (field("type_id="), field("bits_offset=")) else {
                    continue;
                };
                if let (Ok(type_id), Some(t)) = (u32::try_from(type_id), types.get_mut(&id)) {
                    t.members.push((name.to_owned(), type_id, bits));
                }
            }
        }
        types
    }

    fn strip_ids(types: &Types, mut id: u32) -> u32 {
        while let Some(t) = types.get(&id) {
            if matches!(
                t.kind.as_str(),
                "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG"
            ) {
                id = t.target;
            } else {
                break;
            }
        }
        id
    }

    fn find_in(types: &Types, id: u32, name: &str) -> Option<(u64, u32)> {
        for (mname, tid, bits) in &types.get(&id)?.members {
            if mname == name {
                return Some((*bits, *tid));
            }
            if mname.is_empty() || mname == "(anon)" {
                if let Some((b, t)) = find_in(types, strip_ids(types, *tid), name) {
                    return Some((bits + b, t));
                }
            }
        }
        None
    }

    /// The bit offset of `path` in the first struct named `struct_name` that has it,
    /// computed independently of btf-rs from bpftool's listing.
    fn bpftool_offset(types: &Types, struct_name: &str, path: &str) -> Option<u64> {
        let mut ids: Vec<u32> = types
            .iter()
            .filter(|(_, t)| t.kind == "STRUCT" && t.name == struct_name)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        'outer: for id in ids {
            let mut cur = id;
            let mut total = 0;
            for part in path.split('.') {
                let Some((bits, tid)) = find_in(types, strip_ids(types, cur), part) else {
                    continue 'outer;
                };
                total += bits;
                cur = tid;
            }
            return Some(total);
        }
        None
    }

    #[test]
    fn resolves_the_host_kernel_layout_as_bpftool_does() {
        let test = "btf::resolves_the_host_kernel_layout_as_bpftool_does";
        let Some(bytes) = host_btf(test) else { return };
        let btf = parse(&bytes).unwrap();
        let r = resolve_layout(&btf).unwrap();
        let l = &r.layout;
        eprintln!("host layout: {l:#?}\nwarnings: {:?}", r.warnings);

        // Invariants that hold on every 64-bit kernel.
        assert_eq!(l.idr.idr_rt, 0);
        assert_eq!(l.xarray.node_slots, 40, "xa_node.slots on 64-bit");
        assert!(l.array.is_some() && l.bpf_map.btf_vmlinux_value_type_id.is_some());

        let out = match Command::new("bpftool")
            .args(["btf", "dump", "file", HOST_BTF, "format", "raw"])
            .output()
        {
            Ok(o) if o.status.success() => o,
            other => {
                crate::e2e::unavailable(
                    test,
                    &format!("bpftool (apt-get install bpftool) to compare with: {other:?}"),
                );
                return;
            }
        };
        let types = parse_bpftool(&String::from_utf8_lossy(&out.stdout));
        let array = l.array.unwrap();
        let htab = l.htab.unwrap();
        assert!(
            htab.bucket_size >= 8,
            "struct bucket (with head) holds at least a pointer"
        );
        let fields: Vec<(&str, &str, u32)> = vec![
            ("xarray", "xa_head", l.xarray.xa_head),
            ("xa_node", "shift", l.xarray.node_shift),
            ("xa_node", "slots", l.xarray.node_slots),
            ("idr", "idr_rt", l.idr.idr_rt),
            ("idr", "idr_next", l.idr.idr_next),
            ("idr", "idr_rt.xa_head", l.idr.idr_rt + l.xarray.xa_head),
            ("bpf_map", "map_type", l.bpf_map.map_type),
            ("bpf_map", "key_size", l.bpf_map.key_size),
            ("bpf_map", "value_size", l.bpf_map.value_size),
            ("bpf_map", "max_entries", l.bpf_map.max_entries),
            ("bpf_map", "map_flags", l.bpf_map.map_flags),
            ("bpf_map", "id", l.bpf_map.id),
            ("bpf_map", "name", l.bpf_map.name),
            ("bpf_map", "btf", l.bpf_map.btf),
            ("bpf_map", "btf_key_type_id", l.bpf_map.btf_key_type_id),
            ("bpf_map", "btf_value_type_id", l.bpf_map.btf_value_type_id),
            (
                "bpf_map",
                "btf_vmlinux_value_type_id",
                l.bpf_map.btf_vmlinux_value_type_id.unwrap(),
            ),
            ("bpf_array", "elem_size", array.elem_size),
            ("bpf_array", "value", array.value),
            ("bpf_array", "pptrs", array.value),
            ("bpf_array", "map.id", l.bpf_map.id),
            ("bpf_htab", "buckets", htab.buckets),
            ("bpf_htab", "n_buckets", htab.n_buckets),
            ("bpf_htab", "elem_size", htab.elem_size),
            ("htab_elem", "hash_node", htab.elem_hash_node),
            ("htab_elem", "key", htab.elem_key),
        ];
        for (s, f, ours) in fields {
            let theirs = bpftool_offset(&types, s, f)
                .unwrap_or_else(|| panic!("bpftool dump has no {s}.{f}"));
            assert_eq!(u64::from(ours) * 8, theirs, "{s}.{f}: ours vs bpftool");
            assert_eq!(member_offset(&btf, s, f).unwrap(), ours, "{s}.{f}");
        }
    }

    #[test]
    fn missing_fields_are_named_and_optional_groups_warn() {
        let test = "btf::missing_fields_are_named_and_optional_groups_warn";
        let Some(bytes) = host_btf(test) else { return };
        let btf = parse(&bytes).unwrap();
        assert_eq!(
            member_offset(&btf, "bpf_map", "no_such_field"),
            Err(BtfError::NoMember("bpf_map.no_such_field".into()))
        );
        assert_eq!(
            member_offset(&btf, "bpf_map", "id.x"),
            Err(BtfError::NotAggregate("bpf_map.id.x".into()))
        );
        assert_eq!(
            member_offset(&btf, "no_such_struct_xyz", "a"),
            Err(BtfError::NoStruct("no_such_struct_xyz".into()))
        );
        // Two `struct bucket`s: the one with `head` is found.
        assert!(member_offset(&btf, "bucket", "head").is_ok());
        let mut warnings = Vec::new();
        let g = group(&mut warnings, "bpf_nothing", || {
            member_offset(&btf, "bpf_array", "nothing")
        });
        assert_eq!(g, None);
        assert_eq!(
            warnings,
            ["bpf_nothing disabled: BTF: no member bpf_array.nothing"]
        );
        assert!(matches!(parse(b"\x7fELF...."), Err(BtfError::Parse(_))));
    }
}
