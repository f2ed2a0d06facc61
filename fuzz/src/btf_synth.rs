//! A small BTF writer, and the two synthetic blobs the BTF targets start from: a
//! "kernel" BTF with the structs [`mapwalk::btf::resolve_layout`] asks for, laid out as
//! [`mapwalk_core::synth::default_layout`], and a "map" BTF with one type of each kind the
//! value renderer knows.
//!
//! Format (`include/uapi/linux/btf.h`): a 24-byte header (`magic 0xeb9f, version 1,
//! flags 0, hdr_len 24, type_off, type_len, str_off, str_len`), the type section (type
//! ids from 1, in order), then the string section (offset 0 is the empty string).

use std::sync::OnceLock;

/// `BTF_KIND_*`.
#[allow(missing_docs)]
pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const TYPEDEF: u32 = 8;
    pub const CONST: u32 = 10;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
}

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`.
pub const INT_SIGNED: u32 = 1;
/// A `char`.
pub const INT_CHAR: u32 = 2;
/// A `bool`.
pub const INT_BOOL: u32 = 4;

/// The length of a BTF header.
pub const HDR_LEN: usize = 24;

/// Appends BTF types and strings; [`build`](Self::build) writes the blob.
#[derive(Debug, Clone)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    str_base: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::split(1, 0)
    }
}

impl BtfBuilder {
    /// Split BTF over a base of `first_id - 1` types and `str_base` bytes of strings:
    /// ids count from `first_id`, string offsets from `str_base`.
    pub fn split(first_id: u32, str_base: u32) -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next_id: first_id,
            str_base,
        }
    }

    /// The offset of `s` in the string section (0 for the empty name).
    pub fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        at
    }

    fn u32(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }

    /// A `btf_type` record; returns its id.
    fn head(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, size_type: u32) -> u32 {
        let name = self.str(name);
        self.u32(name);
        self.u32((u32::from(kind_flag) << 31) | (kind << 24) | (vlen & 0xffff));
        self.u32(size_type);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id the next type gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// An integer of `size` bytes with `INT_*` encoding bits.
    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let id = self.head(name, kind::INT, 0, false, size);
        self.u32((encoding << 24) | (size * 8));
        id
    }

    /// A pointer to `target` (0: `void *`).
    pub fn ptr(&mut self, target: u32) -> u32 {
        self.head("", kind::PTR, 0, false, target)
    }

    /// `elem[n]`, indexed by `index`.
    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", kind::ARRAY, 0, false, 0);
        self.u32(elem);
        self.u32(index);
        self.u32(n);
        id
    }

    /// A struct (or union) of `size` bytes with `(name, type, byte offset)` members.
    pub fn aggregate(
        &mut self,
        union: bool,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let k = if union { kind::UNION } else { kind::STRUCT };
        let id = self.head(name, k, members.len() as u32, false, size);
        for &(m, ty, off) in members {
            let m = self.str(m);
            self.u32(m);
            self.u32(ty);
            self.u32(off * 8);
        }
        id
    }

    /// A struct with `kind_flag` set: members `(name, type, bit offset, bitfield size)`.
    pub fn bitfields(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let id = self.head(name, kind::STRUCT, members.len() as u32, true, size);
        for &(m, ty, bit, bits) in members {
            let m = self.str(m);
            self.u32(m);
            self.u32(ty);
            self.u32((bits << 24) | bit);
        }
        id
    }

    /// An enum of `size` bytes.
    pub fn enumeration(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        values: &[(&str, i32)],
    ) -> u32 {
        let id = self.head(name, kind::ENUM, values.len() as u32, signed, size);
        for &(n, v) in values {
            let n = self.str(n);
            self.u32(n);
            self.u32(v as u32);
        }
        id
    }

    /// `typedef target name`.
    pub fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.head(name, kind::TYPEDEF, 0, false, target)
    }

    /// `const target`.
    pub fn constant(&mut self, target: u32) -> u32 {
        self.head("", kind::CONST, 0, false, target)
    }

    /// A float of `size` bytes.
    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.head(name, kind::FLOAT, 0, false, size)
    }

    /// A global variable of type `ty`.
    pub fn var(&mut self, name: &str, ty: u32) -> u32 {
        let id = self.head(name, kind::VAR, 0, false, ty);
        self.u32(1); // BTF_VAR_GLOBAL_ALLOCATED
        id
    }

    /// A data section of `size` bytes holding `(var, offset, size)`.
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.head(name, kind::DATASEC, vars.len() as u32, false, size);
        for &(v, off, len) in vars {
            self.u32(v);
            self.u32(off);
            self.u32(len);
        }
        id
    }

    /// The blob: header, types, strings.
    pub fn build(&self) -> Vec<u8> {
        blob(&self.types, &self.strings)
    }
}

/// A BTF blob of these type and string sections, with a header that says so.
pub fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR_LEN + types.len() + strings.len());
    v.extend_from_slice(&0xeb9fu16.to_le_bytes());
    v.push(1); // version
    v.push(0); // flags
    for x in [
        HDR_LEN as u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(types);
    v.extend_from_slice(strings);
    v
}

/// A header field of a blob [`blob`] wrote: `(type_len, str_len)`.
pub fn section_lens(blob: &[u8]) -> (usize, usize) {
    let word = |at: usize| {
        blob.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    (word(12), word(20))
}

/// The number of types in [`kernel_btf`].
pub fn kernel_types() -> u32 {
    let btf = btf_rs::Btf::from_bytes(kernel_btf()).expect("the synthetic kernel BTF parses");
    btf.base().type_id_range().1
}

/// A kernel BTF with the structs and members the layout resolver needs, at the offsets
/// of [`mapwalk_core::synth::default_layout`]: `xarray`, `xa_node` (its `private_list`
/// and `rcu_head` in an anonymous union), `idr` (an embedded `xarray`), `bpf_map` (its
/// `u32` fields through a typedef), `bpf_array` (`value` in an anonymous union, as the
/// kernel has it), `bpf_htab`, two `struct bucket`s (the first without `head`, as in the
/// kernel, where the one of `hashtab.c` is not the first), `htab_elem` and `btf`.
pub fn kernel_btf() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let l = mapwalk_core::synth::default_layout();
        let array = l.array.expect("the default layout has bpf_array");
        let htab = l.htab.expect("the default layout has bpf_htab");
        let bpf_map = l.bpf_map;
        let mut b = BtfBuilder::default();
        let uint = b.int("unsigned int", 4, 0);
        let u32_t = b.typedef("u32", uint);
        let uchar = b.int("unsigned char", 1, 0);
        let chr = b.int("char", 1, INT_SIGNED);
        let long = b.int("long unsigned int", 8, 0);
        let vptr = b.ptr(0);
        let cvptr = b.constant(vptr);
        let spin = b.aggregate(false, "spinlock", 4, &[("val", uint, 0)]);
        let xarray = b.aggregate(
            false,
            "xarray",
            16,
            &[
                ("xa_lock", spin, 0),
                ("xa_flags", uint, 4),
                ("xa_head", vptr, l.xarray.xa_head),
            ],
        );
        let list_head = b.aggregate(
            false,
            "list_head",
            16,
            &[("next", vptr, 0), ("prev", vptr, 8)],
        );
        let rcu = b.aggregate(
            false,
            "callback_head",
            16,
            &[("next", vptr, 0), ("func", vptr, 8)],
        );
        let anon = b.aggregate(
            true,
            "",
            16,
            &[("private_list", list_head, 0), ("rcu_head", rcu, 0)],
        );
        let slots = b.array(cvptr, uint, 64);
        b.aggregate(
            false,
            "xa_node",
            40 + 64 * 8 + 24,
            &[
                ("shift", uchar, l.xarray.node_shift),
                ("offset", uchar, 1),
                ("count", uchar, 2),
                ("nr_values", uchar, 3),
                ("parent", vptr, 8),
                ("array", vptr, 16),
                ("", anon, 24),
                ("slots", slots, l.xarray.node_slots),
            ],
        );
        b.aggregate(
            false,
            "idr",
            24,
            &[
                ("idr_rt", xarray, l.idr.idr_rt),
                ("idr_base", uint, 16),
                ("idr_next", uint, l.idr.idr_next),
            ],
        );
        let name = b.array(chr, uint, 16);
        let flag = b.int("_Bool", 1, INT_BOOL);
        let map = b.aggregate(
            false,
            "bpf_map",
            bpf_map.name + 16 + 8,
            &[
                ("ops", vptr, 0),
                ("map_type", uint, bpf_map.map_type),
                ("key_size", u32_t, bpf_map.key_size),
                ("value_size", u32_t, bpf_map.value_size),
                ("max_entries", u32_t, bpf_map.max_entries),
                ("map_flags", long, bpf_map.map_flags),
                ("id", u32_t, bpf_map.id),
                ("btf_key_type_id", u32_t, bpf_map.btf_key_type_id),
                ("btf_value_type_id", u32_t, bpf_map.btf_value_type_id),
                (
                    "btf_vmlinux_value_type_id",
                    u32_t,
                    bpf_map
                        .btf_vmlinux_value_type_id
                        .expect("in the default layout"),
                ),
                ("btf", vptr, bpf_map.btf),
                ("name", name, bpf_map.name),
                (
                    "frozen",
                    flag,
                    bpf_map.frozen.expect("in the default layout"),
                ),
            ],
        );
        let flex = b.array(chr, uint, 0);
        let ptrs = b.array(vptr, uint, 0);
        let values = b.aggregate(
            true,
            "",
            0,
            &[("value", flex, 0), ("ptrs", ptrs, 0), ("pptrs", ptrs, 0)],
        );
        b.aggregate(
            false,
            "bpf_array",
            array.value,
            &[
                ("map", map, 0),
                ("elem_size", u32_t, array.elem_size),
                ("index_mask", u32_t, array.elem_size + 4),
                ("", values, array.value),
            ],
        );
        b.aggregate(
            false,
            "bpf_htab",
            htab.elem_size + 8,
            &[
                ("map", map, 0),
                ("buckets", vptr, htab.buckets),
                ("n_buckets", u32_t, htab.n_buckets),
                ("elem_size", u32_t, htab.elem_size),
            ],
        );
        // The other `struct bucket` (of the stack map code), with no `head`.
        b.aggregate(false, "bucket", 8, &[("data", long, 0)]);
        let nulls_head = b.aggregate(false, "hlist_nulls_head", 8, &[("first", vptr, 0)]);
        let lock = b.aggregate(false, "raw_spinlock", 4, &[("raw_lock", uint, 0)]);
        b.aggregate(
            false,
            "bucket",
            htab.bucket_size,
            &[
                ("head", nulls_head, htab.bucket_head),
                ("raw_lock", lock, 8),
            ],
        );
        let nulls_node = b.aggregate(
            false,
            "hlist_nulls_node",
            16,
            &[("next", vptr, 0), ("pprev", vptr, 8)],
        );
        let node_or = b.aggregate(
            true,
            "",
            16,
            &[("hash_node", nulls_node, 0), ("batch_flink", vptr, 0)],
        );
        let key = b.array(chr, uint, 0);
        b.aggregate(
            false,
            "htab_elem",
            htab.elem_key,
            &[
                ("", node_or, htab.elem_hash_node),
                ("hash", u32_t, 40),
                ("key", key, htab.elem_key),
            ],
        );
        let btf_obj = l.btf_object.expect("the default layout has struct btf");
        b.aggregate(
            false,
            "btf",
            btf_obj.base_btf + 8,
            &[
                ("data", vptr, btf_obj.data),
                ("data_size", u32_t, btf_obj.data_size),
                ("id", u32_t, btf_obj.id),
                ("base_btf", vptr, btf_obj.base_btf),
            ],
        );
        b.build()
    })
}

/// Type ids of [`map_btf`] worth rendering.
#[derive(Debug, Clone, Copy)]
pub struct MapTypes {
    /// `__u32` (a typedef of an `unsigned int`).
    pub u32_t: u32,
    /// `struct value` (56 bytes): an `int`, a bitfield struct, an enum, a `char[8]`, a
    /// pointer, an anonymous union, a `long long[2]` and a `double`.
    pub value: u32,
    /// `.bss` (a DATASEC of two variables, 12 bytes).
    pub bss: u32,
    /// The number of types.
    pub count: u32,
}

/// A map's BTF: a little of every kind the renderer handles, and its ids.
pub fn map_btf() -> &'static (Vec<u8>, MapTypes) {
    static BLOB: OnceLock<(Vec<u8>, MapTypes)> = OnceLock::new();
    BLOB.get_or_init(|| {
        let mut b = BtfBuilder::default();
        let uint = b.int("unsigned int", 4, 0);
        let u32_t = b.typedef("__u32", uint);
        let int = b.int("int", 4, INT_SIGNED);
        let chr = b.int("char", 1, INT_SIGNED | INT_CHAR);
        let boolean = b.int("_Bool", 1, INT_BOOL);
        let ll = b.int("long long", 8, INT_SIGNED);
        let dbl = b.float("double", 8);
        let flags = b.bitfields(
            "flags",
            4,
            &[
                ("a", uint, 0, 3),
                ("b", uint, 3, 13),
                ("c", boolean, 16, 1),
                ("d", int, 20, 12),
            ],
        );
        let color = b.enumeration("color", 4, false, &[("RED", 0), ("GREEN", 1), ("BLUE", 7)]);
        let text = b.array(chr, uint, 8);
        let ptr = b.ptr(int);
        let anon = b.aggregate(true, "", 4, &[("as_int", int, 0), ("as_u32", u32_t, 0)]);
        let pair = b.array(ll, uint, 2);
        let value = b.aggregate(
            false,
            "value",
            56,
            &[
                ("n", int, 0),
                ("flags", flags, 4),
                ("color", color, 8),
                ("text", text, 12),
                ("p", ptr, 20),
                ("", anon, 28),
                ("pair", pair, 32),
                ("x", dbl, 48),
            ],
        );
        let value_t = b.typedef("value_t", value);
        let _ = value_t;
        let counter = b.var("counter", ll);
        let label = b.var("label", text);
        let bss = b.datasec(".bss", 16, &[(counter, 0, 8), (label, 8, 8)]);
        let count = b.next_id() - 1;
        (
            b.build(),
            MapTypes {
                u32_t,
                value,
                bss,
                count,
            },
        )
    })
}
