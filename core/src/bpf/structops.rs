//! STRUCT_OPS maps: the registered struct, as a lookup returns it, and the programs
//! behind its function pointers.
//!
//! `struct bpf_struct_ops_map` (which embeds `struct bpf_map`) keeps two copies of the
//! value type `struct bpf_struct_ops_<name>` (a `bpf_struct_ops_common_value` — or, on
//! 6.1, its two members inline — then `data`, the struct itself): `kvalue`, embedded,
//! the struct the kernel registered (trampoline addresses in its function-pointer
//! slots), and `*uvalue`, what user space wrote with the program ids the kernel put in
//! those slots. For key 0 the kernel's `bpf_struct_ops_map_sys_lookup_elem` returns
//! zeros while `kvalue`'s state is INIT, otherwise `uvalue` with `kvalue`'s state and a
//! reference count: `kvalue.refcnt` before Linux 6.4, `bpf_map.refcnt -
//! bpf_map.usercnt` (at least 0) after, and in stable kernels that took that change
//! (Debian's 6.1.192 did; its BTF looks like 6.1's). A registered struct's own
//! `kvalue.refcnt` is at least 1 where the kernel still keeps it, so a 0 there says
//! the kernel reports the map's. [`Bpf::struct_ops_value`] builds those bytes.
//! `links[]` holds one `struct bpf_link` per attached program, in member order (on 6.1
//! at the member's index, packed from 6.9); each leads to its `struct bpf_prog`
//! ([`Bpf::for_each_struct_ops_prog`]).

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{MapInfo, MapName, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::{BPF_OBJ_NAME_LEN, MAX_STRUCT_OPS_FUNCS};
use crate::mem::len_u64;
use crate::Bpf;

/// `BPF_STRUCT_OPS_STATE_INIT`: nothing registered (a lookup returns zeros).
pub const STRUCT_OPS_STATE_INIT: u32 = 0;
/// `BPF_STRUCT_OPS_STATE_INUSE`: registered with its subsystem.
pub const STRUCT_OPS_STATE_INUSE: u32 = 1;
/// `BPF_STRUCT_OPS_STATE_TOBEFREE`: being unregistered.
pub const STRUCT_OPS_STATE_TOBEFREE: u32 = 2;
/// `BPF_STRUCT_OPS_STATE_READY` (Linux 6.4+): filled for a `BPF_F_LINK` map, waiting
/// for (or held by) a link.
pub const STRUCT_OPS_STATE_READY: u32 = 3;

/// What [`Bpf::struct_ops_value`] read besides the value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructOpsState {
    /// `kvalue`'s state (one of the `STRUCT_OPS_STATE_*` constants).
    pub state: u32,
    /// The reference count the lookup reports (0 in state INIT).
    pub refcnt: u32,
}

/// One program behind a STRUCT_OPS map's function pointers
/// ([`Bpf::for_each_struct_ops_prog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructOpsProg {
    /// Its index in `links[]`: the struct member's index where `links[]` is indexed by
    /// member (no `funcs_cnt`: 6.1), else its place among the function pointers that
    /// have a program (6.9+).
    pub index: u32,
    /// The `struct bpf_prog`.
    pub kva: Kva,
    /// `bpf_prog_aux.id`.
    pub id: u32,
    /// `bpf_prog_aux.name`.
    pub name: MapName,
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

/// A pointer that must point into the kernel's upper half, 8-byte aligned.
fn kernel_ptr(what: &'static str, at: Kva, value: u64) -> Result<Kva> {
    if value & 7 != 0 || value >> 63 == 0 {
        return Err(Error::Corrupt { what, at, value });
    }
    Ok(Kva(value))
}

/// Writes `v` at `off` of `value` (4 bytes, little-endian), or says the field lies past
/// `value_size`.
fn put_u32(value: &mut [u8], off: u32, v: u32, what: &'static str, at: Kva) -> Result<()> {
    let start = usize::try_from(off).map_err(|_| Error::Corrupt {
        what,
        at,
        value: u64::from(off),
    })?;
    let slot = start
        .checked_add(4)
        .and_then(|end| value.get_mut(start..end))
        .ok_or(Error::Corrupt {
            what,
            at,
            value: u64::from(off),
        })?;
    slot.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    fn struct_ops_checked(&self, map: &MapInfo, op: &'static str) -> Result<()> {
        if map.map_type != MapType::STRUCT_OPS {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op,
            });
        }
        if map.key_size != 4 || map.max_entries != 1 {
            return Err(Error::Corrupt {
                what: "struct_ops map key_size or max_entries (not 4 and 1)",
                at: map.kva,
                value: u64::from(map.key_size) << 32 | u64::from(map.max_entries),
            });
        }
        Ok(())
    }

    /// Reads the value of STRUCT_OPS `map`'s one key (0) into `value` (the caller's
    /// buffer of `value_size` bytes) as `BPF_MAP_LOOKUP_ELEM` returns it: zeros in state
    /// INIT, else `uvalue` (program ids in the function-pointer slots) with `kvalue`'s
    /// state and the reference count written in.
    ///
    /// # Errors
    /// [`Error::WrongMapType`]; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::struct_ops`]; [`Error::BufferSize`];
    /// [`Error::Corrupt`] for a key size or `max_entries` other than 4 and 1, a state
    /// above READY, a `uvalue` that is not a kernel pointer, or a state or refcnt field
    /// past `value_size`; a read error.
    pub fn struct_ops_value(&self, map: &MapInfo, value: &mut [u8]) -> Result<StructOpsState> {
        self.struct_ops_checked(map, "struct_ops value")?;
        let l = self.layout.struct_ops.ok_or(Error::LayoutMissing {
            what: "bpf_struct_ops_map",
        })?;
        if u64::from(map.value_size) != len_u64(value.len()) {
            return Err(Error::BufferSize {
                need: u64::from(map.value_size),
                have: len_u64(value.len()),
            });
        }
        let kvalue = field(map.kva, l.kvalue)?;
        let state_at = field(kvalue, l.value_state)?;
        let state = self.mem.read_kernel_u32(state_at)?;
        if state == STRUCT_OPS_STATE_INIT {
            value.fill(0);
            return Ok(StructOpsState { state, refcnt: 0 });
        }
        if state > STRUCT_OPS_STATE_READY {
            return Err(Error::Corrupt {
                what: "bpf_struct_ops_value.state (not a bpf_struct_ops_state)",
                at: state_at,
                value: u64::from(state),
            });
        }
        let uvalue_at = field(map.kva, l.uvalue)?;
        let uvalue = kernel_ptr(
            "bpf_struct_ops_map.uvalue (not a kernel pointer)",
            uvalue_at,
            self.mem.read_kernel_u64(uvalue_at)?,
        )?;
        self.mem.read_kernel(uvalue, value)?;
        let own = if l.refcnt_retired {
            0
        } else {
            self.mem.read_kernel_u32(field(kvalue, l.value_refcnt)?)?
        };
        let refcnt = match l.map_refcnts {
            // Before 6.4 a registered struct holds a reference of its own (1 or more);
            // a 0 there is the retired field of a kernel that reports the map's.
            Some(m) if own == 0 => {
                let held = self.mem.read_kernel_u64(field(map.kva, m.refcnt)?)?;
                let users = self.mem.read_kernel_u64(field(map.kva, m.usercnt)?)?;
                // atomic64_t: signed; the kernel clamps the difference at 0 and keeps
                // the low 32 bits (refcount_set takes an int).
                let diff = i64::from_ne_bytes(held.to_ne_bytes())
                    .saturating_sub(i64::from_ne_bytes(users.to_ne_bytes()))
                    .max(0);
                u32::try_from(diff & 0xffff_ffff).unwrap_or(u32::MAX)
            }
            _ => own,
        };
        let what = "bpf_struct_ops_value.state or refcnt (past value_size)";
        put_u32(value, l.value_state, state, what, map.kva)?;
        put_u32(value, l.value_refcnt, refcnt, what, map.kva)?;
        Ok(StructOpsState { state, refcnt })
    }

    /// Calls `f` with each program STRUCT_OPS `map` holds a link to, in `links[]` order
    /// (member order). Where the kernel has `funcs_cnt`, `links[]` has that many slots,
    /// packed, and the walk ends at the first empty one; otherwise (6.1) it has
    /// `members` slots (the struct's member count, which the caller takes from BTF),
    /// slot i member i's, empty ones skipped. Returns how many programs `f` was given;
    /// `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// As [`struct_ops_value`](Self::struct_ops_value), and [`Error::LayoutMissing`]
    /// without [`crate::layout::KernelLayout::prog`]; [`Error::LimitExceeded`] for more
    /// than [`MAX_STRUCT_OPS_FUNCS`] slots; [`Error::Corrupt`] for a `links`, link or
    /// `prog` that is not a kernel pointer.
    pub fn for_each_struct_ops_prog(
        &self,
        map: &MapInfo,
        members: u32,
        mut f: impl FnMut(&StructOpsProg) -> ControlFlow<()>,
    ) -> Result<u32> {
        self.struct_ops_checked(map, "struct_ops programs")?;
        let l = self.layout.struct_ops.ok_or(Error::LayoutMissing {
            what: "bpf_struct_ops_map",
        })?;
        let pl = self
            .layout
            .prog
            .ok_or(Error::LayoutMissing { what: "bpf_prog" })?;
        // With `funcs_cnt` (6.9+) the links are packed; before, `links[i]` is member
        // i's, NULL for a member without a program.
        let (slots, sequential) = match l.funcs_cnt {
            Some(off) => (self.mem.read_kernel_u32(field(map.kva, off)?)?, true),
            None => (members, false),
        };
        if slots > MAX_STRUCT_OPS_FUNCS {
            return Err(Error::LimitExceeded {
                what: "struct_ops function pointers",
                limit: u64::from(MAX_STRUCT_OPS_FUNCS),
                at: u64::from(slots),
            });
        }
        let links_at = field(map.kva, l.links)?;
        let links_raw = self.mem.read_kernel_u64(links_at)?;
        if links_raw == 0 {
            return Ok(0);
        }
        let links = kernel_ptr(
            "bpf_struct_ops_map.links (not a kernel pointer)",
            links_at,
            links_raw,
        )?;
        let mut count = 0u32;
        // Bounded by slots <= MAX_STRUCT_OPS_FUNCS.
        for index in 0..slots {
            let slot = field(links, index.saturating_mul(8))?;
            let link = self.mem.read_kernel_u64(slot)?;
            if link == 0 {
                if sequential {
                    break;
                }
                continue;
            }
            let link = kernel_ptr(
                "bpf_struct_ops_map.links[] (not a kernel pointer)",
                slot,
                link,
            )?;
            let prog_at = field(link, l.link_prog)?;
            let prog = kernel_ptr(
                "bpf_link.prog (not a kernel pointer)",
                prog_at,
                self.mem.read_kernel_u64(prog_at)?,
            )?;
            let aux_at = field(prog, pl.aux)?;
            let aux = kernel_ptr(
                "bpf_prog.aux (not a kernel pointer)",
                aux_at,
                self.mem.read_kernel_u64(aux_at)?,
            )?;
            let id = self.mem.read_kernel_u32(field(aux, pl.aux_id)?)?;
            let mut name = [0u8; BPF_OBJ_NAME_LEN];
            self.mem.read_kernel(field(aux, pl.aux_name)?, &mut name)?;
            count = count.saturating_add(1);
            let p = StructOpsProg {
                index,
                kva: prog,
                id,
                name: MapName::from_field(&name),
            };
            if f(&p).is_break() {
                break;
            }
        }
        Ok(count)
    }
}
