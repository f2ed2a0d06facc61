//! Printing: map listings and dumps, as text or as `bpftool -j` JSON, streamed.

use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use mapwalk::dump::{self, DumpError};
use mapwalk::render::{self, Format};
use mapwalk::source::{MapSelector, MapSource};

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
                let summary =
                    dump::dump_all(src, format, &mut out, &mut warn).map_err(dump_error)?;
                if !summary.failed.is_empty() {
                    let ids: Vec<String> = summary
                        .failed
                        .iter()
                        .map(|(id, _)| id.to_string())
                        .collect();
                    warn(&format!(
                        "{} of {} maps could not be dumped whole (ids {}): see their \"error\"",
                        summary.failed.len(),
                        summary.maps,
                        ids.join(", ")
                    ));
                }
            } else {
                let sel = MapSelector::parse(map.as_deref().unwrap_or_default());
                let meta = src.find(&sel)?;
                dump::dump_map(src, &meta, format, &mut out, &mut warn).map_err(dump_error)?;
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

/// A warning on stderr.
fn warn(w: &str) {
    eprintln!("mapwalk: warning: {w}");
}

fn dump_error(e: DumpError) -> CliError {
    match e {
        DumpError::Output(e) => CliError::Output(e),
        DumpError::Source(e) => CliError::Source(e),
    }
}
