//! Maps and their entries as text: JSON in `bpftool -j`'s shapes, and human lines in
//! the style of `bpftool map show` / `map dump`.
//!
//! - [`map_json`] / [`write_map_human`]: one map's metadata.
//! - [`DumpWriter`]: a streaming dump. JSON entries are `{"key":["0x01",..],
//!   "value":[..]}`, per-CPU ones `{"key":[..],"values":[{"cpu":0,"value":[..]},..]}`,
//!   plus `"formatted":{"key":..,"value"(s):..}` when the map's BTF is known
//!   ([`typed::TypeRenderer`]); local-storage entries in a form of our own, each
//!   element's owner instead of a key ([`storage`], [`DumpWriter::owners`]).

#[cfg(test)]
pub(crate) mod oracle;
pub mod stacks;
pub mod storage;
mod structops;
pub mod typed;

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use crate::source::{MapInfo, MapState, MapType, ValueRef};
use mapwalk_core::bpf::storage::OwnerKind;

/// `"0x00"` .. `"0xff"` with their quotes, for the hex arrays.
const fn hex_table() -> [[u8; 6]; 256] {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 6]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [b'"', b'0', b'x', digits[i >> 4], digits[i & 15], b'"'];
        i += 1;
    }
    t
}
static HEX: [[u8; 6]; 256] = hex_table();

/// `"0x00",` .. `"0xff",`: one copy a byte of a hex array.
const fn hex7_table() -> [[u8; 7]; 256] {
    let mut t = [[0u8; 7]; 256];
    let mut i = 0;
    while i < 256 {
        let h = HEX[i];
        t[i] = [h[0], h[1], h[2], h[3], h[4], h[5], b','];
        i += 1;
    }
    t
}
static HEX7: [[u8; 7]; 256] = hex7_table();

/// Appends `["0x01","0x02",...]` to `out`.
pub fn push_hex_json(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    if bytes.is_empty() {
        out.extend_from_slice(b"[]");
        return;
    }
    // `[` and seven bytes a byte: `"0x01",`, the last comma becoming `]`.
    out.resize(start + 1 + bytes.len() * 7, 0);
    let Some(dst) = out.get_mut(start..) else {
        return;
    };
    dst[0] = b'[';
    for (chunk, &b) in dst[1..].chunks_exact_mut(7).zip(bytes) {
        chunk.copy_from_slice(&HEX7[usize::from(b)]);
    }
    if let Some(last) = out.last_mut() {
        *last = b']';
    }
}

/// Writes `["0x01","0x02",...]` to `out`, a few KiB at a time.
///
/// # Errors
/// The writer's.
pub fn write_hex_json<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return out.write_all(b"[]");
    }
    // `[` (or `,` between chunks), then seven bytes a byte: `"0x01",`.
    let mut chunk = vec![0u8; 1 + HEX_CHUNK * 7];
    for (i, part) in bytes.chunks(HEX_CHUNK).enumerate() {
        chunk[0] = if i == 0 { b'[' } else { b',' };
        for (dst, &b) in chunk[1..].chunks_exact_mut(7).zip(part) {
            dst.copy_from_slice(&HEX7[usize::from(b)]);
        }
        // `1 + 7n` bytes were laid out; the last byte's comma is not written.
        out.write_all(&chunk[..part.len() * 7])?;
    }
    out.write_all(b"]")
}

/// Bytes [`write_hex_json`] formats at a time.
const HEX_CHUNK: usize = 4096;

/// Appends `01 02 ff` to `out`.
pub fn push_hex_spaced(out: &mut Vec<u8>, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&HEX[usize::from(b)][3..5]);
    }
}

/// Appends bytes as bpftool's `fprint_hex` prints them: `01 02`, two spaces after
/// every eighth byte, a new line after every sixteenth.
pub fn push_hex_bpftool(out: &mut Vec<u8>, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            let sep: &[u8] = if i % 16 == 0 {
                b"\n"
            } else if i % 8 == 0 {
                b"  "
            } else {
                b" "
            };
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(&HEX[usize::from(b)][3..5]);
    }
}

/// `01 02 ff`.
pub fn hex_spaced(bytes: &[u8]) -> String {
    let mut v = Vec::new();
    push_hex_spaced(&mut v, bytes);
    String::from_utf8(v).unwrap_or_default()
}

/// The type as `bpftool` prints it: its name, or its number when unknown.
pub fn type_json(m: &MapInfo) -> Value {
    match m.map_type.name() {
        Some(n) => Value::from(n),
        None => Value::from(m.map_type.0),
    }
}

/// One map as `bpftool -j map show` gives it (the keys both know).
pub fn map_json(m: &MapInfo) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(m.id));
    o.insert("type".into(), type_json(m));
    if !m.name.as_bytes().is_empty() {
        o.insert("name".into(), json!(m.name.to_string()));
    }
    o.insert("flags".into(), json!(m.map_flags.bits()));
    o.insert("bytes_key".into(), json!(m.key_size));
    o.insert("bytes_value".into(), json!(m.value_size));
    o.insert("max_entries".into(), json!(m.max_entries));
    if m.btf_id != 0 {
        o.insert("btf_id".into(), json!(m.btf_id));
    }
    Value::Object(o)
}

/// One map as `bpftool -j map show` gives it, with what `state` knows
/// (`bytes_memlock`, and `frozen` as 0 or 1, as bpftool prints them).
pub fn map_json_state(m: &MapInfo, state: &MapState) -> Value {
    let mut v = map_json(m);
    if let Value::Object(o) = &mut v {
        if let Some(n) = state.memlock {
            o.insert("bytes_memlock".into(), json!(n));
        }
        if let Some(f) = state.frozen {
            o.insert("frozen".into(), json!(u8::from(f)));
        }
        // bpftool's order: btf_id after them.
        if let Some(id) = o.remove("btf_id") {
            o.insert("btf_id".into(), id);
        }
    }
    v
}

/// One map as `bpftool map show` prints it, with what `state` knows: `  memlock NB`
/// on the second line, and `frozen` on the third (after `btf_id`).
///
/// # Errors
/// The writer's.
pub fn write_map_human_state(w: &mut impl Write, m: &MapInfo, state: &MapState) -> io::Result<()> {
    match m.map_type.name() {
        Some(n) => write!(w, "{}: {n}  ", m.id)?,
        None => write!(w, "{}: type {}  ", m.id, m.map_type.0)?,
    }
    if !m.name.as_bytes().is_empty() {
        write!(w, "name {}  ", m.name)?;
    }
    writeln!(w, "flags {:#x}", m.map_flags.bits())?;
    write!(
        w,
        "\tkey {}B  value {}B  max_entries {}",
        m.key_size, m.value_size, m.max_entries
    )?;
    if let Some(n) = state.memlock {
        write!(w, "  memlock {n}B")?;
    }
    let frozen = state.frozen == Some(true);
    if m.btf_id != 0 || frozen {
        write!(w, "\n\t")?;
        if m.btf_id != 0 {
            write!(w, "btf_id {}", m.btf_id)?;
        }
        if frozen {
            write!(w, "{}frozen", if m.btf_id != 0 { "  " } else { "" })?;
        }
    }
    writeln!(w)
}

/// One map as `bpftool map show` prints it:
/// `ID: TYPE  name NAME  flags 0x0` / `\tkey 4B  value 8B  max_entries 4`.
///
/// # Errors
/// The writer's.
pub fn write_map_human(w: &mut impl Write, m: &MapInfo) -> io::Result<()> {
    match m.map_type.name() {
        Some(n) => write!(w, "{}: {n}  ", m.id)?,
        None => write!(w, "{}: type {}  ", m.id, m.map_type.0)?,
    }
    if !m.name.as_bytes().is_empty() {
        write!(w, "name {}  ", m.name)?;
    }
    writeln!(w, "flags {:#x}", m.map_flags.bits())?;
    write!(
        w,
        "\tkey {}B  value {}B  max_entries {}",
        m.key_size, m.value_size, m.max_entries
    )?;
    if m.btf_id != 0 {
        write!(w, "\n\tbtf_id {}", m.btf_id)?;
    }
    writeln!(w)
}

/// How a dump is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `bpftool -j`.
    Json,
    /// `bpftool`'s plain lines.
    Human,
}

/// The BTF of a map and its key and value type ids.
#[derive(Debug, Clone, Copy)]
pub struct Types<'a> {
    /// The renderer.
    pub renderer: typed::TypeRenderer<'a>,
    /// `btf_key_type_id` (0: none).
    pub key: u32,
    /// `btf_value_type_id` (0: none).
    pub value: u32,
}

impl Types<'_> {
    /// Writes the key rendered through its type (`false`: the map has no key type).
    fn write_key<W: Write + ?Sized>(&self, bytes: &[u8], out: &mut W) -> io::Result<bool> {
        if self.key == 0 {
            return Ok(false);
        }
        self.renderer.write(self.key, bytes, out)?;
        Ok(true)
    }

    /// Writes the value through its type, or as hex bytes when it has none.
    fn write_value<W: Write + ?Sized>(&self, bytes: &[u8], out: &mut W) -> io::Result<()> {
        if self.value == 0 {
            return write_hex_json(out, bytes);
        }
        self.renderer.write(self.value, bytes, out)
    }
}

/// Output is handed to the writer in chunks of about this many bytes (few `write`s).
const FLUSH_AT: usize = 1 << 20;

/// Writes a dump entry by entry. JSON output is one array (`[` at the first entry or
/// at [`finish`](Self::finish), `]` at `finish`).
#[derive(Debug)]
pub struct DumpWriter<'a, W: Write> {
    out: W,
    format: Format,
    types: Option<Types<'a>>,
    buf: Vec<u8>,
    count: u64,
    open: bool,
    newline: bool,
    owners: Option<OwnerKind>,
    stacks: Option<stacks::StackFrames<'a>>,
    struct_ops: Option<&'a crate::struct_ops::StructOps>,
}

impl<'a, W: Write> DumpWriter<'a, W> {
    /// A writer to `out`.
    pub fn new(out: W, format: Format, types: Option<Types<'a>>) -> Self {
        Self {
            out,
            format,
            types,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            count: 0,
            open: false,
            newline: true,
            owners: None,
            stacks: None,
            struct_ops: None,
        }
    }

    /// Writes the entries of a map of type `map_type`: for a local-storage map, each
    /// key is an owner record and the entries take the form of [`storage`]; any other
    /// type keeps bpftool's form.
    #[must_use]
    pub fn owners(mut self, map_type: MapType) -> Self {
        self.owners = OwnerKind::of(map_type);
        self
    }

    /// Writes the entries of a map of type `map_type` with `flags`: for a STACK_TRACE
    /// map, each entry's frames too, named from `symbols` when given (see [`stacks`]);
    /// any other type is left as it is.
    #[must_use]
    pub fn stacks(
        mut self,
        map_type: MapType,
        flags: mapwalk_core::bpf::MapFlags,
        symbols: Option<&'a crate::stack::KernelSymbolizer>,
    ) -> Self {
        self.stacks =
            (map_type == MapType::STACK_TRACE).then_some(stacks::StackFrames { flags, symbols });
        self
    }

    /// Writes the entry of a map of type `map_type`: for a STRUCT_OPS map, `decoded`
    /// (the struct through the kernel's BTF, see [`crate::struct_ops`]) after it, as
    /// `"struct_ops"` in JSON and a `struct_ops` block in text; any other type, or no
    /// `decoded`, is left as it is.
    #[must_use]
    pub fn struct_ops(
        mut self,
        map_type: MapType,
        decoded: Option<&'a crate::struct_ops::StructOps>,
    ) -> Self {
        self.struct_ops = decoded.filter(|_| map_type == MapType::STRUCT_OPS);
        self
    }

    /// Whether [`finish`](Self::finish) ends JSON output with a newline (the default);
    /// not when the array is part of a larger document.
    #[must_use]
    pub fn trailing_newline(mut self, newline: bool) -> Self {
        self.newline = newline;
        self
    }

    /// The entries written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn start(&mut self) {
        if !self.open && self.format == Format::Json {
            self.buf.push(b'[');
        }
        self.open = true;
    }

    /// Writes one entry.
    ///
    /// # Errors
    /// The writer's.
    pub fn entry(&mut self, key: &[u8], value: ValueRef<'_>) -> io::Result<()> {
        self.start();
        let mut w = Flushing {
            buf: &mut self.buf,
            out: &mut self.out,
        };
        match (self.format, self.owners, value) {
            (Format::Json, Some(kind), ValueRef::Single(v)) => {
                storage::entry_json(&mut w, self.types.as_ref(), self.count, kind, key, v)?;
            }
            (Format::Human, Some(kind), ValueRef::Single(v)) => {
                storage::entry_human(&mut w, self.types.as_ref(), kind, key, v)?;
            }
            (Format::Json, ..) => entry_json(
                &mut w,
                self.types.as_ref(),
                self.stacks.as_ref(),
                self.struct_ops,
                self.count,
                key,
                value,
            )?,
            (Format::Human, ..) => {
                entry_human(&mut w, self.types.as_ref(), key, value)?;
                if let (Some(s), ValueRef::Single(v)) = (&self.stacks, value) {
                    s.write_human(&mut w, v)?;
                }
                if let Some(ops) = self.struct_ops {
                    structops::write_human(&mut w, ops)?;
                }
            }
        }
        self.count += 1;
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Closes the dump (`]` for JSON, `Found N elements` for humans) and flushes.
    ///
    /// # Errors
    /// The writer's.
    pub fn finish(self) -> io::Result<W> {
        self.close(None)
    }

    /// Closes a dump that stopped before the end, saying so in the output itself: JSON
    /// gets a last element `{"error":"WHY","partial":true}` (which has no `"key"`, so no
    /// entry is mistaken for it), text a last line `Incomplete dump: WHY` after
    /// `Found N elements`.
    ///
    /// # Errors
    /// The writer's.
    pub fn finish_incomplete(self, why: &str) -> io::Result<W> {
        self.close(Some(why))
    }

    fn close(mut self, incomplete: Option<&str>) -> io::Result<W> {
        self.start();
        match (self.format, incomplete) {
            (Format::Json, Some(why)) => {
                if self.count > 0 {
                    self.buf.push(b',');
                }
                let why = Value::from(why).to_string();
                self.buf.extend_from_slice(b"{\"error\":");
                self.buf.extend_from_slice(why.as_bytes());
                self.buf.extend_from_slice(b",\"partial\":true}");
            }
            (Format::Json, None) => {}
            (Format::Human, _) => {
                let plural = if self.count == 1 { "" } else { "s" };
                let found = format!("Found {} element{plural}\n", self.count);
                self.buf.extend_from_slice(found.as_bytes());
                if let Some(why) = incomplete {
                    let why = why.replace('\n', " ");
                    self.buf
                        .extend_from_slice(format!("Incomplete dump: {why}\n").as_bytes());
                }
            }
        }
        match self.format {
            Format::Json if self.newline => self.buf.extend_from_slice(b"]\n"),
            Format::Json => self.buf.push(b']'),
            Format::Human => {}
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The dump's buffer, handed to the writer whenever it holds [`FLUSH_AT`] bytes: a
/// large value is written out as it is rendered.
struct Flushing<'b, W: Write> {
    buf: &'b mut Vec<u8>,
    out: &'b mut W,
}

impl<W: Write> Write for Flushing<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // The buffer never holds more than `FLUSH_AT`: it is handed over first, and a
        // write that large goes straight through.
        if self.buf.len().saturating_add(data.len()) > FLUSH_AT {
            self.out.write_all(self.buf)?;
            self.buf.clear();
        }
        if data.len() >= FLUSH_AT {
            self.out.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn entry_json<W: Write + ?Sized>(
    b: &mut W,
    types: Option<&Types<'_>>,
    stacks: Option<&stacks::StackFrames<'_>>,
    struct_ops: Option<&crate::struct_ops::StructOps>,
    count: u64,
    key: &[u8],
    value: ValueRef<'_>,
) -> io::Result<()> {
    if count > 0 {
        b.write_all(b",")?;
    }
    b.write_all(b"{\"key\":")?;
    write_hex_json(b, key)?;
    match value {
        ValueRef::Single(v) => {
            b.write_all(b",\"value\":")?;
            write_hex_json(b, v)?;
        }
        ValueRef::PerCpu(p) => {
            b.write_all(b",\"values\":[")?;
            for (i, (cpu, v)) in p.iter().enumerate() {
                if i > 0 {
                    b.write_all(b",")?;
                }
                write!(b, "{{\"cpu\":{cpu},\"value\":")?;
                write_hex_json(b, v)?;
                b.write_all(b"}")?;
            }
            b.write_all(b"]")?;
        }
    }
    if let Some(t) = types {
        b.write_all(b",\"formatted\":")?;
        write_formatted(t, key, value, b)?;
    }
    if let (Some(s), ValueRef::Single(v)) = (stacks, value) {
        s.write_json(b, v)?;
    }
    if let Some(ops) = struct_ops {
        structops::write_json(b, ops)?;
    }
    b.write_all(b"}")
}

fn entry_human<W: Write + ?Sized>(
    b: &mut W,
    types: Option<&Types<'_>>,
    key: &[u8],
    value: ValueRef<'_>,
) -> io::Result<()> {
    if let Some(t) = types {
        write_formatted(t, key, value, b)?;
        return b.write_all(b"\n");
    }
    // bpftool's plain layout (`print_entry_plain`): key and value on one line when
    // they are short, each under its name when either is longer than 16 bytes.
    let mut line = Vec::new();
    match value {
        ValueRef::Single(v) => {
            let break_names = key.len() > 16 || v.len() > 16;
            let single_line = key.len() + v.len() <= 24 && !break_names;
            let sep = if break_names { b'\n' } else { b' ' };
            if !key.is_empty() {
                line.extend_from_slice(b"key:");
                line.push(sep);
                push_hex_bpftool(&mut line, key);
                line.extend_from_slice(if single_line { b"  " } else { b"\n" });
            }
            if !v.is_empty() {
                line.extend_from_slice(b"value:");
                line.push(sep);
                push_hex_bpftool(&mut line, v);
            }
            line.push(b'\n');
        }
        ValueRef::PerCpu(p) => {
            line.extend_from_slice(b"key:\n");
            push_hex_bpftool(&mut line, key);
            line.push(b'\n');
            for (cpu, v) in p.iter() {
                let sep = if v.len() > 16 { '\n' } else { ' ' };
                line.extend_from_slice(format!("value (CPU {cpu:02}):{sep}").as_bytes());
                push_hex_bpftool(&mut line, v);
                line.push(b'\n');
            }
        }
    }
    b.write_all(&line)
}

/// Writes one entry as a dump shows it: a JSON object (with `formatted` when the types
/// are known) and a new line, or bpftool's plain lines. What `bpftool map lookup`
/// prints.
///
/// # Errors
/// The writer's.
pub fn write_entry<W: Write + ?Sized>(
    out: &mut W,
    format: Format,
    types: Option<&Types<'_>>,
    key: &[u8],
    value: ValueRef<'_>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            entry_json(out, types, None, None, 0, key, value)?;
            out.write_all(b"\n")
        }
        Format::Human => entry_human(out, types, key, value),
    }
}

/// Writes `{"key":..,"value":..}` or `{"key":..,"values":[{"cpu":N,"value":..}]}`
/// through BTF to `out`, as the values are rendered (no tree is built).
///
/// # Errors
/// The writer's.
pub fn write_formatted<W: Write + ?Sized>(
    t: &Types<'_>,
    key: &[u8],
    value: ValueRef<'_>,
    out: &mut W,
) -> io::Result<()> {
    out.write_all(b"{")?;
    // bpftool leaves the key out when the map has no key type (`.bss` and friends).
    if t.key != 0 {
        out.write_all(b"\"key\":")?;
    }
    let comma = t.write_key(key, out)?;
    let sep: &[u8] = if comma { b"," } else { b"" };
    match value {
        ValueRef::Single(v) => {
            out.write_all(sep)?;
            out.write_all(b"\"value\":")?;
            t.write_value(v, out)?;
        }
        ValueRef::PerCpu(p) => {
            out.write_all(sep)?;
            out.write_all(b"\"values\":[")?;
            for (i, (cpu, v)) in p.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write!(out, "{{\"cpu\":{cpu},\"value\":")?;
                t.write_value(v, out)?;
                out.write_all(b"}")?;
            }
            out.write_all(b"]")?;
        }
    }
    out.write_all(b"}")
}

/// [`write_formatted`]'s text parsed back into a [`Value`], for callers that want a
/// tree of one entry.
pub fn formatted(t: &Types<'_>, key: &[u8], value: ValueRef<'_>) -> Value {
    let mut v = Vec::new();
    // A `Vec` takes any write.
    let _ = write_formatted(t, key, value, &mut v);
    serde_json::from_slice(&v).unwrap_or(Value::Null)
}

/// `["0x01",..]` as a `Value`.
pub fn hex_value(bytes: &[u8]) -> Value {
    Value::Array(
        bytes
            .iter()
            .map(|&b| Value::String(format!("0x{b:02x}")))
            .collect(),
    )
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
