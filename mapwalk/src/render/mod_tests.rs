use super::*;
use crate::btf::testing::Builder;
use crate::btf::{Kind, MapBtf};

/// A writer that keeps what it is given and the largest single write.
#[derive(Default)]
struct Sink {
    bytes: Vec<u8>,
    largest: usize,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.largest = self.largest.max(data.len());
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A 3 MiB array value goes out in chunks of about `FLUSH_AT` as it is rendered: the
/// dump's buffer does not grow with the value.
#[test]
fn a_3_mib_array_value_streams_out_in_bounded_chunks() {
    let mut b = Builder::new();
    let u32_t = b.int("u32", 4);
    let u8_t = b.int("u8", 1);
    let len = 3u32 << 20;
    let arr = b.array(u8_t, u32_t, len);
    let btf = MapBtf::new(b.bytes()).unwrap();
    let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let types = Types {
        renderer: typed::TypeRenderer::new(&btf),
        key: u32_t,
        value: arr,
    };
    let mut w = DumpWriter::new(Sink::default(), Format::Json, Some(types));
    w.entry(&7u32.to_le_bytes(), ValueRef::Single(&value))
        .unwrap();
    assert!(
        w.buf.capacity() < FLUSH_AT + 64 * 1024,
        "{}",
        w.buf.capacity()
    );
    let sink = w.finish().unwrap();
    assert!(sink.largest <= FLUSH_AT, "{}", sink.largest);
    // The whole of it: hex, then the formatted value.
    let text = std::str::from_utf8(&sink.bytes).unwrap();
    assert!(text.starts_with(r#"[{"key":["0x07","0x00","0x00","0x00"],"value":["0x00","0x01""#));
    let formatted = text
        .find(r#","formatted":{"key":7,"value":[0,1,2,"#)
        .unwrap();
    assert!(
        text.ends_with(",193,194,195]}}]\n"),
        "{}",
        &text[text.len() - 40..]
    );
    let parsed: Value = serde_json::from_str(&text[formatted + 13..text.len() - 3]).unwrap();
    let values = parsed["value"].as_array().unwrap();
    assert_eq!(values.len(), len as usize);
    assert_eq!(values[1_000_000], Value::from(1_000_000u32 % 251));
}

/// The human form and per-CPU values: the same text the tree gave.
#[test]
fn human_lines_and_per_cpu_values() {
    let mut b = Builder::new();
    let u32_t = b.int("u32", 4);
    let s = b.agg(
        Kind::STRUCT,
        "s",
        false,
        8,
        &[("a", u32_t, 0), ("b", u32_t, 32)],
    );
    let btf = MapBtf::new(b.bytes()).unwrap();
    let types = Types {
        renderer: typed::TypeRenderer::new(&btf),
        key: 0,
        value: s,
    };
    let copies = [1u8, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0];
    let v = ValueRef::per_cpu(&copies, 8, 8, &[0, 5]);
    let mut w = DumpWriter::new(Vec::new(), Format::Human, Some(types));
    w.entry(&[9], v).unwrap();
    let out = String::from_utf8(w.finish().unwrap()).unwrap();
    assert_eq!(
        out,
        "{\"values\":[{\"cpu\":0,\"value\":{\"a\":1,\"b\":2}},{\"cpu\":5,\"value\":{\"a\":3,\"b\":4}}]}\nFound 1 element\n"
    );
    assert_eq!(
        formatted(&types, &[9], v).to_string(),
        out.lines().next().unwrap()
    );
}

#[test]
fn hex_arrays_written_in_chunks_equal_the_whole() {
    // Across chunk edges (4,096 bytes a chunk), every byte value, and the empty case.
    for len in [0usize, 1, 2, 4095, 4096, 4097, 10_000] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let mut streamed = Vec::new();
        write_hex_json(&mut streamed, &bytes).unwrap();
        let mut whole = Vec::new();
        push_hex_json(&mut whole, &bytes);
        assert_eq!(streamed, whole, "{len} bytes");
        let parsed: Vec<String> = serde_json::from_slice(&streamed).unwrap();
        let want: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
        assert_eq!(parsed, want, "{len} bytes");
    }
}
