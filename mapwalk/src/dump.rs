//! Whole dumps of a [`MapSource`]: one map's entries, or every map with its entries,
//! streamed to a writer as `bpftool map dump` text or `bpftool -j` JSON.
//!
//! Nothing is collected first: entries are rendered as the source yields them, so
//! memory does not grow with the map. A dump is never silently partial. A map whose
//! walk fails part way keeps the entries already written and says so in the output:
//! [`dump_map`]'s JSON array ends with `{"error":"...","partial":true}`, its text with
//! an `Incomplete dump: ...` line; in [`dump_all`]'s JSON the map's object gets
//! `"error":"..."` and `"partial":true`. [`dump_all`] counts such maps, and the maps the
//! listing could not read, in its [`DumpSummary`]. Failing to write is the whole dump
//! failing.
//!
//! ```
//! # fn demo(src: &dyn mapwalk::source::MapSource) -> Result<(), mapwalk::dump::DumpError> {
//! use mapwalk::dump::dump_all;
//! use mapwalk::render::Format;
//!
//! let mut out = Vec::new();
//! let summary = dump_all(src, Format::Json, &mut out, &mut |w| eprintln!("warning: {w}"))?;
//! assert!(summary.is_whole(), "{:?}", summary.problems());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::ops::ControlFlow;

use crate::btf::MapBtf;
use crate::render::{self, typed::TypeRenderer, DumpWriter, Format, Types};
use crate::source::{MapInfo, MapReport, MapSource, SourceError};

/// Why a dump stopped.
#[derive(Debug)]
pub enum DumpError {
    /// Writing the output failed.
    Output(io::Error),
    /// The source could not list the maps, or (for [`dump_map`]) walk the map.
    Source(SourceError),
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Output(e) => write!(f, "writing output: {e}"),
            Self::Source(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DumpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Output(e) => Some(e),
            Self::Source(e) => Some(e),
        }
    }
}

impl From<io::Error> for DumpError {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

impl From<SourceError> for DumpError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

/// What a [`dump_all`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Maps dumped (whole or in part).
    pub maps: usize,
    /// Entries written.
    pub entries: u64,
    /// The maps whose walk failed, by id, with the reason (their entries before the
    /// failure were written).
    pub failed: Vec<(u32, String)>,
    /// The names of the maps of [`failed`](Self::failed), by id (maps without a name
    /// have none here).
    pub names: BTreeMap<u32, String>,
    /// The maps the listing could not read, so not in the dump: their id when it is
    /// known, and why.
    pub unlisted: Vec<(Option<u32>, String)>,
}

impl DumpSummary {
    /// Whether every map was listed and walked whole.
    pub fn is_whole(&self) -> bool {
        self.failed.is_empty() && self.unlisted.is_empty()
    }

    /// One line for each map that is missing from the dump or in it only in part:
    /// `map id 7 (name): why`.
    pub fn problems(&self) -> Vec<String> {
        let unlisted = self.unlisted.iter().map(|(id, why)| match id {
            Some(id) => format!("map id {id}: not listed, so not dumped: {why}"),
            None => format!("a map of unknown id: not listed, so not dumped: {why}"),
        });
        self.failed
            .iter()
            .map(|(id, why)| match self.names.get(id) {
                Some(name) => format!("map id {id} ({name}): dumped in part: {why}"),
                None => format!("map id {id}: dumped in part: {why}"),
            })
            .chain(unlisted)
            .map(|line| line.replace('\n', " "))
            .collect()
    }

    fn fail(&mut self, meta: &MapInfo, why: String) {
        if !meta.name.as_bytes().is_empty() {
            self.names.insert(meta.id, meta.name.to_string());
        }
        self.failed.push((meta.id, why));
    }
}

/// The map's BTF for rendering, or `None`: none, or BTF that could not be read (then
/// `warn` hears why and the values are shown as hex).
pub fn map_btf(src: &dyn MapSource, meta: &MapInfo, warn: &mut dyn FnMut(&str)) -> Option<MapBtf> {
    if !meta.has_btf() || (meta.btf_key_type_id == 0 && meta.btf_value_type_id == 0) {
        return None;
    }
    match src.btf(meta) {
        Ok(b) => b,
        Err(e) => {
            warn(&format!("map {}: {e}; values shown as hex", meta.id));
            None
        }
    }
}

/// The BTF type of the values a dump of `meta` hands, or 0 when they have none: a
/// BLOOM_FILTER's value is the filter itself (docs/bloom-filter.md), not a value of the
/// type it was made for.
pub fn value_type_id(meta: &MapInfo) -> u32 {
    if meta.map_type == mapwalk_core::MapType::BLOOM_FILTER {
        0
    } else {
        meta.btf_value_type_id
    }
}

/// The renderer of `meta`'s key and value types, when there is BTF.
pub fn types<'a>(btf: Option<&'a MapBtf>, meta: &MapInfo, format: Format) -> Option<Types<'a>> {
    btf.map(|b| Types {
        renderer: TypeRenderer::new(b).hex_pointers(format == Format::Human),
        key: meta.btf_key_type_id,
        value: value_type_id(meta),
    })
}

/// Walks `meta` into `w`: the walk's result, and the writer's error if writing failed.
fn walk_into<W: Write>(
    src: &dyn MapSource,
    meta: &MapInfo,
    w: &mut DumpWriter<'_, W>,
) -> (Result<(), SourceError>, Option<io::Error>) {
    let mut io_err = None;
    let walked = src.for_each_entry(meta, &mut |k, v| match w.entry(k, v) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            io_err = Some(e);
            ControlFlow::Break(())
        }
    });
    (walked, io_err)
}

/// Dumps the entries of one map, as `bpftool map dump` does (`-j`: a JSON array of
/// entries). Returns the number of entries.
///
/// When the walk fails, the entries before it stay written and the output says the
/// dump is incomplete, and why, in its last element (JSON: `{"error":"...",
/// "partial":true}`, which has no `"key"`) or its last line (text: `Incomplete dump:
/// ...`): the output is valid either way.
///
/// # Errors
/// [`DumpError::Output`], or [`DumpError::Source`] when the walk fails (the output is
/// then complete and marked incomplete, as above).
pub fn dump_map(
    src: &dyn MapSource,
    meta: &MapInfo,
    format: Format,
    out: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> Result<u64, DumpError> {
    match dump_counted(src, meta, format, out, warn)? {
        (n, None) => Ok(n),
        (_, Some(e)) => Err(e.into()),
    }
}

/// The source's symbols for a STACK_TRACE map (made only when one is dumped).
fn stack_symbols<'s>(
    src: &'s dyn MapSource,
    meta: &MapInfo,
) -> Option<&'s crate::stack::KernelSymbolizer> {
    (meta.map_type == crate::source::MapType::STACK_TRACE)
        .then(|| src.symbolizer())
        .flatten()
}

/// The decoded struct of a STRUCT_OPS map, or `None` (another type, or one that could
/// not be decoded: then `warn` hears why, and the entry stays bpftool's bytes alone).
fn struct_ops(
    src: &dyn MapSource,
    meta: &MapInfo,
    warn: &mut dyn FnMut(&str),
) -> Option<crate::struct_ops::StructOps> {
    if !crate::struct_ops::decodable(meta) {
        return None;
    }
    src.struct_ops(meta).unwrap_or_else(|e| {
        warn(&format!(
            "map {}: struct_ops not decoded: {e}; its value is shown as bytes",
            meta.id
        ));
        None
    })
}

/// [`dump_map`]: the entries written, and the walk's error.
fn dump_counted(
    src: &dyn MapSource,
    meta: &MapInfo,
    format: Format,
    out: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> Result<(u64, Option<SourceError>), io::Error> {
    let btf = map_btf(src, meta, warn);
    let ops = struct_ops(src, meta, warn);
    let mut w = DumpWriter::new(out, format, types(btf.as_ref(), meta, format))
        .owners(meta.map_type)
        .stacks(meta.map_type, meta.map_flags, stack_symbols(src, meta))
        .struct_ops(meta.map_type, ops.as_ref());
    let (walked, io_err) = walk_into(src, meta, &mut w);
    if let Some(e) = io_err {
        return Err(e);
    }
    let n = w.count();
    match walked {
        Ok(()) => {
            w.finish()?;
            Ok((n, None))
        }
        Err(e) => {
            // What was read is kept, closed properly and marked, before the failure
            // is reported.
            w.finish_incomplete(&e.to_string())?;
            Ok((n, Some(e)))
        }
    }
}

/// Dumps every map with its entries: JSON is an array of `bpftool -j map show` objects,
/// each with `"entries":[...]`; text is each map's `bpftool map show` lines followed by
/// its entries.
///
/// A map whose walk fails is in the output in part, marked (JSON: its object's
/// `"error"` and `"partial":true`; text: its `Incomplete dump: ...` line), and in
/// [`DumpSummary::failed`]; maps the listing could not read are in
/// [`DumpSummary::unlisted`].
///
/// # Errors
/// [`DumpError::Output`]; [`DumpError::Source`] when the maps cannot be listed. A map
/// that cannot be walked or read is no error: see [`DumpSummary::is_whole`].
pub fn dump_all(
    src: &dyn MapSource,
    format: Format,
    out: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> Result<DumpSummary, DumpError> {
    let MapReport { maps, errors } = src.maps_report()?;
    crate::timing::mark("maps listed");
    let mut summary = DumpSummary {
        unlisted: errors,
        ..DumpSummary::default()
    };
    if format == Format::Json {
        out.write_all(b"[")?;
    }
    for (i, meta) in maps.iter().enumerate() {
        summary.maps += 1;
        match format {
            Format::Json => {
                if i > 0 {
                    out.write_all(b",")?;
                }
                let head = serde_json::to_string(&render::map_json(meta))
                    .map_err(|e| DumpError::Output(e.into()))?;
                // `{"id":..,...,"entries":[...]}`: the map object, opened again.
                write!(out, "{},\"entries\":", head.trim_end_matches('}'))?;
                let btf = map_btf(src, meta, warn);
                let ops = struct_ops(src, meta, warn);
                let mut w = DumpWriter::new(
                    &mut *out,
                    Format::Json,
                    types(btf.as_ref(), meta, Format::Json),
                )
                .trailing_newline(false)
                .owners(meta.map_type)
                .stacks(meta.map_type, meta.map_flags, stack_symbols(src, meta))
                .struct_ops(meta.map_type, ops.as_ref());
                let (walked, io_err) = walk_into(src, meta, &mut w);
                if let Some(e) = io_err {
                    return Err(e.into());
                }
                summary.entries += w.count();
                w.finish()?;
                if let Err(e) = walked {
                    let msg = e.to_string();
                    let why = serde_json::Value::from(msg.as_str());
                    write!(out, ",\"error\":{why},\"partial\":true")?;
                    summary.fail(meta, msg);
                }
                out.write_all(b"}")?;
                crate::timing::mark(&format!("map {} dumped", meta.id));
            }
            Format::Human => {
                render::write_map_human(&mut &mut *out, meta)?;
                let mut buf = Vec::new();
                // The entries read, and the `Incomplete dump` line of a failed walk.
                let (n, failed) = dump_counted(src, meta, format, &mut buf, warn)?;
                summary.entries += n;
                out.write_all(&buf)?;
                if let Some(e) = failed {
                    summary.fail(meta, e.to_string());
                }
                writeln!(out)?;
            }
        }
    }
    if format == Format::Json {
        out.write_all(b"]\n")?;
    }
    crate::timing::mark("maps dumped");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use mapwalk_core::bpf::MapName;
    use mapwalk_core::MapType;

    use super::*;
    use crate::source::{EntryFn, ValueRef};

    /// Two arrays: `whole` (id 1, two entries) and `broken` (id 2, whose walk fails
    /// after one entry); the listing could not read map 3.
    struct Fake;

    fn map(id: u32, name: &str) -> MapInfo {
        let mut field = [0u8; 16];
        field[..name.len()].copy_from_slice(name.as_bytes());
        MapInfo {
            id,
            map_type: MapType::ARRAY,
            name: MapName::from_field(&field),
            key_size: 4,
            value_size: 1,
            max_entries: 2,
            ..MapInfo::default()
        }
    }

    impl MapSource for Fake {
        fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
            Ok(self.maps_report()?.maps)
        }

        fn maps_report(&self) -> Result<MapReport, SourceError> {
            Ok(MapReport {
                maps: vec![map(1, "whole"), map(2, "broken")],
                errors: vec![(Some(3), "bpf_map unreadable".into())],
            })
        }

        fn btf(&self, _: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
            Ok(None)
        }

        fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
            let n: u32 = if map.id == 1 { 2 } else { 1 };
            for k in 0..n {
                if f(&k.to_le_bytes(), ValueRef::Single(&[7])) == ControlFlow::Break(()) {
                    return Ok(());
                }
            }
            if map.id == 2 {
                return Err(SourceError::Unsupported("node at 0x10 unreadable".into()));
            }
            Ok(())
        }

        fn write(&self, _: &MapInfo, _: &[u8], _: u64, _: &[u8]) -> Result<(), SourceError> {
            Err(SourceError::Unsupported("read-only".into()))
        }

        /// Decodes map 1; map 2's kernel BTF is unreadable.
        fn struct_ops(
            &self,
            map: &MapInfo,
        ) -> Result<Option<crate::struct_ops::StructOps>, SourceError> {
            if map.id == 2 {
                return Err(SourceError::Btf("no kernel BTF".into()));
            }
            Ok(Some(crate::struct_ops::StructOps {
                value_type: "bpf_struct_ops_tcp_congestion_ops".into(),
                struct_name: "tcp_congestion_ops".into(),
                name: Some("cc".into()),
                state: 1,
                refcnt: 1,
                funcs: Vec::new(),
            }))
        }
    }

    #[test]
    fn struct_ops_maps_carry_their_decoded_struct_or_a_warning() {
        let ops_map = |id| MapInfo {
            map_type: MapType::STRUCT_OPS,
            btf_vmlinux_value_type_id: 7,
            ..map(id, "ops")
        };
        let mut out = Vec::new();
        let n = dump_map(&Fake, &ops_map(1), Format::Json, &mut out, &mut |w| {
            panic!("{w}")
        })
        .unwrap();
        assert_eq!(n, 2);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["struct_ops"]["type"], "tcp_congestion_ops");
        assert_eq!(v[0]["struct_ops"]["name"], "cc");
        // Not decoded: the bytes alone, and a warning saying why.
        let (mut out, mut warned) = (Vec::new(), Vec::new());
        let _ = dump_map(&Fake, &ops_map(2), Format::Human, &mut out, &mut |w| {
            warned.push(w.to_owned())
        });
        assert_eq!(
            warned,
            ["map 2: struct_ops not decoded: map BTF: no kernel BTF; its value is shown as bytes"]
        );
        assert!(!String::from_utf8(out).unwrap().contains("struct_ops"));
    }

    fn dump_one(id: u32, format: Format) -> (Result<u64, DumpError>, String) {
        let mut out = Vec::new();
        let r = dump_map(&Fake, &map(id, "x"), format, &mut out, &mut |w| {
            panic!("{w}")
        });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_map_dumped_in_part_says_so_in_valid_output() {
        let (r, json) = dump_one(2, Format::Json);
        assert!(matches!(r, Err(DumpError::Source(_))));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"key":["0x00","0x00","0x00","0x00"],"value":["0x07"]},
                {"error":"node at 0x10 unreadable","partial":true}])
        );
        let (_, text) = dump_one(2, Format::Human);
        assert!(
            text.ends_with("Found 1 element\nIncomplete dump: node at 0x10 unreadable\n"),
            "{text}"
        );
        // A whole dump is unchanged: no marker.
        let (r, json) = dump_one(1, Format::Json);
        assert_eq!(r.unwrap(), 2);
        assert!(!json.contains("error"), "{json}");
        let (_, text) = dump_one(1, Format::Human);
        assert!(text.ends_with("Found 2 elements\n"), "{text}");
    }

    #[test]
    fn dump_all_marks_and_counts_what_is_missing() {
        let mut out = Vec::new();
        let s = dump_all(&Fake, Format::Json, &mut out, &mut |w| panic!("{w}")).unwrap();
        assert!(!s.is_whole());
        assert_eq!((s.maps, s.entries), (2, 3));
        assert_eq!(s.failed, [(2, "node at 0x10 unreadable".to_owned())]);
        assert_eq!(s.unlisted, [(Some(3), "bpf_map unreadable".to_owned())]);
        assert_eq!(
            s.problems(),
            [
                "map id 2 (broken): dumped in part: node at 0x10 unreadable",
                "map id 3: not listed, so not dumped: bpf_map unreadable",
            ]
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0].get("partial"), None);
        assert_eq!(v[1]["partial"], true);
        assert_eq!(v[1]["error"], "node at 0x10 unreadable");
        assert_eq!(v[1]["entries"].as_array().unwrap().len(), 1);

        let mut out = Vec::new();
        let t = dump_all(&Fake, Format::Human, &mut out, &mut |w| panic!("{w}")).unwrap();
        assert_eq!(t, s);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Found 1 element\nIncomplete dump: node at 0x10 unreadable\n"),
            "{text}"
        );
        assert!(DumpSummary::default().is_whole());
    }
}
