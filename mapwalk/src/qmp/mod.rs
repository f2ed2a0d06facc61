//! A small synchronous client for QEMU's machine protocol (QMP) over a Unix socket.
//!
//! ```no_run
//! use mapwalk::qmp::{Qmp, X86ControlRegs};
//! use std::time::Duration;
//!
//! let mut qmp = Qmp::connect("/tmp/vm/qmp.sock", Duration::from_secs(10))?;
//! qmp.stop()?;
//! let regs = X86ControlRegs::parse(&qmp.hmp("info registers")?).unwrap();
//! println!("CR3={:#x} 5-level={}", regs.cr3, regs.la57());
//! qmp.cont()?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod mtree;

use mapwalk_file::Layout;
use mapwalk_kvm::ProcessRegion;
use serde_json::{json, Value};
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A QMP connection in command mode (capabilities negotiated).
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Whether the last [`mapwalk_kvm::Pause::pause`] stopped a running guest (and so
    /// its `resume` lets it run again).
    stopped_it: bool,
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Qmp {
    /// Connects to the QMP socket at `path`, retrying until `timeout` while QEMU has not
    /// created it yet, reads the greeting and leaves capabilities negotiation. Every
    /// later reply is awaited for at most `timeout` too.
    ///
    /// # Errors
    /// The last connection error once `timeout` has passed, or a protocol error.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> io::Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path.as_ref()) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
            stopped_it: false,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(bad_data(format!("QMP: unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QMP: connection closed",
            ));
        }
        serde_json::from_str(&line).map_err(|e| bad_data(format!("QMP: bad JSON {line:?}: {e}")))
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    /// Asynchronous events that arrive before the reply are dropped.
    ///
    /// # Errors
    /// An I/O error, or [`io::ErrorKind::Other`] carrying QEMU's error class and
    /// description.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> io::Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let mut reply = self.read_message()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get_mut("return") {
                return Ok(ret.take());
            }
            if let Some(err) = reply.get("error") {
                let class = err.get("class").and_then(Value::as_str).unwrap_or("?");
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("?");
                return Err(io::Error::other(format!("QMP {command}: {class}: {desc}")));
            }
            return Err(bad_data(format!("QMP {command}: unexpected reply {reply}")));
        }
    }

    /// Runs a human-monitor (HMP) command such as `info registers` and returns its text.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn hmp(&mut self, command_line: &str) -> io::Result<String> {
        let out = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )?;
        out.as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad_data(format!("QMP human-monitor-command: not a string: {out}")))
    }

    /// Pauses every vCPU.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn stop(&mut self) -> io::Result<()> {
        self.execute("stop", None).map(drop)
    }

    /// Resumes the vCPUs.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn cont(&mut self) -> io::Result<()> {
        self.execute("cont", None).map(drop)
    }

    /// The host virtual address, in QEMU's process, of guest-physical `gpa` (HMP
    /// `gpa2hva`, which prints `Host virtual address for 0x1000 (pc.ram) is 0x7f..`).
    ///
    /// # Errors
    /// As [`execute`](Self::execute); invalid data when QEMU says the address is not
    /// RAM.
    pub fn gpa2hva(&mut self, gpa: u64) -> io::Result<u64> {
        let out = self.hmp(&format!("gpa2hva {gpa:#x}"))?;
        out.trim()
            .rsplit_once(" is ")
            .and_then(|(_, hva)| crate::text::parse_hex(hva.trim()).ok())
            .ok_or_else(|| bad_data(format!("gpa2hva {gpa:#x}: {}", out.trim())))
    }

    /// Where the guest's main RAM lies in QEMU's own address space, for reading a
    /// running QEMU from outside ([`mapwalk_kvm::ProcessRam`]): the ranges of the
    /// region that backs the most RAM (`info mtree -f`), each with the host address
    /// of its start (`gpa2hva`). A range is contiguous in QEMU's mapping of its region,
    /// so one address per range is enough; each is checked against the region's
    /// offsets (two ranges of one region must be as far apart in QEMU as in the
    /// region).
    ///
    /// # Errors
    /// As [`execute`](Self::execute); invalid data for an unreadable memory tree or
    /// host addresses that do not agree with it.
    pub fn process_regions(&mut self) -> io::Result<Vec<ProcessRegion>> {
        let text = self.hmp("info mtree -f")?;
        let region = mtree::main_ram_region(&text).map_err(|e| bad_data(e.to_string()))?;
        let layout = mtree::ram_layout(&text, &region).map_err(|e| bad_data(e.to_string()))?;
        let mut out: Vec<ProcessRegion> = Vec::with_capacity(layout.ranges().len());
        let mut base: Option<u64> = None;
        for r in layout.ranges() {
            let hva = self.gpa2hva(r.gpa.0)?;
            // The region's host mapping starts at `hva - offset`, the same for all.
            let start = hva.checked_sub(r.offset).ok_or_else(|| {
                bad_data(format!(
                    "gpa2hva {:#x} = {hva:#x} is below its region",
                    r.gpa.0
                ))
            })?;
            if base.is_some_and(|b| b != start) {
                return Err(bad_data(format!(
                    "gpa2hva {:#x} = {hva:#x} does not agree with the region {region}'s \
                     other ranges",
                    r.gpa.0
                )));
            }
            base = Some(start);
            out.push(ProcessRegion {
                gpa: r.gpa.0,
                hva,
                len: r.len,
            });
        }
        Ok(out)
    }

    /// Where guest RAM lies in the RAM file at `path`: the guest's main RAM region must
    /// be a `memory-backend-file` whose `mem-path` is that file (else an error naming
    /// both), and its flat view (`info mtree -f`) gives the [`Layout`] of the file.
    ///
    /// # Errors
    /// As [`execute`](Self::execute); invalid data when the main RAM is not that file's
    /// backend or the memory tree cannot be read.
    pub fn ram_file_layout(&mut self, path: &Path) -> io::Result<Layout> {
        let text = self.hmp("info mtree -f")?;
        let region = mtree::main_ram_region(&text).map_err(|e| bad_data(e.to_string()))?;
        let mem_path = self
            .execute(
                "qom-get",
                Some(json!({ "path": format!("/objects/{region}"), "property": "mem-path" })),
            )
            .map_err(|e| {
                bad_data(format!(
                    "the guest's main RAM region {region:?} is not a memory-backend-file ({e})"
                ))
            })?;
        let mem_path = mem_path
            .as_str()
            .ok_or_else(|| bad_data(format!("qom-get mem-path: not a string: {mem_path}")))?;
        let same = match (fs::canonicalize(mem_path), fs::canonicalize(path)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(bad_data(format!(
                "this QEMU's guest RAM is {mem_path}, not {}",
                path.display()
            )));
        }
        mtree::ram_layout(&text, &region).map_err(|e| bad_data(e.to_string()))
    }

    /// Whether the guest is running (`query-status`).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn running(&mut self) -> io::Result<bool> {
        let status = self.execute("query-status", None)?;
        status
            .get("running")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad_data(format!("QMP query-status: no 'running' in {status}")))
    }
}

/// QEMU's vCPUs paused and resumed through QMP (`stop` / `cont`), for
/// [`mapwalk_kvm::with_paused`]. A guest found paused (by its user, a debugger, another
/// tool) is left paused: `pause` does not stop it and `resume` does not start it.
impl mapwalk_kvm::Pause for Qmp {
    type Error = io::Error;

    fn pause(&mut self) -> io::Result<()> {
        self.stopped_it = false;
        if self.running()? {
            self.stop()?;
            self.stopped_it = true;
        }
        Ok(())
    }

    fn resume(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.stopped_it) {
            self.cont()?;
        }
        Ok(())
    }
}

/// The x86 control registers of one vCPU, from HMP `info registers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86ControlRegs {
    /// CR0.
    pub cr0: u64,
    /// CR3: the page-table root (with PCID bits).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
}

/// CR4.LA57: 5-level paging is on.
pub const CR4_LA57: u64 = 1 << 12;

impl X86ControlRegs {
    /// Reads `CR0=`, `CR3=` and `CR4=` from the first vCPU in `info registers` output.
    /// `None` when one is missing or not hexadecimal.
    pub fn parse(info_registers: &str) -> Option<Self> {
        let reg = |name: &str| -> Option<u64> {
            let key = format!("{name}=");
            let at = info_registers
                .match_indices(&key)
                .map(|(i, _)| i)
                // `CR3=` must not match inside a longer name.
                .find(|&i| i == 0 || !info_registers.as_bytes()[i - 1].is_ascii_alphanumeric())?;
            let rest = &info_registers[at + key.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len());
            crate::text::parse_hex(&rest[..end]).ok()
        };
        Some(Self {
            cr0: reg("CR0")?,
            cr3: reg("CR3")?,
            cr4: reg("CR4")?,
        })
    }

    /// Whether 5-level paging is on (CR4.LA57).
    pub fn la57(&self) -> bool {
        self.cr4 & CR4_LA57 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QMP server on a socket in a fresh directory: it greets, then answers each
    /// command from a guest whose vCPUs start `running`, logging the commands.
    fn fake_qmp(running: bool) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<String>>) {
        let dir = std::env::temp_dir().join(format!(
            "mapwalk-qmp-{}-{}",
            std::process::id(),
            u8::from(running)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            writeln!(out, r#"{{"QMP":{{"version":{{}},"capabilities":[]}}}}"#).unwrap();
            let (mut running, mut log) = (running, Vec::new());
            for line in BufReader::new(stream).lines() {
                let msg: Value = serde_json::from_str(&line.unwrap()).unwrap();
                let cmd = msg["execute"].as_str().unwrap().to_owned();
                let ret = match cmd.as_str() {
                    "query-status" => json!({ "running": running }),
                    "stop" => {
                        running = false;
                        json!({})
                    }
                    "cont" => {
                        running = true;
                        json!({})
                    }
                    _ => json!({}),
                };
                writeln!(out, "{}", json!({ "return": ret })).unwrap();
                log.push(cmd);
            }
            let _ = fs::remove_dir_all(&dir);
            log
        });
        (path, server)
    }

    #[test]
    fn a_paused_guest_is_left_paused_and_a_running_one_runs_again() {
        use mapwalk_kvm::with_paused;
        for running in [true, false] {
            let (path, server) = fake_qmp(running);
            let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
            let seen = with_paused(&mut q, |q| q.running().unwrap()).unwrap();
            assert!(!seen, "paused while read");
            assert_eq!(q.running().unwrap(), running, "as it was found");
            drop(q);
            let log = server.join().unwrap();
            let want: &[&str] = if running {
                &[
                    "qmp_capabilities",
                    "query-status",
                    "stop",
                    "query-status",
                    "cont",
                    "query-status",
                ]
            } else {
                &[
                    "qmp_capabilities",
                    "query-status",
                    "query-status",
                    "query-status",
                ]
            };
            assert_eq!(log, want, "running {running}");
        }
    }

    #[test]
    fn parses_control_registers() {
        let text = "CPU#0\n\
            RAX=000000000001ad40 RBX=0000000000000000 RCX=0000000000000001\n\
            GS =0000 ff48f6f79f200000 00000000 00000000\n\
            CR0=80050033 CR2=ff48f6f790801000 CR3=000000000fa10000 CR4=00751eb0\n\
            DR0=0000000000000000\n\
            CPU#1\n\
            CR0=80050033 CR2=0000000000000000 CR3=0000000000aaa000 CR4=00750eb0\n";
        let r = X86ControlRegs::parse(text).unwrap();
        assert_eq!(
            (r.cr0, r.cr3, r.cr4),
            (0x8005_0033, 0x0fa1_0000, 0x0075_1eb0)
        );
        assert!(r.la57());
        let r = X86ControlRegs::parse("CR0=1 XCR3=5 CR3=2000 CR4=0").unwrap();
        assert_eq!(r.cr3, 0x2000);
        assert!(!r.la57());
        assert_eq!(X86ControlRegs::parse("CR0=1 CR3=zz CR4=0"), None);
        assert_eq!(X86ControlRegs::parse("CR0=1 CR4=0"), None);
    }
}
