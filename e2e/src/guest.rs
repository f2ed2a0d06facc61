//! One QEMU guest: boot, wait, QMP, RAM file, teardown.

use crate::{failed, Assets, Error, GuestConfig, GuestReport, Result};
use mapwalk::qmp::{Qmp, X86ControlRegs};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a boot may take before the guest counts as hung. TCG boots take 4-45 s on
/// an idle 2-core machine; others compile on the same cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a QMP reply may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);

/// The console line `/init` prints when its report is complete.
const READY: &str = "MAPWALK-READY";
/// The console line prefix `/init` prints on failure.
const GUEST_ERROR: &str = "MAPWALK-ERROR";

/// A running guest. Dropping it kills QEMU and removes its files; should the test
/// process die first (a `static` is never dropped, a test may abort), a small guardian
/// shell does the same when its stdin pipe from this process closes.
#[derive(Debug)]
pub struct Guest {
    config: GuestConfig,
    release: String,
    dir: PathBuf,
    ram_path: PathBuf,
    qemu: Mutex<Child>,
    guardian: Mutex<Option<(Child, ChildStdin)>>,
    qmp: Mutex<Qmp>,
    report: GuestReport,
    boot_time: Duration,
}

impl Guest {
    /// Boots `config` from `assets` and waits for the guest's report.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without QEMU or /dev/shm; [`Error::Failed`] when the
    /// guest does not come up in time or its report is malformed.
    pub fn boot(assets: &Assets, config: &GuestConfig) -> Result<Self> {
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
        if let Some(free) = free_bytes(shm) {
            let need = u64::from(config.mem_mib) << 20;
            if free < need {
                return Err(Error::Unavailable(format!(
                    "{} MiB free in /dev/shm for {} MiB of guest RAM",
                    free >> 20,
                    config.mem_mib
                )));
            }
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
            let bin = crate::inguest::static_mapwalk()?;
            let path = dir.join("initramfs-mapwalk.cpio");
            crate::inguest::initramfs_with_mapwalk(&assets.initramfs, bin, &path)?;
            path
        } else {
            assets.initramfs.clone()
        };

        let mem = format!("{}M", config.mem_mib);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            &config.smp.to_string(),
            "-m",
            &mem,
        ]);
        if config.anonymous_ram {
            // QEMU's default: guest RAM is anonymous memory of the QEMU process.
            cmd.args(["-machine", "q35"]);
        } else {
            cmd.arg("-object")
                .arg(format!(
                    "memory-backend-file,id=mem,size={mem},mem-path={},share=on",
                    ram_path.display()
                ))
                .args(["-machine", "q35,memory-backend=mem"]);
        }
        cmd.arg("-kernel")
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
            .arg("-serial")
            .arg(format!("file:{}", dir.join("data.log").display()))
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("qmp.sock").display()
            ))
            // A second monitor for the tools under test (QEMU serves one client per
            // socket, and the driver keeps its own connection).
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.join("qmp-client.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let booted = boot(
            &mut cmd,
            &dir,
            &ram_path,
            ("qemu-system-x86_64", "qemu-system-x86"),
            "data.log",
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
            dir,
            ram_path,
            qemu: Mutex::new(qemu),
            guardian: Mutex::new(guardian),
            qmp: Mutex::new(qmp),
            report,
            boot_time,
        })
    }

    /// The configuration it was booted with.
    pub fn config(&self) -> &GuestConfig {
        &self.config
    }

    /// The kernel release `setup.sh` reported.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// What the guest reported about itself at boot.
    pub fn report(&self) -> &GuestReport {
        &self.report
    }

    /// The QEMU process's id (whose memory holds guest RAM when
    /// [`GuestConfig::anonymous_ram`] is set).
    pub fn qemu_pid(&self) -> u32 {
        self.qemu.lock().map_or(0, |c| c.id())
    }

    /// A QMP socket of QEMU's for the tools under test (the driver has its own).
    pub fn qmp_path(&self) -> PathBuf {
        self.dir.join("qmp-client.sock")
    }

    /// From QEMU's start to the guest's `MAPWALK-READY`.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The file that holds guest RAM: offset = guest physical address up to 2 GiB of
    /// RAM; see [`ram_layout`](Self::ram_layout) for larger guests.
    pub fn ram_path(&self) -> &Path {
        &self.ram_path
    }

    /// The guest's directory (logs, QMP socket), removed with the guest: a place for
    /// large temporary files such as ELF dumps.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs an HMP command without pausing the guest. Waits while another thread
    /// holds a [`Paused`] of this guest; never call it while this thread holds one (use
    /// [`Paused::qmp`] then).
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP fails.
    pub fn hmp(&self, command_line: &str) -> Result<String> {
        let mut qmp = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        qmp.hmp(command_line)
            .map_err(|e| failed(format!("QMP {command_line}: {e}")))
    }

    /// CR0/CR3/CR4 of the first vCPU, read while the guest runs (HMP `info
    /// registers`). Same caveat as [`hmp`](Self::hmp).
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP fails or the registers cannot be parsed.
    pub fn x86_regs(&self) -> Result<X86ControlRegs> {
        let text = self.hmp("info registers")?;
        X86ControlRegs::parse(&text)
            .ok_or_else(|| failed(format!("no CR0/CR3/CR4 in info registers:\n{text}")))
    }

    /// The guest's console output so far.
    pub fn console(&self) -> String {
        fs::read(self.dir.join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The guest's report as it is now: the sections written since boot, those written
    /// after `MAPWALK-READY` included.
    ///
    /// # Errors
    /// [`Error::Failed`] when the data port's file cannot be read or parsed.
    pub fn report_now(&self) -> Result<GuestReport> {
        let data =
            fs::read(self.dir.join("data.log")).map_err(|e| failed(format!("data.log: {e}")))?;
        GuestReport::parse(&String::from_utf8_lossy(&data))
    }

    /// Waits until the console has a line starting with `prefix` and returns it.
    ///
    /// # Errors
    /// [`Error::Failed`] after `timeout`.
    pub fn wait_console(&self, prefix: &str, timeout: Duration) -> Result<String> {
        let started = Instant::now();
        loop {
            if let Some(line) = self.console().lines().find(|l| l.starts_with(prefix)) {
                return Ok(line.to_string());
            }
            if started.elapsed() > timeout {
                return Err(failed(format!(
                    "no console line {prefix:?} after {:.0} s",
                    timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pauses the guest until the returned guard is dropped. Pauses of one guest are
    /// serialized: a second caller waits for the first guard.
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP `stop` fails.
    pub fn pause(&self) -> Result<Paused<'_>> {
        let mut qmp = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        qmp.stop().map_err(|e| failed(format!("QMP stop: {e}")))?;
        Ok(Paused { guest: self, qmp })
    }

    fn shutdown(&mut self) {
        let qemu = self.qemu.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = qemu.kill();
        let _ = qemu.wait();
        let _ = fs::remove_file(&self.ram_path);
        let _ = fs::remove_dir_all(&self.dir);
        let guardian = self.guardian.get_mut().unwrap_or_else(|e| e.into_inner());
        release_guardian(guardian.take());
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A paused guest: the vCPUs stand still until this is dropped (QMP `cont`).
#[derive(Debug)]
pub struct Paused<'a> {
    guest: &'a Guest,
    qmp: MutexGuard<'a, Qmp>,
}

impl Paused<'_> {
    /// The guest.
    pub fn guest(&self) -> &Guest {
        self.guest
    }

    /// The QMP connection, for other commands.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// CR0/CR3/CR4 of the first vCPU.
    ///
    /// # Errors
    /// [`Error::Failed`] when QMP fails or the registers cannot be parsed.
    pub fn x86_regs(&mut self) -> Result<X86ControlRegs> {
        let text = self
            .qmp
            .hmp("info registers")
            .map_err(|e| failed(format!("QMP info registers: {e}")))?;
        X86ControlRegs::parse(&text)
            .ok_or_else(|| failed(format!("no CR0/CR3/CR4 in info registers:\n{text}")))
    }

    /// A copy of guest RAM, taken while the guest stands still.
    ///
    /// # Errors
    /// [`Error::Failed`] when the file cannot be read.
    pub fn read_ram(&self) -> Result<Vec<u8>> {
        fs::read(&self.guest.ram_path)
            .map_err(|e| failed(format!("read {}: {e}", self.guest.ram_path.display())))
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.qmp.cont() {
            eprintln!(
                "e2e: QMP cont on guest {} failed: {e}",
                self.guest.config.name
            );
        }
    }
}

/// A QEMU that booted to its report.
pub(crate) struct Booted {
    pub(crate) qemu: Child,
    pub(crate) guardian: Option<(Child, ChildStdin)>,
    pub(crate) qmp: Qmp,
    pub(crate) report: GuestReport,
    pub(crate) boot_time: Duration,
}

/// Spawns `cmd` (QEMU `binary`, from Debian package `package`, its QMP socket
/// `qmp.sock` in `dir`), waits until the guest is ready, connects to QMP and parses
/// the guest's report from `report_file` in `dir`. On failure QEMU is killed and its
/// RAM file removed.
pub(crate) fn boot(
    cmd: &mut Command,
    dir: &Path,
    ram_path: &Path,
    (binary, package): (&str, &str),
    report_file: &str,
) -> Result<Booted> {
    let started = Instant::now();
    let qemu = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = fs::remove_dir_all(dir);
            return Err(Error::Unavailable(format!("{binary} (package {package})")));
        }
        Err(e) => return Err(failed(format!("spawn {binary}: {e}"))),
    };
    let guardian = spawn_guardian(qemu.id(), dir, ram_path);
    let mut parts = Parts {
        qemu: Some(qemu),
        guardian,
        ram_path: ram_path.to_path_buf(),
    };
    wait_ready(parts.qemu(), dir, started)?;
    let boot_time = started.elapsed();
    let qmp =
        Qmp::connect(dir.join("qmp.sock"), QMP_TIMEOUT).map_err(|e| failed(format!("QMP: {e}")))?;
    let data =
        fs::read(dir.join(report_file)).map_err(|e| failed(format!("{report_file}: {e}")))?;
    let report = GuestReport::parse(&String::from_utf8_lossy(&data))?;
    let (qemu, guardian) = parts.take();
    Ok(Booted {
        qemu,
        guardian,
        qmp,
        report,
        boot_time,
    })
}

/// A guest under construction: cleans up unless taken.
pub(crate) struct Parts {
    pub(crate) qemu: Option<Child>,
    pub(crate) guardian: Option<(Child, ChildStdin)>,
    pub(crate) ram_path: PathBuf,
}

impl Parts {
    pub(crate) fn qemu(&mut self) -> &mut Child {
        self.qemu.as_mut().unwrap_or_else(|| unreachable!("taken"))
    }

    pub(crate) fn take(&mut self) -> (Child, Option<(Child, ChildStdin)>) {
        let qemu = self
            .qemu
            .take()
            .unwrap_or_else(|| unreachable!("taken twice"));
        (qemu, self.guardian.take())
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        if let Some(mut q) = self.qemu.take() {
            let _ = q.kill();
            let _ = q.wait();
            let _ = fs::remove_file(&self.ram_path);
            // Keep the logs of a failed boot for a look; they are small.
            release_guardian(self.guardian.take());
        }
    }
}

/// Starts a shell that kills QEMU and removes the guest's files when its stdin reaches
/// end of file, that is when this process is gone. A line on stdin instead tells it
/// that the cleanup is done. Best effort: without `sh`, there is no guardian.
pub(crate) fn spawn_guardian(
    qemu_pid: u32,
    dir: &Path,
    ram_path: &Path,
) -> Option<(Child, ChildStdin)> {
    const SCRIPT: &str = r#"trap '' INT HUP TERM
if read -r _; then exit 0; fi
kill "$1" 2>/dev/null
i=0
# Until QEMU is gone or a zombie (nobody may reap it soon), at most 5 s.
alive() { s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${s%% *}" != Z ]; }
while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$1" 2>/dev/null
rm -rf "$2" "$3""#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "mapwalk-e2e-guardian", &qemu_pid.to_string()])
        .arg(dir)
        .arg(ram_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

pub(crate) fn release_guardian(guardian: Option<(Child, ChildStdin)>) {
    if let Some((mut child, mut stdin)) = guardian {
        let _ = stdin.write_all(b"done\n");
        drop(stdin);
        let _ = child.wait();
    }
}

/// Waits for `MAPWALK-READY` on the console.
/// How the error of a boot that did not announce [`READY`] in time starts.
pub(super) const BOOT_TIMED_OUT: &str = "no MAPWALK-READY";
/// How a failed boot starts when QEMU exited before the guest was ready (with
/// `-no-reboot`: the guest kernel crashed, or powered off).
pub(crate) const QEMU_EXITED: &str = "QEMU exited";

pub(crate) fn wait_ready(qemu: &mut Child, dir: &Path, started: Instant) -> Result<()> {
    let console_path = dir.join("console.log");
    loop {
        let console = fs::read(&console_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if console.lines().any(|l| l.trim_end() == READY) {
            return Ok(());
        }
        let why = if console.contains(GUEST_ERROR) {
            Some("the guest's /init reported an error".to_owned())
        } else if let Ok(Some(status)) = qemu.try_wait() {
            Some(format!("{QEMU_EXITED} ({status})"))
        } else if started.elapsed() > BOOT_TIMEOUT {
            Some(format!(
                "{BOOT_TIMED_OUT} within {} s",
                BOOT_TIMEOUT.as_secs()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let qemu_log = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
            return Err(failed(format!(
                "{why}\n--- console (last 3000 bytes) ---\n{}\n--- qemu ---\n{qemu_log}\n(logs in {})",
                tail(&console, 3000),
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Free bytes in the file system of `path`, by `df -Pk`; `None` when `df` fails.
/// (Guest RAM files are sparse: a full /dev/shm kills QEMU with `SIGBUS` mid-boot.)
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
