//! Printing: map listings and dumps, as text or as `bpftool -j` JSON, streamed.

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::os::fd::AsFd;

use mapwalk::render::{self, btf::TypeRenderer, DumpWriter, Format, Types};
use mapwalk::source::{MapInfo, MapSelector, MapSource, SourceError};

use crate::args::{parse_hex, Cmd};
use crate::error::CliError;

pub fn command(src: &dyn MapSource, cmd: &Cmd) -> Result<(), CliError> {
    // A duplicate of the standard-output descriptor rather than `io::stdout()`: std's
    // stdout is line-buffered and searches every chunk written for a newline, which is
    // measurable in a dump of tens of megabytes.
    let stdout = io::stdout().as_fd().try_clone_to_owned()?;
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::from(stdout));
    match cmd {
        Cmd::Maps { json } => {
            let maps = src.maps()?;
            if *json {
                let list: Vec<_> = maps.iter().map(render::map_json).collect();
                serde_json::to_writer(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for m in &maps {
                    render::write_map_human(&mut out, m)?;
                }
            }
        }
        Cmd::Dump { map, all, json } => {
            let format = if *json { Format::Json } else { Format::Human };
            if *all {
                dump_all(src, format, &mut out)?;
            } else {
                let sel = MapSelector::parse(map.as_deref().unwrap_or_default());
                let meta = src.find(&sel)?;
                dump_one(src, &meta, format, &mut out)?;
            }
        }
        Cmd::Write {
            map,
            key,
            offset,
            value,
        } => {
            let meta = src.find(&MapSelector::parse(map))?;
            let data = parse_hex(value).map_err(|e| CliError::Usage(format!("--value: {e}")))?;
            let key = match key {
                Some(k) => parse_hex(k).map_err(|e| CliError::Usage(format!("--key: {e}")))?,
                None if meta.key_size == 4 => 0u32.to_le_bytes().to_vec(),
                None => {
                    return Err(CliError::Usage(format!(
                        "map {} has {}-byte keys: give --key",
                        meta.id, meta.key_size
                    )))
                }
            };
            src.write(&meta, &key, *offset, &data)?;
            eprintln!(
                "mapwalk: wrote {} bytes at offset {offset} of map {} key {}",
                data.len(),
                meta.id,
                render::hex_spaced(&key)
            );
        }
    }
    out.flush()?;
    Ok(())
}

/// The map's BTF, or `None` (with a warning when it has BTF that could not be read).
fn map_btf(src: &dyn MapSource, meta: &MapInfo) -> Option<mapwalk::btf::MapBtf> {
    if !meta.has_btf() || (meta.btf_key_type_id == 0 && meta.btf_value_type_id == 0) {
        return None;
    }
    match src.btf(meta) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "mapwalk: warning: map {}: {e}; values shown as hex",
                meta.id
            );
            None
        }
    }
}

fn types<'a>(
    btf: Option<&'a mapwalk::btf::MapBtf>,
    meta: &MapInfo,
    format: Format,
) -> Option<Types<'a>> {
    btf.map(|b| Types {
        renderer: TypeRenderer::new(b).hex_pointers(format == Format::Human),
        key: meta.btf_key_type_id,
        value: meta.btf_value_type_id,
    })
}

/// Writes the entries of one map with `w`; the walk's result, and the writer's error.
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

fn dump_one(
    src: &dyn MapSource,
    meta: &MapInfo,
    format: Format,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let btf = map_btf(src, meta);
    let mut w = DumpWriter::new(out, format, types(btf.as_ref(), meta, format));
    let (walked, io_err) = walk_into(src, meta, &mut w);
    walked?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    w.finish()?;
    Ok(())
}

/// The `"entries":[...]` of one map in `dump --all --json`, streamed to `out`. When the
/// walk fails part way, the entries read so far are kept and `,"error":"..."` follows
/// them (`[],"error":...` when it fails before the first).
fn dump_entries_json(
    src: &dyn MapSource,
    meta: &MapInfo,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let btf = map_btf(src, meta);
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
    w.finish()?;
    if let Err(e) = walked {
        write!(out, ",\"error\":{}", serde_json::Value::from(e.to_string()))?;
    }
    Ok(())
}

fn dump_all(src: &dyn MapSource, format: Format, out: &mut impl Write) -> Result<(), CliError> {
    let maps = src.maps()?;
    mapwalk::timing::mark("maps listed");
    if format == Format::Json {
        write!(out, "[")?;
    }
    for (i, meta) in maps.iter().enumerate() {
        match format {
            Format::Json => {
                if i > 0 {
                    write!(out, ",")?;
                }
                let head = render::map_json(meta);
                let head = serde_json::to_string(&head)?;
                // `{"id":..,...,"entries":[...]}`: the map object, opened again.
                write!(out, "{},\"entries\":", head.trim_end_matches('}'))?;
                dump_entries_json(src, meta, out)?;
                write!(out, "}}")?;
                mapwalk::timing::mark(&format!("map {} dumped", meta.id));
            }
            Format::Human => {
                render::write_map_human(out, meta)?;
                let mut buf = Vec::new();
                match dump_one(src, meta, format, &mut buf) {
                    Ok(()) => out.write_all(&buf)?,
                    // The output failing is the run failing; the map failing is a line.
                    Err(CliError::Output(e)) => return Err(CliError::Output(e)),
                    Err(e) => writeln!(out, "(cannot dump: {e})")?,
                }
                writeln!(out)?;
            }
        }
    }
    if format == Format::Json {
        writeln!(out, "]")?;
    }
    mapwalk::timing::mark("maps dumped");
    Ok(())
}
