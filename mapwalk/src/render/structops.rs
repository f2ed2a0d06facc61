//! The decoded struct of a STRUCT_OPS map in a dump (docs/struct-ops.md): the JSON entry
//! gains `"struct_ops"` after its value ([`StructOps::to_json`]), a text entry a
//! `struct_ops` block after bpftool's lines: the struct, its name, state and refcnt,
//! then each function pointer that has a program, with the program's id and name. The
//! key and the value stay bpftool's, so scripts reading them keep working.

use std::io::{self, Write};

use crate::struct_ops::StructOps;

/// `,"struct_ops":{...}`, to go inside the entry's object.
pub(crate) fn write_json<W: Write + ?Sized>(b: &mut W, ops: &StructOps) -> io::Result<()> {
    write!(b, ",\"struct_ops\":{}", ops.to_json())
}

/// The text block: a heading line, one indented line per function pointer with a
/// program, the number of empty ones, and the sched_ext scheduler when there is one.
pub(crate) fn write_human<W: Write + ?Sized>(b: &mut W, ops: &StructOps) -> io::Result<()> {
    let mut text = format!("struct_ops {}", ops.struct_name);
    if let Some(name) = &ops.name {
        text.push_str(&format!(" {name:?}"));
    }
    text.push_str(&format!(
        ": state {}, refcnt {}\n",
        ops.state_name(),
        ops.refcnt
    ));
    let mut empty = 0usize;
    for f in &ops.funcs {
        match &f.prog {
            Some(p) => text.push_str(&format!("  {}: prog {} {}\n", f.member, p.id, p.name)),
            None => empty += 1,
        }
    }
    if empty > 0 {
        text.push_str(&format!("  ({empty} other function pointers empty)\n"));
    }
    if let Some(s) = ops.sched_ext_scheduler() {
        text.push_str(&format!("  sched_ext scheduler: {s}\n"));
    }
    b.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use mapwalk_core::MapType;
    use serde_json::{json, Value};

    use crate::render::{DumpWriter, Format};
    use crate::source::ValueRef;
    use crate::struct_ops::{ProgRef, StructOps, StructOpsFunc};

    fn ops(struct_name: &str, state: u32) -> StructOps {
        let func = |member: &str, index, offset, prog: Option<(u32, &str)>| StructOpsFunc {
            member: member.into(),
            index,
            offset,
            prog: prog.map(|(id, name)| ProgRef {
                id,
                name: name.into(),
            }),
        };
        StructOps {
            value_type: format!("bpf_struct_ops_{struct_name}"),
            struct_name: struct_name.into(),
            name: Some("mw_ca".into()),
            state,
            refcnt: 1,
            funcs: vec![
                func("ssthresh", 3, 88, Some((12, "mw_ssthresh"))),
                func("set_state", 5, 104, None),
                func("undo_cwnd", 8, 128, Some((14, "mw_undo"))),
                func("cwnd_event", 6, 112, None),
            ],
        }
    }

    fn dump(format: Format, map_type: MapType, ops: &StructOps) -> String {
        let value = [1u8, 0, 0, 0, 1, 0, 0, 0];
        let mut w = DumpWriter::new(Vec::new(), format, None).struct_ops(map_type, Some(ops));
        w.entry(&0u32.to_le_bytes(), ValueRef::Single(&value))
            .unwrap();
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_json_entry_carries_the_decoded_struct() {
        let o = ops("tcp_congestion_ops", 1);
        let v: Value = serde_json::from_str(&dump(Format::Json, MapType::STRUCT_OPS, &o)).unwrap();
        let e = &v[0];
        assert_eq!(e["key"], json!(["0x00", "0x00", "0x00", "0x00"]));
        assert_eq!(e["value"].as_array().unwrap().len(), 8);
        assert_eq!(e["struct_ops"]["type"], "tcp_congestion_ops");
        assert_eq!(e["struct_ops"]["name"], "mw_ca");
        assert_eq!(e["struct_ops"]["state"], "inuse");
        assert_eq!(
            e["struct_ops"]["funcs"][0],
            json!({"member": "ssthresh", "index": 3, "offset": 88,
                   "prog": {"id": 12, "name": "mw_ssthresh"}})
        );
        assert_eq!(e["struct_ops"]["funcs"][1]["prog"], Value::Null);
        assert_eq!(e["struct_ops"]["sched_ext"], Value::Null);
        // Another map type: bpftool's entry as it is.
        let v: Value = serde_json::from_str(&dump(Format::Json, MapType::HASH, &o)).unwrap();
        assert!(v[0].get("struct_ops").is_none(), "{v}");
    }

    #[test]
    fn text_entries_end_with_a_struct_ops_block() {
        let text = dump(
            Format::Human,
            MapType::STRUCT_OPS,
            &ops("tcp_congestion_ops", 1),
        );
        let tail: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("struct_ops "))
            .collect();
        assert_eq!(
            tail,
            [
                "struct_ops tcp_congestion_ops \"mw_ca\": state inuse, refcnt 1",
                "  ssthresh: prog 12 mw_ssthresh",
                "  undo_cwnd: prog 14 mw_undo",
                "  (2 other function pointers empty)",
                "Found 1 element",
            ],
            "{text}"
        );
        let text = dump(Format::Human, MapType::STRUCT_OPS, &ops("sched_ext_ops", 3));
        assert!(
            text.contains("state ready, refcnt 1\n")
                && text.contains("  sched_ext scheduler: mw_ca\n"),
            "{text}"
        );
        assert!(
            !dump(Format::Human, MapType::ARRAY, &ops("sched_ext_ops", 3)).contains("struct_ops")
        );
    }
}
