//! Ring buffers through a memory source: the dump's own form (docs/ringbuf.md) in JSON
//! and text.

use super::tests::{source, RamImage};
use crate::dump::dump_map;
use crate::render::Format;
use mapwalk_core::bpf::{RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT};
use mapwalk_core::synth::{GuestBuilder, MapSpec};
use mapwalk_core::MapType;

use super::MapSource;

fn hex(b: &[u8]) -> Vec<String> {
    b.iter().map(|b| format!("0x{b:02x}")).collect()
}

fn record(len_word: u32, data: &[u8]) -> Vec<u8> {
    let mut v = len_word.to_le_bytes().to_vec();
    v.extend([0; 4]);
    v.extend(data);
    v
}

#[test]
fn a_ring_dumps_as_its_header_then_each_pending_record() {
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(
        MapSpec::new(1, MapType::RINGBUF, "events", 0, 0, 4096)
            .ring_at(4096 - 8)
            .ring_record(0, b"wraps")
            .ring_record(RINGBUF_DISCARD_BIT, b"no")
            .ring_record(RINGBUF_BUSY_BIT, b"unfinished"),
    );
    let g = b.build();
    let ram = RamImage::new(&g, "ringbuf");
    let src = source(&g, &ram, false);
    let meta = src.map_by_id(1).unwrap().unwrap();
    let dump = |format| {
        let mut out = Vec::new();
        dump_map(&src, &meta, format, &mut out, &mut |_| {}).unwrap();
        out
    };
    let json: serde_json::Value = serde_json::from_slice(&dump(Format::Json)).unwrap();
    let mut header = 1u32.to_le_bytes().to_vec();
    header.extend(27u32.to_le_bytes());
    let (c, p) = (4096u64 - 8, 4096u64 - 8 + 16 + 16 + 24);
    for v in [4096, c, p, p, p - c] {
        header.extend(v.to_le_bytes());
    }
    assert_eq!(
        json,
        serde_json::json!([
            {"key": [], "value": hex(&header)},
            {"key": hex(&c.to_le_bytes()), "value": hex(&record(5, b"wraps"))},
            {"key": hex(&(c + 16).to_le_bytes()),
             "value": hex(&record(2 | RINGBUF_DISCARD_BIT, b"no"))},
            {"key": hex(&(c + 32).to_le_bytes()),
             "value": hex(&record(10 | RINGBUF_BUSY_BIT, b""))},
        ])
    );
    let text = String::from_utf8(dump(Format::Human)).unwrap();
    assert!(text.contains("Found 4 elements"), "{text}");
}
