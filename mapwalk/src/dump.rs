//! Whole dumps of a [`MapSource`]: one map's entries, or every map with its entries,
//! streamed to a writer as `bpftool map dump` text or `bpftool -j` JSON.
//!
//! Nothing is collected first: entries are rendered as the source yields them, so
//! memory does not grow with the map. A map whose walk fails part way keeps the entries
//! already written; in [`dump_all`]'s JSON it is followed by `"error":"..."`, in the
//! text by a `(cannot dump: ...)` line, and the failure is counted in the
//! [`DumpSummary`]. Failing to write is the whole dump failing.
//!
//! ```
//! # fn demo(src: &dyn mapwalk::source::MapSource) -> Result<(), mapwalk::dump::DumpError> {
//! use mapwalk::dump::dump_all;
//! use mapwalk::render::Format;
//!
//! let mut out = Vec::new();
//! let summary = dump_all(src, Format::Json, &mut out, &mut |w| eprintln!("warning: {w}"))?;
//! assert!(summary.failed.is_empty(), "{:?}", summary.failed);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{self, Write};
use std::ops::ControlFlow;

use crate::btf::MapBtf;
use crate::render::{self, typed::TypeRenderer, DumpWriter, Format, Types};
use crate::source::{MapInfo, MapSource, SourceError};

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

/// The renderer of `meta`'s key and value types, when there is BTF.
pub fn types<'a>(btf: Option<&'a MapBtf>, meta: &MapInfo, format: Format) -> Option<Types<'a>> {
    btf.map(|b| Types {
        renderer: TypeRenderer::new(b).hex_pointers(format == Format::Human),
        key: meta.btf_key_type_id,
        value: meta.btf_value_type_id,
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
/// # Errors
/// [`DumpError::Output`], or [`DumpError::Source`] when the walk fails (the entries
/// before it were written).
pub fn dump_map(
    src: &dyn MapSource,
    meta: &MapInfo,
    format: Format,
    out: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> Result<u64, DumpError> {
    let btf = map_btf(src, meta, warn);
    let mut w = DumpWriter::new(out, format, types(btf.as_ref(), meta, format));
    let (walked, io_err) = walk_into(src, meta, &mut w);
    if let Some(e) = io_err {
        return Err(e.into());
    }
    let n = w.count();
    if let Err(e) = walked {
        // What was read is kept, closed properly, before the failure is reported.
        w.finish()?;
        return Err(e.into());
    }
    w.finish()?;
    Ok(n)
}

/// Dumps every map with its entries: JSON is an array of `bpftool -j map show` objects,
/// each with `"entries":[...]`; text is each map's `bpftool map show` lines followed by
/// its entries.
///
/// # Errors
/// [`DumpError::Output`]; [`DumpError::Source`] when the maps cannot be listed. A map
/// that cannot be walked is no error: see [`DumpSummary::failed`].
pub fn dump_all(
    src: &dyn MapSource,
    format: Format,
    out: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> Result<DumpSummary, DumpError> {
    let maps = src.maps()?;
    crate::timing::mark("maps listed");
    let mut summary = DumpSummary::default();
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
                let mut w = DumpWriter::new(
                    &mut *out,
                    Format::Json,
                    types(btf.as_ref(), meta, Format::Json),
                )
                .trailing_newline(false);
                let (walked, io_err) = walk_into(src, meta, &mut w);
                if let Some(e) = io_err {
                    return Err(e.into());
                }
                summary.entries += w.count();
                w.finish()?;
                if let Err(e) = walked {
                    let msg = e.to_string();
                    write!(out, ",\"error\":{}", serde_json::Value::from(msg.as_str()))?;
                    summary.failed.push((meta.id, msg));
                }
                out.write_all(b"}")?;
                crate::timing::mark(&format!("map {} dumped", meta.id));
            }
            Format::Human => {
                render::write_map_human(&mut &mut *out, meta)?;
                let mut buf = Vec::new();
                match dump_map(src, meta, format, &mut buf, warn) {
                    Ok(n) => {
                        summary.entries += n;
                        out.write_all(&buf)?;
                    }
                    Err(DumpError::Output(e)) => return Err(DumpError::Output(e)),
                    Err(DumpError::Source(e)) => {
                        out.write_all(&buf)?;
                        writeln!(out, "(cannot dump: {e})")?;
                        summary.failed.push((meta.id, e.to_string()));
                    }
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
