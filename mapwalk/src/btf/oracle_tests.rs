//! The reader's view of every type, and values rendered through it, against btf-rs.

use btf_rs::{Btf, BtfType, Type};

use super::testing::Builder;
use super::{BaseBtf, Kind, MapBtf};
use crate::render::typed::TypeRenderer;

const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

fn name(btf: &MapBtf, off: u32) -> String {
    btf.str_at(off)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default()
}

/// One type as this crate's reader sees it, as one line.
fn ours(btf: &MapBtf, id: u32) -> String {
    let t = btf.type_by_id(id, 0).unwrap();
    let mut s = format!("{} {:?}", t.kind.0, name(btf, t.name_off));
    if let Some(size) = t.size() {
        s += &format!(" size={size}");
    }
    match t.kind {
        Kind::INT => {
            let i = t.int().unwrap();
            s += &format!(" s={} c={} b={}", i.is_signed(), i.is_char(), i.is_bool());
        }
        Kind::ARRAY => {
            let a = t.array().unwrap();
            s += &format!(" elem={} n={}", a.elem, a.nelems);
        }
        Kind::STRUCT | Kind::UNION => {
            for m in t.members() {
                s += &format!(
                    " [{:?} {} {} {:?}]",
                    name(btf, m.name_off),
                    m.type_id,
                    m.bit_offset,
                    m.bitfield_size.map(u32::from).or(t.kind_flag.then_some(0))
                );
            }
        }
        Kind::ENUM | Kind::ENUM64 => {
            s += &format!(" signed={}", t.is_signed_enum());
            for e in t.enum_values() {
                s += &format!(" [{:?}={}]", name(btf, e.name_off), e.value);
            }
        }
        Kind::FWD => s += &format!(" union={}", t.fwd_is_union().unwrap()),
        Kind::FUNC_PROTO => {
            s += &format!(" ret={}", t.type_id().unwrap());
            for p in t.params() {
                s += &format!(" [{}]", p.name_off == 0 && p.type_id == 0);
            }
        }
        Kind::VAR => {
            s += &format!(
                " type={} link={}",
                t.type_id().unwrap(),
                t.var_linkage().unwrap()
            )
        }
        Kind::DATASEC => {
            for v in t.var_secinfos() {
                s += &format!(" [{} {} {}]", v.type_id, v.offset, v.size);
            }
        }
        Kind::DECL_TAG => {
            let c = t.decl_tag_component().unwrap();
            s += &format!(
                " type={} comp={:?}",
                t.type_id().unwrap(),
                u32::try_from(c).ok()
            );
        }
        k if k.is_alias() || k == Kind::PTR || k == Kind::FUNC => {
            s += &format!(" type={}", t.type_id().unwrap());
        }
        _ => {}
    }
    s
}

/// The same line from btf-rs's view.
fn theirs(btf: &Btf, id: u32) -> String {
    let t = btf.resolve_type_by_id(id).unwrap();
    let nm = |x: &dyn BtfType| btf.resolve_name(x).unwrap_or_default();
    let kind = match &t {
        Type::Void => 0,
        Type::Int(_) => 1,
        Type::Ptr(_) => 2,
        Type::Array(_) => 3,
        Type::Struct(_) => 4,
        Type::Union(_) => 5,
        Type::Enum(_) => 6,
        Type::Fwd(_) => 7,
        Type::Typedef(_) => 8,
        Type::Volatile(_) => 9,
        Type::Const(_) => 10,
        Type::Restrict(_) => 11,
        Type::Func(_) => 12,
        Type::FuncProto(_) => 13,
        Type::Var(_) => 14,
        Type::Datasec(_) => 15,
        Type::Float(_) => 16,
        Type::DeclTag(_) => 17,
        Type::TypeTag(_) => 18,
        Type::Enum64(_) => 19,
        _ => 99,
    };
    let name = match (&t, t.as_btf_type()) {
        (Type::Array(_) | Type::FuncProto(_), _) | (_, None) => String::new(),
        (_, Some(b)) => nm(b),
    };
    let mut s = format!("{kind} {name:?}");
    let size = match &t {
        Type::Int(i) => Some(i.size()),
        Type::Struct(x) | Type::Union(x) => Some(x.size()),
        Type::Enum(e) => Some(e.size()),
        Type::Enum64(e) => Some(e.size()),
        Type::Float(f) => Some(f.size()),
        Type::Datasec(d) => Some(d.size()),
        _ => None,
    };
    if let Some(size) = size {
        s += &format!(" size={size}");
    }
    match &t {
        Type::Int(i) => {
            s += &format!(" s={} c={} b={}", i.is_signed(), i.is_char(), i.is_bool());
        }
        Type::Array(a) => s += &format!(" elem={} n={}", a.get_type_id().unwrap(), a.len()),
        Type::Struct(x) | Type::Union(x) => {
            for m in &x.members {
                s += &format!(
                    " [{:?} {} {} {:?}]",
                    nm(m),
                    m.get_type_id().unwrap(),
                    m.bit_offset(),
                    m.bitfield_size()
                );
            }
        }
        Type::Enum(e) => {
            s += &format!(" signed={}", e.is_signed());
            for m in &e.members {
                s += &format!(" [{:?}={}]", nm(m), m.val());
            }
        }
        Type::Enum64(e) => {
            s += &format!(" signed={}", e.is_signed());
            for m in &e.members {
                s += &format!(" [{:?}={}]", nm(m), m.val());
            }
        }
        Type::Fwd(f) => s += &format!(" union={}", f.is_union()),
        Type::FuncProto(p) => {
            s += &format!(" ret={}", p.return_type_id());
            for p in &p.parameters {
                s += &format!(" [{}]", p.is_variadic());
            }
        }
        Type::Var(v) => {
            let link = if v.is_static() {
                0
            } else if v.is_global() {
                1
            } else {
                2
            };
            s += &format!(" type={} link={link}", v.get_type_id().unwrap());
        }
        Type::Datasec(d) => {
            for v in &d.variables {
                s += &format!(
                    " [{} {} {}]",
                    v.get_type_id().unwrap(),
                    v.offset(),
                    v.size()
                );
            }
        }
        Type::DeclTag(d) => {
            s += &format!(
                " type={} comp={:?}",
                d.get_type_id().unwrap(),
                d.component_index()
            );
        }
        other => {
            if let Some(id) = other.as_btf_type().and_then(|b| b.get_type_id()) {
                s += &format!(" type={id}");
            }
        }
    }
    s
}

fn same_view(ours_btf: &MapBtf, theirs_btf: &Btf, ids: impl Iterator<Item = u32>) -> usize {
    let mut n = 0;
    for id in ids {
        assert_eq!(ours(ours_btf, id), theirs(theirs_btf, id), "type {id}");
        n += 1;
    }
    n
}

/// Renders `bytes` through every id in `ids` with both renderers: the same text.
fn same_text(
    ours_btf: &MapBtf,
    theirs_btf: &Btf,
    ids: impl Iterator<Item = u32> + Clone,
    bytes: &[u8],
) {
    for hex in [false, true] {
        let a = TypeRenderer::new(ours_btf).hex_pointers(hex);
        let b = crate::render::oracle::TypeRenderer::new(theirs_btf).hex_pointers(hex);
        for id in ids.clone() {
            assert_eq!(
                a.render_string(id, bytes),
                b.render(id, bytes).to_string(),
                "type {id}"
            );
        }
    }
}

/// Every kind, bitfields with and without the kind flag, a signed enum, a DATASEC.
fn synthetic() -> Builder {
    let mut b = Builder::new();
    let int = b.int_enc("int", 4, 1);
    let chr = b.int_enc("char", 1, 2);
    let bol = b.int_enc("_Bool", 1, 4);
    let u64_t = b.int("u64", 8);
    let ptr = b.alias(Kind::PTR, "", int);
    let arr = b.array(chr, int, 8);
    let e = b.enum32("color", true, 4, &[("RED", 0), ("BLUE", -2i32 as u32)]);
    let e64 = b.enum64("big", false, 8, &[("HUGE", 1 << 40)]);
    let flt = b.head("double", Kind::FLOAT, false, 0, 8);
    let inner = b.agg(Kind::UNION, "", false, 4, &[("i", int, 0), ("c", chr, 0)]);
    let s = b.agg(
        Kind::STRUCT,
        "s",
        true,
        40,
        &[
            ("a", int, 0),
            ("bf", int, (3 << 24) | 32),
            ("bg", int, (5 << 24) | 35),
            ("", inner, 64),
            ("p", ptr, 128),
            ("name", arr, 192),
            ("col", e, 256),
            ("ok", bol, 288),
        ],
    );
    let c = b.alias(Kind::CONST, "", s);
    let td = b.alias(Kind::TYPEDEF, "s_t", c);
    b.alias(Kind::TYPE_TAG, "user", ptr);
    b.alias(Kind::VOLATILE, "", u64_t);
    b.head("fwd", Kind::FWD, true, 0, 0);
    let proto = b.head("", Kind::FUNC_PROTO, false, 2, int);
    let x = b.str("x");
    b.raw(&[x, int, 0, 0]);
    b.head("f", Kind::FUNC, false, 1, proto);
    b.decl_tag("tag", s, -1);
    b.decl_tag("tag2", s, 1);
    let v1 = b.var("counter", u64_t, 1);
    let v2 = b.var("big", e64, 0);
    let v3 = b.var("x", flt, 0);
    b.datasec(".bss", 24, &[(v1, 0, 8), (v2, 8, 8), (v3, 16, 8)]);
    let nobf = b.agg(
        Kind::STRUCT,
        "nobf",
        false,
        8,
        &[("a", chr, 3), ("t", td, 8)],
    );
    assert_eq!(nobf, b.last_id());
    b
}

#[test]
fn the_view_of_synthetic_btf_is_btf_rs_view() {
    let b = synthetic();
    let bytes = b.bytes();
    let ours_btf = MapBtf::new(bytes.clone()).unwrap();
    let theirs_btf = Btf::from_bytes(&bytes).unwrap();
    let n = same_view(&ours_btf, &theirs_btf, 1..=ours_btf.last_id());
    assert_eq!(n as u32, b.last_id());
    let mut value = [0u8; 64];
    for (i, v) in value.iter_mut().enumerate() {
        *v = (i as u8).wrapping_mul(37);
    }
    value[24..29].copy_from_slice(b"hello");
    value[29..32].fill(0);
    same_text(&ours_btf, &theirs_btf, 0..=ours_btf.last_id() + 1, &value);
    same_text(
        &ours_btf,
        &theirs_btf,
        0..=ours_btf.last_id() + 1,
        &value[..5],
    );
    // Split over itself: ids and names continue after the base's.
    let base = BaseBtf::new(bytes.clone()).unwrap();
    let mut split = Builder::split(base.type_count(), base.string_len());
    let u16_t = split.int("u16", 2);
    let s = split.agg(
        Kind::STRUCT,
        "pair",
        false,
        8,
        &[("lo", u16_t, 0), ("hi", 1, 32)],
    );
    assert_eq!(s, base.type_count() + 2);
    let split_bytes = split.bytes();
    let ours_split = MapBtf::split(split_bytes.clone(), &base).unwrap();
    let theirs_split = Btf::from_split_bytes(&split_bytes, &theirs_btf).unwrap();
    assert_eq!(ours_split.first_own_id(), base.type_count() + 1);
    assert_eq!(ours_split.last_id(), s);
    same_view(&ours_split, &theirs_split, 1..=s);
    same_text(&ours_split, &theirs_split, 1..=s + 1, &value);
    assert_eq!(
        TypeRenderer::new(&ours_split).render_string(s, &[1, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff]),
        r#"{"lo":1,"hi":-16}"#
    );
}

#[test]
fn the_view_of_the_host_btf_is_btf_rs_view() {
    let test = "btf::oracle_tests::the_view_of_the_host_btf_is_btf_rs_view";
    if !std::path::Path::new(HOST_BTF).exists() {
        crate::unavailable(test, &format!("{HOST_BTF} (kernel without BTF)"));
        return;
    }
    let bytes = std::fs::read(HOST_BTF).unwrap();
    let ours_btf = MapBtf::new(bytes.clone()).unwrap();
    let theirs_btf = Btf::from_bytes(&bytes).unwrap();
    let n = same_view(&ours_btf, &theirs_btf, 1..=ours_btf.last_id());
    assert!(n > 10_000, "{n} types");
    assert_eq!(ours_btf.last_id(), theirs_btf.base().type_id_range().1);
    // Values through a few thousand types: every kind the kernel has.
    let value: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let step = (ours_btf.last_id() / 3000).max(1);
    same_text(
        &ours_btf,
        &theirs_btf,
        (1..=ours_btf.last_id()).step_by(step as usize),
        &value,
    );
    for name in ["bpf_map", "task_struct", "sk_buff", "bpf_array"] {
        let ids = theirs_btf.resolve_ids_by_name(name).unwrap();
        same_text(&ours_btf, &theirs_btf, ids.into_iter(), &value);
    }
}
