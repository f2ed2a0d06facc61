//! Printing: map listings and dumps, as text or as `bpftool -j` JSON, streamed; and
//! whether what was printed is the whole answer.

use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use mapwalk::dump::{self, DumpError};
use mapwalk::render::{self, Format};
use mapwalk::source::{MapInfo, MapSelector, MapSource, SourceError};

use crate::args::{parse_hex, Cmd};
use crate::error::CliError;

/// Whether a command printed the whole answer (exit status 0) or a part of it (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Everything asked for.
    Whole,
    /// Part of it: the output says so, and stderr has one line for each map missing or
    /// cut short.
    Partial,
    /// A comparison found differences (exit status 1).
    Different,
}

/// Runs `cmd` on `src`, printing JSON when `json`.
///
/// # Errors
/// Whatever fails first, typed.
pub fn command(src: &dyn MapSource, cmd: &Cmd, json: bool) -> Result<Answer, CliError> {
    // A duplicate of the standard-output descriptor rather than `io::stdout()`: std's
    // stdout is line-buffered and searches every chunk written for a newline, which is
    // measurable in a dump of tens of megabytes.
    let stdout = io::stdout().as_fd().try_clone_to_owned()?;
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::from(stdout));
    let format = if json { Format::Json } else { Format::Human };
    let mut problems = Vec::new();
    match cmd {
        Cmd::Snapshot { .. } | Cmd::Diff { .. } | Cmd::Watch(_) => {
            return crate::history::command(src, cmd, json, None);
        }
        Cmd::Maps => {
            let report = src.maps_report()?;
            if json {
                let list: Vec<_> = report
                    .maps
                    .iter()
                    .map(|m| render::map_json_state(m, &src.state(m)))
                    .collect();
                serde_json::to_writer(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for m in &report.maps {
                    render::write_map_human_state(&mut out, m, &src.state(m))?;
                }
            }
            problems.extend(report.errors.iter().map(|(id, why)| match id {
                Some(id) => format!("map id {id}: could not be read, so not listed: {why}"),
                None => format!("a map of unknown id: could not be read, so not listed: {why}"),
            }));
        }
        Cmd::Progs => {
            let report = src.progs()?;
            if json {
                let list: Vec<_> = report.progs.iter().map(mapwalk::progs::prog_json).collect();
                serde_json::to_writer(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for p in &report.progs {
                    mapwalk::progs::write_prog_human(&mut out, p)?;
                }
            }
            problems.extend(report.errors.iter().map(|(id, why)| match id {
                Some(id) => format!("program id {id}: could not be read, so not listed: {why}"),
                None => {
                    format!("a program of unknown id: could not be read, so not listed: {why}")
                }
            }));
        }
        Cmd::Dump { map, all } => {
            if *all {
                let summary =
                    dump::dump_all(src, format, &mut out, &mut warn).map_err(dump_error)?;
                problems = summary.problems();
            } else {
                let meta = find(src, map.as_deref().unwrap_or_default())?;
                match dump::dump_map(src, &meta, format, &mut out, &mut warn) {
                    Ok(_) => {}
                    Err(DumpError::Output(e)) => return Err(CliError::Output(e)),
                    // The output was closed and marked incomplete.
                    Err(DumpError::Source(e)) => {
                        problems.push(format!("{}: dumped in part: {e}", named(&meta)));
                    }
                }
            }
        }
        Cmd::Lookup { map, key } => {
            let meta = find(src, map)?;
            let key = key_or_index0(&meta, key.as_deref())?;
            let btf = dump::map_btf(src, &meta, &mut warn);
            let types = dump::types(btf.as_ref(), &meta, format);
            let mut written = Ok(());
            let found = src.lookup(&meta, &key, &mut |v| {
                written = render::write_entry(&mut out, format, types.as_ref(), &key, v);
            })?;
            written?;
            if !found {
                return Err(CliError::NoSuchKey(format!(
                    "{} has no entry at key {}",
                    named(&meta),
                    render::hex_spaced(&key)
                )));
            }
        }
        Cmd::Getnext { map, key } => {
            let meta = find(src, map)?;
            let key = match key {
                Some(k) => Some(parse_hex(k).map_err(|e| CliError::Usage(format!("--key: {e}")))?),
                None => None,
            };
            let Some(next) = src.next_key(&meta, key.as_deref())? else {
                return Err(CliError::NoSuchKey(format!(
                    "{} has no key after {}",
                    named(&meta),
                    key.as_deref().map_or("(none)".into(), render::hex_spaced)
                )));
            };
            write_next_key(&mut out, json, key.as_deref(), &next)?;
        }
        Cmd::Write {
            map,
            key,
            offset,
            value,
        } => {
            let meta = find(src, map)?;
            src.check_writable(&meta)?;
            let data = parse_hex(value).map_err(|e| CliError::Usage(format!("--value: {e}")))?;
            let key = key_or_index0(&meta, key.as_deref())?;
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
    if problems.is_empty() {
        return Ok(Answer::Whole);
    }
    for p in &problems {
        eprintln!("mapwalk: incomplete: {}", p.replace('\n', " "));
    }
    Ok(Answer::Partial)
}

/// The map `map` names; a bare number that names none is most likely an id.
fn find(src: &dyn MapSource, map: &str) -> Result<MapInfo, CliError> {
    let sel = MapSelector::parse(map);
    match src.find(&sel) {
        Err(SourceError::NoSuchMap(_))
            if !map.is_empty() && map.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Err(CliError::NoSuchMap(format!(
                "no map named {map}; did you mean id:{map}?"
            )))
        }
        found => Ok(found?),
    }
}

/// `map id 7 (name)`, or `map id 7` for a map without a name.
fn named(m: &MapInfo) -> String {
    if m.name.as_bytes().is_empty() {
        format!("map id {}", m.id)
    } else {
        format!("map id {} ({})", m.id, m.name)
    }
}

/// `--key`, or index 0 for a map with 4-byte keys.
fn key_or_index0(meta: &MapInfo, key: Option<&str>) -> Result<Vec<u8>, CliError> {
    match key {
        Some(k) => parse_hex(k).map_err(|e| CliError::Usage(format!("--key: {e}"))),
        None if meta.key_size == 4 => Ok(0u32.to_le_bytes().to_vec()),
        None => Err(CliError::Usage(format!(
            "{} has {}-byte keys: give --key",
            named(meta),
            meta.key_size
        ))),
    }
}

/// `getnext`'s answer as bpftool prints it: `{"key":[..],"next_key":[..]}` (`"key":null`
/// without a key), or `key:`/`next key:` lines.
fn write_next_key(
    out: &mut impl Write,
    json: bool,
    key: Option<&[u8]>,
    next: &[u8],
) -> io::Result<()> {
    if json {
        let mut line = b"{\"key\":".to_vec();
        match key {
            Some(k) => render::push_hex_json(&mut line, k),
            None => line.extend_from_slice(b"null"),
        }
        line.extend_from_slice(b",\"next_key\":");
        render::push_hex_json(&mut line, next);
        line.extend_from_slice(b"}\n");
        return out.write_all(&line);
    }
    let mut text = Vec::new();
    match key {
        Some(k) => {
            text.extend_from_slice(b"key:\n");
            render::push_hex_bpftool(&mut text, k);
            text.push(b'\n');
        }
        None => text.extend_from_slice(b"key: None\n"),
    }
    text.extend_from_slice(b"next key:\n");
    render::push_hex_bpftool(&mut text, next);
    text.push(b'\n');
    out.write_all(&text)
}

/// A warning on stderr.
pub fn warn(w: &str) {
    eprintln!("mapwalk: warning: {w}");
}

fn dump_error(e: DumpError) -> CliError {
    match e {
        DumpError::Output(e) => CliError::Output(e),
        DumpError::Source(e) => CliError::Source(e),
    }
}
