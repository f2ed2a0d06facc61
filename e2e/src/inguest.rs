//! The in-guest `mapwalk`: a static (musl) build of this workspace's CLI, appended to
//! the initramfs of the guests whose [`GuestConfig::inguest`](super::GuestConfig) is
//! set, and what the guest's `/init` reports of running it (its live view, through
//! `bpf()`).
//!
//! The binary is built once per test process by a nested `cargo build` into its own
//! target directory (`<target>/guest-musl`, beside the test binaries: a nested build
//! in the test's own target directory would wait forever for the lock the running
//! `cargo test` holds). Cargo's own freshness check rebuilds it whenever a source
//! changes, so the guest never runs a stale `mapwalk`. Dev profile without debug
//! information, stripped: 13-16 s from cold on 2 cores, 3.8 MB; optimization buys
//! nothing here (the in-guest dump takes 1.5 s under TCG).

use crate::{failed, Error, Guest, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The Rust target of the in-guest binary: static, self-contained (no C toolchain for
/// musl needed).
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The static `mapwalk`, built (or found fresh) once per process.
///
/// # Errors
/// [`Error::Unavailable`] when the musl target is not installed and `rustup` cannot add
/// it; [`Error::Failed`] when the build fails.
pub fn static_mapwalk() -> Result<&'static Path> {
    static BIN: OnceLock<Result<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        ensure_target(TARGET)?;
        build(Some(TARGET), "guest-musl", &[])
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// The host's `mapwalk` (the `mapwalk-cli` package), built (or found fresh) once per
/// process into `<target>/e2e-host`: the view from outside that the tests compare.
///
/// # Errors
/// [`Error::Failed`] when the build fails.
pub fn host_mapwalk() -> Result<&'static Path> {
    static BIN: OnceLock<Result<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| build(None, "e2e-host", &[]))
        .as_deref()
        .map_err(Clone::clone)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}

/// `<target>/<dir>`, where `<target>` is the target directory of the running test
/// binary (`<target>/debug/deps/NAME-HASH`), or the workspace's `target/`.
fn target_dir(dir: &str) -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent()?.parent().map(Path::to_path_buf))?
    });
    from_exe
        .unwrap_or_else(|| workspace().join("target"))
        .join(dir)
}

/// The Rust target of the in-guest binary of arm64 guests (linked by the aarch64 cross
/// compiler, `gcc-aarch64-linux-gnu`, which `setup.sh deb13-arm64` installs).
pub const TARGET_AARCH64: &str = "aarch64-unknown-linux-musl";

/// The static aarch64 `mapwalk`, built (or found fresh) once per process into
/// `<target>/guest-musl-aarch64`.
///
/// # Errors
/// As [`static_mapwalk`].
pub fn static_mapwalk_aarch64() -> Result<&'static Path> {
    static BIN: OnceLock<Result<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        ensure_target(TARGET_AARCH64)?;
        build(
            Some(TARGET_AARCH64),
            "guest-musl-aarch64",
            &[(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
                "aarch64-linux-gnu-gcc",
            )],
        )
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// Installs a musl target with `rustup` unless the toolchain has it.
fn ensure_target(target: &str) -> Result<()> {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .current_dir(workspace())
        .output()
        .map_err(|e| Error::Unavailable(format!("rustc: {e}")))?;
    let libdir = String::from_utf8_lossy(&libdir.stdout);
    if Path::new(libdir.trim()).join("self-contained").is_dir() {
        return Ok(());
    }
    let out = Command::new("rustup")
        .args(["target", "add", target])
        .current_dir(workspace())
        .output()
        .map_err(|e| Error::Unavailable(format!("rustup, to add the {target} target: {e}")))?;
    if !out.status.success() {
        return Err(Error::Unavailable(format!(
            "the {target} target (rustup target add {target}: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Builds the `mapwalk` binary for `target` (the host's when `None`) into
/// `<target>/<dir>`, with `env` set for cargo.
fn build(target: Option<&str>, dir: &str, env: &[(&str, &str)]) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = target_dir(dir);
    let started = Instant::now();
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--locked", "-p", "mapwalk-cli", "--bin", "mapwalk"]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    cmd.envs(env.iter().copied());
    let out = cmd
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_PROFILE_DEV_STRIP", "true")
        .output()
        .map_err(|e| failed(format!("run {}: {e}", Path::new(&cargo).display())))?;
    if !out.status.success() {
        return Err(failed(format!(
            "cargo build of mapwalk for {} (target dir {}) failed:\n{}",
            target.unwrap_or("the host"),
            target_dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let bin = match target {
        Some(t) => target_dir.join(t),
        None => target_dir.clone(),
    }
    .join("debug")
    .join("mapwalk");
    let size = fs::metadata(&bin)
        .map_err(|e| failed(format!("{}: {e}", bin.display())))?
        .len();
    eprintln!(
        "e2e: mapwalk ({}, {:.1} MB) ready in {:.1} s: {}",
        target.unwrap_or("host"),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        bin.display()
    );
    Ok(bin)
}

/// Writes to `out` the initramfs `base` followed by a second, uncompressed cpio
/// archive holding `bin` as `/bin/mapwalk` (the kernel unpacks concatenated archives
/// in turn; an uncompressed one must start 4-byte aligned).
///
/// # Errors
/// [`Error::Failed`] when a file cannot be read or written.
pub fn initramfs_with_mapwalk(base: &Path, bin: &Path, out: &Path) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| failed(format!("{}: {e}", p.display()));
    let mut data = fs::read(base).map_err(|e| io(base, e))?;
    data.resize(data.len().next_multiple_of(4), 0);
    let exe = fs::read(bin).map_err(|e| io(bin, e))?;
    newc_entry(&mut data, "bin/mapwalk", 0o100_755, &exe);
    newc_entry(&mut data, "TRAILER!!!", 0, &[]);
    fs::write(out, &data).map_err(|e| io(out, e))
}

/// One entry of a `newc` cpio archive (`070701`, 13 fields of 8 hex digits, the name
/// with its NUL, padding to 4, the data, padding to 4). Owner root, mtime 0.
fn newc_entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    let fields = [
        1,                                                 // ino
        mode,                                              // mode
        0,                                                 // uid
        0,                                                 // gid
        1,                                                 // nlink
        0,                                                 // mtime
        u32::try_from(data.len()).unwrap_or(u32::MAX),     // filesize
        0,                                                 // devmajor
        0,                                                 // devminor
        0,                                                 // rdevmajor
        0,                                                 // rdevminor
        u32::try_from(name.len() + 1).unwrap_or(u32::MAX), // namesize, NUL included
        0,                                                 // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// One run of the in-guest `mapwalk`, as the guest's console reported it:
/// `MAPWALK-INGUEST <what> status=<wait status> bytes=<stdout bytes> ms=<run time>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The wait status (0: exited with 0).
    pub status: i32,
    /// Bytes written to stdout.
    pub bytes: u64,
    /// Milliseconds it ran, fork to reaping.
    pub ms: u64,
}

/// One map's piece of the in-guest `dump --all --json`: a top-level object of its
/// array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the whole dump.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
    /// SHA-256 of the piece, in hex.
    pub sha256: String,
    /// The piece itself when the guest sent it (JSON of at most 256 KiB).
    pub text: Option<String>,
}

/// What the guest's `/init` reports of running the static `mapwalk`: its listing and
/// its dump of every map, the dump as digests (the whole and each map's piece) and the
/// smaller maps' pieces whole.
#[derive(Debug, Clone)]
pub struct InGuestView {
    /// The id of `mw_btf`, the map with BTF-typed key and value that `/init` makes for
    /// these guests only (it is not in the `bpf-maps` section).
    pub btf_map_id: u32,
    /// `mapwalk maps --json`.
    pub maps_run: Run,
    /// `mapwalk dump --all --json`.
    pub dump_run: Run,
    /// The listing, exactly.
    pub maps: String,
    /// The listing's stderr.
    pub maps_stderr: String,
    /// The dump's stderr.
    pub dump_stderr: String,
    /// SHA-256 of the whole dump, in hex (`None` when the dump failed).
    pub dump_sha256: Option<String>,
    /// Each map's piece, in the dump's order.
    pub pieces: Vec<Piece>,
}

impl InGuestView {
    /// Parses the guest's report and console.
    ///
    /// # Errors
    /// [`Error::Failed`] when a section or console line is missing or malformed.
    pub fn of(guest: &Guest) -> Result<Self> {
        Self::of_parts(guest.report(), &guest.console())
    }

    /// Parses a guest's report and console (an arm64 guest's: both from its one UART).
    ///
    /// # Errors
    /// As [`of`](Self::of).
    pub fn of_parts(report: &crate::GuestReport, console: &str) -> Result<Self> {
        let run = |what: &str| -> Result<Run> {
            let prefix = format!("MAPWALK-INGUEST {what} ");
            let line = console
                .lines()
                .find_map(|l| l.trim_end().strip_prefix(&prefix))
                .ok_or_else(|| failed(format!("no console line {prefix:?}")))?;
            let field = |k: &str| -> Result<i64> {
                line.split(' ')
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| failed(format!("console {prefix:?}: no {k}= in {line:?}")))
            };
            Ok(Run {
                status: i32::try_from(field("status")?).map_err(failed)?,
                bytes: u64::try_from(field("bytes")?).map_err(failed)?,
                ms: u64::try_from(field("ms")?).map_err(failed)?,
            })
        };
        let section = |name: &str| -> Result<String> {
            report
                .section(name)
                .map(str::to_owned)
                .ok_or_else(|| failed(format!("guest report: no section {name:?}")))
        };
        let btf_map_id = console
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("MAPWALK-INGUEST btf-map id="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| failed("no console line \"MAPWALK-INGUEST btf-map id=<id>\""))?;
        let maps_run = run("maps")?;
        let dump_run = run("dump")?;
        let mut view = Self {
            maps: section("mapwalk-maps")?,
            maps_stderr: section("mapwalk-maps-stderr")?,
            dump_stderr: section("mapwalk-dump-stderr")?,
            btf_map_id,
            maps_run,
            dump_run,
            dump_sha256: None,
            pieces: Vec::new(),
        };
        if view.dump_run.status != 0 {
            return Ok(view);
        }
        // `sha256sum` lines: `<hex>  <path>`, the whole dump first, then the pieces.
        let sums = section("mapwalk-dump-sha256")?;
        let mut sums = sums.lines().map(|l| {
            l.split_once(' ')
                .map(|(h, _)| h.to_owned())
                .ok_or_else(|| failed(format!("guest sha256sum: bad line {l:?}")))
        });
        view.dump_sha256 = Some(
            sums.next()
                .ok_or_else(|| failed("guest sha256sum: empty"))??,
        );
        for (i, line) in section("mapwalk-dump-pieces")?.lines().enumerate() {
            let bad = || failed(format!("guest mapwalk-dump-pieces: bad line {line:?}"));
            let nums: Vec<usize> = line
                .split(' ')
                .map(|w| w.parse().map_err(|_| bad()))
                .collect::<Result<_>>()?;
            let [index, offset, len] = nums[..] else {
                return Err(bad());
            };
            if index != i {
                return Err(bad());
            }
            view.pieces.push(Piece {
                offset,
                len,
                sha256: sums.next().ok_or_else(bad)??,
                text: report
                    .section(&format!("mapwalk-dump-map-{i}"))
                    .map(str::to_owned),
            });
        }
        Ok(view)
    }
}

/// Splits the JSON array of `mapwalk dump --all --json` into its top-level objects, as
/// the guest's `/init` does (strings skipped, escapes included): `(offset, len)` of
/// each. `None` when `text` is no such array.
pub fn split_maps(text: &[u8]) -> Option<Vec<(usize, usize)>> {
    let (mut depth, mut in_str, mut esc, mut start) = (0usize, false, false, 0);
    let mut pieces = Vec::new();
    for (i, &c) in text.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                if depth == 1 && c == b'{' {
                    start = i;
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 1 && c == b'}' {
                    pieces.push((start, i + 1 - start));
                }
            }
            _ => {}
        }
    }
    (depth == 0 && !in_str).then_some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_skips_strings() {
        let text = br#"[{"id":1,"name":"a}{","entries":[{"k":[1]}]},{"id":2,"e":"\"}"}]"#;
        let pieces = split_maps(text).unwrap();
        let got: Vec<&[u8]> = pieces.iter().map(|&(o, l)| &text[o..o + l]).collect();
        assert_eq!(
            got,
            [
                &br#"{"id":1,"name":"a}{","entries":[{"k":[1]}]}"#[..],
                &br#"{"id":2,"e":"\"}"}"#[..]
            ]
        );
        assert_eq!(split_maps(b"[]\n"), Some(vec![]));
        assert_eq!(split_maps(b"[{]"), None);
        assert_eq!(split_maps(b"}"), None);
    }

    #[test]
    fn newc_is_aligned() {
        let mut out = vec![];
        newc_entry(&mut out, "bin/mapwalk", 0o100_755, b"abcde");
        assert_eq!(out.len() % 4, 0);
        assert_eq!(&out[..6], b"070701");
        // 110-byte header + "bin/mapwalk\0" (12) = 122, padded to 124; 5 data bytes.
        assert_eq!(&out[124..129], b"abcde");
        assert_eq!(out.len(), 132);
    }
}
