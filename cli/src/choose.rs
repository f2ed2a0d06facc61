//! Choosing the map source: the live host, or a described kernel in a RAM file or an
//! ELF core.

use mapwalk::describe::{self, BtfSource, KernelSpec, MemoryHints, SymbolSource};
use mapwalk::qmp::{Qmp, X86ControlRegs};
use mapwalk::source::{LiveSource, MemorySource, Settle};
use mapwalk_kvm::{with_paused, ProcessRam};

use crate::args::{Cli, Cmd};
use crate::error::CliError;
use crate::output::{command, Answer};

/// How long to wait for QEMU's QMP socket.
const QMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `cli`'s command on the source its arguments name.
///
/// # Errors
/// Whatever fails first, typed.
pub fn run(cli: &Cli) -> Result<Answer, CliError> {
    let memory = cli.source.ram.is_some() || cli.source.core.is_some() || cli.source.pid.is_some();
    let k = &cli.kernel;
    if cli.source.qmp.is_some() && cli.source.ram.is_none() && cli.source.pid.is_none() {
        return Err(CliError::Usage(
            "--qmp reads a QEMU guest: it needs --ram FILE or --pid PID".into(),
        ));
    }
    crate::history::set_source_name(source_name(cli));
    let explicit = memory || cli.source.live || cli.source.snapshot.is_some();
    if let (Cmd::Diff { a, rest }, false) = (&cli.cmd, explicit) {
        return crate::history::diff_files(a, rest, cli.json);
    }
    if let Some(path) = &cli.source.snapshot {
        if k.vmlinux.is_some() || k.symbols.is_some() || k.btf.is_some() || k.cr3.is_some() {
            return Err(CliError::Usage(
                "--vmlinux, --symbols, --btf and --cr3 describe a guest kernel: a \
                 --snapshot has its maps already"
                    .into(),
            ));
        }
        mapwalk::input::check_file(path, false).map_err(|e| CliError::Input("--snapshot", e))?;
        return command(&crate::history::open_snapshot(path)?, &cli.cmd, cli.json);
    }
    if !memory {
        if k.vmlinux.is_some() || k.symbols.is_some() || k.btf.is_some() || k.cr3.is_some() {
            return Err(CliError::Usage(
                "--vmlinux, --symbols, --btf and --cr3 describe a guest kernel: they need \
                 --ram or --core"
                    .into(),
            ));
        }
        return command(&LiveSource::default(), &cli.cmd, cli.json);
    }
    check_inputs(cli)?;
    memory_source(cli)
}

/// Refuses, before anything is opened, a file option that names no regular file (a
/// FIFO would block the open, a directory or `/dev/zero` cannot be read as one); guest
/// memory may also be a block device. The files' size caps apply as they are read.
fn check_inputs(cli: &Cli) -> Result<(), CliError> {
    let (s, k) = (&cli.source, &cli.kernel);
    let files = [
        ("--ram", &s.ram, true),
        ("--core", &s.core, true),
        ("--vmlinux", &k.vmlinux, false),
        ("--symbols", &k.symbols, false),
        ("--btf", &k.btf, false),
    ];
    for (option, path, block) in files {
        if let Some(path) = path {
            mapwalk::input::check_file(path, block).map_err(|e| CliError::Input(option, e))?;
        }
    }
    Ok(())
}

fn memory_source(cli: &Cli) -> Result<Answer, CliError> {
    let k = &cli.kernel;
    let symbols = match (&k.vmlinux, &k.symbols) {
        (Some(v), _) => SymbolSource::Vmlinux(v.clone()),
        (None, Some(s)) => SymbolSource::SymbolFile(s.clone()),
        // Guest memory of any kind: the kernel's own symbol table, found through the
        // VMCOREINFO (Linux 6.0 and later).
        (None, None) => SymbolSource::GuestMemory,
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
        ttbr1: k.ttbr1,
        layout_override: None,
    };
    if let Some(path) = &cli.source.ram {
        let mut qmp = match &cli.source.qmp {
            Some(sock) => Some(Qmp::connect(sock, QMP_TIMEOUT).map_err(CliError::Qmp)?),
            None => None,
        };
        let writable = matches!(cli.cmd, Cmd::Write { .. });
        let mut opts = mapwalk_file::RamFile::options().writable(writable);
        if !cli.source.layout.is_empty() {
            let layout: mapwalk_file::Layout = cli
                .source
                .layout
                .join(",")
                .parse()
                .map_err(CliError::Layout)?;
            opts = opts.layout(layout);
        } else if let Some(q) = &mut qmp {
            // The QEMU that owns the file says where guest RAM lies in it.
            opts = opts.layout(q.ram_file_layout(path).map_err(CliError::Qmp)?);
        }
        // Without a layout, one range from 0; the kernel's own memory map checks it.
        let given_layout = !cli.source.layout.is_empty() || qmp.is_some();
        let reopen = opts.clone();
        let ram = opts.open(path)?;
        mapwalk::timing::mark("RAM file opened");
        let read = move |mut qmp: Option<&mut Qmp>| -> Result<Answer, CliError> {
            let mut hints = MemoryHints {
                vmcoreinfo: None,
                cr3: k.cr3,
                cr4: None,
            };
            if let Some(q) = qmp.as_deref_mut() {
                let regs = q.hmp("info registers").map_err(CliError::Qmp)?;
                if let Some(r) = X86ControlRegs::parse(&regs) {
                    hints.cr3 = hints.cr3.or(Some(r.cr3));
                    hints.cr4 = Some(r.cr4);
                }
            }
            // When the description searches the RAM (the candidates of the placement
            // by the symbols, VMCOREINFO when the symbols did not place the kernel),
            // the pages the search touched are let go of before it reads more.
            let release = |ram: &mapwalk_file::RamFile| {
                if let Err(e) = ram.release_resident() {
                    eprintln!("mapwalk: warning: releasing the probed pages: {e}");
                }
                mapwalk::timing::mark("searched, pages released");
            };
            let kernel = match describe::describe_with(ram, &spec, &hints, release) {
                // A file of a guest with RAM above 4 GiB, read as one range: the layout
                // QEMU gives such a file, checked by describing again.
                Err(describe::DescribeError::RamLayout {
                    missing,
                    ram: kernel_ram,
                    held_end,
                }) if !given_layout => {
                    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    // No split layout fits (all RAM below 4 GiB, or a file too short
                    // for it): the first refusal stands.
                    let Some(layout) = describe::ram_layout::qemu_layout(&kernel_ram, len) else {
                        return Err(describe::DescribeError::RamLayout {
                            missing,
                            ram: kernel_ram,
                            held_end,
                        }
                        .into());
                    };
                    let ram = reopen.clone().layout(layout).open(path)?;
                    describe::describe_with(ram, &spec, &hints, release)?
                }
                // Read as one range, the file did not even lead to the kernel's record
                // of its RAM (its image lies in the part QEMU keeps above 4 GiB): the
                // layouts QEMU could have given it, each checked by a description.
                Err(first) if !given_layout => {
                    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    let mut described = None;
                    for layout in describe::ram_layout::qemu_candidates(len) {
                        let ram = reopen.clone().layout(layout).open(path)?;
                        if let Ok(k) = describe::describe_with(ram, &spec, &hints, release) {
                            described = Some(k);
                            break;
                        }
                    }
                    described.ok_or(first)?
                }
                other => other?,
            };
            warn(&kernel.warnings);
            dispatch(&settled(cli, kernel), cli, qmp)
        };
        paused(qmp, cli.source.no_pause || watching(cli), read)
    } else if let Some(path) = &cli.source.core {
        let core = mapwalk_file::ElfCore::open(path)?;
        // The core's VMCOREINFO note and the CPU state of its first vCPU with a CR3;
        // a `--cr3` of the user's takes the place of the core's.
        let mut hints = MemoryHints::from_elf_core(&core);
        if k.cr3.is_some() {
            hints.cr3 = k.cr3;
        }
        let kernel = describe::describe(core, &spec, &hints)?;
        warn(&kernel.warnings);
        command(&settled(cli, kernel), &cli.cmd, cli.json)
    } else if let Some(pid) = cli.source.pid {
        process_source(cli, pid, &spec)
    } else {
        Err(CliError::Usage("no memory source".into()))
    }
}

/// A running VMM read from outside: its RAM regions from `--region` or QMP, the vCPU
/// state from QMP, the guest paused through QMP while it is read (unless
/// `--no-pause`).
fn process_source(cli: &Cli, pid: i32, spec: &KernelSpec) -> Result<Answer, CliError> {
    let mut qmp = match &cli.source.qmp {
        Some(path) => Some(Qmp::connect(path, QMP_TIMEOUT).map_err(CliError::Qmp)?),
        None => None,
    };
    let regions = match (&mut qmp, cli.source.region.is_empty()) {
        (_, false) => cli.source.region.clone(),
        (Some(q), true) => q.process_regions().map_err(CliError::Qmp)?,
        (None, true) => {
            return Err(CliError::Usage(
                "--pid needs the guest's RAM regions: --qmp SOCKET or --region GPA:HVA:LEN".into(),
            ))
        }
    };
    let ram = ProcessRam::new(pid, &regions).map_err(CliError::Regions)?;
    let read = |mut qmp: Option<&mut Qmp>| -> Result<Answer, CliError> {
        let mut hints = MemoryHints {
            vmcoreinfo: None,
            cr3: cli.kernel.cr3,
            cr4: None,
        };
        if let Some(q) = qmp.as_deref_mut() {
            let regs = q.hmp("info registers").map_err(CliError::Qmp)?;
            if let Some(r) = X86ControlRegs::parse(&regs) {
                hints.cr3 = hints.cr3.or(Some(r.cr3));
                hints.cr4 = Some(r.cr4);
            }
        }
        let kernel = describe::describe(ram.clone(), spec, &hints)?;
        warn(&kernel.warnings);
        dispatch(&settled(cli, kernel), cli, qmp)
    };
    paused(qmp, cli.source.no_pause || watching(cli), read)
}

/// Runs `read` with the guest paused through `qmp` (unless `no_pause`), resumed
/// whatever the read's outcome, panics included; without QMP, as it is.
fn paused(
    qmp: Option<Qmp>,
    no_pause: bool,
    read: impl FnOnce(Option<&mut Qmp>) -> Result<Answer, CliError>,
) -> Result<Answer, CliError> {
    match qmp {
        Some(mut q) if !no_pause => {
            with_paused(&mut q, |q| read(Some(q))).map_err(CliError::Qmp)?
        }
        Some(mut q) => read(Some(&mut q)),
        None => read(None),
    }
}

pub fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("mapwalk: warning: {w}");
    }
}

/// The memory source of `kernel`, reading each map as `--agree` says.
fn settled<M: mapwalk_core::PhysRead>(cli: &Cli, kernel: describe::Kernel<M>) -> MemorySource<M> {
    let settle = cli.source.agree.map_or(Settle::Once, Settle::Agree);
    MemorySource::new(kernel).with_settle(settle)
}

/// Whether the command is `watch`, which pauses the guest for each sample itself.
fn watching(cli: &Cli) -> bool {
    matches!(cli.cmd, Cmd::Watch(_))
}

/// Runs the command on a memory source; `watch` gets the QMP client to pause the guest
/// for each sample.
fn dispatch<M: mapwalk_core::PhysRead + mapwalk::source::GuestWrite>(
    src: &MemorySource<M>,
    cli: &Cli,
    qmp: Option<&mut Qmp>,
) -> Result<Answer, CliError> {
    if watching(cli) && !cli.source.no_pause {
        return crate::history::command(src, &cli.cmd, cli.json, qmp);
    }
    command(src, &cli.cmd, cli.json)
}

/// How snapshots and watch records name the source: `live`, `ram:PATH`, ...
fn source_name(cli: &Cli) -> String {
    let s = &cli.source;
    let path = |kind: &str, p: &std::path::Path| format!("{kind}:{}", p.display());
    if let Some(p) = &s.snapshot {
        path("snapshot", p)
    } else if let Some(p) = &s.ram {
        path("ram", p)
    } else if let Some(p) = &s.core {
        path("core", p)
    } else if let Some(pid) = s.pid {
        format!("pid:{pid}")
    } else {
        "live".into()
    }
}
