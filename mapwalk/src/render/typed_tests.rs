use super::*;
use crate::btf::testing::Builder;
use crate::btf::Kind;

fn btf(b: &Builder) -> MapBtf {
    MapBtf::new(b.bytes()).unwrap()
}

/// A struct whose three members are that struct, all at offset 0: without a budget
/// its value tree has 3^MAX_DEPTH nodes. It ends, and says where it stopped.
#[test]
fn a_self_referential_struct_stops_at_the_budget() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    // Type 2 refers to itself: ids are assigned in order.
    let s = b.agg(
        Kind::STRUCT,
        "s",
        false,
        4,
        &[("a", 2, 0), ("b", 2, 0), ("c", 2, 0), ("n", int, 0)],
    );
    assert_eq!(s, 2);
    let btf = btf(&b);
    let text = TypeRenderer::new(&btf).render_string(s, &[1, 0, 0, 0]);
    assert!(text.contains("<too many values>"), "{}", &text[..200]);
    assert!(text.len() < 64 << 20, "{} bytes", text.len());
    assert!(text.starts_with(r#"{"a":{"a":{"a":"#), "{}", &text[..40]);
}

/// An anonymous struct that holds itself three times: its members would join the
/// object 3^MAX_DEPTH times; the budget ends it too (the members left after it are
/// cut as well).
#[test]
fn a_self_referential_anonymous_struct_stops_at_the_budget() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let s = b.agg(
        Kind::STRUCT,
        "",
        false,
        4,
        &[("", 2, 0), ("", 2, 0), ("", 2, 0), ("n", int, 0)],
    );
    let btf = btf(&b);
    let text = TypeRenderer::new(&btf).render_string(s, &[1, 0, 0, 0]);
    assert_eq!(text, r#"{"":"<too many values>","n":"<too many values>"}"#);
}

/// A real value larger than the fixed part of the budget renders whole: the budget
/// grows with the bytes rendered.
#[test]
fn a_large_array_is_not_cut_short() {
    let mut b = Builder::new();
    let u8_t = b.int("u8", 1);
    let len = 300_000u32;
    let arr = b.array(u8_t, u8_t, len);
    let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let btf = btf(&b);
    let v = TypeRenderer::new(&btf).render(arr, &bytes);
    let items = v.as_array().expect("an array renders as a JSON array");
    assert_eq!(items.len(), len as usize);
    assert_eq!(items[299_999], Value::from(299_999u32 as u8));
    assert!(!v.to_string().contains("<too many values>"));
}

/// Members of one name keep the first's place and the last's value, as a JSON object
/// built member by member does.
#[test]
fn duplicate_member_names_keep_the_first_place_and_the_last_value() {
    let mut b = Builder::new();
    let u8_t = b.int("u8", 1);
    let s = b.agg(
        Kind::STRUCT,
        "s",
        false,
        3,
        &[("a", u8_t, 0), ("b", u8_t, 8), ("a", u8_t, 16)],
    );
    let btf = btf(&b);
    let text = TypeRenderer::new(&btf).render_string(s, &[1, 2, 3]);
    assert_eq!(text, r#"{"a":3,"b":2}"#);
}

/// Unknown ids and short bytes are hex; names are escaped as serde_json escapes them.
#[test]
fn unknown_ids_short_bytes_and_escaped_names() {
    let mut b = Builder::new();
    let u32_t = b.int("u32", 4);
    let s = b.agg(Kind::STRUCT, "s", false, 4, &[("q\"\\\n", u32_t, 0)]);
    let btf = btf(&b);
    let r = TypeRenderer::new(&btf);
    assert_eq!(r.render_string(99, &[1, 2]), r#"["0x01","0x02"]"#);
    assert_eq!(r.render_string(s, &[1, 2]), r#"["0x01","0x02"]"#);
    assert_eq!(r.render_string(s, &[7, 0, 0, 0]), r#"{"q\"\\\n":7}"#);
    assert_eq!(r.render_string(0, &[]), "[]");
}

/// Char arrays as bpftool shows them: a string only for `char` (or char-encoded)
/// elements behind modifiers, printable up to a NUL inside the array; `unsigned char`,
/// typedefs of char, arrays without a NUL or with unprintable bytes stay numbers.
#[test]
fn char_arrays_follow_bpftool() {
    let mut b = Builder::new();
    let char_t = b.int_enc("char", 1, 1); // signed
    let uchar = b.int("unsigned char", 1);
    let cchar = b.alias(Kind::CONST, "", char_t);
    let tdef = b.alias(Kind::TYPEDEF, "my_char", char_t);
    let index = b.int("int", 4);
    let arr_char = b.array(char_t, index, 4);
    let arr_uchar = b.array(uchar, index, 4);
    let arr_const = b.array(cchar, index, 4);
    let arr_tdef = b.array(tdef, index, 4);
    let btf = btf(&b);
    let r = TypeRenderer::new(&btf);
    assert_eq!(r.render_string(arr_char, b"ABC\0"), r#""ABC""#);
    assert_eq!(r.render_string(arr_const, b"ABC\0"), r#""ABC""#);
    // Bytes after the NUL are not looked at.
    assert_eq!(r.render_string(arr_char, b"AB\0\x07"), r#""AB""#);
    assert_eq!(r.render_string(arr_char, b"\0\0\0\0"), r#""""#);
    // Not a string: unsigned char, a typedef, no NUL, an unprintable byte.
    assert_eq!(r.render_string(arr_uchar, b"ABC\0"), "[65,66,67,0]");
    assert_eq!(r.render_string(arr_tdef, b"ABC\0"), "[65,66,67,0]");
    assert_eq!(r.render_string(arr_char, b"ABCD"), "[65,66,67,68]");
    assert_eq!(r.render_string(arr_char, b"A\x01C\0"), "[65,1,67,0]");
}
