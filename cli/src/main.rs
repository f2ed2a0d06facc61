//! `mapwalk`: list, dump and patch BPF maps of the live host, a VM's RAM file or a
//! memory dump.
//!
//! ```text
//! mapwalk [SOURCE] [KERNEL] maps [--json]
//! mapwalk [SOURCE] [KERNEL] dump MAP [--json]
//! mapwalk [SOURCE] [KERNEL] dump --all [--json]
//! mapwalk [SOURCE] [KERNEL] write MAP [--key HEX] --offset N --value HEX
//! SOURCE: --live (default) | --ram FILE [--layout GPA:OFFSET:LEN ...] | --core FILE
//! KERNEL: --vmlinux FILE | --symbols FILE [--btf FILE] [--cr3 PA]   (memory sources)
//! MAP:    a name, a name suffix (such as .bss), or id:N
//! ```

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mapwalk::render::{self, btf::TypeRenderer, DumpWriter, Format, Types};
use mapwalk::source::{LiveSource, MapInfo, MapSelector, MapSource, SourceError};

/// Lists, dumps and patches Linux BPF maps: of the live host (through bpf()), of a
/// VM's RAM file, or of a memory dump.
#[derive(Debug, Parser)]
#[command(name = "mapwalk", version)]
struct Cli {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    kernel: KernelArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct SourceArgs {
    /// Read the running host's maps through bpf() (the default).
    #[arg(long, global = true, conflicts_with_all = ["ram", "core"])]
    live: bool,
    /// A guest RAM file (QEMU memory-backend-file, or a raw copy of guest RAM).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "core")]
    ram: Option<PathBuf>,
    /// Where guest-physical ranges are in the RAM file (default: the whole file from 0).
    #[arg(long, global = true, value_name = "GPA:OFFSET:LEN", requires = "ram")]
    layout: Vec<String>,
    /// An ELF core (QEMU dump-guest-memory, kdump vmcore).
    #[arg(long, global = true, value_name = "FILE")]
    core: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct KernelArgs {
    /// The guest's vmlinux (symbols and BTF).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "symbols")]
    vmlinux: Option<PathBuf>,
    /// The guest's symbols, as a System.map or /proc/kallsyms copy.
    #[arg(long, global = true, value_name = "FILE")]
    symbols: Option<PathBuf>,
    /// The guest's BTF (default: read out of guest memory).
    #[arg(long, global = true, value_name = "FILE")]
    btf: Option<PathBuf>,
    /// The guest's page-table root (CR3), when the memory source does not say.
    #[arg(long, global = true, value_name = "PA", value_parser = parse_u64)]
    cr3: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Lists every map, like `bpftool map show`.
    Maps {
        /// JSON, like `bpftool -j`.
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Dumps one map's entries (or every map's), like `bpftool map dump`.
    Dump {
        /// The map: a name, a name suffix (such as .bss), or id:N.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        map: Option<String>,
        /// Every map.
        #[arg(long)]
        all: bool,
        /// JSON, like `bpftool -j`.
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Writes bytes into one value (read, patch, write back; never outside the value).
    Write {
        /// The map: a name, a name suffix (such as .bss), or id:N.
        map: String,
        /// The key, in hex (default: index 0 for maps with 4-byte keys).
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
        /// Where in the value to write (decimal or 0x hex).
        #[arg(long, value_parser = parse_u64)]
        offset: u64,
        /// The bytes, in hex (`01 02`, `0x0102`, `0102`).
        #[arg(long, value_name = "HEX")]
        value: String,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let r = match clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        Some(h) => u64::from_str_radix(h, 16),
        None => clean.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

/// Hex bytes: tokens separated by spaces or commas, each with an optional `0x`; a
/// one-digit token is one byte, longer ones are read two digits per byte.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for tok in s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
    {
        let digits = tok
            .strip_prefix("0x")
            .or_else(|| tok.strip_prefix("0X"))
            .unwrap_or(tok);
        let digits: String = digits.chars().filter(|&c| c != '_').collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{tok:?} is not hex"));
        }
        if digits.len() == 1 {
            out.push(u8::from_str_radix(&digits, 16).map_err(|e| e.to_string())?);
            continue;
        }
        if digits.len() % 2 != 0 {
            return Err(format!("{tok:?} has an odd number of hex digits"));
        }
        for pair in digits.as_bytes().chunks(2) {
            let p = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(p, 16).map_err(|e| e.to_string())?);
        }
    }
    if out.is_empty() {
        return Err("no bytes given".into());
    }
    Ok(out)
}

/// A failure: one line on stderr.
#[derive(Debug)]
struct Failure(String);

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Self(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self(format!("writing output: {e}"))
    }
}

fn main() -> ExitCode {
    mapwalk::timing::start();
    let cli = Cli::parse();
    let result = run(&cli);
    mapwalk::timing::mark("done");
    mapwalk::timing::memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`mapwalk dump x | head`) is not worth a complaint.
        Err(Failure(m)) if m.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(Failure(m)) => {
            let line = m.replace('\n', " ");
            eprintln!("mapwalk: error: {line}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let memory = cli.source.ram.is_some() || cli.source.core.is_some();
    let k = &cli.kernel;
    if !memory {
        if k.vmlinux.is_some() || k.symbols.is_some() || k.btf.is_some() || k.cr3.is_some() {
            return Err(Failure(
                "--vmlinux, --symbols, --btf and --cr3 describe a guest kernel: they need \
                 --ram or --core"
                    .into(),
            ));
        }
        return command(&LiveSource::default(), &cli.cmd);
    }
    memory_source(cli)
}

fn memory_source(cli: &Cli) -> Result<(), Failure> {
    use mapwalk::describe::{self, BtfSource, KernelSpec, MemoryHints, SymbolSource};
    use mapwalk::source::MemorySource;

    let k = &cli.kernel;
    let symbols = match (&k.vmlinux, &k.symbols) {
        (Some(v), _) => SymbolSource::Vmlinux(v.clone()),
        (None, Some(s)) => SymbolSource::SymbolFile(s.clone()),
        (None, None) => {
            return Err(Failure(
                "a memory source needs the guest's kernel: --vmlinux FILE or --symbols FILE".into(),
            ))
        }
    };
    let btf = match (&k.btf, &k.vmlinux) {
        (Some(f), _) => Some(BtfSource::File(f.clone())),
        (None, Some(_)) => None,
        (None, None) => Some(BtfSource::GuestMemory),
    };
    let spec = KernelSpec {
        symbols,
        btf,
        cr3: k.cr3,
        layout_override: None,
    };
    let describe_err = |e: describe::DescribeError| Failure(format!("describing the kernel: {e}"));
    if let Some(path) = &cli.source.ram {
        let writable = matches!(cli.cmd, Cmd::Write { .. });
        let mut opts = mapwalk_file::RamFile::options().writable(writable);
        if !cli.source.layout.is_empty() {
            let layout: mapwalk_file::Layout = cli
                .source
                .layout
                .join(",")
                .parse()
                .map_err(|e| Failure(format!("--layout: {e}")))?;
            opts = opts.layout(layout);
        }
        let ram = opts.open(path).map_err(|e| Failure(e.to_string()))?;
        mapwalk::timing::mark("RAM file opened");
        let hints = MemoryHints {
            vmcoreinfo: None,
            cr3: k.cr3,
            cr4: None,
        };
        // When the description searches the RAM (the candidates of the placement by the
        // symbols, VMCOREINFO when the symbols did not place the kernel), the pages the
        // search touched are let go of before it reads more.
        let release = |ram: &mapwalk_file::RamFile| {
            if let Err(e) = ram.release_resident() {
                eprintln!("mapwalk: warning: releasing the probed pages: {e}");
            }
            mapwalk::timing::mark("searched, pages released");
        };
        let kernel = describe::describe_with(ram, &spec, &hints, release).map_err(describe_err)?;
        warn(&kernel.warnings);
        command(&MemorySource::new(kernel), &cli.cmd)
    } else if let Some(path) = &cli.source.core {
        let core = mapwalk_file::ElfCore::open(path).map_err(|e| Failure(e.to_string()))?;
        // The core's VMCOREINFO note and the CPU state of its first vCPU with a CR3;
        // a `--cr3` of the user's takes the place of the core's.
        let mut hints = MemoryHints::from_elf_core(&core);
        if k.cr3.is_some() {
            hints.cr3 = k.cr3;
        }
        let kernel = describe::describe(core, &spec, &hints).map_err(describe_err)?;
        warn(&kernel.warnings);
        command(&MemorySource::new(kernel), &cli.cmd)
    } else {
        Err(Failure("no memory source".into()))
    }
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("mapwalk: warning: {w}");
    }
}

fn command(src: &dyn MapSource, cmd: &Cmd) -> Result<(), Failure> {
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
                serde_json::to_writer(&mut out, &list).map_err(|e| Failure(e.to_string()))?;
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
            let data = parse_hex(value).map_err(|e| Failure(format!("--value: {e}")))?;
            let key = match key {
                Some(k) => parse_hex(k).map_err(|e| Failure(format!("--key: {e}")))?,
                None if meta.key_size == 4 => 0u32.to_le_bytes().to_vec(),
                None => {
                    return Err(Failure(format!(
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
) -> Result<(), Failure> {
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
) -> Result<(), Failure> {
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
        write!(
            out,
            ",\"error\":{}",
            serde_json::Value::from(Failure::from(e).0)
        )?;
    }
    Ok(())
}

fn dump_all(src: &dyn MapSource, format: Format, out: &mut impl Write) -> Result<(), Failure> {
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
                let head = serde_json::to_string(&head).map_err(|e| Failure(e.to_string()))?;
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
                    Err(Failure(e)) => writeln!(out, "(cannot dump: {e})")?,
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
