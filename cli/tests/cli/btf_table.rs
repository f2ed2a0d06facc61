//! Every BTF rendering rule against bpftool on the same maps: one row per rule, each a
//! one-entry ARRAY map on the live host whose value is typed by BTF loaded into the
//! kernel; `mapwalk dump --json` and `bpftool -j map dump` must give the same
//! `formatted` value (and the same raw bytes).

use super::*;
use mapwalk_live::sys::{btf_load, map_create_with_btf};

/// `BTF_KIND_*`.
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const ENUM64: u32 = 19;
/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL` (in an int's encoding byte).
pub(super) const SIGNED: u32 = 1;
const CHAR: u32 = 2;
const BOOL: u32 = 4;

/// Raw BTF, type by type. Type 1 is always `unsigned int` (the ARRAY maps' key).
pub(super) struct Btf {
    types: Vec<u8>,
    strs: Vec<u8>,
    next: u32,
}

impl Btf {
    pub(super) fn new() -> Self {
        let mut b = Self {
            types: Vec::new(),
            strs: vec![0],
            next: 1,
        };
        b.int("unsigned int", 4, 0);
        b
    }

    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }

    /// A type: `name`, `kind`, `vlen`, `kflag`, its size or type, and its extra words.
    fn add(&mut self, name: &str, kind: u32, vlen: u32, kflag: u32, st: u32, extra: &[u32]) -> u32 {
        let name = self.name(name);
        for w in [name, (kind << 24) | (kflag << 31) | vlen, st]
            .iter()
            .chain(extra)
        {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.next += 1;
        self.next - 1
    }

    pub(super) fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        self.add(name, INT, 0, 0, size, &[(encoding << 24) | (size * 8)])
    }

    fn array(&mut self, elem: u32, n: u32) -> u32 {
        self.add("", ARRAY, 0, 0, 0, &[elem, 1, n])
    }

    /// A struct or union of (name, type, bit offset) members; `kflag` for bitfields
    /// (then the offset word holds `bits << 24 | offset`).
    fn aggregate(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kflag: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let words: Vec<u32> = members
            .iter()
            .flat_map(|&(n, ty, off)| [self.name(n), ty, off])
            .collect();
        self.add(name, kind, members.len() as u32, kflag, size, &words)
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&0xeb9fu16.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strs.len() as u32,
        ] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&self.types);
        blob.extend_from_slice(&self.strs);
        blob
    }
}

/// One rule: its name, the value type (built into the BTF), its bytes, and, where
/// bpftool cannot render the type, mapwalk's own documented form.
struct Row {
    name: &'static str,
    build: fn(&mut Btf) -> u32,
    value: Vec<u8>,
    own: Option<Value>,
}

fn rows() -> Vec<Row> {
    let le = |parts: &[&[u8]]| parts.concat();
    vec![
        Row {
            name: "uchar_array",
            build: |b| {
                let u8t = b.int("unsigned char", 1, 0);
                b.array(u8t, 4)
            },
            value: b"ABC\0".to_vec(),
            own: None,
        },
        Row {
            name: "char_string",
            build: |b| {
                let c = b.int("char", 1, SIGNED);
                b.array(c, 8)
            },
            value: b"hello\0\0\0".to_vec(),
            own: None,
        },
        Row {
            name: "char_no_nul",
            build: |b| {
                let c = b.int("char", 1, SIGNED);
                b.array(c, 4)
            },
            value: b"ABCD".to_vec(),
            own: None,
        },
        Row {
            name: "char_unprintable",
            build: |b| {
                let c = b.int("char", 1, SIGNED);
                b.array(c, 4)
            },
            value: vec![b'A', 7, 0, 0],
            own: None,
        },
        Row {
            name: "int_char_enc",
            build: |b| {
                let c = b.int("signed char", 1, CHAR);
                b.array(c, 4)
            },
            value: b"AB\0\0".to_vec(),
            own: None,
        },
        Row {
            name: "signed_ints",
            build: |b| {
                let (i8t, i16t, i32t, i64t) = (
                    b.int("s8", 1, SIGNED),
                    b.int("s16", 2, SIGNED),
                    b.int("int", 4, SIGNED),
                    b.int("long", 8, SIGNED),
                );
                b.aggregate(
                    STRUCT,
                    "ints",
                    16,
                    0,
                    &[
                        ("a", i8t, 0),
                        ("b", i16t, 16),
                        ("c", i32t, 32),
                        ("d", i64t, 64),
                    ],
                )
            },
            value: le(&[
                &[0xfb, 0],
                &(-300i16).to_le_bytes(),
                &(-70000i32).to_le_bytes(),
                &(-5_000_000_000i64).to_le_bytes(),
            ]),
            own: None,
        },
        Row {
            name: "big_u64",
            build: |b| {
                let u64t = b.int("unsigned long", 8, 0);
                b.aggregate(STRUCT, "big", 8, 0, &[("x", u64t, 0)])
            },
            value: u64::MAX.to_le_bytes().to_vec(),
            own: None,
        },
        Row {
            name: "bool",
            build: |b| {
                let bt = b.int("_Bool", 1, BOOL);
                b.array(bt, 2)
            },
            value: vec![1, 0],
            own: None,
        },
        Row {
            name: "enum",
            build: |b| {
                let (r, g) = (b.name("RED"), b.name("GREEN"));
                let e = b.add("color", ENUM, 2, 0, 4, &[r, 0, g, 1]);
                b.array(e, 2)
            },
            value: le(&[&1u32.to_le_bytes(), &7u32.to_le_bytes()]),
            own: None,
        },
        Row {
            name: "enum64",
            build: |b| {
                let big = b.name("BIG");
                b.add("wide", ENUM64, 1, 0, 8, &[big, 0, 1])
            },
            value: (1u64 << 32).to_le_bytes().to_vec(),
            own: None,
        },
        Row {
            name: "bitfields",
            build: |b| {
                let (u, i) = (1, b.int("int", 4, SIGNED));
                b.aggregate(
                    STRUCT,
                    "bits",
                    8,
                    1,
                    &[
                        ("a", u, 3 << 24),
                        ("b", i, (5 << 24) | 3),
                        ("c", u, (20 << 24) | 8),
                        ("d", u, 32),
                    ],
                )
            },
            value: le(&[&0xabcd_1235u32.to_le_bytes(), &9u32.to_le_bytes()]),
            own: None,
        },
        Row {
            name: "pointer",
            build: |b| {
                let p = b.add("", PTR, 0, 0, 1, &[]);
                b.aggregate(STRUCT, "ptrs", 16, 0, &[("p", p, 0), ("q", p, 64)])
            },
            value: le(&[&0xffff_8880_1234_5678u64.to_le_bytes(), &0u64.to_le_bytes()]),
            own: None,
        },
        Row {
            name: "floats",
            build: |b| {
                let f = b.add("float", FLOAT, 0, 0, 4, &[]);
                let d = b.add("double", FLOAT, 0, 0, 8, &[]);
                b.aggregate(STRUCT, "fl", 16, 0, &[("f", f, 0), ("d", d, 64)])
            },
            value: le(&[&1.5f32.to_le_bytes(), &[0; 4], &(-2.25f64).to_le_bytes()]),
            // bpftool 7.1 prints `(unsupported-kind` here, which is not JSON.
            own: Some(json!({"f": 1.5, "d": -2.25})),
        },
        Row {
            name: "union",
            build: |b| {
                let i = b.int("int", 4, SIGNED);
                let a = b.array(i, 3);
                b.aggregate(UNION, "pair", 12, 0, &[("ints", a, 0), ("u", 1, 0)])
            },
            value: le(&[
                &5u32.to_le_bytes(),
                &6u32.to_le_bytes(),
                &(-7i32).to_le_bytes(),
            ]),
            own: None,
        },
        Row {
            name: "typedef_qualifiers",
            build: |b| {
                let t = b.add("u32_t", TYPEDEF, 0, 0, 1, &[]);
                let c = b.add("", CONST, 0, 0, t, &[]);
                let v = b.add("", VOLATILE, 0, 0, c, &[]);
                let t2 = b.add("val_t", TYPEDEF, 0, 0, v, &[]);
                b.aggregate(STRUCT, "q", 4, 0, &[("x", t2, 0)])
            },
            value: 42u32.to_le_bytes().to_vec(),
            own: None,
        },
        Row {
            name: "nested",
            build: |b| {
                let u16t = b.int("unsigned short", 2, 0);
                let u8t = b.int("unsigned char", 1, 0);
                let bytes = b.array(u8t, 2);
                let inner = b.aggregate(STRUCT, "inner", 2, 0, &[("b", bytes, 0)]);
                let arr = b.array(inner, 2);
                b.aggregate(STRUCT, "outer", 6, 0, &[("a", u16t, 0), ("in", arr, 16)])
            },
            value: vec![1, 2, 3, 4, 5, 6],
            own: None,
        },
        Row {
            name: "int128",
            build: |b| {
                let w = b.int("unsigned __int128", 16, 0);
                b.aggregate(STRUCT, "w", 16, 0, &[("x", w, 0)])
            },
            value: (1u128 << 100 | 0x1234).to_le_bytes().to_vec(),
            own: None,
        },
        Row {
            name: "datasec",
            build: |b| {
                let i = b.int("int", 4, SIGNED);
                let c = b.int("char", 1, SIGNED);
                let s = b.array(c, 4);
                let v1 = b.add("counter", VAR, 0, 0, i, &[1]);
                let v2 = b.add("label", VAR, 0, 0, s, &[1]);
                b.add(".bss", DATASEC, 2, 0, 8, &[v1, 0, 4, v2, 4, 4])
            },
            value: le(&[&(-3i32).to_le_bytes(), b"ok\0\0"]),
            own: None,
        },
    ]
}

#[test]
fn btf_rendering_rules_match_bpftool_row_by_row() {
    if !live_ready("btf_rendering_rules_match_bpftool_row_by_row") {
        return;
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in rows() {
        let mut b = Btf::new();
        let value_type = (row.build)(&mut b);
        let btf = btf_load(&b.bytes()).unwrap_or_else(|e| panic!("{}: BTF_LOAD: {e}", row.name));
        let name = format!("mw_t_{}", row.name);
        let spec = MapCreate::new(MapType::ARRAY, &name, 4, row.value.len() as u32, 1);
        let fd = match map_create_with_btf(&spec, std::os::fd::AsFd::as_fd(&btf), 1, value_type) {
            Ok(fd) => fd,
            Err(e) => panic!("{}: BPF_MAP_CREATE with BTF: {e}", row.name),
        };
        let map = LiveMap::from_fd(fd).unwrap();
        map.update(&0u32.to_le_bytes(), &row.value, Update::Any)
            .unwrap();
        let id = map.id();
        let ours = json_of(
            &run(&["dump", &format!("id:{id}"), "--json"]),
            "mapwalk dump",
        );
        let ours = &ours[0];
        let want = match &row.own {
            Some(value) => json!({"key": 0, "value": value}),
            None => {
                let theirs = bpftool(&["map", "dump", "id", &id.to_string()]);
                assert_eq!(ours["value"], theirs[0]["value"], "{}: raw bytes", row.name);
                theirs[0]["formatted"].clone()
            }
        };
        if ours["formatted"] != want {
            let oracle = if row.own.is_some() {
                "documented"
            } else {
                "bpftool"
            };
            failures.push(format!(
                "{}: mapwalk {} | {oracle} {want}",
                row.name, ours["formatted"]
            ));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rules differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
