//! Program discovery: every program of `prog_idr`, with what `bpftool prog show` prints
//! about it.
//!
//! `prog_idr` is an IDR like `map_idr`, whose entries are `struct bpf_prog *`; each
//! program's `struct bpf_prog_aux` holds its id, name, the maps it uses and its BTF.
//! The walk is [`Progs`], with the same caps, restarts and per-item errors as map
//! discovery ([`crate::bpf::Maps`]).

use core::iter::FusedIterator;

use crate::addr::Kva;
use crate::bpf::{MapName, ProgType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::{KernelLayout, ProgLayout};
use crate::limits::{BPF_OBJ_NAME_LEN, MAX_SUBPROGS, MAX_USED_MAPS};
use crate::walk::xarray::{xa_load, XaWalk};

/// Length of a program tag (`BPF_TAG_SIZE`).
pub const BPF_TAG_SIZE: usize = 8;

/// What is known about one program, out of memory (`struct bpf_prog` and its
/// `bpf_prog_aux`) or from the running kernel (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProgInfo {
    /// The program's id (from memory: its index in `prog_idr`, checked against
    /// `bpf_prog_aux.id`).
    pub id: u32,
    /// `type`.
    pub prog_type: ProgType,
    /// `bpf_prog_aux.name`.
    pub name: MapName,
    /// `tag`: the first 8 bytes of the SHA-1 of the instructions.
    pub tag: [u8; BPF_TAG_SIZE],
    /// `gpl_compatible`, when the layout has the bitfield.
    pub gpl_compatible: Option<bool>,
    /// Bytes of the verified ("xlated") instructions: `len * 8`.
    pub xlated_len: u64,
    /// Bytes of JIT code: `jited_len`, or the sum over the subprograms when the
    /// program has some (as `BPF_OBJ_GET_INFO_BY_FD` counts it); 0 when not jitted.
    pub jited_len: u64,
    /// The uid that loaded it (`aux->user->uid`), when the kernel keeps it.
    pub uid: Option<u32>,
    /// The id of its BTF object; 0 when it has none (or the layout lacks `btf`).
    pub btf_id: u32,
    map_ids: [u32; MAX_USED_MAPS],
    map_count: u8,
    /// Memory part: the address of its `struct bpf_prog`; [`Kva::NULL`] when not read
    /// from memory.
    pub kva: Kva,
}

impl core::fmt::Debug for ProgInfo {
    /// The fields, with only the map ids the program uses.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProgInfo")
            .field("id", &self.id)
            .field("prog_type", &self.prog_type)
            .field("name", &self.name)
            .field("tag", &self.tag)
            .field("gpl_compatible", &self.gpl_compatible)
            .field("xlated_len", &self.xlated_len)
            .field("jited_len", &self.jited_len)
            .field("uid", &self.uid)
            .field("btf_id", &self.btf_id)
            .field("map_ids", &self.map_ids())
            .field("kva", &self.kva)
            .finish()
    }
}

impl Default for ProgInfo {
    fn default() -> Self {
        Self {
            id: 0,
            prog_type: ProgType::UNSPEC,
            name: MapName::default(),
            tag: [0; BPF_TAG_SIZE],
            gpl_compatible: None,
            xlated_len: 0,
            jited_len: 0,
            uid: None,
            btf_id: 0,
            map_ids: [0; MAX_USED_MAPS],
            map_count: 0,
            kva: Kva::NULL,
        }
    }
}

impl ProgInfo {
    /// The ids of the maps the program uses, in the kernel's order.
    pub fn map_ids(&self) -> &[u32] {
        self.map_ids
            .get(..usize::from(self.map_count))
            .unwrap_or_default()
    }

    /// Sets the ids of the maps the program uses (at most [`MAX_USED_MAPS`]).
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for more than [`MAX_USED_MAPS`] ids.
    pub fn set_map_ids(&mut self, ids: &[u32]) -> Result<()> {
        let n = ids.len();
        let slots = self.map_ids.get_mut(..n).ok_or(Error::LimitExceeded {
            what: "maps used by one program",
            limit: crate::mem::len_u64(MAX_USED_MAPS),
            at: crate::mem::len_u64(n),
        })?;
        slots.copy_from_slice(ids);
        self.map_count = u8::try_from(n).unwrap_or(0);
        Ok(())
    }

    /// Whether the program was jitted (it has JIT code).
    pub fn jited(&self) -> bool {
        self.jited_len != 0
    }
}

/// The address of field `off` of the object at `base`.
fn at(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

fn read_ptr<K: KernelRead + ?Sized>(mem: &K, base: Kva, off: u32) -> Result<Kva> {
    mem.read_kernel_u64(at(base, off)?).map(Kva)
}

/// A pointer field that must point into the kernel's upper half, 8-byte aligned.
fn kernel_ptr(what: &'static str, field: Kva, value: Kva) -> Result<Kva> {
    if value.0 & 7 != 0 || value.0 >> 63 == 0 {
        return Err(Error::Corrupt {
            what,
            at: field,
            value: value.0,
        });
    }
    Ok(value)
}

/// The id of the program whose `struct bpf_prog` is at `prog` (`prog->aux->id`): what
/// a PROG_ARRAY slot or a struct_ops function pointer leads to.
///
/// # Errors
/// A read error, or [`Error::Corrupt`] for an `aux` that is not a kernel pointer.
pub fn read_prog_id<K: KernelRead + ?Sized>(mem: &K, l: &ProgLayout, prog: Kva) -> Result<u32> {
    let aux_field = at(prog, l.aux)?;
    let aux = kernel_ptr(
        "bpf_prog.aux (not a kernel pointer)",
        aux_field,
        Kva(mem.read_kernel_u64(aux_field)?),
    )?;
    mem.read_kernel_u32(at(aux, l.aux_id)?)
}

/// JIT bytes of a program with `func_cnt` subprograms listed at `func`.
fn subprog_jited_len<K: KernelRead + ?Sized>(
    mem: &K,
    l: &ProgLayout,
    func_cnt: u32,
    func: Kva,
) -> Result<u64> {
    let mut total = 0u64;
    // Bounded by MAX_SUBPROGS, checked by the caller.
    for i in 0..u64::from(func_cnt) {
        let slot = func
            .checked_add(i.saturating_mul(8))
            .ok_or(Error::AddrOverflow {
                addr: func.0,
                len: i.saturating_mul(8),
            })?;
        let sub = kernel_ptr(
            "bpf_prog_aux.func[] (not a kernel pointer)",
            slot,
            Kva(mem.read_kernel_u64(slot)?),
        )?;
        let len = mem.read_kernel_u32(at(sub, l.jited_len)?)?;
        total = total.saturating_add(u64::from(len));
    }
    Ok(total)
}

/// Reads the `struct bpf_prog` at `kva`, found at index `id` of `prog_idr`, and its
/// `bpf_prog_aux`.
///
/// # Errors
/// A read error; [`Error::Corrupt`] when `aux->id` disagrees with `id`, `aux->prog`
/// does not lead back to `kva`, or a pointer or count is impossible;
/// [`Error::LayoutMissing`] without [`KernelLayout::prog`].
pub fn read_prog_info<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &KernelLayout,
    id: u32,
    kva: Kva,
) -> Result<ProgInfo> {
    let l = layout
        .prog
        .ok_or(Error::LayoutMissing { what: "bpf_prog" })?;
    let aux_field = at(kva, l.aux)?;
    let aux = kernel_ptr(
        "bpf_prog.aux (not a kernel pointer)",
        aux_field,
        read_ptr(mem, kva, l.aux)?,
    )?;
    let own_id = mem.read_kernel_u32(at(aux, l.aux_id)?)?;
    if own_id != id {
        return Err(Error::Corrupt {
            what: "bpf_prog_aux.id (disagrees with the program's index in prog_idr)",
            at: aux,
            value: u64::from(own_id),
        });
    }
    let back = read_ptr(mem, aux, l.aux_prog)?;
    if back != kva {
        return Err(Error::Corrupt {
            what: "bpf_prog_aux.prog (does not lead back to the program)",
            at: aux,
            value: back.0,
        });
    }
    let mut info = ProgInfo {
        id,
        kva,
        prog_type: ProgType(mem.read_kernel_u32(at(kva, l.prog_type)?)?),
        ..ProgInfo::default()
    };
    let len = mem.read_kernel_u32(at(kva, l.len)?)?;
    info.xlated_len = u64::from(len).saturating_mul(8);
    mem.read_kernel(at(kva, l.tag)?, &mut info.tag)?;
    let mut name = [0u8; BPF_OBJ_NAME_LEN];
    mem.read_kernel(at(aux, l.aux_name)?, &mut name)?;
    info.name = MapName::from_field(&name);
    if let Some(bit) = l.gpl_compatible_bit {
        let mut byte = [0u8; 1];
        mem.read_kernel(at(kva, bit / 8)?, &mut byte)?;
        info.gpl_compatible = Some(byte[0].checked_shr(bit % 8).unwrap_or(0) & 1 == 1);
    }

    let func_cnt_at = at(aux, l.aux_func_cnt)?;
    let func_cnt = mem.read_kernel_u32(func_cnt_at)?;
    info.jited_len = if func_cnt == 0 {
        u64::from(mem.read_kernel_u32(at(kva, l.jited_len)?)?)
    } else if func_cnt > MAX_SUBPROGS {
        return Err(Error::Corrupt {
            what: "bpf_prog_aux.func_cnt (above BPF_MAX_SUBPROGS)",
            at: func_cnt_at,
            value: u64::from(func_cnt),
        });
    } else {
        let func_at = at(aux, l.aux_func)?;
        let func = kernel_ptr(
            "bpf_prog_aux.func (not a kernel pointer)",
            func_at,
            read_ptr(mem, aux, l.aux_func)?,
        )?;
        subprog_jited_len(mem, &l, func_cnt, func)?
    };

    let cnt_at = at(aux, l.aux_used_map_cnt)?;
    let raw_cnt = mem.read_kernel_u32(cnt_at)?;
    let cnt = usize::try_from(raw_cnt).unwrap_or(usize::MAX);
    if cnt > MAX_USED_MAPS {
        return Err(Error::Corrupt {
            what: "bpf_prog_aux.used_map_cnt (above MAX_USED_MAPS)",
            at: cnt_at,
            value: u64::from(raw_cnt),
        });
    }
    if cnt > 0 {
        let used_at = at(aux, l.aux_used_maps)?;
        let used = kernel_ptr(
            "bpf_prog_aux.used_maps (not a kernel pointer)",
            used_at,
            read_ptr(mem, aux, l.aux_used_maps)?,
        )?;
        let mut ptrs = [[0u8; 8]; MAX_USED_MAPS];
        let bytes = ptrs
            .as_flattened_mut()
            .get_mut(..cnt.saturating_mul(8))
            .unwrap_or_default();
        mem.read_kernel(used, bytes)?;
        let mut ids = [0u32; MAX_USED_MAPS];
        for (slot, (chunk, id)) in bytes.chunks_exact(8).zip(ids.iter_mut()).enumerate() {
            let map = Kva(u64::from_le_bytes(
                <[u8; 8]>::try_from(chunk).unwrap_or_default(),
            ));
            let slot_at = used.checked_add(crate::mem::len_u64(slot).saturating_mul(8));
            let map = kernel_ptr(
                "bpf_prog_aux.used_maps[] (not a kernel pointer)",
                slot_at.unwrap_or(used),
                map,
            )?;
            *id = mem.read_kernel_u32(at(map, layout.bpf_map.id)?)?;
        }
        info.set_map_ids(ids.get(..bytes.len() / 8).unwrap_or_default())?;
    }

    if let Some(b) = layout.btf_object {
        let btf = read_ptr(mem, aux, l.aux_btf)?;
        if btf != Kva::NULL {
            info.btf_id = crate::bpf::btf::read_btf_id(mem, &b, btf)?;
        }
    }
    if let (Some(user_off), Some(uid_off)) = (l.aux_user, l.user_uid) {
        let user = read_ptr(mem, aux, user_off)?;
        if user != Kva::NULL {
            info.uid = Some(mem.read_kernel_u32(at(user, uid_off)?)?);
        }
    }
    Ok(info)
}

/// Checks that a `prog_idr` slot holds what can be a `struct bpf_prog *`.
fn prog_pointer(index: u64, entry: u64) -> Result<(u32, Kva)> {
    let id = u32::try_from(index).map_err(|_| Error::Corrupt {
        what: "prog_idr index (above the 32-bit id range)",
        at: Kva(entry),
        value: index,
    })?;
    if entry & 7 != 0 || entry >> 63 == 0 {
        return Err(Error::Corrupt {
            what: "prog_idr entry (not a kernel pointer)",
            at: Kva(entry),
            value: index,
        });
    }
    Ok((id, Kva(entry)))
}

/// All programs of `prog_idr`, in id order.
///
/// As [`crate::bpf::Maps`]: an error confined to one program is yielded and the walk goes
/// on; an error in the tree itself (a corrupt xarray node, a cap crossed) is yielded
/// and ends the walk (the iterator is fused); a program destroyed while it was read (it
/// left `prog_idr` meanwhile) is not listed.
#[derive(Debug)]
pub struct Progs<'a, K: ?Sized> {
    mem: &'a K,
    layout: &'a KernelLayout,
    xarray: Kva,
    walk: XaWalk<'a, K>,
    yielded: u32,
    current: Option<u32>,
    done: bool,
}

impl<K: KernelRead + ?Sized> Progs<'_, K> {
    /// The id of the program the last item was about, if it was about one program.
    pub fn current_id(&self) -> Option<u32> {
        self.current
    }

    /// Whether the walk has ended (after an error in the tree, or the last program).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether index `index` of `prog_idr` no longer holds `entry`, read afresh.
    fn gone(&self, index: u64, entry: u64) -> bool {
        let now = at(self.xarray, self.layout.xarray.xa_head)
            .and_then(|a| self.mem.read_kernel_u64(a))
            .and_then(|head| xa_load(self.mem, &self.layout.xarray, head, index));
        matches!(now, Ok(now) if now != Some(entry))
    }
}

impl<K: KernelRead + ?Sized> Iterator for Progs<'_, K> {
    type Item = Result<ProgInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        // Each pass takes one entry of the walk, which its caps bound.
        loop {
            if self.done {
                return None;
            }
            self.current = None;
            let entry = match self.walk.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(entry)) => entry,
            };
            let limit = self.mem.limits().progs;
            if self.yielded >= limit {
                self.done = true;
                return Some(Err(Error::LimitExceeded {
                    what: "programs in prog_idr",
                    limit: u64::from(limit),
                    at: entry.index,
                }));
            }
            self.yielded = self.yielded.saturating_add(1);
            let (id, kva) = match prog_pointer(entry.index, entry.entry) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            match read_prog_info(self.mem, self.layout, id, kva) {
                Err(_) if self.gone(entry.index, entry.entry) => continue,
                r => {
                    self.current = Some(id);
                    return Some(r);
                }
            }
        }
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for Progs<'_, K> {}

/// BPF programs of one kernel: where `prog_idr` is and how the kernel lays out its
/// structs.
#[derive(Debug, Clone, Copy)]
pub struct ProgIdr<'a, K: ?Sized> {
    mem: &'a K,
    layout: &'a KernelLayout,
    prog_idr: Kva,
}

impl<'a, K: KernelRead + ?Sized> ProgIdr<'a, K> {
    /// The programs of the kernel in `mem`, whose `prog_idr` (a kernel-image symbol) is
    /// at `prog_idr`.
    pub fn new(mem: &'a K, layout: &'a KernelLayout, prog_idr: Kva) -> Self {
        Self {
            mem,
            layout,
            prog_idr,
        }
    }

    fn xarray(&self) -> Result<Kva> {
        at(self.prog_idr, self.layout.idr.idr_rt)
    }

    /// Every program, in id order (see [`Progs`]).
    ///
    /// # Errors
    /// [`Error::LayoutMissing`] without [`KernelLayout::prog`]; a read error when
    /// `prog_idr` itself cannot be read.
    pub fn progs(&self) -> Result<Progs<'a, K>> {
        if self.layout.prog.is_none() {
            return Err(Error::LayoutMissing { what: "bpf_prog" });
        }
        let xarray = self.xarray()?;
        Ok(Progs {
            mem: self.mem,
            layout: self.layout,
            xarray,
            walk: XaWalk::from_xarray(self.mem, self.layout.xarray, xarray)?,
            yielded: 0,
            current: None,
            done: false,
        })
    }

    /// The program with id `id`, found by a direct lookup in `prog_idr`.
    ///
    /// # Errors
    /// A read error, or a corrupt tree or program.
    pub fn prog_by_id(&self, id: u32) -> Result<Option<ProgInfo>> {
        let head = self
            .mem
            .read_kernel_u64(at(self.xarray()?, self.layout.xarray.xa_head)?)?;
        match xa_load(self.mem, &self.layout.xarray, head, u64::from(id))? {
            None => Ok(None),
            Some(entry) => {
                let (id, kva) = prog_pointer(u64::from(id), entry)?;
                read_prog_info(self.mem, self.layout, id, kva).map(Some)
            }
        }
    }

    /// Every program collected into a `Vec`, with the per-program errors beside them.
    ///
    /// # Errors
    /// When the walk itself fails (a corrupt tree, a cap crossed, `prog_idr`
    /// unreadable, no program layout).
    #[cfg(any(feature = "alloc", test))]
    pub fn collect_progs(&self) -> Result<ProgList> {
        let mut progs = alloc::vec::Vec::new();
        let mut errors = alloc::vec::Vec::new();
        let mut it = self.progs()?;
        while let Some(item) = it.next() {
            match item {
                Ok(p) => progs.push(p),
                Err(e) => match it.current_id() {
                    Some(id) => errors.push((Some(id), e)),
                    None if it.done => return Err(e),
                    None => errors.push((None, e)),
                },
            }
        }
        Ok(ProgList { progs, errors })
    }
}

/// Every program of a kernel, and the programs that could not be read.
#[cfg(any(feature = "alloc", test))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgList {
    /// The programs that were read, in id order.
    pub progs: alloc::vec::Vec<ProgInfo>,
    /// The per-program errors, with the id of the program when it is known.
    pub errors: alloc::vec::Vec<(Option<u32>, Error)>,
}

#[cfg(test)]
#[path = "prog_tests.rs"]
mod tests;
