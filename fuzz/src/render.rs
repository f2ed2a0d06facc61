//! Target `render`: keys and values rendered through a map's BTF
//! ([`mapwalk::render`]), with hostile BTF, type ids and bytes.
//!
//! The BTF is read as the sources read a map's ([`MapBtf::new`], or [`MapBtf::split`]
//! on top of the kernel's BTF), from:
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
//! Checks: the JSON dump parses as a JSON array of one object per entry; when btf-rs
//! parses the same bytes too, both see the same number of types, and the same kind for
//! each of the first [`MAX_IDS`] (a differential check of the reader).

use arbitrary::Unstructured;
use mapwalk::btf::{BaseBtf, MapBtf};
use mapwalk::render::typed::TypeRenderer;
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

/// The kernel BTF split BTF is read over, indexed once.
fn kernel() -> &'static BaseBtf {
    static BTF: std::sync::OnceLock<BaseBtf> = std::sync::OnceLock::new();
    BTF.get_or_init(|| BaseBtf::new(kernel_btf().to_vec()).expect("the synthetic kernel BTF reads"))
}

/// The same kernel BTF through btf-rs, for the differential check.
fn kernel_oracle() -> &'static btf_rs::Btf {
    static BTF: std::sync::OnceLock<btf_rs::Btf> = std::sync::OnceLock::new();
    BTF.get_or_init(|| {
        btf_rs::Btf::from_bytes(kernel_btf()).expect("the synthetic kernel BTF parses")
    })
}

/// The `BTF_KIND_*` of a btf-rs type.
fn oracle_kind(t: &btf_rs::Type) -> u8 {
    use btf_rs::Type as T;
    match t {
        T::Void => 0,
        T::Int(_) => 1,
        T::Ptr(_) => 2,
        T::Array(_) => 3,
        T::Struct(_) => 4,
        T::Union(_) => 5,
        T::Enum(_) => 6,
        T::Fwd(_) => 7,
        T::Typedef(_) => 8,
        T::Volatile(_) => 9,
        T::Const(_) => 10,
        T::Restrict(_) => 11,
        T::Func(_) => 12,
        T::FuncProto(_) => 13,
        T::Var(_) => 14,
        T::Datasec(_) => 15,
        T::Float(_) => 16,
        T::DeclTag(_) => 17,
        T::TypeTag(_) => 18,
        T::Enum64(_) => 19,
        _ => u8::MAX,
    }
}

/// When btf-rs reads the bytes too: the same last id, and the same kinds.
pub fn differential(ours: &MapBtf, theirs: &btf_rs::Btf) {
    let last = theirs.split().unwrap_or(theirs.base()).type_id_range().1;
    assert_eq!(ours.last_id(), last, "the number of types");
    for id in 1..=last.min(MAX_IDS) {
        let a = ours.type_by_id(id, 0).expect("an id up to the last").kind.0;
        let b = oracle_kind(&theirs.resolve_type_by_id(id).expect("an id up to the last"));
        assert_eq!(a, b, "the kind of type {id}");
    }
}

/// Renders through `btf` everything the header asks for.
pub fn render_all(btf: &MapBtf, h: &Header, key: &[u8], value: &[u8]) {
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
    let synthetic;
    let (parsed, oracle) = match h.mode % 3 {
        0 => (
            MapBtf::new(btf_bytes.to_vec()),
            btf_rs::Btf::from_bytes(btf_bytes),
        ),
        1 => (
            MapBtf::split(btf_bytes.to_vec(), kernel()),
            btf_rs::Btf::from_split_bytes(btf_bytes, kernel_oracle()),
        ),
        _ => {
            synthetic = splice(&map_btf().0, h.at, btf_bytes);
            (
                MapBtf::new(synthetic.clone()),
                btf_rs::Btf::from_bytes(&synthetic),
            )
        }
    };
    match parsed {
        Ok(btf) => {
            if let Ok(theirs) = &oracle {
                differential(&btf, theirs);
            }
            render_all(&btf, &h, key, value);
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
        }
    }
}
