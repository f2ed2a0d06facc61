//! Where guest RAM lies in QEMU's RAM file, and ELF dumps of guest memory, through QMP.

use crate::{failed, Guest, Paused, Result};
use mapwalk_file::Layout;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The memory backend's id on QEMU's command line, which is also the name of its
/// memory region in `info mtree`.
pub(crate) const RAM_BACKEND: &str = "mem";

/// How long `dump-guest-memory` may take (a 3 GiB guest on a loaded machine).
const DUMP_TIMEOUT: Duration = Duration::from_secs(300);

impl Guest {
    /// Where guest RAM lies in [`ram_path`](Self::ram_path), from HMP `info mtree -f`
    /// (with more than about 2.75 GiB on q35, RAM past 2 GiB is at 4 GiB and up).
    /// Waits while another thread holds a [`Paused`] of this guest.
    ///
    /// # Errors
    /// [`super::Error::Failed`] when QMP fails or the output has no RAM ranges.
    pub fn ram_layout(&self) -> Result<Layout> {
        mapwalk::qmp::mtree::ram_layout(&self.hmp("info mtree -f")?, RAM_BACKEND).map_err(failed)
    }
}

impl Paused<'_> {
    /// Writes an ELF core of guest memory to `path` with QMP `dump-guest-memory`
    /// (`paging: false`, format `elf`) and waits until QEMU has finished it.
    ///
    /// # Errors
    /// [`super::Error::Failed`] when QEMU refuses, reports the dump failed, or takes
    /// too long.
    pub fn dump_guest_memory(&mut self, path: &Path) -> Result<()> {
        dump_guest_memory(self.qmp(), path)
    }
}

/// QMP `dump-guest-memory` of a stopped guest to `path` (`paging: false`, ELF), waited
/// for.
///
/// # Errors
/// As [`Paused::dump_guest_memory`].
pub(crate) fn dump_guest_memory(qmp: &mut mapwalk::qmp::Qmp, path: &Path) -> Result<()> {
    let protocol = format!("file:{}", path.display());
    qmp.execute(
        "dump-guest-memory",
        Some(json!({
            "paging": false,
            "protocol": protocol,
            "format": "elf",
            "detach": true,
        })),
    )
    .map_err(|e| failed(format!("QMP dump-guest-memory: {e}")))?;
    let started = Instant::now();
    loop {
        let status = qmp
            .execute("query-dump", None)
            .map_err(|e| failed(format!("QMP query-dump: {e}")))?;
        match status.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("active") if started.elapsed() < DUMP_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(failed(format!(
                    "dump-guest-memory to {}: {status} after {:.1} s",
                    path.display(),
                    started.elapsed().as_secs_f64()
                )))
            }
        }
    }
}
