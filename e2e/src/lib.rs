//! The real-kernel test driver: boots Debian kernels under QEMU with their RAM in a
//! file the host can read, and collects what the guest reports about itself.
//!
//! Not public API: it exists for this crate's `tests/` (and later the CLI's tests).
//!
//! - [`assets`] runs `e2e/setup.sh` once per process: host packages, kernels
//!   and the initramfs, cached in `${MAPWALK_E2E_CACHE:-$HOME/.cache/mapwalk-e2e}`.
//! - [`guest()`] boots one guest per [`GuestConfig`] on first use and shares it between
//!   the tests of the process; different configurations boot in parallel.
//! - [`arm64`] does the same for arm64 guests (`qemu-system-aarch64 -M virt`).
//! - A missing prerequisite (QEMU, root to install it, the package registry, /dev/shm)
//!   is reported loudly and the test returns, unless `CI=true`, where it fails: see
//!   [`unavailable`].

pub mod arm64;
pub mod gdb;
mod guest;
pub mod inguest;
mod memory;
pub mod queues;
mod report;

pub use guest::{Guest, Paused};
pub use inguest::InGuestView;
pub use report::{GuestMap, GuestReport};

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Why the driver could not provide a guest.
#[derive(Debug, Clone)]
pub enum Error {
    /// A prerequisite of the environment is missing (no QEMU and no way to install
    /// it, no /dev/shm, ...): the test cannot run here.
    Unavailable(String),
    /// Something that should have worked did not: the guest did not boot, QMP failed,
    /// the guest's report is malformed.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(what) => write!(f, "prerequisite missing: {what}"),
            Self::Failed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

/// The driver's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Makes a [`Error::Failed`] from anything displayable.
pub(crate) fn failed(msg: impl fmt::Display) -> Error {
    Error::Failed(msg.to_string())
}

/// Whether this run is CI's (`CI=true`), where missing prerequisites fail the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The project's rule for a test whose prerequisites cannot be had: say so loudly (on
/// the process's stderr, past the test harness's capture) and let the test return —
/// but under `CI=true`, fail.
///
/// # Panics
/// Under `CI=true`, always.
pub fn unavailable(test: &str, what: &str) {
    assert!(
        !in_ci(),
        "{test}: prerequisite missing under CI=true: {what}"
    );
    // Straight to the process's stderr: the test harness would capture `eprintln!`
    // of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: prerequisite missing: {what}"
    );
}

/// The files the guests boot from, as `setup.sh` reported them.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The initramfs (`/init` from `guest/init.c`, static busybox).
    pub initramfs: PathBuf,
    /// Kernels by name (`deb12-cloud`, ...).
    pub kernels: HashMap<String, Kernel>,
}

/// A guest kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Its release string (`6.1.0-56-cloud-amd64`).
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
}

/// The directory of the guest assets and `setup.sh`.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs `setup.sh` (once per process) and returns what it prepared. Exit status 2 of
/// the script, and a missing `bash`, are [`Error::Unavailable`].
///
/// # Errors
/// As above; anything else the script reports is [`Error::Failed`].
pub fn assets() -> Result<&'static Assets> {
    static ASSETS: OnceLock<Result<Assets>> = OnceLock::new();
    ASSETS.get_or_init(run_setup).as_ref().map_err(Clone::clone)
}

fn run_setup() -> Result<Assets> {
    let script = e2e_dir().join("setup.sh");
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| Error::Unavailable(format!("cannot run bash {}: {e}", script.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => return Err(Error::Unavailable(format!("setup.sh: {}", stderr.trim()))),
        _ => {
            return Err(failed(format!(
                "{} failed ({}):\n{stderr}",
                script.display(),
                out.status
            )))
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut initramfs = None;
    let mut kernels = HashMap::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["initramfs", path] => initramfs = Some(PathBuf::from(path)),
            ["kernel", name, release, path] => {
                let kernel = Kernel {
                    release: (*release).to_owned(),
                    vmlinuz: PathBuf::from(path),
                };
                kernels.insert((*name).to_owned(), kernel);
            }
            _ => return Err(failed(format!("setup.sh: unexpected output line {line:?}"))),
        }
    }
    let initramfs = initramfs.ok_or_else(|| failed("setup.sh named no initramfs"))?;
    eprintln!(
        "e2e: setup.sh took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Assets { initramfs, kernels })
}

/// How to boot a guest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GuestConfig {
    /// A short unique name (used in file names).
    pub name: &'static str,
    /// Which kernel of [`Assets::kernels`].
    pub kernel: &'static str,
    /// Kernel address-space randomization; `false` adds `nokaslr`.
    pub kaslr: bool,
    /// 5-level paging (`-cpu max` offers LA57); `false` adds `no5lvl`.
    pub five_level: bool,
    /// Guest RAM in MiB. Up to 2048 the RAM file offset is the guest physical address
    /// on q35; with more (3072), q35 keeps 2 GiB below 4 GiB and puts the rest at
    /// 4 GiB, at file offset 2 GiB: see [`Guest::ram_layout`].
    pub mem_mib: u32,
    /// vCPUs.
    pub smp: u32,
    /// Whether the initramfs also carries a static `mapwalk` (see [`inguest`]), which
    /// the guest's `/init` runs once its maps are made: `maps --json` and `dump --all
    /// --json`, reported as [`InGuestView`]. Costs a build (13-16 s from cold) and
    /// 2-3 s of boot.
    pub inguest: bool,
    /// `mapwalk.bulk=N`: the guest's `/init` creates N more small maps (benchmarks).
    pub bulk_maps: u32,
    /// Guest RAM as QEMU's own anonymous memory (its default) instead of a shared file:
    /// such a guest is read from outside the QEMU process (`--pid`), and
    /// [`Guest::ram_path`] does not exist.
    pub anonymous_ram: bool,
    /// `mapwalk.churn=1`: the guest's `/init` makes five more maps and, once ready,
    /// changes four of them at full speed until the host stops it (see
    /// `guest/churn.c`).
    pub churn: bool,
}

impl GuestConfig {
    /// Debian 12's cloud kernel with KASLR and 5-level paging: the default of
    /// `-cpu max`.
    pub const DEB12_KASLR_5LEVEL: Self = Self {
        name: "deb12-kaslr-5level",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: true,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 12's cloud kernel with `nokaslr no5lvl`.
    pub const DEB12_NOKASLR_4LEVEL: Self = Self {
        name: "deb12-nokaslr-4level",
        kernel: "deb12-cloud",
        kaslr: false,
        five_level: false,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 13's cloud kernel (Linux 6.12) with KASLR and 5-level paging.
    pub const DEB13_KASLR_5LEVEL: Self = Self {
        name: "deb13-kaslr-5level",
        kernel: "deb13-cloud",
        kaslr: true,
        five_level: true,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 12's cloud kernel (Linux 6.1) with KASLR, `no5lvl` and 4 vCPUs: per-CPU
    /// maps with more than two copies per value.
    pub const DEB12_KASLR_4LEVEL_SMP4: Self = Self {
        name: "deb12-kaslr-4level-smp4",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: false,
        mem_mib: 512,
        smp: 4,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 13's cloud kernel (Linux 6.12) with `nokaslr no5lvl`, **3 GiB** (RAM
    /// above 4 GiB: the RAM file is not an identity map) and **1 vCPU**. Checked by
    /// `tests/real_kernel/dump.rs` only, through [`Guest::ram_layout`].
    pub const DEB13_NOKASLR_4LEVEL_3G_SMP1: Self = Self {
        name: "deb13-nokaslr-4level-3g-smp1",
        kernel: "deb13-cloud",
        kaslr: false,
        five_level: false,
        mem_mib: 3072,
        smp: 1,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 12's cloud kernel (Linux 6.1) with KASLR, 5-level paging, **3 GiB** and
    /// **1 vCPU**: the complement of [`Self::DEB13_NOKASLR_4LEVEL_3G_SMP1`] in kernel,
    /// KASLR and paging, so that 3 GiB meets each of their values.
    /// `tests/real_kernel/dump.rs` only.
    pub const DEB12_KASLR_5LEVEL_3G_SMP1: Self = Self {
        name: "deb12-kaslr-5level-3g-smp1",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: true,
        mem_mib: 3072,
        smp: 1,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 12's cloud kernel (Linux 6.1) with KASLR, 4-level paging, 2 vCPUs and the
    /// static `mapwalk` in its initramfs ([`Self::inguest`]): its live view against the
    /// view from outside, `tests/real_kernel/inguest.rs` only. No other test writes to
    /// its maps, so they hold what `/init` put there.
    pub const DEB12_KASLR_4LEVEL_INGUEST: Self = Self {
        name: "deb12-kaslr-4level-inguest",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: false,
        mem_mib: 512,
        smp: 2,
        inguest: true,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 13's cloud kernel (Linux 6.12) with KASLR and 5-level paging, its RAM
    /// QEMU's anonymous memory (no backend file): read from outside the QEMU process.
    pub const DEB13_KASLR_5LEVEL_ANON: Self = Self {
        name: "deb13-kaslr-5level-anon",
        kernel: "deb13-cloud",
        kaslr: true,
        five_level: true,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: true,
        churn: false,
    };

    /// Debian 12's cloud kernel (Linux 6.1) with KASLR, `no5lvl`, and 195 more maps
    /// (`mapwalk.bulk=194`: 194 small ones and `mw_bulk_big`, one 3 MiB value): 230
    /// maps (the 11 of `init.c`, the 4 of `progs.c`, the 3 of `storage.c` on 6.1, the
    /// 11 of `objmaps.c`, the 2 of `ringbuf.c`, the one of `stack.c`, the one of
    /// `structops.c` and the 2 of `queue.c` besides; the arena of `arena.c` is made on
    /// 6.12 only; the figures of `benches/README.md` name the count they were taken
    /// with), whose
    /// `dump --all --json` is 31 MB. For benchmarks.
    pub const DEB12_KASLR_4LEVEL_BULK: Self = Self {
        name: "deb12-kaslr-4level-bulk",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: false,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 194,
        anonymous_ram: false,
        churn: false,
    };

    /// Debian 12's cloud kernel (Linux 6.1) with KASLR, `no5lvl`, 2 vCPUs and
    /// `mapwalk.churn=1`: maps that change at full speed while they are read
    /// (`tests/real_kernel/churn.rs` only).
    pub const DEB12_KASLR_4LEVEL_CHURN: Self = Self {
        name: "deb12-kaslr-4level-churn",
        kernel: "deb12-cloud",
        kaslr: true,
        five_level: false,
        mem_mib: 512,
        smp: 2,
        inguest: false,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: true,
    };

    /// Debian 13's cloud kernel (Linux 6.12) with `nokaslr`, 5-level paging, 2 vCPUs and
    /// the static `mapwalk` in its initramfs: [`Self::DEB12_KASLR_4LEVEL_INGUEST`] on
    /// the other kernel.
    pub const DEB13_NOKASLR_5LEVEL_INGUEST: Self = Self {
        name: "deb13-nokaslr-5level-inguest",
        kernel: "deb13-cloud",
        kaslr: false,
        five_level: true,
        mem_mib: 512,
        smp: 2,
        inguest: true,
        bulk_maps: 0,
        anonymous_ram: false,
        churn: false,
    };

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        // `cryptomgr.notests`: the kernel's crypto self-tests are the heaviest part of a
        // boot under TCG, and on a loaded host a vCPU running them has been seen to
        // stall the boot for minutes; nothing here needs them.
        let mut s = String::from("console=ttyS0 panic=-1 quiet cryptomgr.notests");
        if !self.kaslr {
            s.push_str(" nokaslr");
        }
        if !self.five_level {
            s.push_str(" no5lvl");
        }
        if self.bulk_maps > 0 {
            s.push_str(&format!(" mapwalk.bulk={}", self.bulk_maps));
        }
        if self.churn {
            s.push_str(" mapwalk.churn=1");
        }
        s
    }
}

type Slot = OnceLock<Result<Guest>>;

/// The shared guest for `config`, booted on first use (setup included). Returns
/// `None` after reporting a missing prerequisite by [`unavailable`] on behalf of
/// `test`.
///
/// # Panics
/// When the guest fails to boot, and under `CI=true` when a prerequisite is missing.
pub fn guest(test: &str, config: &GuestConfig) -> Option<&'static Guest> {
    static SLOTS: Mutex<Vec<(GuestConfig, &'static Slot)>> = Mutex::new(Vec::new());
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
    // Booting happens outside the registry lock: other configurations boot meanwhile.
    match slot.get_or_init(|| assets().and_then(|a| boot_twice(a, config))) {
        Ok(g) => Some(g),
        Err(Error::Unavailable(what)) => {
            unavailable(test, what);
            None
        }
        Err(Error::Failed(what)) => panic!("{test}: guest {}: {what}", config.name),
    }
}

/// Boots `config`, and boots it once more when the first boot did not come up in time
/// (TCG guests on an overloaded 2-core host occasionally stall in early boot) or QEMU
/// exited before the guest's `/init` was ready (a guest kernel crash in early boot
/// under TCG, seen rarely with some KASLR draws): the first failure is printed in full,
/// so a retried boot is never silent. Any other failure is returned at once.
fn boot_twice(assets: &Assets, config: &GuestConfig) -> Result<Guest> {
    match Guest::boot(assets, config) {
        Err(Error::Failed(what))
            if what.starts_with(guest::BOOT_TIMED_OUT) || what.starts_with(guest::QEMU_EXITED) =>
        {
            let _ = writeln!(
                std::io::stderr(),
                "e2e: guest {} did not come up; booting it once more. The first boot:\n{what}",
                config.name
            );
            Guest::boot(assets, config)
        }
        other => other,
    }
}

/// Serializes the tests that write guest memory and those that compare map values a
/// write could change. Boots stay parallel: a test takes the lock after its guest is up.
pub fn value_lock() -> std::sync::MutexGuard<'static, ()> {
    static VALUES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    VALUES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
