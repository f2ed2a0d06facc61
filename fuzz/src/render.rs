//! Target `render`: keys and values rendered through a map's BTF
//! ([`mapwalk::render`]), with hostile BTF, type ids and bytes.
//!
//! The BTF is parsed as the CLI parses a map's (`Btf::from_bytes`, or
//! `Btf::from_split_bytes` on top of the kernel's BTF), from:
//! - mode 0, **raw**: the first `btf_len` bytes after the header;
//! - mode 1, **split**: the same bytes as split BTF over [`kernel_btf`];
//! - mode 2, **synthetic**: [`map_btf`] with those bytes written over it at `at`.
//!
//! The rest of the input is the key (its first `key_len` bytes) and the value bytes.
//! Key and value type ids are the header's (`% 256`; 0 is "no type"). The entry (a
//! single value, or `cpus` per-CPU copies) is rendered by `formatted` and by
//! [`DumpWriter`] in JSON (pointers as numbers) and in human form (pointers as hex),
//! and every type id from 1 to [`MAX_IDS`] is rendered over the value bytes.
//!
//! Checks: the JSON dump parses as a JSON array of one object per entry.

use arbitrary::Unstructured;
use btf_rs::Btf;
use mapwalk::render::btf::TypeRenderer;
use mapwalk::render::{formatted, DumpWriter, Format, Types};
use mapwalk::source::ValueRef;

use crate::btf_layout::splice;
use crate::btf_synth::{kernel_btf, map_btf};
use crate::{Enc, Res};

/// Type ids rendered one by one over the value bytes, at most.
pub const MAX_IDS: u32 = 16;

/// CPUs of a per-CPU value, at most.
pub const MAX_CPUS: usize = 4;

/// The fixed part of an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// `% 3`: raw, split, synthetic.
    pub mode: u8,
    /// How many of the following bytes are BTF.
    pub btf_len: u16,
    /// Synthetic: where they go.
    pub at: u16,
    /// `btf_key_type_id` (`% 256`).
    pub key_id: u32,
    /// `btf_value_type_id` (`% 256`).
    pub value_id: u32,
    /// The key's length.
    pub key_len: u8,
    /// Per-CPU copies (`% (MAX_CPUS + 1)`; 0: a single value).
    pub cpus: u8,
}

impl Header {
    /// Decodes the header (15 bytes).
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        Ok(Self {
            mode: u.arbitrary()?,
            btf_len: u.arbitrary()?,
            at: u.arbitrary()?,
            key_id: u.arbitrary()?,
            value_id: u.arbitrary()?,
            key_len: u.arbitrary()?,
            cpus: u.arbitrary()?,
        })
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode)
            .u16(self.btf_len)
            .u16(self.at)
            .u32(self.key_id)
            .u32(self.value_id)
            .u8(self.key_len)
            .u8(self.cpus);
    }
}

/// The kernel BTF split BTF is parsed over, parsed once.
fn kernel() -> &'static Btf {
    static BTF: std::sync::OnceLock<Btf> = std::sync::OnceLock::new();
    BTF.get_or_init(|| Btf::from_bytes(kernel_btf()).expect("the synthetic kernel BTF parses"))
}

/// Renders through `btf` everything the header asks for.
pub fn render_all(btf: &Btf, h: &Header, key: &[u8], value: &[u8]) {
    let cpus = usize::from(h.cpus) % (MAX_CPUS + 1);
    let cpu_ids: Vec<u32> = (0..cpus as u32).map(|c| c * 3).collect();
    let size = value.len().checked_div(cpus).unwrap_or(value.len());
    let stride = size.next_multiple_of(8);
    let single = ValueRef::Single(value);
    let v = if cpus == 0 {
        single
    } else {
        ValueRef::per_cpu(value, stride, size, &cpu_ids)
    };
    // JSON with pointers as numbers (`bpftool -j`), human lines with hex pointers, as
    // the CLI does.
    for (format, hex) in [(Format::Json, false), (Format::Human, true)] {
        let types = Types {
            renderer: TypeRenderer::new(btf).hex_pointers(hex),
            key: h.key_id % 256,
            value: h.value_id % 256,
        };
        std::hint::black_box(formatted(&types, key, v));
        let mut w = DumpWriter::new(Vec::new(), format, Some(types));
        w.entry(key, v).expect("a Vec takes any write");
        w.entry(value, single).expect("a Vec takes any write");
        assert_eq!(w.count(), 2);
        let out = w.finish().expect("a Vec takes any write");
        if format == Format::Json {
            let parsed: serde_json::Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("JSON dump does not parse: {e}"));
            let entries = parsed.as_array().expect("a JSON dump is an array");
            assert_eq!(entries.len(), 2);
            assert!(entries.iter().all(serde_json::Value::is_object));
        }
    }
    let r = TypeRenderer::new(btf);
    for id in 1..=MAX_IDS {
        std::hint::black_box(r.render(id, value));
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(h) = Header::decode(&mut u) else {
        return;
    };
    let rest = u.take_rest();
    let n = usize::from(h.btf_len).min(rest.len());
    let (btf_bytes, entry) = rest.split_at(n);
    let k = usize::from(h.key_len).min(entry.len());
    let (key, value) = entry.split_at(k);
    let parsed = match h.mode % 3 {
        0 => Btf::from_bytes(btf_bytes),
        1 => Btf::from_split_bytes(btf_bytes, kernel()),
        _ => Btf::from_bytes(&splice(&map_btf().0, h.at, btf_bytes)),
    };
    match parsed {
        Ok(btf) => render_all(&btf, &h, key, value),
        Err(e) => {
            std::hint::black_box(e.to_string());
        }
    }
}
