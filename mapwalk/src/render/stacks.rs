//! The frames of STACK_TRACE entries in a dump (docs/stack-trace.md): a JSON entry gains
//! `"frames"` after its value, a text entry a `frames:` block after bpftool's lines,
//! each frame named `symbol+0xoff` when the kernel's symbols are known. The key and the
//! value stay bpftool's, so scripts reading them keep working.

use std::io::{self, Write};

use mapwalk_core::bpf::MapFlags;

use crate::stack::{frames, stack_json, Frame, KernelSymbolizer};

/// How the frames of one STACK_TRACE map are written: its flags (plain addresses or
/// build-id records) and the symbols to name addresses with.
#[derive(Debug, Clone, Copy)]
pub struct StackFrames<'s> {
    /// The map's `map_flags` (`BPF_F_STACK_BUILD_ID` selects the record form).
    pub flags: MapFlags,
    /// The kernel's symbols, when known.
    pub symbols: Option<&'s KernelSymbolizer>,
}

impl StackFrames<'_> {
    /// `,"frames":[...]`, to go inside the entry's object.
    pub(crate) fn write_json<W: Write + ?Sized>(&self, b: &mut W, value: &[u8]) -> io::Result<()> {
        let j = stack_json(value, self.flags, self.symbols);
        write!(b, ",\"frames\":{}", j["frames"])
    }

    /// `frames:` then one indented line per frame (`0x.. symbol+0xoff`, or a build-id
    /// record's fields); nothing for an empty stack.
    pub(crate) fn write_human<W: Write + ?Sized>(&self, b: &mut W, value: &[u8]) -> io::Result<()> {
        let list = frames(value, self.flags);
        if list.is_empty() {
            return Ok(());
        }
        let mut text = String::from("frames:\n");
        for f in list {
            match f {
                Frame::Ip(ip) => match self.symbols.and_then(|s| s.name(ip)) {
                    Some(name) => text.push_str(&format!("  {ip:#018x} {name}\n")),
                    None => text.push_str(&format!("  {ip:#018x}\n")),
                },
                Frame::BuildId {
                    status,
                    build_id,
                    offset_or_ip,
                } => {
                    let id: String = build_id.iter().map(|x| format!("{x:02x}")).collect();
                    text.push_str(&format!(
                        "  build_id {id} offset {offset_or_ip:#x} status {status}\n"
                    ));
                }
            }
        }
        b.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use mapwalk_core::bpf::MapFlags;
    use mapwalk_core::{Kva, MapType};
    use serde_json::Value;

    use crate::render::{DumpWriter, Format};
    use crate::source::ValueRef;
    use crate::stack::KernelSymbolizer;

    fn dump(format: Format, map_type: MapType, syms: Option<&KernelSymbolizer>) -> String {
        let mut value: Vec<u8> = [0xffff_ffff_81a0_0042u64, 0xffff_ffff_c000_0000]
            .iter()
            .flat_map(|ip| ip.to_le_bytes())
            .collect();
        value.resize(32, 0);
        let mut w =
            DumpWriter::new(Vec::new(), format, None).stacks(map_type, MapFlags::empty(), syms);
        w.entry(&2u32.to_le_bytes(), ValueRef::Single(&value))
            .unwrap();
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    fn syms() -> KernelSymbolizer {
        KernelSymbolizer::new([("do_syscall_64".to_owned(), Kva(0xffff_ffff_81a0_0000))])
    }

    #[test]
    fn stack_entries_list_their_frames_named() {
        let s = syms();
        let v: Value =
            serde_json::from_str(&dump(Format::Json, MapType::STACK_TRACE, Some(&s))).unwrap();
        let e = &v[0];
        assert_eq!(
            e["key"],
            serde_json::json!(["0x02", "0x00", "0x00", "0x00"])
        );
        assert_eq!(e["value"].as_array().unwrap().len(), 32);
        assert_eq!(
            e["frames"],
            serde_json::json!([
                {"ip": "0xffffffff81a00042", "symbol": "do_syscall_64+0x42"},
                {"ip": "0xffffffffc0000000", "symbol": null},
            ])
        );
        // Without symbols, addresses alone.
        let v: Value =
            serde_json::from_str(&dump(Format::Json, MapType::STACK_TRACE, None)).unwrap();
        assert_eq!(v[0]["frames"][0]["symbol"], Value::Null);
        // Another map type: bpftool's entry as it is.
        let v: Value = serde_json::from_str(&dump(Format::Json, MapType::HASH, Some(&s))).unwrap();
        assert!(v[0].get("frames").is_none(), "{v}");
    }

    #[test]
    fn text_entries_end_with_a_frames_block() {
        let s = syms();
        let text = dump(Format::Human, MapType::STACK_TRACE, Some(&s));
        let tail: Vec<&str> = text.lines().skip_while(|l| *l != "frames:").collect();
        assert_eq!(
            tail,
            [
                "frames:",
                "  0xffffffff81a00042 do_syscall_64+0x42",
                "  0xffffffffc0000000",
                "Found 1 element",
            ],
            "{text}"
        );
        assert!(!dump(Format::Human, MapType::HASH, Some(&s)).contains("frames:"));
    }
}
