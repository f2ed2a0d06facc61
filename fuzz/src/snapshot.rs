//! Target `snapshot`: `mapwalk::snapshot::Snapshot::read_from` on the input as a
//! snapshot file.
//!
//! Checks, when it reads: written again and read back, it is the same snapshot; as a
//! `SnapshotSource`, its listing is its maps in order, and `dump_all` (JSON, checked
//! to parse, and text) replays every map, the recorded walk errors marked partial.
//! An error is one line.

use mapwalk::dump::dump_all;
use mapwalk::render::Format;
use mapwalk::snapshot::Snapshot;
use mapwalk::source::{MapSource, SnapshotSource};

use crate::sink;

/// The target.
pub fn run(data: &[u8]) {
    let snap = match Snapshot::read_from(&mut &data[..]) {
        Ok(s) => s,
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            sink(&line);
            return;
        }
    };
    let mut again = Vec::new();
    snap.write_to(&mut again).expect("writing to a Vec");
    let back = Snapshot::read_from(&mut again.as_slice()).expect("a written snapshot reads");
    assert_eq!(back, snap);
    let src = SnapshotSource::new(snap);
    let ids: Vec<u32> = src.maps().unwrap().iter().map(|m| m.id).collect();
    let want: Vec<u32> = src.snapshot().maps.iter().map(|m| m.info.id).collect();
    assert_eq!(ids, want);
    let mut json = Vec::new();
    let summary = dump_all(&src, Format::Json, &mut json, &mut |w| sink(&w)).expect("dump");
    let parsed: serde_json::Value = serde_json::from_slice(&json).expect("dump JSON parses");
    assert_eq!(parsed.as_array().map(Vec::len), Some(ids.len()));
    let failed = src
        .snapshot()
        .maps
        .iter()
        .filter(|m| m.error.is_some())
        .count();
    assert_eq!(summary.failed.len(), failed);
    let mut text = Vec::new();
    dump_all(&src, Format::Human, &mut text, &mut |w| sink(&w)).expect("dump");
    sink(&text.len());
}
