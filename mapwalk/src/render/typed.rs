//! Values rendered through their BTF types, in the shape `bpftool` gives its
//! `formatted` objects: structs and unions as objects, arrays as lists, integers as
//! numbers (128-bit ones as hex strings), enums by name, `char` arrays as strings when
//! printable, pointers as hex strings, `.bss`/`.data`/`.rodata` (a DATASEC) as
//! `{"<section>": [{"<var>": value}, ...]}`.
//!
//! The JSON is written straight to an [`io::Write`] as the value is walked
//! ([`TypeRenderer::write`]): no tree is built, so memory does not grow with the value.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use serde_json::Value;

use super::write_hex_json;
use crate::btf::{Kind, MapBtf, Member, TypeRef};

/// Nesting deeper than this is cut (a corrupt or hostile BTF can loop).
pub const MAX_DEPTH: u32 = 32;
/// Values one `render` may visit beyond [`NODES_PER_BYTE`] per byte rendered: a hostile
/// BTF (a struct whose members are that struct, all at offset 0) would otherwise take
/// its fan-out to the power of `MAX_DEPTH` steps. A real type visits at most a few
/// values per byte (an array of `u8` one per byte, plus the structs around it), so the
/// budget grows with the value and never cuts a real one short. Anonymous structs and
/// unions whose members join the enclosing object count too.
pub const MAX_NODES_BASE: u64 = 1 << 16;
/// Values one `render` may visit per byte of its input, on top of [`MAX_NODES_BASE`].
pub const NODES_PER_BYTE: u64 = 8;
/// The most members one object may gather from its anonymous structs and unions.
pub const MAX_OBJECT_MEMBERS: usize = 1 << 18;

/// Renders bytes through the types of one BTF.
#[derive(Clone, Copy)]
pub struct TypeRenderer<'a> {
    btf: &'a MapBtf,
    hex_pointers: bool,
}

impl std::fmt::Debug for TypeRenderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeRenderer")
            .field("hex_pointers", &self.hex_pointers)
            .finish_non_exhaustive()
    }
}

fn le_uint(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .rev()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

fn sign_extend(v: u128, bits: u32) -> i128 {
    if bits == 0 || bits >= 128 {
        return v as i128;
    }
    let shift = 128 - bits;
    ((v << shift) as i128) >> shift
}

/// A JSON string, escaped as `serde_json` escapes it.
fn write_str<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    serde_json::to_writer(out, s).map_err(io::Error::from)
}

/// `"0x..."`: the bytes as one little-endian number.
fn write_hex_of<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"0x")?;
    for b in bytes.iter().rev() {
        write!(out, "{b:02x}")?;
    }
    out.write_all(b"\"")
}

/// A 128-bit integer as bpftool prints it: a hex string without leading zeros
/// (`"0x{upper:x}{lower:016x}"`, or `"0x{lower:x}"` when the upper half is zero).
fn write_int128<W: Write + ?Sized>(out: &mut W, b: [u8; 16]) -> io::Result<()> {
    let v = u128::from_le_bytes(b);
    write!(out, "\"{v:#x}\"")
}

/// A member of an object, its anonymous structs and unions flattened.
struct Field<'b> {
    name: Cow<'b, str>,
    /// Where the bytes the member's offset counts from start, in the object's.
    base: usize,
    member: Member,
    /// The depth of the struct that declares it.
    depth: u32,
}

/// One `render`: the renderer, the output and the budget left.
struct Walk<'r, 'a, W: Write + ?Sized> {
    r: &'r TypeRenderer<'a>,
    out: &'r mut W,
    nodes_left: u64,
}

impl<'a> TypeRenderer<'a> {
    /// A renderer over `btf`.
    ///
    /// Pointers are numbers, as in `bpftool -j`; see [`hex_pointers`](Self::hex_pointers).
    pub fn new(btf: &'a MapBtf) -> Self {
        Self {
            btf,
            hex_pointers: false,
        }
    }

    /// Pointers as `"0x..."` strings (for people) rather than numbers (as `bpftool -j`).
    #[must_use]
    pub fn hex_pointers(mut self, hex: bool) -> Self {
        self.hex_pointers = hex;
        self
    }

    /// Writes `bytes` rendered as type `type_id` to `out`, as JSON. Bytes that do not
    /// fit the type (too few, an unknown id) are written as hex bytes.
    ///
    /// # Errors
    /// The writer's.
    pub fn write<W: Write + ?Sized>(
        &self,
        type_id: u32,
        bytes: &[u8],
        out: &mut W,
    ) -> io::Result<()> {
        let budget =
            MAX_NODES_BASE.saturating_add(NODES_PER_BYTE.saturating_mul(bytes.len() as u64));
        let mut w = Walk {
            r: self,
            out,
            nodes_left: budget,
        };
        match self.btf.type_by_id(type_id, 0) {
            Ok(t) => w.value(t, bytes, 0),
            Err(_) => write_hex_json(w.out, bytes),
        }
    }

    /// `bytes` rendered as type `type_id`, as a JSON text.
    pub fn render_string(&self, type_id: u32, bytes: &[u8]) -> String {
        let mut v = Vec::new();
        // A `Vec` takes any write, and the renderer writes only UTF-8.
        let _ = self.write(type_id, bytes, &mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// `bytes` rendered as type `type_id`, as a [`Value`]: the text of
    /// [`write`](Self::write) parsed back, for callers that want a tree (`Null` if
    /// the nesting is deeper than `serde_json` parses).
    pub fn render(&self, type_id: u32, bytes: &[u8]) -> Value {
        let mut v = Vec::new();
        let _ = self.write(type_id, bytes, &mut v);
        serde_json::from_slice(&v).unwrap_or(Value::Null)
    }

    fn name(&self, name_off: u32) -> Cow<'a, str> {
        match self.btf.str_at(name_off) {
            Ok(n) => String::from_utf8_lossy(n),
            Err(_) => Cow::Borrowed(""),
        }
    }

    /// Follows typedefs, qualifiers and tags, at most [`MAX_DEPTH`] of them.
    fn strip(&self, mut t: TypeRef<'a>) -> Option<TypeRef<'a>> {
        for _ in 0..MAX_DEPTH {
            if !(t.kind.is_alias() || t.kind == Kind::DECL_TAG) {
                return Some(t);
            }
            t = self.btf.type_by_id(t.size_or_type, t.id).ok()?;
        }
        None
    }

    /// The size in bytes of a type, when it has one.
    fn size_of(&self, t: TypeRef<'a>, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let t = self.strip(t)?;
        match t.kind {
            Kind::INT
            | Kind::ENUM
            | Kind::ENUM64
            | Kind::FLOAT
            | Kind::STRUCT
            | Kind::UNION
            | Kind::DATASEC => usize::try_from(t.size_or_type).ok(),
            Kind::PTR => Some(8),
            Kind::ARRAY => {
                let a = t.array()?;
                let elem = self.btf.type_by_id(a.elem, t.id).ok()?;
                self.size_of(elem, depth + 1)?
                    .checked_mul(usize::try_from(a.nelems).ok()?)
            }
            Kind::VAR => {
                let inner = self.btf.type_by_id(t.size_or_type, t.id).ok()?;
                self.size_of(inner, depth + 1)
            }
            _ => None,
        }
    }

    /// bpftool's rule for the element of an array shown as a string: modifiers
    /// (const, volatile, restrict, type tags) skipped but not typedefs, then a one-byte
    /// int of char encoding or named exactly `char` (so `unsigned char b[4]` stays an
    /// array of numbers).
    fn is_str_elem(&self, mut t: TypeRef<'a>) -> bool {
        for _ in 0..MAX_DEPTH {
            match t.kind {
                Kind::CONST | Kind::VOLATILE | Kind::RESTRICT | Kind::TYPE_TAG => {
                    match self.btf.type_by_id(t.size_or_type, t.id) {
                        Ok(next) => t = next,
                        Err(_) => return false,
                    }
                }
                Kind::INT => {
                    return t.size_or_type == 1
                        && (t.int().is_some_and(|e| e.is_char())
                            || self.name(t.name_off) == "char")
                }
                _ => return false,
            }
        }
        false
    }
}

/// The text of a char array as bpftool shows it as a string: printable bytes
/// (0x20..=0x7e) up to a NUL, which must come within the array; what follows the NUL
/// is not looked at. `None` when the array is not such a string.
pub(crate) fn c_string(all: &[u8]) -> Option<&[u8]> {
    let end = all.iter().position(|&c| c == 0)?;
    let text = all.get(..end)?;
    text.iter()
        .all(|&c| (0x20..=0x7e).contains(&c))
        .then_some(text)
}

impl<'a, W: Write + ?Sized> Walk<'_, 'a, W> {
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_hex_json(self.out, bytes)
    }

    fn int(&mut self, t: TypeRef<'a>, bytes: &[u8]) -> io::Result<()> {
        let size = usize::try_from(t.size_or_type).unwrap_or(usize::MAX);
        let Some(b) = bytes.get(..size) else {
            return self.raw(bytes);
        };
        let enc = t.int().unwrap_or(crate::btf::IntInfo {
            encoding: 0,
            offset: 0,
            bits: 0,
        });
        if enc.is_bool() {
            let v = b.iter().any(|&x| x != 0);
            return self.out.write_all(if v { b"true" } else { b"false" });
        }
        if let ([c], true) = (b, enc.is_char()) {
            // bpftool: a char is a one-character string.
            return write_str(self.out, &char::from(*c).to_string());
        }
        if let Ok(b16) = <[u8; 16]>::try_from(b) {
            return write_int128(self.out, b16);
        }
        if size > 8 {
            return write_hex_of(self.out, b);
        }
        let v = le_uint(b);
        if enc.is_signed() {
            let bits = u32::try_from(size * 8).unwrap_or(64);
            write!(
                self.out,
                "{}",
                i64::try_from(sign_extend(v, bits)).unwrap_or(0)
            )
        } else {
            write!(self.out, "{}", u64::try_from(v).unwrap_or(0))
        }
    }

    fn enum_value(&mut self, t: TypeRef<'a>, bytes: &[u8]) -> io::Result<()> {
        let size = usize::try_from(t.size_or_type).unwrap_or(usize::MAX).min(8);
        let Some(b) = bytes.get(..size) else {
            return self.raw(bytes);
        };
        let v = u64::try_from(le_uint(b)).unwrap_or(0);
        let mask = if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
        for e in t.enum_values() {
            if e.value & mask == v & mask {
                let name = self.r.name(e.name_off);
                return write_str(self.out, &name);
            }
        }
        if t.is_signed_enum() {
            let bits = u32::try_from(size * 8).unwrap_or(64);
            let s = i64::try_from(sign_extend(u128::from(v), bits)).unwrap_or(0);
            write!(self.out, "{s}")
        } else {
            write!(self.out, "{v}")
        }
    }

    fn bitfield(&mut self, bytes: &[u8], bit_off: u32, bits: u32) -> io::Result<()> {
        // Enough bytes to cover the field, starting at the byte that holds its first bit.
        let first = usize::try_from(bit_off / 8).unwrap_or(usize::MAX);
        let shift = bit_off % 8;
        let span = usize::try_from((shift + bits).div_ceil(8)).unwrap_or(usize::MAX);
        let Some(b) = first
            .checked_add(span)
            .and_then(|end| bytes.get(first..end))
        else {
            return self.out.write_all(b"null");
        };
        if span > 16 {
            return self.raw(b);
        }
        let mask = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        // bpftool prints every bitfield as the hex of its raw bits.
        let v = (le_uint(b) >> shift) & mask;
        write!(self.out, "\"{v:#x}\"")
    }

    /// The fields of a struct or union, those of its anonymous structs and unions
    /// joining them (each counted against the budget).
    fn fields(&mut self, s: TypeRef<'a>, base: usize, depth: u32, out: &mut Vec<Field<'a>>) {
        let r = self.r;
        for m in s.members() {
            if out.len() >= MAX_OBJECT_MEMBERS {
                return;
            }
            let Ok(mt) = r.btf.type_by_id(m.type_id, s.id) else {
                continue;
            };
            let name = r.name(m.name_off);
            if name.is_empty()
                && m.bitfield_size.is_none()
                && m.bit_offset % 8 == 0
                && depth < MAX_DEPTH
                && self.nodes_left > 0
            {
                if let Some(inner) = r.strip(mt).filter(|i| i.kind.is_aggregate()) {
                    self.nodes_left -= 1;
                    let off = usize::try_from(m.bit_offset / 8).unwrap_or(usize::MAX);
                    let sub = base.saturating_add(off);
                    self.fields(inner, sub, depth + 1, out);
                    continue;
                }
            }
            out.push(Field {
                name,
                base,
                member: m,
                depth,
            });
        }
    }

    /// The value of one field.
    fn field(&mut self, f: &Field<'a>, bytes: &[u8]) -> io::Result<()> {
        let bytes = bytes.get(f.base..).unwrap_or_default();
        let m = f.member;
        let Ok(mt) = self.r.btf.type_by_id(m.type_id, 0) else {
            return self.out.write_all(b"null");
        };
        let bit = m.bit_offset;
        match m.bitfield_size.filter(|&b| b != 0) {
            Some(bits) => self.bitfield(bytes, bit, u32::from(bits)),
            None if bit % 8 != 0 => {
                // A bitfield in a struct without kind_flag: the Int's own bits.
                let bits = self
                    .r
                    .size_of(mt, 0)
                    .map_or(8, |s| u32::try_from(s * 8).unwrap_or(8));
                self.bitfield(bytes, bit, bits)
            }
            None => {
                let off = usize::try_from(bit / 8).unwrap_or(usize::MAX);
                let sub = bytes.get(off..).unwrap_or_default();
                self.value(mt, sub, f.depth + 1)
            }
        }
    }

    fn object(&mut self, s: TypeRef<'a>, bytes: &[u8], depth: u32) -> io::Result<()> {
        let mut fields = Vec::new();
        self.fields(s, 0, depth, &mut fields);
        // Members of one name: the object keeps the first's place and the last's value,
        // as a JSON object built member by member would.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            last.insert(&f.name, i);
        }
        self.out.write_all(b"{")?;
        if last.len() == fields.len() {
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    self.out.write_all(b",")?;
                }
                write_str(self.out, &f.name)?;
                self.out.write_all(b":")?;
                self.field(f, bytes)?;
            }
        } else {
            // Rare (hostile or odd BTF): every value rendered in member order, as the
            // budget was spent before, then written in the object's order.
            // Only the values that stay are kept.
            let mut values = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                let mut buf = Vec::new();
                let mut sink = io::sink();
                let out: &mut dyn Write = if last.get(&*f.name) == Some(&i) {
                    &mut buf
                } else {
                    &mut sink
                };
                let mut sub = Walk {
                    r: self.r,
                    out,
                    nodes_left: self.nodes_left,
                };
                sub.field(f, bytes)?;
                self.nodes_left = sub.nodes_left;
                values.push(buf);
            }
            let mut written = HashSet::with_capacity(last.len());
            for f in &fields {
                // The first of its name, written with the last's value.
                if !written.insert(&*f.name) {
                    continue;
                }
                let Some(value) = last.get(&*f.name).and_then(|&at| values.get(at)) else {
                    continue;
                };
                if written.len() > 1 {
                    self.out.write_all(b",")?;
                }
                write_str(self.out, &f.name)?;
                self.out.write_all(b":")?;
                self.out.write_all(value)?;
            }
        }
        self.out.write_all(b"}")
    }

    fn array(&mut self, t: TypeRef<'a>, bytes: &[u8], depth: u32) -> io::Result<()> {
        let r = self.r;
        let Some(a) = t.array() else {
            return self.raw(bytes);
        };
        let Ok(elem) = r.btf.type_by_id(a.elem, t.id) else {
            return self.raw(bytes);
        };
        let Some(esize) = r.size_of(elem, 0).filter(|&s| s > 0) else {
            return self.raw(bytes);
        };
        let Some(all) = usize::try_from(a.nelems)
            .ok()
            .and_then(|n| esize.checked_mul(n))
            .and_then(|len| bytes.get(..len))
        else {
            return self.raw(bytes);
        };
        if r.is_str_elem(elem) {
            if let Some(text) = c_string(all) {
                return write_str(self.out, &String::from_utf8_lossy(text));
            }
        }
        // Every element, as bpftool prints them: their number is bounded by the bytes
        // there are, and the node budget bounds the work below.
        self.out.write_all(b"[")?;
        for (i, c) in all.chunks(esize).enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.value(elem, c, depth + 1)?;
        }
        self.out.write_all(b"]")
    }

    fn datasec(&mut self, d: TypeRef<'a>, bytes: &[u8], depth: u32) -> io::Result<()> {
        let r = self.r;
        self.out.write_all(b"{")?;
        write_str(self.out, &r.name(d.name_off))?;
        self.out.write_all(b":[")?;
        let mut first = true;
        for v in d.var_secinfos() {
            let Ok(var) = r.btf.type_by_id(v.type_id, d.id) else {
                continue;
            };
            let off = usize::try_from(v.offset).unwrap_or(usize::MAX);
            let Some(sub) = usize::try_from(v.size)
                .ok()
                .and_then(|size| off.checked_add(size))
                .and_then(|end| bytes.get(off..end))
            else {
                continue;
            };
            let (name, inner) = if var.kind == Kind::VAR {
                (
                    r.name(var.name_off),
                    r.btf.type_by_id(var.size_or_type, var.id).ok(),
                )
            } else {
                (Cow::Borrowed(""), Some(var))
            };
            if !first {
                self.out.write_all(b",")?;
            }
            first = false;
            self.out.write_all(b"{")?;
            write_str(self.out, &name)?;
            self.out.write_all(b":")?;
            match inner {
                Some(t) => self.value(t, sub, depth + 1)?,
                None => self.raw(sub)?,
            }
            self.out.write_all(b"}")?;
        }
        self.out.write_all(b"]}")
    }

    fn float(&mut self, t: TypeRef<'a>, bytes: &[u8]) -> io::Result<()> {
        let f = match (t.size_or_type, bytes) {
            (4, [a, b, c, d, ..]) => f64::from(f32::from_le_bytes([*a, *b, *c, *d])),
            (8, [a, b, c, d, e, f, g, h, ..]) => {
                f64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h])
            }
            (n, b) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                return write_hex_of(self.out, b.get(..n).unwrap_or(b));
            }
        };
        // `null` for NaN and infinities, as serde_json writes them.
        serde_json::to_writer(&mut *self.out, &f).map_err(io::Error::from)
    }

    fn value(&mut self, t: TypeRef<'a>, bytes: &[u8], depth: u32) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return write_str(self.out, "<too deep>");
        }
        if self.nodes_left == 0 {
            return write_str(self.out, "<too many values>");
        }
        self.nodes_left -= 1;
        let Some(t) = self.r.strip(t) else {
            return self.raw(bytes);
        };
        match t.kind {
            Kind::INT => self.int(t, bytes),
            Kind::PTR => match bytes.get(..8) {
                Some(b) if self.r.hex_pointers => write!(self.out, "\"{:#x}\"", le_uint(b)),
                Some(b) => write!(self.out, "{}", u64::try_from(le_uint(b)).unwrap_or(0)),
                None => self.raw(bytes),
            },
            Kind::ENUM | Kind::ENUM64 => self.enum_value(t, bytes),
            Kind::FLOAT => self.float(t, bytes),
            Kind::STRUCT | Kind::UNION => {
                let size = usize::try_from(t.size_or_type).unwrap_or(usize::MAX);
                match bytes.get(..size) {
                    Some(b) => self.object(t, b, depth),
                    None => self.raw(bytes),
                }
            }
            Kind::ARRAY => self.array(t, bytes, depth),
            Kind::DATASEC => self.datasec(t, bytes, depth),
            Kind::VAR => match self.r.btf.type_by_id(t.size_or_type, t.id) {
                Ok(inner) => self.value(inner, bytes, depth + 1),
                Err(_) => self.raw(bytes),
            },
            _ => self.raw(bytes),
        }
    }
}

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
