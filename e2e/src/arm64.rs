//! arm64 guests: Debian's arm64 kernels under `qemu-system-aarch64 -M virt` (TCG),
//! their RAM in a file as for the x86_64 guests, booted once per configuration and
//! shared by the tests of a process.
//!
//! - [`arm64_assets`] runs `setup.sh` for [`ARM64_KERNELS`] once per process: QEMU for
//!   aarch64, the cross compiler, the kernels' `Image`s (and Debian 12's System.map,
//!   from its -dbg package) and an initramfs whose static aarch64 `/init` is built from
//!   the same `guest/*.c`.
//! - QEMU `virt` has one UART: the guest's report sections and its console lines share
//!   `ttyAMA0` (console.log), parsed as the x86_64 guests' data port is.
//! - Guest RAM starts at physical `0x4000_0000` and is the whole RAM file:
//!   [`Arm64Guest::ram_layout`] says so (`--layout 0x40000000:0:SIZE` on the CLI).

use crate::guest::{free_bytes, release_guardian};
use crate::{failed, unavailable, Error, GuestReport, Kernel, Result};
use mapwalk::qmp::Qmp;
use mapwalk_core::Pa;
use mapwalk_file::{Layout, LayoutRange};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Where guest RAM starts on QEMU `virt`.
pub const VIRT_RAM_BASE: u64 = 0x4000_0000;

/// The arm64 kernels `setup.sh` prepares for the suite: Debian 13's Linux 6.12 with 4
/// and 16 KiB pages, Debian 12's Linux 6.1 (4 KiB, 48-bit VAs).
pub const ARM64_KERNELS: [&str; 3] = ["deb13-arm64", "deb13-arm64-16k", "deb12-arm64"];

/// What `setup.sh` prepared for [`ARM64_KERNELS`].
#[derive(Debug, Clone)]
pub struct Arm64Assets {
    /// The arm64 initramfs (`/init` from `guest/*.c`, static aarch64).
    pub initramfs: PathBuf,
    /// Kernels by name (`deb13-arm64`), each an uncompressed `Image`.
    pub kernels: HashMap<String, Kernel>,
    /// The link-time `System.map` of the kernels that have one in the cache, by name
    /// (`deb12-arm64`: from Debian's `linux-image-*-dbg`).
    pub system_maps: HashMap<String, PathBuf>,
}

/// Runs `setup.sh` for [`ARM64_KERNELS`] (once per process). Exit status 2 is
/// [`Error::Unavailable`].
///
/// # Errors
/// As above; anything else the script reports is [`Error::Failed`].
pub fn arm64_assets() -> Result<&'static Arm64Assets> {
    static ASSETS: OnceLock<Result<Arm64Assets>> = OnceLock::new();
    ASSETS.get_or_init(run_setup).as_ref().map_err(Clone::clone)
}

fn run_setup() -> Result<Arm64Assets> {
    let script = crate::e2e_dir().join("setup.sh");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .args(ARM64_KERNELS)
        .output()
        .map_err(|e| Error::Unavailable(format!("cannot run bash {}: {e}", script.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => return Err(Error::Unavailable(format!("setup.sh: {}", stderr.trim()))),
        _ => {
            return Err(failed(format!(
                "{} {} failed ({}):\n{stderr}",
                script.display(),
                ARM64_KERNELS.join(" "),
                out.status
            )))
        }
    }
    let mut initramfs = None;
    let mut kernels = HashMap::new();
    let mut system_maps = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["initramfs-arm64", path] => initramfs = Some(PathBuf::from(path)),
            ["kernel", name, release, path] => {
                kernels.insert(
                    (*name).to_owned(),
                    Kernel {
                        release: (*release).to_owned(),
                        vmlinuz: PathBuf::from(path),
                    },
                );
            }
            ["system-map", name, path] => {
                system_maps.insert((*name).to_owned(), PathBuf::from(path));
            }
            ["initramfs", _] => {}
            _ => return Err(failed(format!("setup.sh: unexpected output line {line:?}"))),
        }
    }
    let initramfs = initramfs.ok_or_else(|| failed("setup.sh named no arm64 initramfs"))?;
    eprintln!(
        "e2e: setup.sh {} took {:.1} s",
        ARM64_KERNELS.join(" "),
        started.elapsed().as_secs_f64()
    );
    Ok(Arm64Assets {
        initramfs,
        kernels,
        system_maps,
    })
}

/// How to boot an arm64 guest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arm64Config {
    /// A short unique name (used in file names).
    pub name: &'static str,
    /// Which kernel of [`Arm64Assets::kernels`].
    pub kernel: &'static str,
    /// `-cpu` (`max` has FEAT_LPA2: 52-bit VAs on Linux 6.12).
    pub cpu: &'static str,
    /// Kernel address-space randomization; `false` adds `nokaslr`.
    pub kaslr: bool,
    /// Guest RAM in MiB, at physical [`VIRT_RAM_BASE`].
    pub mem_mib: u32,
    /// vCPUs.
    pub smp: u32,
    /// Whether the initramfs also carries a static aarch64 `mapwalk`
    /// ([`crate::inguest::static_mapwalk_aarch64`]), which `/init` runs once its maps
    /// are made (`maps --json`, `dump --all --json`; see [`Arm64Guest::inguest_view`]).
    /// It adds the map `mw_btf`.
    pub inguest: bool,
}

impl Arm64Config {
    /// Debian 13's arm64 kernel (Linux 6.12, 4 KiB pages) on `-cpu max`: 52-bit VAs with
    /// LPA2 (five levels), KASLR, 512 MiB, 2 vCPUs, the static aarch64 `mapwalk` inside.
    ///
    /// The CPU has no SVE (nor SME, which needs it): QEMU 7.2's ELF dump sizes every
    /// vCPU's SVE note by the first vCPU's current vector length but writes each with
    /// its own, and Linux sets the length per task, so a core of two vCPUs whose lengths
    /// differ had its memory written short of where its program headers put it (seen:
    /// 1,632 bytes short, vector lengths of 4 and 1 quadwords).
    pub const DEB13_ARM64_4K_LPA2: Self = Self {
        name: "deb13-arm64-4k-lpa2",
        kernel: "deb13-arm64",
        cpu: "max,sve=off,sme=off",
        kaslr: true,
        mem_mib: 512,
        smp: 2,
        inguest: true,
    };

    /// [`Self::DEB13_ARM64_4K_LPA2`] without the in-guest `mapwalk` (so without
    /// `mw_btf`): the same maps as the x86_64 guests (benchmarks).
    pub const DEB13_ARM64_4K_LPA2_PLAIN: Self = Self {
        name: "deb13-arm64-4k-lpa2-plain",
        inguest: false,
        ..Self::DEB13_ARM64_4K_LPA2
    };

    /// Debian 12's arm64 kernel (Linux 6.1, 4 KiB pages, 48-bit VAs: four levels) on
    /// `-cpu max` without SVE (as [`Self::DEB13_ARM64_4K_LPA2`]), KASLR, 512 MiB, 2 vCPUs. Built without CONFIG_KALLSYMS_ALL: its
    /// symbols are given by its System.map ([`Arm64Guest::system_map`]).
    pub const DEB12_ARM64_4K: Self = Self {
        name: "deb12-arm64-4k",
        kernel: "deb12-arm64",
        inguest: false,
        ..Self::DEB13_ARM64_4K_LPA2
    };

    /// [`Self::DEB12_ARM64_4K`] with the in-guest `mapwalk` (only the types bpf() reads
    /// whole, and `mw_btf`).
    pub const DEB12_ARM64_4K_INGUEST: Self = Self {
        name: "deb12-arm64-4k-inguest",
        kernel: "deb12-arm64",
        inguest: true,
        ..Self::DEB13_ARM64_4K_LPA2
    };

    /// Debian 13's `arm64-16k` kernel (Linux 6.12, 16 KiB pages) on `-cpu max` without
    /// SVE (as [`Self::DEB13_ARM64_4K_LPA2`]): 52-bit VAs with LPA2 (four levels of 16 KiB tables), KASLR, 512 MiB, 2 vCPUs.
    pub const DEB13_ARM64_16K_LPA2: Self = Self {
        name: "deb13-arm64-16k-lpa2",
        kernel: "deb13-arm64-16k",
        inguest: false,
        ..Self::DEB13_ARM64_4K_LPA2
    };

    /// Debian 13's 4 KiB kernel on `-cpu neoverse-n1`, which has no FEAT_LPA2: the
    /// 52-bit kernel runs with 48-bit VAs (four levels), without KASLR (`nokaslr`),
    /// 512 MiB, 2 vCPUs.
    pub const DEB13_ARM64_4K_48BIT_NOKASLR: Self = Self {
        name: "deb13-arm64-4k-48bit-nokaslr",
        cpu: "neoverse-n1",
        kaslr: false,
        inguest: false,
        ..Self::DEB13_ARM64_4K_LPA2
    };

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let mut s = String::from("console=ttyAMA0 panic=-1 quiet cryptomgr.notests");
        if !self.kaslr {
            s.push_str(" nokaslr");
        }
        s
    }
}

/// A running arm64 guest. Dropping it kills QEMU and removes its files (a guardian
/// shell does the same should the test process die first).
#[derive(Debug)]
pub struct Arm64Guest {
    config: Arm64Config,
    release: String,
    system_map: Option<PathBuf>,
    dir: PathBuf,
    ram_path: PathBuf,
    qemu: Mutex<Child>,
    guardian: Mutex<Option<(Child, ChildStdin)>>,
    qmp: Mutex<Qmp>,
    report: GuestReport,
    boot_time: Duration,
}

impl Arm64Guest {
    /// Boots `config` from `assets` and waits for the guest's report.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without QEMU or /dev/shm; [`Error::Failed`] when the
    /// guest does not come up in time or its report is malformed.
    pub fn boot(assets: &Arm64Assets, config: &Arm64Config) -> Result<Self> {
        let kernel = assets.kernels.get(config.kernel).ok_or_else(|| {
            Error::Unavailable(format!(
                "kernel {:?} (setup.sh did not provide it)",
                config.kernel
            ))
        })?;
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return Err(Error::Unavailable(
                "/dev/shm (guest RAM lives there)".into(),
            ));
        }
        if free_bytes(shm).is_some_and(|free| free < u64::from(config.mem_mib) << 20) {
            return Err(Error::Unavailable(format!(
                "{} MiB free in /dev/shm for the guest's RAM",
                config.mem_mib
            )));
        }
        let tag = format!("mapwalk-e2e-{}-{}", std::process::id(), config.name);
        let dir = std::env::temp_dir().join(&tag);
        let ram_path = shm.join(&tag);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| failed(format!("create {}: {e}", dir.display())))?;
        let log =
            fs::File::create(dir.join("qemu.log")).map_err(|e| failed(format!("qemu.log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| failed(format!("qemu.log: {e}")))?;
        let initramfs = if config.inguest {
            let bin = crate::inguest::static_mapwalk_aarch64()?;
            let path = dir.join("initramfs-mapwalk.cpio");
            crate::inguest::initramfs_with_mapwalk(&assets.initramfs, bin, &path)?;
            path
        } else {
            assets.initramfs.clone()
        };
        let mem = format!("{}M", config.mem_mib);
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", config.cpu])
            .args(["-smp", &config.smp.to_string(), "-m", &mem])
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=mem,size={mem},mem-path={},share=on",
                ram_path.display()
            ))
            .args(["-machine", "virt,memory-backend=mem"])
            .arg("-kernel")
            .arg(&kernel.vmlinuz)
            .arg("-initrd")
            .arg(&initramfs)
            .args(["-append", &config.cmdline()])
            .args([
                "-nodefaults",
                "-nic",
                "none",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("qmp.sock").display()
            ))
            // A second monitor, for the tools under test (`qmp_path`).
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("qmp-client.sock").display()
            ))
            // The gdbstub, for the vCPU's system registers (`gdb_path`).
            .arg("-gdb")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("gdb.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // One UART: the report's sections are on the console.
        let booted = crate::guest::boot(
            &mut cmd,
            &dir,
            &ram_path,
            ("qemu-system-aarch64", "qemu-system-arm"),
            "console.log",
        )?;
        let (boot_time, qmp, report) = (booted.boot_time, booted.qmp, booted.report);
        eprintln!(
            "e2e: guest {} booted in {:.1} s: {}",
            config.name,
            boot_time.as_secs_f64(),
            report.version()
        );
        let (qemu, guardian) = (booted.qemu, booted.guardian);
        Ok(Self {
            config: config.clone(),
            release: kernel.release.clone(),
            system_map: assets.system_maps.get(config.kernel).cloned(),
            dir,
            ram_path,
            qemu: Mutex::new(qemu),
            guardian: Mutex::new(guardian),
            qmp: Mutex::new(qmp),
            report,
            boot_time,
        })
    }

    /// The QEMU process's id (whose memory maps guest RAM, the RAM file).
    pub fn qemu_pid(&self) -> u32 {
        self.qemu.lock().map_or(0, |c| c.id())
    }

    /// A QMP socket of QEMU's for the tools under test (the driver has its own).
    pub fn qmp_path(&self) -> PathBuf {
        self.dir.join("qmp-client.sock")
    }

    /// QEMU's gdbstub socket ([`crate::gdb::read_register`]).
    pub fn gdb_path(&self) -> PathBuf {
        self.dir.join("gdb.sock")
    }

    /// The configuration it was booted with.
    pub fn config(&self) -> &Arm64Config {
        &self.config
    }

    /// The kernel release `setup.sh` reported.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The kernel's link-time `System.map`, when the cache has one
    /// ([`Arm64Assets::system_maps`]).
    pub fn system_map(&self) -> Option<&Path> {
        self.system_map.as_deref()
    }

    /// What the guest reported about itself at boot.
    pub fn report(&self) -> &GuestReport {
        &self.report
    }

    /// The guest's console output so far (its report's sections included).
    pub fn console(&self) -> String {
        fs::read(self.dir.join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What `/init` reported of running the static `mapwalk` inside the guest
    /// ([`Arm64Config::inguest`]).
    ///
    /// # Errors
    /// [`Error::Failed`] when a section or console line is missing or malformed.
    pub fn inguest_view(&self) -> Result<crate::InGuestView> {
        crate::InGuestView::of_parts(&self.report, &self.console())
    }

    /// From QEMU's start to the guest's `MAPWALK-READY`.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The file that holds guest RAM: file offset 0 is physical [`VIRT_RAM_BASE`].
    pub fn ram_path(&self) -> &Path {
        &self.ram_path
    }

    /// The guest's directory (logs, QMP socket), removed with the guest.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where guest RAM lies in [`ram_path`](Self::ram_path): all of it, from physical
    /// [`VIRT_RAM_BASE`].
    ///
    /// # Errors
    /// [`Error::Failed`] for an empty guest.
    pub fn ram_layout(&self) -> Result<Layout> {
        Layout::new([LayoutRange {
            gpa: Pa(VIRT_RAM_BASE),
            offset: 0,
            len: u64::from(self.config.mem_mib) << 20,
        }])
        .map_err(failed)
    }

    /// The `--layout` argument of the CLI for [`ram_path`](Self::ram_path).
    pub fn layout_arg(&self) -> String {
        format!(
            "{VIRT_RAM_BASE:#x}:0:{:#x}",
            u64::from(self.config.mem_mib) << 20
        )
    }

    /// Runs an HMP command.
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP fails.
    pub fn hmp(&self, command_line: &str) -> Result<String> {
        let mut qmp = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        qmp.hmp(command_line)
            .map_err(|e| failed(format!("QMP {command_line}: {e}")))
    }

    /// Pauses the guest until the returned guard is dropped.
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP `stop` fails.
    pub fn pause(&self) -> Result<Arm64Paused<'_>> {
        let mut qmp = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        qmp.stop().map_err(|e| failed(format!("QMP stop: {e}")))?;
        Ok(Arm64Paused { guest: self, qmp })
    }
}

impl Drop for Arm64Guest {
    fn drop(&mut self) {
        let qemu = self.qemu.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = qemu.kill();
        let _ = qemu.wait();
        let _ = fs::remove_file(&self.ram_path);
        let _ = fs::remove_dir_all(&self.dir);
        let guardian = self.guardian.get_mut().unwrap_or_else(|e| e.into_inner());
        release_guardian(guardian.take());
    }
}

/// A paused arm64 guest: the vCPUs stand still until this is dropped (QMP `cont`).
#[derive(Debug)]
pub struct Arm64Paused<'a> {
    guest: &'a Arm64Guest,
    qmp: MutexGuard<'a, Qmp>,
}

impl Arm64Paused<'_> {
    /// The QMP connection, for other commands.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// Writes an ELF core of guest memory to `path` (QMP `dump-guest-memory`, as
    /// [`crate::Paused::dump_guest_memory`]).
    ///
    /// # Errors
    /// [`Error::Failed`] when QEMU refuses, reports the dump failed, or takes too long.
    pub fn dump_guest_memory(&mut self, path: &Path) -> Result<()> {
        crate::memory::dump_guest_memory(&mut self.qmp, path)
    }
}

impl Drop for Arm64Paused<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.qmp.cont() {
            let _ = writeln!(
                std::io::stderr(),
                "e2e: QMP cont on guest {} failed: {e}",
                self.guest.config.name
            );
        }
    }
}

type Slot = OnceLock<Result<Arm64Guest>>;

/// The shared arm64 guest for `config`, booted on first use (setup included). Returns
/// `None` after reporting a missing prerequisite by [`unavailable`] on behalf of `test`.
///
/// # Panics
/// When the guest fails to boot, and under `CI=true` when a prerequisite is missing.
pub fn arm64_guest(test: &str, config: &Arm64Config) -> Option<&'static Arm64Guest> {
    static SLOTS: Mutex<Vec<(Arm64Config, &'static Slot)>> = Mutex::new(Vec::new());
    let slot: &'static Slot = {
        let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        match slots.iter().find(|(c, _)| c == config) {
            Some((_, s)) => s,
            None => {
                let s: &'static Slot = Box::leak(Box::new(OnceLock::new()));
                slots.push((config.clone(), s));
                s
            }
        }
    };
    let booted = slot.get_or_init(|| {
        let assets = arm64_assets()?;
        match Arm64Guest::boot(assets, config) {
            // A TCG boot on a loaded host occasionally stalls: once more, loudly.
            Err(Error::Failed(what)) if !what.contains("MAPWALK-ERROR") => {
                let _ = writeln!(
                    std::io::stderr(),
                    "e2e: guest {} did not come up; booting it once more. The first boot:\n{what}",
                    config.name
                );
                Arm64Guest::boot(assets, config)
            }
            other => other,
        }
    });
    match booted {
        Ok(g) => Some(g),
        Err(Error::Unavailable(what)) => {
            unavailable(test, what);
            None
        }
        Err(Error::Failed(what)) => panic!("{test}: guest {}: {what}", config.name),
    }
}
