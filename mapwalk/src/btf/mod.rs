//! A [`KernelLayout`] resolved from the kernel's BTF.
//!
//! The input is raw BTF: the bytes between the `__start_BTF` and `__stop_BTF` symbols
//! of a kernel image (read out of guest memory), or `/sys/kernel/btf/vmlinux`. A
//! kernel's BTF is large (about 5 MiB, 130,000 types, on Debian) and may come from a
//! hostile guest, so it is read by this crate's own zero-copy [`BtfReader`]: one
//! pass over the type section indexes where each type starts and notes the few structs
//! the layout needs; members and names are then read in place, every read bounds
//! checked and every chain capped ([`reader`]'s `MAX_*` constants). The same reader
//! serves rendering: [`MapBtf`] owns a map's BTF (standalone, or split over the
//! kernel's [`BaseBtf`]) and [`TypeRef`]'s typed accessors ([`types`]) decode each
//! kind.
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

mod layout;
mod map;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod oracle_tests;
pub mod reader;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;

use mapwalk_core::KernelLayout;
use std::fmt;
use std::sync::Arc;

pub use map::{BaseBtf, MapBtf};
pub use types::{ArrayInfo, EnumValue, IntInfo, Param, VarSecinfo};

pub use layout::{
    group, member_bit_offset, member_offset, resolve_layout, struct_size, struct_size_having,
    BtfObjectLayout, LAYOUT_STRUCTS, MAX_ANON_DEPTH, MAX_PATH_PARTS,
};
pub use reader::{BtfReader, Kind, Member, TypeRef, BTF_MAGIC};

/// Why BTF could not be read or a layout could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfError {
    /// The bytes are not BTF (no magic).
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
    /// The header is wrong: `what`, and the value found.
    Header {
        /// What is wrong.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A type record runs past the end of the type section.
    Truncated {
        /// Which part of the record.
        what: &'static str,
        /// The type's id.
        id: u32,
        /// Where the record starts in the type section.
        offset: usize,
    },
    /// A type of a kind this reader does not know (so its length is unknown).
    UnknownKind {
        /// The type's id.
        id: u32,
        /// The kind.
        kind: u8,
        /// Where the record starts in the type section.
        offset: usize,
    },
    /// A reference to a type id past the last type.
    BadTypeId {
        /// The id referred to.
        id: u32,
        /// The type that refers to it (0: the lookup's start).
        from: u32,
    },
    /// A name offset outside the string section, or a string without its NUL.
    BadString {
        /// The offset in the string section.
        offset: u32,
    },
    /// A cap on a loop or a chain was crossed.
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The cap.
        limit: u32,
    },
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
            Self::Header { what, value } => write!(f, "BTF header: {what} ({value:#x})"),
            Self::Truncated { what, id, offset } => write!(
                f,
                "BTF: type {id} at {offset:#x} in the type section: {what} runs past the end"
            ),
            Self::UnknownKind { id, kind, offset } => write!(
                f,
                "BTF: type {id} at {offset:#x} in the type section: unknown kind {kind}"
            ),
            Self::BadTypeId { id, from } => {
                write!(
                    f,
                    "BTF: type {from} refers to type {id}, which does not exist"
                )
            }
            Self::BadString { offset } => write!(
                f,
                "BTF: name at {offset:#x} is outside the string section or not terminated"
            ),
            Self::LimitExceeded { what, limit } => {
                write!(f, "BTF: more than {limit} {what} (corrupt BTF?)")
            }
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

/// Reads standalone BTF (a copy of `bytes`) for rendering: [`MapBtf::new`].
///
/// # Errors
/// As [`BtfReader::new`].
pub fn parse(bytes: &[u8]) -> Result<MapBtf, BtfError> {
    MapBtf::new(bytes.to_vec())
}

/// A kernel's raw BTF, indexed for rendering only when first asked for.
///
/// Rendering a map value through a *split* BTF (module or program BTF on top of the
/// kernel's) needs the kernel's types indexed ([`BaseBtf`]); standalone map BTF does
/// not, and the layout has its own reader. So the index (four bytes a type) is built
/// the first time [`base`](Self::base) is called, and shared by every map after.
pub struct KernelBtf {
    raw: Arc<Vec<u8>>,
    base: std::sync::OnceLock<Result<BaseBtf, BtfError>>,
}

impl KernelBtf {
    /// Raw BTF (not checked here: see [`BtfReader::new`]).
    pub fn new(raw: Vec<u8>) -> Self {
        Self {
            raw: Arc::new(raw),
            base: std::sync::OnceLock::new(),
        }
    }

    /// The raw bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// A reader over the bytes (one pass over the types each call).
    ///
    /// # Errors
    /// As [`BtfReader::new`].
    pub fn reader(&self) -> Result<BtfReader<'_>, BtfError> {
        BtfReader::new(&self.raw)
    }

    /// The indexed types, the base of split map BTF, indexed on the first call.
    ///
    /// # Errors
    /// As [`BtfReader::new`] (the same error on every call).
    pub fn base(&self) -> Result<&BaseBtf, BtfError> {
        self.base
            .get_or_init(|| BaseBtf::shared(Arc::clone(&self.raw)))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether [`base`](Self::base) has been called.
    pub fn is_indexed(&self) -> bool {
        self.base.get().is_some()
    }
}

impl fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelBtf")
            .field("bytes", &self.raw.len())
            .field("indexed", &self.is_indexed())
            .finish()
    }
}

/// Reads raw BTF and resolves the layout (see [`resolve_layout`]).
///
/// # Errors
/// As [`BtfReader::new`] and [`resolve_layout`].
pub fn layout_from_bytes(bytes: &[u8]) -> Result<ResolvedLayout, BtfError> {
    resolve_layout(&BtfReader::with_names(bytes, LAYOUT_STRUCTS)?)
}

#[cfg(test)]
mod tests {
    use super::testing::Builder;
    use super::*;
    use std::path::Path;

    const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

    fn host_btf(test: &str) -> Option<Vec<u8>> {
        if !Path::new(HOST_BTF).exists() {
            crate::unavailable(test, &format!("{HOST_BTF} (kernel without BTF)"));
            return None;
        }
        Some(std::fs::read(HOST_BTF).unwrap())
    }

    // The comparison with `bpftool btf dump` (host and Debian images) is
    // tests/btf_bpftool.rs.

    #[test]
    fn missing_fields_are_named_and_optional_groups_warn() {
        let test = "btf::missing_fields_are_named_and_optional_groups_warn";
        let Some(bytes) = host_btf(test) else { return };
        let btf = BtfReader::new(&bytes).unwrap();
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

    #[test]
    fn the_reader_resolves_the_host_layout_as_btf_rs_does() {
        let test = "btf::the_reader_resolves_the_host_layout_as_btf_rs_does";
        let Some(bytes) = host_btf(test) else { return };
        let ours = layout_from_bytes(&bytes).unwrap();
        let oracle = oracle::resolve_layout(&oracle::parse(&bytes)).unwrap();
        assert_eq!(ours, oracle);
        // Names not asked for in advance are found by a pass of their own.
        let plain = BtfReader::new(&bytes).unwrap();
        assert_eq!(resolve_layout(&plain).unwrap(), oracle);
        let btf = oracle::parse(&bytes);
        for (s, f) in [
            ("btf", "data"),
            ("btf", "data_size"),
            ("btf", "base_btf"),
            ("task_struct", "pid"),
            ("sk_buff", "len"),
            ("bpf_array", "pptrs"),
            ("bpf_array", "map.id"),
            ("bucket", "raw_lock"),
        ] {
            assert_eq!(
                member_offset(&plain, s, f),
                oracle::member_offset(&btf, s, f),
                "{s}.{f}"
            );
        }
        // A bitfield (kind flag set on sk_buff): the same bit offset.
        assert_eq!(
            member_bit_offset(&plain, "sk_buff", "pkt_type"),
            oracle::member_bit_offset(&btf, "sk_buff", "pkt_type"),
        );
        assert_eq!(
            u64::from(struct_size(&plain, "bpf_map").unwrap()),
            oracle::struct_size(&btf, "bpf_map").unwrap() as u64
        );
    }

    /// Two `struct bucket`s, an anonymous union in a struct reached through a const
    /// typedef, a bitfield with the kind flag.
    fn sample() -> Builder {
        let mut b = Builder::new();
        let u32_t = b.int("u32", 4);
        let u64_t = b.int("u64", 8);
        b.agg(Kind::STRUCT, "bucket", false, 4, &[("lock", u32_t, 0)]);
        let inner = b.agg(
            Kind::UNION,
            "",
            false,
            8,
            &[("head", u64_t, 0), ("other", u32_t, 0)],
        );
        b.agg(
            Kind::STRUCT,
            "bucket",
            true,
            24,
            &[
                ("lock", u32_t, 0),
                ("flag", u32_t, (1 << 24) | 35),
                ("", inner, 64),
                ("tail", u64_t, 128),
            ],
        );
        let obj = b.agg(
            Kind::STRUCT,
            "obj",
            false,
            16,
            &[("a", u64_t, 0), ("b", u32_t, 64)],
        );
        let c = b.alias(Kind::CONST, "", obj);
        let td = b.alias(Kind::TYPEDEF, "obj_t", c);
        b.agg(
            Kind::STRUCT,
            "outer",
            false,
            24,
            &[("x", u64_t, 0), ("o", td, 64)],
        );
        b
    }

    #[test]
    fn members_through_anonymous_unions_typedefs_and_bitfields() {
        let bytes = sample().bytes();
        let r = BtfReader::with_names(&bytes, &["bucket"]).unwrap();
        assert_eq!(r.type_count(), 9);
        // The second bucket has `head`, inside its anonymous union.
        assert_eq!(member_offset(&r, "bucket", "head"), Ok(8));
        assert_eq!(struct_size_having(&r, "bucket", "head"), Ok(24));
        assert_eq!(struct_size(&r, "bucket"), Ok(4));
        assert_eq!(member_offset(&r, "bucket", "tail"), Ok(16));
        assert_eq!(member_bit_offset(&r, "bucket", "flag"), Ok(35));
        assert_eq!(
            member_offset(&r, "bucket", "flag"),
            Err(BtfError::Bitfield("bucket.flag".into()))
        );
        assert_eq!(member_offset(&r, "outer", "o.b"), Ok(16));
        assert_eq!(
            member_offset(&r, "outer", "x.b"),
            Err(BtfError::NotAggregate("outer.x.b".into()))
        );
        assert_eq!(
            member_offset(&r, "outer", "o.zz"),
            Err(BtfError::NoMember("outer.o.zz".into()))
        );
        assert_eq!(
            member_offset(&r, "nothing", "a"),
            Err(BtfError::NoStruct("nothing".into()))
        );
        // The same through btf-rs.
        let btf = oracle::parse(&bytes);
        for (s, f) in [("bucket", "head"), ("bucket", "tail"), ("outer", "o.b")] {
            assert_eq!(
                member_offset(&r, s, f),
                oracle::member_offset(&btf, s, f),
                "{s}.{f}"
            );
        }
    }

    #[test]
    fn hostile_btf_is_an_error_naming_what_and_where() {
        // A typedef loop.
        let mut b = Builder::new();
        b.alias(Kind::TYPEDEF, "a", 2);
        b.alias(Kind::TYPEDEF, "b", 1);
        b.agg(Kind::STRUCT, "s", false, 8, &[("m", 1, 0)]);
        let bytes = b.bytes();
        let r = BtfReader::new(&bytes).unwrap();
        let e = member_offset(&r, "s", "m.x").unwrap_err();
        assert_eq!(
            e,
            BtfError::LimitExceeded {
                what: "chain of typedefs and qualifiers",
                limit: reader::MAX_CHAIN
            }
        );
        assert!(e.to_string().contains("typedefs"), "{e}");

        // A member of a type that does not exist.
        let mut b = Builder::new();
        b.agg(Kind::STRUCT, "s", false, 8, &[("", 99, 0)]);
        let bytes = b.bytes();
        let r = BtfReader::new(&bytes).unwrap();
        assert_eq!(
            member_offset(&r, "s", "m"),
            Err(BtfError::BadTypeId { id: 99, from: 0 })
        );

        // An anonymous struct that contains itself.
        let mut b = Builder::new();
        b.agg(Kind::STRUCT, "s", false, 8, &[("", 1, 0)]);
        let bytes = b.bytes();
        let r = BtfReader::new(&bytes).unwrap();
        assert!(matches!(
            member_offset(&r, "s", "m"),
            Err(BtfError::LimitExceeded {
                limit: MAX_ANON_DEPTH,
                ..
            })
        ));

        // An unknown kind, and a record cut short.
        let mut b = Builder::new();
        b.int("int", 4);
        b.head("x", Kind(31), false, 0, 0);
        assert_eq!(
            BtfReader::new(&b.bytes()).unwrap_err(),
            BtfError::UnknownKind {
                id: 2,
                kind: 31,
                offset: 16
            }
        );
        let mut b = Builder::new();
        b.int("int", 4);
        b.head("s", Kind::STRUCT, false, 3, 0);
        let e = BtfReader::new(&b.bytes()).unwrap_err();
        assert_eq!(
            e,
            BtfError::Truncated {
                what: "kind-specific data",
                id: 2,
                offset: 16
            }
        );
        assert!(e.to_string().contains("type 2 at 0x10"), "{e}");

        // Headers whose sections are outside the input.
        let good = sample().bytes();
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(BtfReader::new(&bad), Err(BtfError::Header { .. })));
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(BtfReader::new(&bad), Err(BtfError::Header { .. })));
        let mut bad = good.clone();
        bad[0..2].copy_from_slice(&[0xeb, 0x9f]);
        assert!(matches!(BtfReader::new(&bad), Err(BtfError::Header { .. })));
        assert!(matches!(
            BtfReader::new(b"\x7fELF"),
            Err(BtfError::Parse(_))
        ));
        // A name outside the string section.
        let mut b = Builder::new();
        b.agg(Kind::STRUCT, "s", false, 8, &[("m", 0, 0)]);
        let mut bytes = b.bytes();
        let first_member_name = 24 + 12;
        bytes[first_member_name..first_member_name + 4].copy_from_slice(&0xffffu32.to_le_bytes());
        let r = BtfReader::new(&bytes).unwrap();
        assert_eq!(
            member_offset(&r, "s", "m"),
            Err(BtfError::BadString { offset: 0xffff })
        );
    }

    #[test]
    fn every_corruption_of_a_small_btf_is_survived() {
        // Every byte of the sample set to a few values, every prefix: no panic.
        let good = sample().bytes();
        for len in 0..good.len() {
            let _ = layout_from_bytes(&good[..len]);
        }
        for at in 0..good.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = v;
                if let Ok(r) = BtfReader::with_names(&bad, &["bucket"]) {
                    let _ = member_offset(&r, "bucket", "head");
                    let _ = struct_size_having(&r, "bucket", "head");
                    let _ = member_offset(&r, "outer", "o.b");
                }
            }
        }
    }
}
