//! A minimal client of QEMU's gdbstub (the GDB remote serial protocol over a Unix
//! socket), to read one register of a vCPU by name: an arm64 guest's `TTBR1_EL1`, which
//! no QMP or HMP command shows under TCG. The register's number comes from the target
//! description QEMU serves (`qXfer:features:read`, the `system-registers.xml` it
//! generates names every system register with its `regnum`).
//!
//! Connecting stops the guest; [`read_register`] detaches before it returns, which lets
//! the guest run again.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Error, Result};

fn failed(what: String) -> Error {
    Error::Failed(format!("gdbstub: {what}"))
}

/// Most bytes a reply may have (the target descriptions are some 100 KB).
const MAX_REPLY: usize = 1 << 20;
/// Most `qXfer` chunks one description may take.
const MAX_CHUNKS: usize = 256;

struct Gdb {
    stream: UnixStream,
}

impl Gdb {
    fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(failed(format!("{}: {e}", path.display())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self { stream })
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.stream
            .read_exact(&mut b)
            .map_err(|e| failed(format!("read: {e}")))?;
        Ok(b[0])
    }

    /// Sends `$data#cs` and returns the reply's payload (escapes undone), acking it.
    fn ask(&mut self, data: &str) -> Result<Vec<u8>> {
        let sum = data.bytes().fold(0u8, u8::wrapping_add);
        let packet = format!("${data}#{sum:02x}");
        self.stream
            .write_all(packet.as_bytes())
            .map_err(|e| failed(format!("write: {e}")))?;
        // Acks (`+`) and anything else before the reply's `$`.
        while self.byte()? != b'$' {}
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                b'#' => break,
                b'}' => out.push(self.byte()? ^ 0x20),
                b => out.push(b),
            }
            if out.len() > MAX_REPLY {
                return Err(failed(format!("a reply to {data} over {MAX_REPLY} bytes")));
            }
        }
        // The checksum's two digits, then our ack.
        self.byte()?;
        self.byte()?;
        self.stream
            .write_all(b"+")
            .map_err(|e| failed(format!("write: {e}")))?;
        Ok(out)
    }

    /// The whole target-description document `name`, read in chunks.
    fn document(&mut self, name: &str) -> Result<String> {
        let mut doc = Vec::new();
        for _ in 0..MAX_CHUNKS {
            let reply = self.ask(&format!("qXfer:features:read:{name}:{:x},ffff", doc.len()))?;
            let (&kind, rest) = reply
                .split_first()
                .ok_or_else(|| failed(format!("{name}: an empty reply")))?;
            doc.extend_from_slice(rest);
            match kind {
                b'l' => return String::from_utf8(doc).map_err(|e| failed(e.to_string())),
                b'm' => {}
                _ => {
                    return Err(failed(format!(
                        "{name}: {}",
                        String::from_utf8_lossy(&reply)
                    )))
                }
            }
        }
        Err(failed(format!("{name}: more than {MAX_CHUNKS} chunks")))
    }
}

/// The value of `attr="..."` in `tag`.
fn attr<'t>(tag: &'t str, attr: &str) -> Option<&'t str> {
    let at = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// The `regnum` of register `name` in the description `doc`, if it names it.
fn regnum(doc: &str, name: &str) -> Option<u32> {
    doc.split("<reg ")
        .skip(1)
        .map(|t| &t[..t.find("/>").unwrap_or(t.len())])
        .find(|t| attr(&format!(" {t}"), "name") == Some(name))
        .and_then(|t| attr(&format!(" {t}"), "regnum")?.parse().ok())
}

/// Reads register `name` of the first vCPU through the gdbstub at `path`, then
/// detaches (the guest runs again).
///
/// # Errors
/// [`Error::Failed`] when the stub cannot be reached, does not describe the register,
/// or answers otherwise than the protocol says.
pub fn read_register(path: &Path, name: &str) -> Result<u64> {
    let mut gdb = Gdb::connect(path, Duration::from_secs(30))?;
    gdb.ask("qSupported:multiprocess+;xmlRegisters=aarch64")?;
    let target = gdb.document("target.xml")?;
    let mut docs = vec![target.clone()];
    for include in target.split("<xi:include ").skip(1) {
        if let Some(href) = attr(&format!(" {include}"), "href") {
            docs.push(gdb.document(href)?);
        }
    }
    let n = docs
        .iter()
        .find_map(|d| regnum(d, name))
        .ok_or_else(|| failed(format!("no register {name} in the target description")))?;
    let reply = gdb.ask(&format!("p{n:x}"))?;
    let _ = gdb.ask("D");
    let hex = std::str::from_utf8(&reply).map_err(|e| failed(e.to_string()))?;
    if hex.len() != 16 {
        return Err(failed(format!("p{n:x} ({name}): {hex:?}")));
    }
    // The target's byte order: little-endian.
    let bytes = (0..8)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|e| failed(format!("p{n:x}: {e}")))?;
    Ok(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_found_by_name() {
        let doc = r#"<feature name="org.qemu.gdb.arm.sys.regs">
            <reg name="TTBR0_EL1" bitsize="64" regnum="120" group="cp_regs"/>
            <reg name="TTBR1_EL1" bitsize="64" regnum="121" group="cp_regs"/>
            </feature>"#;
        assert_eq!(regnum(doc, "TTBR1_EL1"), Some(121));
        assert_eq!(regnum(doc, "TTBR0_EL1"), Some(120));
        assert_eq!(regnum(doc, "TTBR1"), None);
        assert_eq!(
            attr(r#" <xi:include href="a.xml"/>"#, "href"),
            Some("a.xml")
        );
    }
}
