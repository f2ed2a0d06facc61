//! State over time: `snapshot` (save every map to a file), `diff` (compare two
//! snapshots, or a snapshot with a source now) and `watch` (samples compared as they
//! are read). The work is the library's ([`mapwalk::snapshot`], [`mapwalk::diff`],
//! [`mapwalk::watch`]); this prints.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mapwalk::diff::{self, json::change_json, text, Diff};
use mapwalk::qmp::Qmp;
use mapwalk::render::map_json;
use mapwalk::snapshot::{unix_time, CaptureOptions, Snapshot};
use mapwalk::source::{MapSelector, MapSource, SnapshotSource};
use mapwalk::watch::{Sample, Watcher};
use serde_json::json;

use crate::args::{Cmd, WatchArgs};
use crate::error::CliError;
use crate::output::Answer;

static SOURCE_NAME: OnceLock<String> = OnceLock::new();

/// How the source is named in snapshots and records (set once, by `choose`).
pub fn set_source_name(name: String) {
    let _ = SOURCE_NAME.set(name);
}

fn source_name() -> &'static str {
    SOURCE_NAME.get().map_or("live", String::as_str)
}

/// The source's name, for headings.
pub fn source_label() -> &'static str {
    source_name()
}

/// The snapshot at `path`, as a source.
///
/// # Errors
/// [`CliError::Snapshot`], naming the file.
pub fn open_snapshot(path: &Path) -> Result<SnapshotSource, CliError> {
    // A FIFO would block the open, a directory cannot be read as one.
    mapwalk::input::check_file(path, false).map_err(|e| CliError::Input("snapshot", e))?;
    Snapshot::open(path)
        .map(SnapshotSource::new)
        .map_err(CliError::Snapshot)
}

/// `snapshot`, `diff A [MAP...]` (A against `src` now) and `watch` on `src`; `qmp`
/// pauses a guest for each watch sample.
///
/// # Errors
/// Whatever fails first, typed.
pub fn command(
    src: &dyn MapSource,
    cmd: &Cmd,
    json: bool,
    qmp: Option<&mut Qmp>,
) -> Result<Answer, CliError> {
    match cmd {
        Cmd::Snapshot { output } => snapshot(src, output),
        Cmd::Diff { a, rest } => {
            let a = open_snapshot(a)?;
            let maps = selectors(rest);
            let b = SnapshotSource::new(Snapshot::capture(
                src,
                source_name(),
                &CaptureOptions::default(),
            )?);
            print_diff(&diff::diff_sources(&a, &b, &maps), json)
        }
        Cmd::Watch(args) => watch(src, args, json, qmp),
        _ => Err(CliError::Usage(
            "not a snapshot, diff or watch command".into(),
        )),
    }
}

/// `diff A B [MAP...]`: two snapshot files.
///
/// # Errors
/// A usage error without B; a snapshot that cannot be read.
pub fn diff_files(a: &Path, rest: &[String], json: bool) -> Result<Answer, CliError> {
    let Some((b, maps)) = rest.split_first() else {
        return Err(CliError::Usage(
            "diff needs two snapshots (diff A B [MAP...]), or a source option to compare A \
             with (--live, --ram FILE, --snapshot B ...)"
                .into(),
        ));
    };
    let (a, b) = (open_snapshot(a)?, open_snapshot(&PathBuf::from(b))?);
    print_diff(&diff::diff_sources(&a, &b, &selectors(maps)), json)
}

fn selectors(maps: &[String]) -> Vec<MapSelector> {
    maps.iter().map(|m| MapSelector::parse(m)).collect()
}

fn stdout() -> BufWriter<io::Stdout> {
    BufWriter::with_capacity(1 << 16, io::stdout())
}

fn print_diff(d: &Diff, json: bool) -> Result<Answer, CliError> {
    let mut out = stdout();
    if json {
        serde_json::to_writer(&mut out, &diff::json::diff_json(d))?;
        writeln!(out)?;
    } else {
        let style = text::Style {
            colour: io::stdout().is_terminal(),
        };
        text::write_diff(&mut out, d, style)?;
    }
    out.flush()?;
    for i in &d.incomplete {
        eprintln!("mapwalk: incomplete: {i}");
    }
    Ok(if !d.incomplete.is_empty() {
        Answer::Partial
    } else if d.is_equal() {
        Answer::Whole
    } else {
        Answer::Different
    })
}

fn snapshot(src: &dyn MapSource, output: &Path) -> Result<Answer, CliError> {
    let opts = CaptureOptions {
        progs: true,
        ..CaptureOptions::default()
    };
    let snap = Snapshot::capture(src, source_name(), &opts)?;
    // Written beside the target and renamed, so a failed write leaves no half file.
    let tmp = output.with_extension("partial");
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut w = BufWriter::new(f);
        snap.write_to(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, output)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::Usage(format!("-o {}: {e}", output.display())));
    }
    let partial: Vec<String> = snap
        .maps
        .iter()
        .filter_map(|m| {
            m.error
                .as_ref()
                .map(|e| format!("{}: read in part: {e}", diff::named(&m.info)))
        })
        .chain(snap.unlisted.iter().map(|(id, why)| match id {
            Some(id) => format!("map id {id}: not listed, so not saved: {why}"),
            None => format!("a map of unknown id: not listed, so not saved: {why}"),
        }))
        .collect();
    eprintln!(
        "mapwalk: saved {} maps, {} entries to {}",
        snap.maps.len(),
        snap.entry_count(),
        output.display()
    );
    for p in &partial {
        eprintln!("mapwalk: incomplete: {}", p.replace('\n', " "));
    }
    Ok(if partial.is_empty() {
        Answer::Whole
    } else {
        Answer::Partial
    })
}

fn watch(
    src: &dyn MapSource,
    args: &WatchArgs,
    json: bool,
    mut qmp: Option<&mut Qmp>,
) -> Result<Answer, CliError> {
    let mut w = Watcher::new(source_name(), selectors(&args.maps));
    let terminal = io::stdout().is_terminal();
    if terminal && !json && !args.plain {
        return crate::tui::run(args, &mut |w| sample(w, src, qmp.as_deref_mut()), &mut w);
    }
    let style = text::Style { colour: terminal };
    let mut n = 0u64;
    loop {
        let started = std::time::Instant::now();
        let (sample, pause) = sample(&mut w, src, qmp.as_deref_mut())?;
        let mut out = stdout();
        if json {
            write_json(&mut out, &sample, pause)?;
        } else {
            write_lines(&mut out, &sample, pause, style)?;
        }
        out.flush()?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(Answer::Whole);
        }
        std::thread::sleep(args.interval.saturating_sub(started.elapsed()));
    }
}

/// A sample, and how long the guest was paused for it (with `--qmp`).
pub type Sampled = Result<(Sample, Option<std::time::Duration>), CliError>;

/// One sample of `src` (the guest paused through `qmp` for the read), compared with
/// the one before; and how long the guest was paused.
pub fn sample(w: &mut Watcher, src: &dyn MapSource, qmp: Option<&mut Qmp>) -> Sampled {
    let (captured, pause) = match qmp {
        Some(q) => {
            let t = std::time::Instant::now();
            let c = mapwalk_kvm::with_paused(q, |_| w.capture(src)).map_err(CliError::Qmp)?;
            (c, Some(t.elapsed()))
        }
        None => (w.capture(src), None),
    };
    let (snap, read) = captured?;
    Ok((w.compare(snap, read), pause))
}

fn secs(t: std::time::SystemTime) -> f64 {
    let (s, ns) = unix_time(t);
    s as f64 + f64::from(ns) / 1e9
}

pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// JSON lines: each change, map added and map removed, then the sample's figures.
fn write_json(
    out: &mut dyn Write,
    s: &Sample,
    pause: Option<std::time::Duration>,
) -> Result<(), CliError> {
    let (n, t) = (s.number, secs(s.taken));
    if let Some(d) = &s.diff {
        for m in &d.maps {
            for c in &m.changes {
                let mut rec = json!({"type": "change", "sample": n, "time": t, "map": m.b.id,
                                     "name": m.b.name.to_string()});
                if let (Some(o), serde_json::Value::Object(c)) =
                    (rec.as_object_mut(), change_json(m.b.map_type, c))
                {
                    o.extend(c);
                }
                serde_json::to_writer(&mut *out, &rec)?;
                writeln!(out)?;
            }
        }
        for (kind, list) in [("map_added", &d.added), ("map_removed", &d.removed)] {
            for m in list {
                let rec = json!({"type": kind, "sample": n, "time": t, "map": map_json(m)});
                serde_json::to_writer(&mut *out, &rec)?;
                writeln!(out)?;
            }
        }
    }
    let maps: Vec<_> = s
        .maps
        .iter()
        .map(|m| {
            json!({"id": m.info.id, "name": m.info.name.to_string(), "entries": m.entries,
                   "changes": m.changes, "changes_per_sec": m.changes_per_sec})
        })
        .collect();
    let mut rec = json!({"type": "sample", "sample": n, "time": t,
                         "read_ms": millis(s.read), "maps": maps});
    if let (Some(p), Some(o)) = (pause, rec.as_object_mut()) {
        o.insert("pause_ms".into(), json!(millis(p)));
    }
    serde_json::to_writer(&mut *out, &rec)?;
    writeln!(out)?;
    Ok(())
}

/// Lines: the sample's figures, then each map with changes and its changes.
fn write_lines(
    out: &mut dyn Write,
    s: &Sample,
    pause: Option<std::time::Duration>,
    style: text::Style,
) -> Result<(), CliError> {
    let entries: usize = s.maps.iter().map(|m| m.entries).sum();
    let changes = s.diff.as_ref().map_or(0, Diff::change_count);
    let pause = pause.map_or(String::new(), |p| format!(", paused {} ms", millis(p)));
    writeln!(
        out,
        "sample {} at {:.3}: {} maps, {entries} entries, {changes} changes (read {} ms{pause})",
        s.number,
        secs(s.taken),
        s.maps.len(),
        millis(s.read)
    )?;
    let Some(d) = &s.diff else {
        return Ok(());
    };
    for m in d.maps.iter().filter(|m| !m.changes.is_empty()) {
        let rate = s
            .maps
            .iter()
            .find(|x| x.info.id == m.b.id)
            .map_or(0.0, |x| x.changes_per_sec);
        writeln!(out, "{} [{rate:.1} changes/s]", text::map_line(m))?;
        for c in &m.changes {
            for line in text::change_lines(m.b.map_type, c, style) {
                writeln!(out, "{line}")?;
            }
        }
    }
    for m in &d.added {
        writeln!(out, "+ {} {}: new", diff::named(m), m.map_type)?;
    }
    for m in &d.removed {
        writeln!(out, "- {} {}: gone", diff::named(m), m.map_type)?;
    }
    Ok(())
}
