//! Where guest RAM lies in QEMU's RAM file, and ELF dumps of guest memory, through QMP.

use crate::{failed, Guest, Paused, Result};
use mapwalk::text::parse_hex;
use mapwalk_core::Pa;
use mapwalk_file::{Layout, LayoutRange};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The memory backend's id on QEMU's command line, which is also the name of its
/// memory region in `info mtree`.
pub(crate) const RAM_BACKEND: &str = "mem";

/// How long `dump-guest-memory` may take (a 3 GiB guest on a loaded machine).
const DUMP_TIMEOUT: Duration = Duration::from_secs(300);

/// The guest-RAM part of HMP `info mtree -f`: the flat view of address space `memory`,
/// its ranges backed by the memory region `region` (type `ram` or `rom`), as a
/// [`Layout`] of the backend's file (`@offset` in the region is the file offset).
/// Adjacent pieces contiguous in both address and offset are merged.
///
/// # Errors
/// [`super::Error::Failed`] without such a view or ranges, or for ranges
/// [`Layout::new`] rejects.
pub fn parse_mtree_layout(mtree: &str, region: &str) -> Result<Layout> {
    let mut in_memory = false;
    let mut seen_memory = false;
    let mut ranges: Vec<LayoutRange> = Vec::new();
    for line in mtree.lines() {
        let t = line.trim();
        if t.starts_with("FlatView #") {
            in_memory = false;
            continue;
        }
        if t.starts_with("AS \"memory\"") {
            in_memory = !seen_memory;
            seen_memory = true;
            continue;
        }
        if !in_memory {
            continue;
        }
        // `0000000000100000-000000007fffffff (prio 0, ram): mem @0000000000100000 KVM`
        let Some((span, rest)) = t.split_once(' ') else {
            continue;
        };
        let Some((lo, hi)) = span.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (parse_hex(lo), parse_hex(hi)) else {
            continue;
        };
        let Some((attrs, what)) = rest.split_once("): ") else {
            continue;
        };
        let kind = attrs.rsplit(", ").next().unwrap_or("");
        if kind != "ram" && kind != "rom" {
            continue;
        }
        let mut words = what.split_whitespace();
        if words.next() != Some(region) {
            continue;
        }
        let offset = match words.next().and_then(|w| w.strip_prefix('@')) {
            Some(off) => parse_hex(off)
                .map_err(|_| failed(format!("info mtree -f: bad offset in {line:?}")))?,
            None => 0,
        };
        if hi < lo {
            return Err(failed(format!("info mtree -f: bad range in {line:?}")));
        }
        let len = hi - lo + 1;
        match ranges.last_mut() {
            Some(last) if last.gpa.0 + last.len == lo && last.offset + last.len == offset => {
                last.len += len;
            }
            _ => ranges.push(LayoutRange {
                gpa: Pa(lo),
                offset,
                len,
            }),
        }
    }
    if ranges.is_empty() {
        return Err(failed(format!(
            "info mtree -f: no range of region {region:?} in address space \"memory\":\n{mtree}"
        )));
    }
    Layout::new(ranges).map_err(|e| failed(format!("info mtree -f: {e}:\n{mtree}")))
}

impl Guest {
    /// Where guest RAM lies in [`ram_path`](Self::ram_path), from HMP `info mtree -f`
    /// (with more than about 2.75 GiB on q35, RAM past 2 GiB is at 4 GiB and up).
    /// Waits while another thread holds a [`Paused`] of this guest.
    ///
    /// # Errors
    /// [`super::Error::Failed`] when QMP fails or the output has no RAM ranges.
    pub fn ram_layout(&self) -> Result<Layout> {
        parse_mtree_layout(&self.hmp("info mtree -f")?, RAM_BACKEND)
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
        let protocol = format!("file:{}", path.display());
        let qmp = self.qmp();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtree_layout_of_a_3g_q35_guest() {
        let text = "FlatView #0\n AS \"I/O\", root: io\n Root memory region: io\n  \
            0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\n\
            FlatView #1\n AS \"memory\", root: system\n AS \"cpu-memory-0\", root: system\n \
            Root memory region: system\n  \
            0000000000000000-000000000009ffff (prio 0, ram): mem\n  \
            00000000000a0000-00000000000bffff (prio 1, i/o): smram-low\n  \
            00000000000c0000-00000000000dffff (prio 1, rom): mem @00000000000c0000\n  \
            00000000000e0000-00000000000fffff (prio 1, ram): mem @00000000000e0000\n  \
            0000000000100000-000000007fffffff (prio 0, ram): mem @0000000000100000\n  \
            00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n  \
            0000000100000000-000000013fffffff (prio 0, ram): mem @0000000080000000\n\
            FlatView #2\n AS \"memory\", root: system\n  \
            0000000200000000-000000020fffffff (prio 0, ram): mem @0000000000000000\n";
        let layout = parse_mtree_layout(text, "mem").unwrap();
        let got: Vec<(u64, u64, u64)> = layout
            .ranges()
            .iter()
            .map(|r| (r.gpa.0, r.offset, r.len))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, 0xa0000),
                (0xc0000, 0xc0000, 0x8000_0000 - 0xc0000),
                (0x1_0000_0000, 0x8000_0000, 0x4000_0000),
            ]
        );
        assert!(parse_mtree_layout(text, "nothing").is_err());
    }
}
