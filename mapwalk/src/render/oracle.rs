//! The btf-rs based renderer this crate used before its own reader, kept for tests as
//! an oracle: its text must equal [`super::typed::TypeRenderer`]'s.
//!
//! Values rendered through their BTF types, in the shape `bpftool` gives its
//! `formatted` objects: structs and unions as objects, arrays as lists, integers as
//! numbers (128-bit ones as hex strings), enums by name, `char` arrays as strings when
//! printable, pointers as hex strings, `.bss`/`.data`/`.rodata` (a DATASEC) as
//! `{"<section>": [{"<var>": value}, ...]}`.

use btf_rs::{Btf, BtfType, Type};
use serde_json::{Map, Value};

/// Nesting deeper than this is cut (a corrupt or hostile BTF can loop).
const MAX_DEPTH: u32 = 32;
/// Values one `render` may visit beyond [`NODES_PER_BYTE`] per byte rendered: a hostile
/// BTF (a struct whose members are that struct, all at offset 0) would otherwise take
/// its fan-out to the power of `MAX_DEPTH` steps. A real type visits at most a few
/// values per byte (an array of `u8` one per byte, plus the structs around it), so the
/// budget grows with the value and never cuts a real one short.
const MAX_NODES_BASE: u64 = 1 << 16;

/// Values one `render` may visit per byte of its input, on top of [`MAX_NODES_BASE`].
const NODES_PER_BYTE: u64 = 8;

thread_local! {
    /// Values the current `render` may still visit.
    static NODES_LEFT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Renders bytes through the types of one BTF.
#[derive(Clone, Copy)]
pub struct TypeRenderer<'a> {
    btf: &'a Btf,
    hex_pointers: bool,
}

impl std::fmt::Debug for TypeRenderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeRenderer").finish_non_exhaustive()
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

fn hex_of(bytes: &[u8]) -> Value {
    let mut s = String::from("0x");
    for b in bytes.iter().rev() {
        s.push_str(&format!("{b:02x}"));
    }
    Value::String(s)
}

fn raw(bytes: &[u8]) -> Value {
    Value::Array(
        bytes
            .iter()
            .map(|b| Value::String(format!("0x{b:02x}")))
            .collect(),
    )
}

impl<'a> TypeRenderer<'a> {
    /// A renderer over `btf`.
    ///
    /// Pointers are numbers, as in `bpftool -j`; see [`hex_pointers`](Self::hex_pointers).
    pub fn new(btf: &'a Btf) -> Self {
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

    /// Renders `bytes` as type `type_id`. Bytes that do not fit the type (too few, an
    /// unknown id) are rendered as hex bytes.
    pub fn render(&self, type_id: u32, bytes: &[u8]) -> Value {
        let budget =
            MAX_NODES_BASE.saturating_add(NODES_PER_BYTE.saturating_mul(bytes.len() as u64));
        NODES_LEFT.with(|n| n.set(budget));
        match self.btf.resolve_type_by_id(type_id) {
            Ok(t) => self.value(&t, bytes, 0),
            Err(_) => raw(bytes),
        }
    }

    fn name_of(&self, t: &dyn BtfType) -> String {
        self.btf.resolve_name(t).unwrap_or_default()
    }

    fn strip(&self, mut t: Type) -> Option<Type> {
        for _ in 0..MAX_DEPTH {
            match t {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_)
                | Type::DeclTag(_) => {
                    t = self.btf.resolve_chained_type(t.as_btf_type()?).ok()?;
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// The size in bytes of a type, when it has one.
    fn size_of(&self, t: &Type, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.strip(t.clone())? {
            Type::Int(i) => Some(i.size()),
            Type::Enum(e) => Some(e.size()),
            Type::Enum64(e) => Some(e.size()),
            Type::Float(f) => Some(f.size()),
            Type::Struct(s) | Type::Union(s) => Some(s.size()),
            Type::Datasec(d) => Some(d.size()),
            Type::Ptr(_) => Some(8),
            Type::Array(a) => {
                let elem = self.btf.resolve_chained_type(&a).ok()?;
                self.size_of(&elem, depth + 1)?.checked_mul(a.len())
            }
            Type::Var(v) => {
                let inner = self.btf.resolve_chained_type(&v).ok()?;
                self.size_of(&inner, depth + 1)
            }
            _ => None,
        }
    }

    fn int(&self, i: &btf_rs::Int, bytes: &[u8]) -> Value {
        let size = i.size();
        let Some(b) = bytes.get(..size) else {
            return raw(bytes);
        };
        if i.is_bool() {
            return Value::Bool(b.iter().any(|&x| x != 0));
        }
        if let ([c], true) = (b, i.is_char()) {
            // bpftool: a char is a one-character string.
            return Value::String(char::from(*c).to_string());
        }
        if size > 8 {
            return hex_of(b);
        }
        let v = le_uint(b);
        if i.is_signed() {
            let bits = u32::try_from(size * 8).unwrap_or(64);
            Value::from(i64::try_from(sign_extend(v, bits)).unwrap_or(0))
        } else {
            Value::from(u64::try_from(v).unwrap_or(0))
        }
    }

    fn enum_value(
        &self,
        names: impl Iterator<Item = (String, u64)>,
        v: u64,
        signed: bool,
        size: usize,
    ) -> Value {
        for (name, val) in names {
            let mask = if size >= 8 {
                u64::MAX
            } else {
                (1u64 << (size * 8)) - 1
            };
            if val & mask == v & mask {
                return Value::String(name);
            }
        }
        if signed {
            let bits = u32::try_from(size * 8).unwrap_or(64);
            Value::from(i64::try_from(sign_extend(u128::from(v), bits)).unwrap_or(0))
        } else {
            Value::from(v)
        }
    }

    /// bpftool's rule for the element of a string array: modifiers skipped (not
    /// typedefs), a one-byte int of char encoding or named exactly `char`.
    fn is_str_elem(&self, t: &Type) -> bool {
        let mut t = t.clone();
        for _ in 0..MAX_DEPTH {
            match t {
                Type::Volatile(_) | Type::Const(_) | Type::Restrict(_) | Type::TypeTag(_) => {
                    let Some(next) = t
                        .as_btf_type()
                        .and_then(|b| self.btf.resolve_chained_type(b).ok())
                    else {
                        return false;
                    };
                    t = next;
                }
                Type::Int(i) => {
                    return i.size() == 1 && (i.is_char() || self.name_of(&i) == "char")
                }
                _ => return false,
            }
        }
        false
    }

    fn bitfield(&self, bytes: &[u8], bit_off: u32, bits: u32) -> Value {
        // Enough bytes to cover the field, starting at the byte that holds its first bit.
        let first = usize::try_from(bit_off / 8).unwrap_or(usize::MAX);
        let shift = bit_off % 8;
        let span = usize::try_from((shift + bits).div_ceil(8)).unwrap_or(usize::MAX);
        let Some(b) = first
            .checked_add(span)
            .and_then(|end| bytes.get(first..end))
        else {
            return Value::Null;
        };
        if span > 16 {
            return raw(b);
        }
        let mask = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        // bpftool prints every bitfield as the hex of its raw bits.
        let v = (le_uint(b) >> shift) & mask;
        Value::String(format!("{v:#x}"))
    }

    fn members(&self, s: &btf_rs::Struct, bytes: &[u8], depth: u32, out: &mut Map<String, Value>) {
        for m in &s.members {
            let Ok(mt) = self.btf.resolve_chained_type(m) else {
                continue;
            };
            let name = self.name_of(m);
            let bit = m.bit_offset();
            let value = match m.bitfield_size().filter(|&b| b != 0) {
                Some(bits) => self.bitfield(bytes, bit, bits),
                None if bit % 8 != 0 => {
                    // A bitfield in a struct without kind_flag: the Int's own bits.
                    let bits = self
                        .size_of(&mt, 0)
                        .map_or(8, |s| u32::try_from(s * 8).unwrap_or(8));
                    self.bitfield(bytes, bit, bits)
                }
                None => {
                    let off = usize::try_from(bit / 8).unwrap_or(usize::MAX);
                    let sub = bytes.get(off..).unwrap_or_default();
                    // An anonymous struct or union: its members join this object.
                    if name.is_empty() {
                        if let Some(Type::Struct(inner) | Type::Union(inner)) =
                            self.strip(mt.clone())
                        {
                            if depth < MAX_DEPTH {
                                self.members(&inner, sub, depth + 1, out);
                                continue;
                            }
                        }
                    }
                    self.value(&mt, sub, depth + 1)
                }
            };
            out.insert(name, value);
        }
    }

    fn value(&self, t: &Type, bytes: &[u8], depth: u32) -> Value {
        if depth > MAX_DEPTH {
            return Value::String("<too deep>".into());
        }
        if NODES_LEFT.with(|n| n.replace(n.get().saturating_sub(1))) == 0 {
            return Value::String("<too many values>".into());
        }
        let Some(t) = self.strip(t.clone()) else {
            return raw(bytes);
        };
        match &t {
            Type::Int(i) => self.int(i, bytes),
            Type::Ptr(_) => match bytes.get(..8) {
                Some(b) if self.hex_pointers => Value::String(format!("{:#x}", le_uint(b))),
                Some(b) => Value::from(u64::try_from(le_uint(b)).unwrap_or(0)),
                None => raw(bytes),
            },
            Type::Enum(e) => {
                let size = e.size().min(8);
                let Some(b) = bytes.get(..size) else {
                    return raw(bytes);
                };
                let v = u64::try_from(le_uint(b)).unwrap_or(0);
                let names = e
                    .members
                    .iter()
                    .map(|m| (self.name_of(m), u64::from(m.val())));
                self.enum_value(names, v, e.is_signed(), size)
            }
            Type::Enum64(e) => {
                let size = e.size().min(8);
                let Some(b) = bytes.get(..size) else {
                    return raw(bytes);
                };
                let v = u64::try_from(le_uint(b)).unwrap_or(0);
                let names = e.members.iter().map(|m| (self.name_of(m), m.val()));
                self.enum_value(names, v, e.is_signed(), size)
            }
            Type::Float(f) => match (f.size(), bytes) {
                (4, [a, b, c, d, ..]) => {
                    Value::from(f64::from(f32::from_le_bytes([*a, *b, *c, *d])))
                }
                (8, b) if b.len() >= 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b[..8]);
                    Value::from(f64::from_le_bytes(a))
                }
                (n, b) => hex_of(b.get(..n).unwrap_or(b)),
            },
            Type::Struct(s) | Type::Union(s) => {
                let Some(b) = bytes.get(..s.size()) else {
                    return raw(bytes);
                };
                let mut out = Map::new();
                self.members(s, b, depth, &mut out);
                Value::Object(out)
            }
            Type::Array(a) => {
                let Ok(elem) = self.btf.resolve_chained_type(a) else {
                    return raw(bytes);
                };
                let Some(esize) = self.size_of(&elem, 0).filter(|&s| s > 0) else {
                    return raw(bytes);
                };
                let n = a.len();
                let Some(all) = esize.checked_mul(n).and_then(|len| bytes.get(..len)) else {
                    return raw(bytes);
                };
                if self.is_str_elem(&elem) {
                    if let Some(text) = super::typed::c_string(all) {
                        return Value::String(String::from_utf8_lossy(text).into_owned());
                    }
                }
                // Every element, as bpftool prints them: `n` is bounded by the bytes
                // there are, and the node budget bounds the work below.
                Value::Array(
                    all.chunks(esize)
                        .map(|c| self.value(&elem, c, depth + 1))
                        .collect(),
                )
            }
            Type::Datasec(d) => {
                let mut vars = Vec::new();
                for v in &d.variables {
                    let Ok(var) = self.btf.resolve_chained_type(v) else {
                        continue;
                    };
                    let off = usize::try_from(v.offset()).unwrap_or(usize::MAX);
                    let Some(sub) = off
                        .checked_add(v.size())
                        .and_then(|end| bytes.get(off..end))
                    else {
                        continue;
                    };
                    let (name, inner) = match &var {
                        Type::Var(x) => (self.name_of(x), self.btf.resolve_chained_type(x).ok()),
                        other => (String::new(), Some(other.clone())),
                    };
                    let value = inner.map_or_else(|| raw(sub), |t| self.value(&t, sub, depth + 1));
                    let mut o = Map::new();
                    o.insert(name, value);
                    vars.push(Value::Object(o));
                }
                let mut o = Map::new();
                o.insert(self.name_of(d), Value::Array(vars));
                Value::Object(o)
            }
            Type::Var(v) => match self.btf.resolve_chained_type(v) {
                Ok(inner) => self.value(&inner, bytes, depth + 1),
                Err(_) => raw(bytes),
            },
            _ => raw(bytes),
        }
    }
}
