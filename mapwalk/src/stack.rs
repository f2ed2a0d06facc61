//! STACK_TRACE values decoded into frames, and kernel addresses named by symbol.
//!
//! A STACK_TRACE value, as a lookup (or the memory walk) returns it, is the stack's
//! frames and then zero padding up to `value_size`: u64 instruction pointers, or, for a
//! `BPF_F_STACK_BUILD_ID` map, 32-byte `struct bpf_stack_build_id` records (`status`,
//! a 20-byte build id, then the file offset or, without a build id, the address).
//! [`frames`] decodes one; [`KernelSymbolizer`] names an address `symbol+0xoff`, and
//! [`stack_json`] gives the extra fields docs/stack-trace.md describes.

use std::sync::Arc;

use mapwalk_core::bpf::{stack_frame_size, MapFlags};
use mapwalk_core::Kva;
use serde_json::{json, Value};

/// The largest distance from a symbol an address is named by it: past this, the
/// address is outside every known function (a module or BPF program whose symbols are
/// not in the table).
pub const MAX_SYMBOL_OFFSET: u64 = 1 << 20;

/// One frame of a stored stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// An instruction pointer.
    Ip(u64),
    /// A `struct bpf_stack_build_id`: `status` (0 empty, 1 valid, 2 the address
    /// only), the build id, and the offset in the file (or the address, status 2).
    BuildId {
        /// `bpf_stack_build_id.status`.
        status: i32,
        /// `bpf_stack_build_id.build_id`.
        build_id: [u8; 20],
        /// `bpf_stack_build_id.offset` or `.ip` (the same bytes).
        offset_or_ip: u64,
    },
}

/// The frames of `value` (a STACK_TRACE map's value with `map_flags`): the records up
/// to the zero padding. A plain stack ends at its first zero address; a build-id stack
/// at its first all-zero record (status 0, `BPF_STACK_BUILD_ID_EMPTY`, with nothing
/// else set). A trailing partial record is ignored.
#[must_use]
pub fn frames(value: &[u8], map_flags: MapFlags) -> Vec<Frame> {
    let size = usize::try_from(stack_frame_size(map_flags)).unwrap_or(8);
    let mut out = Vec::new();
    for rec in value.chunks_exact(size) {
        if rec.iter().all(|&b| b == 0) {
            break;
        }
        let u64_at = |at: usize| {
            rec.get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        if size == 8 {
            out.push(Frame::Ip(u64_at(0)));
        } else {
            let mut build_id = [0u8; 20];
            build_id.copy_from_slice(rec.get(4..24).unwrap_or(&[0; 20]));
            let status = rec
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, i32::from_le_bytes);
            out.push(Frame::BuildId {
                status,
                build_id,
                offset_or_ip: u64_at(24),
            });
        }
    }
    out
}

/// Kernel symbols sorted by address, to name the function an address falls in. The
/// names stay in one buffer (a symbol text's own bytes, or a copy of the names given),
/// so that a kernel's 100,000-odd symbols cost no allocation each.
#[derive(Debug, Clone, Default)]
pub struct KernelSymbolizer {
    /// (address, start of the name in `names`, its length), by address.
    by_addr: Vec<(u64, u32, u32)>,
    names: Arc<Vec<u8>>,
}

impl KernelSymbolizer {
    /// From `(name, address)` pairs (for instance
    /// [`Symbols::iter`](crate::describe::Symbols::iter)); zero addresses (hidden
    /// ones) are left out. Of several names at one address the smallest is kept.
    pub fn new<S: AsRef<str>>(symbols: impl IntoIterator<Item = (S, Kva)>) -> Self {
        let (mut names, mut by_addr) = (Vec::new(), Vec::new());
        for (name, addr) in symbols {
            let name = name.as_ref().as_bytes();
            let (Ok(start), Ok(len)) = (u32::try_from(names.len()), u32::try_from(name.len()))
            else {
                continue;
            };
            if addr.0 == 0 || start.checked_add(len).is_none() {
                continue;
            }
            names.extend_from_slice(name);
            by_addr.push((addr.0, start, len));
        }
        Self::sealed(by_addr, Arc::new(names))
    }

    /// Over `text`, each entry `(address, start, length)` naming a range of it (a
    /// symbol text's names read in place); ranges outside it name nothing.
    pub(crate) fn over_text(by_addr: Vec<(u64, u32, u32)>, text: Arc<Vec<u8>>) -> Self {
        Self::sealed(by_addr, text)
    }

    fn name_bytes(names: &[u8], (_, start, len): (u64, u32, u32)) -> &[u8] {
        let start = start as usize;
        names
            .get(start..start.saturating_add(len as usize))
            .unwrap_or_default()
    }

    /// Sorted by address (a text in address order, as `/proc/kallsyms` mostly is,
    /// sorts in one pass), the smallest name kept at each address.
    fn sealed(mut by_addr: Vec<(u64, u32, u32)>, names: Arc<Vec<u8>>) -> Self {
        by_addr.retain(|e| e.0 != 0);
        by_addr.sort_unstable_by(|&a, &b| {
            a.0.cmp(&b.0)
                .then_with(|| Self::name_bytes(&names, a).cmp(Self::name_bytes(&names, b)))
        });
        by_addr.dedup_by_key(|e| e.0);
        Self { by_addr, names }
    }

    /// Whether no symbol is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// The symbol `addr` falls in and the offset into it, when a symbol lies at most
    /// [`MAX_SYMBOL_OFFSET`] below it (and its name is UTF-8).
    #[must_use]
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.by_addr.partition_point(|&(a, ..)| a <= addr);
        let e = *self.by_addr.get(i.checked_sub(1)?)?;
        let off = addr - e.0;
        let name = std::str::from_utf8(Self::name_bytes(&self.names, e)).ok()?;
        (off <= MAX_SYMBOL_OFFSET && !name.is_empty()).then_some((name, off))
    }

    /// `symbol+0xoff` for `addr`, or `None` (see [`lookup`](Self::lookup)).
    #[must_use]
    pub fn name(&self, addr: u64) -> Option<String> {
        self.lookup(addr)
            .map(|(name, off)| format!("{name}+{off:#x}"))
    }
}

/// The extra fields of one stack's dump entry (docs/stack-trace.md): `"frames"`, each
/// frame's address as a `"0x..."` string with its `"symbol"` (`symbol+0xoff`, or null
/// when no symbol is known), or, for a build-id stack, each record's `"status"`,
/// `"build_id"` (hex) and `"offset"`.
#[must_use]
pub fn stack_json(value: &[u8], map_flags: MapFlags, syms: Option<&KernelSymbolizer>) -> Value {
    let list: Vec<Value> = frames(value, map_flags)
        .into_iter()
        .map(|f| match f {
            Frame::Ip(ip) => json!({
                "ip": format!("{ip:#x}"),
                "symbol": syms.and_then(|s| s.name(ip)),
            }),
            Frame::BuildId {
                status,
                build_id,
                offset_or_ip,
            } => json!({
                "status": status,
                "build_id": build_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "offset": format!("{offset_or_ip:#x}"),
            }),
        })
        .collect();
    json!({ "frames": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(ips: &[u64], size: usize) -> Vec<u8> {
        let mut v: Vec<u8> = ips.iter().flat_map(|i| i.to_le_bytes()).collect();
        v.resize(size, 0);
        v
    }

    fn syms() -> KernelSymbolizer {
        KernelSymbolizer::new([
            ("do_syscall_64".to_owned(), Kva(0xffff_ffff_81a0_0000)),
            ("entry_SYSCALL_64".to_owned(), Kva(0xffff_ffff_81c0_0000)),
            ("hidden".to_owned(), Kva(0)),
        ])
    }

    #[test]
    fn frames_end_at_the_padding() {
        let v = value(&[0x10, 0x20], 40);
        assert_eq!(
            frames(&v, MapFlags::empty()),
            [Frame::Ip(0x10), Frame::Ip(0x20)]
        );
        assert!(frames(&[0; 16], MapFlags::empty()).is_empty());
    }

    #[test]
    fn build_id_records_decode() {
        let mut rec = vec![0u8; 64];
        rec[0] = 1;
        rec[4..24].copy_from_slice(&[0xab; 20]);
        rec[24..32].copy_from_slice(&0x4321u64.to_le_bytes());
        let got = frames(&rec, MapFlags::STACK_BUILD_ID);
        assert_eq!(
            got,
            [Frame::BuildId {
                status: 1,
                build_id: [0xab; 20],
                offset_or_ip: 0x4321
            }]
        );
        let j = stack_json(&rec, MapFlags::STACK_BUILD_ID, None);
        assert_eq!(j["frames"][0]["build_id"], "ab".repeat(20));
        assert_eq!(j["frames"][0]["offset"], "0x4321");
    }

    #[test]
    fn addresses_are_named_within_reach_of_a_symbol() {
        let s = syms();
        assert_eq!(
            s.name(0xffff_ffff_81a0_0042).as_deref(),
            Some("do_syscall_64+0x42")
        );
        assert_eq!(
            s.name(0xffff_ffff_81c0_0000).as_deref(),
            Some("entry_SYSCALL_64+0x0")
        );
        // Below every symbol, and past MAX_SYMBOL_OFFSET of the last one.
        assert_eq!(s.name(0x1000), None);
        assert_eq!(
            s.name(0xffff_ffff_81c0_0000 + MAX_SYMBOL_OFFSET),
            Some("entry_SYSCALL_64+0x100000".into())
        );
        assert_eq!(s.name(0xffff_ffff_81c0_0001 + MAX_SYMBOL_OFFSET), None);
        let j = stack_json(
            &value(&[0xffff_ffff_81a0_0010, 0x1000], 24),
            MapFlags::empty(),
            Some(&s),
        );
        assert_eq!(j["frames"][0]["symbol"], "do_syscall_64+0x10");
        assert_eq!(j["frames"][0]["ip"], "0xffffffff81a00010");
        assert_eq!(j["frames"][1]["symbol"], Value::Null);
    }
}
