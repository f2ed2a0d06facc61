//! The command line: sources, the guest kernel, and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What the exit status says, shown by `--help` (and in the README's "The command").
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  the whole answer
  1  differences found (diff: the two sides differ)
  2  error: the answer is missing (stderr says why, in one line)
  3  partial answer: what could be read is printed and marked incomplete in the
     output itself (a dump's JSON ends with {\"error\":..,\"partial\":true}, its text
     with an \"Incomplete dump: ..\" line; in dump --all a map's object gets \"error\"
     and \"partial\":true); stderr has one line for each map missing or cut short";

/// Lists, dumps and patches Linux BPF maps: of the live host (through bpf()), of a
/// VM's RAM file, or of a memory dump.
#[derive(Debug, Parser)]
#[command(name = "mapwalk", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// JSON, like `bpftool -j` (maps, dump, progs): before or after the subcommand.
    #[arg(long, short = 'j', global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Read the running host's maps through bpf() (the default).
    #[arg(long, global = true, conflicts_with_all = ["ram", "core", "pid", "snapshot"])]
    pub live: bool,
    /// A snapshot file (`mapwalk snapshot -o FILE`): its maps as they were.
    #[arg(long, global = true, value_name = "FILE", conflicts_with_all = ["ram", "core", "pid", "qmp"])]
    pub snapshot: Option<PathBuf>,
    /// A guest RAM file (QEMU memory-backend-file, or a raw copy of guest RAM).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "core")]
    pub ram: Option<PathBuf>,
    /// Where guest-physical ranges are in the RAM file (default: the whole file from 0).
    #[arg(long, global = true, value_name = "GPA:OFFSET:LEN", requires = "ram")]
    pub layout: Vec<String>,
    /// An ELF core (QEMU dump-guest-memory, kdump vmcore).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "pid")]
    pub core: Option<PathBuf>,
    /// A running VMM process whose guest RAM is its own anonymous memory (QEMU without
    /// a memory-backend file, Firecracker, cloud-hypervisor), read from outside
    /// (needs the right to ptrace it). Its RAM regions come from --qmp or --region.
    #[arg(long, global = true, value_name = "PID", conflicts_with = "ram")]
    pub pid: Option<i32>,
    /// QEMU's QMP socket (with --pid or --ram): where the guest's RAM lies (in QEMU,
    /// or in the RAM file when no --layout is given), the vCPU's CR3/CR4, and a pause
    /// of the guest while it is read (see --no-pause).
    #[arg(long, global = true, value_name = "SOCKET", conflicts_with = "core")]
    pub qmp: Option<PathBuf>,
    /// A guest RAM region of the --pid process: guest-physical start, its address in
    /// the process, length (instead of asking QMP).
    #[arg(long, global = true, value_name = "GPA:HVA:LEN", requires = "pid", value_parser = parse_region)]
    pub region: Vec<mapwalk_kvm::ProcessRegion>,
    /// With --qmp: read the guest while it runs instead of pausing it.
    #[arg(long, global = true, requires = "qmp")]
    pub no_pause: bool,
    /// For a guest that runs while it is read (a RAM file, --pid without a pause): read
    /// each map again until two reads in a row agree, at most N times (N >= 2); a map
    /// that never settles is reported, and the exit status says so.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub agree: Option<u32>,
}

#[derive(Debug, Args)]
pub struct KernelArgs {
    /// The guest's vmlinux (symbols and BTF).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "symbols")]
    pub vmlinux: Option<PathBuf>,
    /// The guest's symbols, as a System.map or /proc/kallsyms copy.
    #[arg(long, global = true, value_name = "FILE")]
    pub symbols: Option<PathBuf>,
    /// The guest's BTF (default: read out of guest memory).
    #[arg(long, global = true, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// The guest's page-table root (CR3), when the memory source does not say.
    #[arg(long, global = true, value_name = "PA", value_parser = parse_u64)]
    pub cr3: Option<u64>,
    /// An arm64 guest's TTBR1_EL1 (from a vCPU or a debugger): the kernel's page-table
    /// root, walked in place of swapper_pg_dir once it maps the kernel as that does.
    #[arg(long, global = true, value_name = "HEX", value_parser = parse_u64, conflicts_with = "cr3")]
    pub ttbr1: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Lists every map, like `bpftool map show`.
    Maps,
    /// Dumps one map's entries (or every map's), like `bpftool map dump`.
    Dump {
        /// The map: a name, a name suffix (such as .bss), or id:N.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        map: Option<String>,
        /// Every map.
        #[arg(long)]
        all: bool,
    },
    /// Shows the value at one key, like `bpftool map lookup`.
    Lookup {
        /// The map: a name, a name suffix (such as .bss), or id:N.
        map: String,
        /// The key, in hex (default: index 0 for maps with 4-byte keys).
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
    /// Shows the key after one key (the first key without --key), like `bpftool map
    /// getnext`.
    Getnext {
        /// The map: a name, a name suffix (such as .bss), or id:N.
        map: String,
        /// The key, in hex.
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
    /// Writes bytes into one value (read, patch, write back; never outside the value).
    /// For a per-CPU map, every CPU's copy is patched.
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
    /// Lists every BPF program, like `bpftool prog show`.
    Progs,
    /// Saves every map with its metadata, BTF and entries, the kernel release and the
    /// time to a snapshot file (read it back with `--snapshot FILE`).
    Snapshot {
        /// The file to write.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Compares snapshot A with snapshot B (`diff A B [MAP...]`), or with the source
    /// given now (`--live|--ram ...|--snapshot B diff A [MAP...]`). Exit status 0 when
    /// equal, 1 when different.
    Diff {
        /// Snapshot A.
        a: PathBuf,
        /// Without a source option: snapshot B, then the maps; with one: the maps
        /// (names, name suffixes or id:N; every map when none).
        rest: Vec<String>,
    },
    /// Reads the maps again every --interval and shows what changed: a full-screen view
    /// on a terminal (q quits, up/down select a map, p pauses), lines otherwise (or
    /// with --plain), or with --json one JSON record per line (`"type"`: `change`,
    /// `map_added`, `map_removed`, `sample`). With --qmp the guest is paused for each
    /// sample only, and each pause's length is reported.
    Watch(WatchArgs),
}

/// `mapwalk snapshot`, `diff` and `watch`: see [`crate::history`].
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The maps: names, name suffixes or id:N (every map when none).
    pub maps: Vec<String>,
    /// Time between samples: `500ms`, `2s`, `1.5` (seconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after N samples (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Lines even on a terminal (instead of the full-screen view).
    #[arg(long)]
    pub plain: bool,
}

pub fn parse_u64(s: &str) -> Result<u64, String> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    if clean.starts_with("0x") || clean.starts_with("0X") {
        return mapwalk::text::parse_hex(&clean).map_err(|e| format!("{s:?}: {e}"));
    }
    clean.parse().map_err(|e| format!("{s:?}: {e}"))
}

/// `GPA:HVA:LEN`, each a number as [`parse_u64`] reads it.
pub fn parse_region(s: &str) -> Result<mapwalk_kvm::ProcessRegion, String> {
    match s.split(':').collect::<Vec<_>>().as_slice() {
        [gpa, hva, len] => Ok(mapwalk_kvm::ProcessRegion {
            gpa: parse_u64(gpa)?,
            hva: parse_u64(hva)?,
            len: parse_u64(len)?,
        }),
        _ => Err(format!("{s:?}: expected GPA:HVA:LEN")),
    }
}

/// `500ms`, `2s`, `100us`, `1m`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (us, ms, s, m)")),
    };
    std::time::Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// Hex bytes, as [`mapwalk::text::parse_hex_bytes`] reads them.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    mapwalk::text::parse_hex_bytes(s).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod watch_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn intervals_parse_with_their_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
