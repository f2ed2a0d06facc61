//! Maps whose slots hold kernel objects other than programs and maps: each populated
//! slot (or key) is handed with a value read from the object it points at (see
//! [`OBJECT_MAP_TYPES`]).

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::fdmaps::object_ptr;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::{HTAB_EXTRA_ELEMS, MAX_ARRAY_ENTRIES, MAX_CPUS};
use crate::mem::len_u64;

/// The maps whose slots hold kernel objects other than programs and maps, which
/// [`Bpf::for_each_object_slot`] reads: each populated slot (or key) is handed with a
/// value read from the object it points at.
///
/// Where `BPF_MAP_LOOKUP_ELEM` returns a value for the type, the value is exactly that,
/// so that memory and live dumps agree:
///
/// | type | slots | value |
/// | --- | --- | --- |
/// | DEVMAP | `bpf_dtab.netdev_map[max_entries]` | `bpf_dtab_netdev.val` (`struct bpf_devmap_val`, `value_size` bytes: ifindex, program id) |
/// | DEVMAP_HASH | `bpf_dtab.dev_index_head[n_buckets]` chains; key `bpf_dtab_netdev.idx` | the same |
/// | CPUMAP | `bpf_cpu_map.cpu_map[max_entries]` | `bpf_cpu_map_entry.value` (`struct bpf_cpumap_val`: qsize, program id) |
/// | SOCKMAP | `bpf_stab.sks[max_entries]` | the socket's cookie (u64), as a lookup of an 8-byte value returns it |
/// | SOCKHASH | `bpf_shtab.buckets[buckets_num]` chains; key in the element | the same |
/// | REUSEPORT_SOCKARRAY | `reuseport_array.ptrs[max_entries]` | the same |
///
/// The others have no lookup from user space (`ENOTSUPP` or `EOPNOTSUPP`); memory
/// hands a form of our own (docs/object-maps.md):
///
/// | type | slots | value |
/// | --- | --- | --- |
/// | CGROUP_ARRAY | `bpf_array` of `struct cgroup *` | the cgroup id (`cgroup->kn->id`, u64) |
/// | PERF_EVENT_ARRAY | `bpf_array` of `struct bpf_event_entry *` | the event's `attr.type` (u32), `cpu` (i32, -1: any), `attr.config` (u64) |
/// | XSKMAP | `xsk_map.xsk_map[max_entries]` of `struct xdp_sock *` | the bound device's ifindex (u32, 0 when none) and `queue_id` (a u16, widened to u32) |
///
/// Every value is little-endian. A socket whose cookie was never asked for holds 0,
/// where a live lookup would first give it one: memory hands the 0 (nothing is
/// written). Empty slots are skipped, as lookups skip them.
pub const OBJECT_MAP_TYPES: [MapType; 9] = [
    MapType::DEVMAP,
    MapType::DEVMAP_HASH,
    MapType::CPUMAP,
    MapType::SOCKMAP,
    MapType::SOCKHASH,
    MapType::REUSEPORT_SOCKARRAY,
    MapType::CGROUP_ARRAY,
    MapType::PERF_EVENT_ARRAY,
    MapType::XSKMAP,
];

/// The bytes [`Bpf::for_each_object_slot`] hands as each value of `map`, or `None` for
/// a type it does not read: `value_size` for DEVMAP, DEVMAP_HASH and CPUMAP (what a
/// lookup copies), 8 for a socket cookie or a cgroup id, 16 for a perf event, 8 for an
/// XDP socket.
pub fn object_value_size(map: &MapInfo) -> Option<u32> {
    match map.map_type {
        MapType::DEVMAP | MapType::DEVMAP_HASH | MapType::CPUMAP => Some(map.value_size),
        MapType::SOCKMAP
        | MapType::SOCKHASH
        | MapType::REUSEPORT_SOCKARRAY
        | MapType::CGROUP_ARRAY
        | MapType::XSKMAP => Some(8),
        MapType::PERF_EVENT_ARRAY => Some(16),
        _ => None,
    }
}

/// Slot pointers read in one piece.
const SLOT_BATCH: usize = 64;

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

fn missing(what: &'static str) -> Error {
    Error::LayoutMissing { what }
}

/// A pointer of a chain (an `hlist_node *`), and the element that holds the node at
/// `node_off`.
fn chain_elem(at: Kva, ptr: u64, node_off: u32) -> Result<Kva> {
    let node = object_ptr("hash chain link (not a kernel pointer)", at, ptr)?;
    node.0
        .checked_sub(u64::from(node_off))
        .map(Kva)
        .ok_or(Error::Corrupt {
            what: "hash chain link (below its element's node offset)",
            at,
            value: ptr,
        })
}

/// One step of a walk: the key and value are filled, hand them on.
type Step = ControlFlow<()>;

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Calls `f(index, slot, pointer)` for every non-NULL pointer of the array of
    /// `count` pointers at `ptrs`, in index order; `f`'s `Break` ends the walk.
    fn pointer_slots(
        &self,
        ptrs: Kva,
        count: u32,
        mut f: impl FnMut(u32, Kva, u64) -> Result<Step>,
    ) -> Result<()> {
        let mut batch = [[0u8; 8]; SLOT_BATCH];
        let mut index = 0u32;
        // Bounded by count, which the callers check against a cap.
        while index < count {
            let n = usize::try_from(count.saturating_sub(index))
                .unwrap_or(SLOT_BATCH)
                .min(SLOT_BATCH);
            let off = u64::from(index).saturating_mul(8);
            let first = ptrs.checked_add(off).ok_or(Error::AddrOverflow {
                addr: ptrs.0,
                len: off,
            })?;
            let bytes = batch
                .as_flattened_mut()
                .get_mut(..n.saturating_mul(8))
                .unwrap_or_default();
            self.mem.read_kernel(first, bytes)?;
            for (i, raw) in (0u32..).zip(bytes.chunks_exact(8)) {
                let ptr = u64::from_le_bytes(<[u8; 8]>::try_from(raw).unwrap_or_default());
                if ptr == 0 {
                    continue;
                }
                let slot = first
                    .checked_add(u64::from(i).saturating_mul(8))
                    .unwrap_or(first);
                if f(index.saturating_add(i), slot, ptr)?.is_break() {
                    return Ok(());
                }
            }
            index = index.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(())
    }

    /// Calls `f(bucket, elem)` for every element of the `n` chains whose heads lie
    /// `stride` bytes apart from `heads`, chained through the `hlist_node` at `node_off`
    /// in each element (its `next` at `node_off + next_off`), bucket by bucket and in
    /// chain order (the kernel's `GET_NEXT_KEY` order). Chains end at NULL. Each chain
    /// is capped at [`Limits::bucket_chain`](crate::Limits::bucket_chain), the whole
    /// walk at `max_entries + HTAB_EXTRA_ELEMS` elements.
    fn hlist_chains(
        &self,
        map: &MapInfo,
        (heads, n, stride): (Kva, u32, u64),
        (node_off, next_off): (u32, u32),
        mut f: impl FnMut(u32, Kva) -> Result<Step>,
    ) -> Result<()> {
        let chain_cap = self.mem.limits().bucket_chain;
        let total_cap = map.max_entries.saturating_add(HTAB_EXTRA_ELEMS);
        let mut total = 0u32;
        // Bounded by n, checked by the callers against Limits::htab_buckets.
        for bucket in 0..n {
            let off = u64::from(bucket).saturating_mul(stride);
            let mut link = heads.checked_add(off).ok_or(Error::AddrOverflow {
                addr: heads.0,
                len: off,
            })?;
            let mut len = 0u32;
            loop {
                let ptr = self.mem.read_kernel_u64(link)?;
                if ptr == 0 {
                    break;
                }
                len = len.saturating_add(1);
                if len > chain_cap {
                    return Err(Error::LimitExceeded {
                        what: "elements of one hash chain (Limits::bucket_chain)",
                        limit: u64::from(chain_cap),
                        at: u64::from(len),
                    });
                }
                total = total.saturating_add(1);
                if total > total_cap {
                    return Err(Error::LimitExceeded {
                        what: "elements of a hash map (max_entries + HTAB_EXTRA_ELEMS)",
                        limit: u64::from(total_cap),
                        at: u64::from(total),
                    });
                }
                let elem = chain_elem(link, ptr, node_off)?;
                if f(bucket, elem)?.is_break() {
                    return Ok(());
                }
                link = field(field(elem, node_off)?, next_off)?;
            }
        }
        Ok(())
    }

    /// The bucket count of a hash kind, read at `at`: it must be
    /// `roundup_pow_of_two(max_entries)` and within
    /// [`Limits::htab_buckets`](crate::Limits::htab_buckets).
    fn bucket_count(&self, map: &MapInfo, at: Kva, what: &'static str) -> Result<u32> {
        let n = self.mem.read_kernel_u32(at)?;
        if Some(n) != map.max_entries.max(1).checked_next_power_of_two() {
            return Err(Error::Corrupt {
                what,
                at,
                value: u64::from(n),
            });
        }
        let cap = self.mem.limits().htab_buckets;
        if n > cap {
            return Err(Error::LimitExceeded {
                what: "buckets of a hash map (Limits::htab_buckets)",
                limit: u64::from(cap),
                at: u64::from(n),
            });
        }
        Ok(n)
    }

    /// `value_size` bytes of a devmap or cpumap object at `at` into `value`, which
    /// must be 4 (the ifindex or qsize) or 8 (with the program id).
    fn lookup_value(&self, map: &MapInfo, at: Kva, value: &mut [u8]) -> Result<()> {
        if !matches!(map.value_size, 4 | 8) {
            return Err(Error::Corrupt {
                what: "devmap or cpumap value_size (not 4 or 8)",
                at: map.kva,
                value: u64::from(map.value_size),
            });
        }
        self.mem.read_kernel(at, value)
    }

    /// A socket's cookie (`sk->__sk_common.skc_cookie`) into `value` (8 bytes).
    fn sock_cookie(&self, slot: Kva, sk: u64, value: &mut [u8]) -> Result<()> {
        let l = self.layout.sock.ok_or(missing("sock"))?;
        let sk = object_ptr("socket slot (not a kernel pointer)", slot, sk)?;
        self.mem.read_kernel(field(sk, l.cookie)?, value)
    }

    /// The value of the object a slot of an array kind points at (`ptr`, at `slot`;
    /// `index` is the slot's key).
    fn array_object_value(
        &self,
        map: &MapInfo,
        (index, slot, ptr): (u32, Kva, u64),
        value: &mut [u8],
    ) -> Result<()> {
        let mem = self.mem;
        match map.map_type {
            MapType::DEVMAP => {
                let l = self.layout.devmap.ok_or(missing("bpf_dtab"))?;
                let dev = object_ptr("devmap slot (not a kernel pointer)", slot, ptr)?;
                let at = field(dev, l.idx)?;
                let idx = mem.read_kernel_u32(at)?;
                if idx != index {
                    return Err(Error::Corrupt {
                        what: "bpf_dtab_netdev.idx (not its slot)",
                        at,
                        value: u64::from(idx),
                    });
                }
                self.lookup_value(map, field(dev, l.val)?, value)
            }
            MapType::CPUMAP => {
                let l = self.layout.cpumap.ok_or(missing("bpf_cpu_map"))?;
                let entry = object_ptr("cpumap slot (not a kernel pointer)", slot, ptr)?;
                let at = field(entry, l.entry_cpu)?;
                let cpu = mem.read_kernel_u32(at)?;
                if cpu != index {
                    return Err(Error::Corrupt {
                        what: "bpf_cpu_map_entry.cpu (not its slot)",
                        at,
                        value: u64::from(cpu),
                    });
                }
                self.lookup_value(map, field(entry, l.entry_value)?, value)
            }
            MapType::SOCKMAP | MapType::REUSEPORT_SOCKARRAY => self.sock_cookie(slot, ptr, value),
            MapType::CGROUP_ARRAY => {
                let l = self.layout.cgroup.ok_or(missing("cgroup"))?;
                let cgrp = object_ptr("cgroup array slot (not a kernel pointer)", slot, ptr)?;
                let at = field(cgrp, l.kn)?;
                let kn = object_ptr(
                    "cgroup.kn (not a kernel pointer)",
                    at,
                    mem.read_kernel_u64(at)?,
                )?;
                mem.read_kernel(field(kn, l.kn_id)?, value)
            }
            MapType::PERF_EVENT_ARRAY => {
                let l = self.layout.perf_event.ok_or(missing("bpf_event_entry"))?;
                let entry = object_ptr("perf event array slot (not a kernel pointer)", slot, ptr)?;
                let at = field(entry, l.entry_event)?;
                let event = object_ptr(
                    "bpf_event_entry.event (not a kernel pointer)",
                    at,
                    mem.read_kernel_u64(at)?,
                )?;
                let attr = field(event, l.event_attr)?;
                let event_type = mem.read_kernel_u32(field(attr, l.attr_type)?)?;
                let cpu = mem.read_kernel_u32(field(event, l.event_cpu)?)?;
                let config = mem.read_kernel_u64(field(attr, l.attr_config)?)?;
                put(
                    value,
                    &[
                        &event_type.to_le_bytes(),
                        &cpu.to_le_bytes(),
                        &config.to_le_bytes(),
                    ],
                );
                Ok(())
            }
            MapType::XSKMAP => {
                let l = self.layout.xskmap.ok_or(missing("xsk_map"))?;
                let xs = object_ptr("xskmap slot (not a kernel pointer)", slot, ptr)?;
                let at = field(xs, l.dev)?;
                let dev = mem.read_kernel_u64(at)?;
                let ifindex = if dev == 0 {
                    0
                } else {
                    let dev = object_ptr("xdp_sock.dev (not a kernel pointer)", at, dev)?;
                    mem.read_kernel_u32(field(dev, l.ifindex)?)?
                };
                let mut queue_id = [0u8; 4];
                let low = queue_id.get_mut(..2).unwrap_or_default();
                mem.read_kernel(field(xs, l.queue_id)?, low)?;
                put(value, &[&ifindex.to_le_bytes(), &queue_id]);
                Ok(())
            }
            map_type => Err(Error::WrongMapType {
                id: map.id,
                map_type,
                op: "reading object slots",
            }),
        }
    }

    /// Where the slot pointers of an array kind lie, and how many there are (checked
    /// against the kernel's limits).
    fn object_slots(&self, map: &MapInfo) -> Result<(Kva, u32)> {
        let cap = if map.map_type == MapType::CPUMAP {
            MAX_CPUS
        } else {
            MAX_ARRAY_ENTRIES
        };
        if map.max_entries > cap {
            return Err(Error::Corrupt {
                what: "object array max_entries (above the kernel's limit)",
                at: map.kva,
                value: u64::from(map.max_entries),
            });
        }
        let pointer_at = |off: u32| -> Result<Kva> {
            let at = field(map.kva, off)?;
            object_ptr(
                "object array pointer (not a kernel pointer)",
                at,
                self.mem.read_kernel_u64(at)?,
            )
        };
        let ptrs = match map.map_type {
            MapType::DEVMAP => {
                pointer_at(self.layout.devmap.ok_or(missing("bpf_dtab"))?.netdev_map)?
            }
            MapType::CPUMAP => {
                pointer_at(self.layout.cpumap.ok_or(missing("bpf_cpu_map"))?.cpu_map)?
            }
            MapType::SOCKMAP => pointer_at(self.layout.sockmap.ok_or(missing("bpf_stab"))?.sks)?,
            MapType::REUSEPORT_SOCKARRAY => field(
                map.kva,
                self.layout
                    .reuseport
                    .ok_or(missing("reuseport_array"))?
                    .ptrs,
            )?,
            MapType::XSKMAP => field(
                map.kva,
                self.layout.xskmap.ok_or(missing("xsk_map"))?.xsk_map,
            )?,
            _ => self.array_geometry(map)?.1,
        };
        Ok((ptrs, map.max_entries))
    }

    /// Calls `f` with the key and value of every populated slot of object map `map`
    /// (one of [`OBJECT_MAP_TYPES`]; the values of [`OBJECT_MAP_TYPES`]), in the
    /// kernel's `GET_NEXT_KEY` order. `key` is the caller's buffer of `key_size` bytes,
    /// `value` of [`object_value_size`] bytes. Returns how many slots `f` was given;
    /// `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::BufferSize`];
    /// [`Error::LayoutMissing`] without the type's layout group; [`Error::Corrupt`] (a
    /// slot that is not a kernel pointer, an object whose key is not its slot's, a
    /// bucket count the kernel would not make, an element in the wrong bucket);
    /// [`Error::LimitExceeded`] (a chain or the whole map past its cap); a read error.
    pub fn for_each_object_slot(
        &self,
        map: &MapInfo,
        key: &mut [u8],
        value: &mut [u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        let Some(vsize) = object_value_size(map) else {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "reading object slots",
            });
        };
        for (need, have) in [
            (u64::from(map.key_size), key.len()),
            (u64::from(vsize), value.len()),
        ] {
            if need != len_u64(have) {
                return Err(Error::BufferSize {
                    need,
                    have: len_u64(have),
                });
            }
        }
        if map.map_type != MapType::SOCKHASH && map.key_size != 4 {
            return Err(Error::Corrupt {
                what: "object map key_size (not 4)",
                at: map.kva,
                value: u64::from(map.key_size),
            });
        }
        let mut count = 0u64;
        match map.map_type {
            MapType::DEVMAP_HASH => {
                let l = self.layout.devmap.ok_or(missing("bpf_dtab"))?;
                let at = field(map.kva, l.dev_index_head)?;
                let heads = object_ptr(
                    "bpf_dtab.dev_index_head (not a kernel pointer)",
                    at,
                    self.mem.read_kernel_u64(at)?,
                )?;
                let n = self.bucket_count(
                    map,
                    field(map.kva, l.n_buckets)?,
                    "bpf_dtab.n_buckets (not roundup_pow_of_two(max_entries))",
                )?;
                let mask = n.saturating_sub(1);
                self.hlist_chains(
                    map,
                    (heads, n, 8),
                    (l.index_hlist, l.node_next),
                    |bucket, dev| {
                        let at = field(dev, l.idx)?;
                        let idx = self.mem.read_kernel_u32(at)?;
                        if idx & mask != bucket {
                            return Err(Error::Corrupt {
                                what: "bpf_dtab_netdev.idx (not of its bucket)",
                                at,
                                value: u64::from(idx),
                            });
                        }
                        self.lookup_value(map, field(dev, l.val)?, value)?;
                        put(key, &[&idx.to_le_bytes()]);
                        count = count.saturating_add(1);
                        Ok(f(key, value))
                    },
                )?;
            }
            MapType::SOCKHASH => {
                let l = self.layout.sockmap.ok_or(missing("bpf_shtab"))?;
                let at = field(map.kva, l.buckets)?;
                let buckets = object_ptr(
                    "bpf_shtab.buckets (not a kernel pointer)",
                    at,
                    self.mem.read_kernel_u64(at)?,
                )?;
                let n = self.bucket_count(
                    map,
                    field(map.kva, l.buckets_num)?,
                    "bpf_shtab.buckets_num (not roundup_pow_of_two(max_entries))",
                )?;
                let mask = n.saturating_sub(1);
                let heads = field(buckets, l.bucket_head)?;
                let stride = u64::from(l.bucket_size);
                self.hlist_chains(
                    map,
                    (heads, n, stride),
                    (l.elem_node, l.node_next),
                    |bucket, elem| {
                        let at = field(elem, l.elem_hash)?;
                        let hash = self.mem.read_kernel_u32(at)?;
                        if hash & mask != bucket {
                            return Err(Error::Corrupt {
                                what: "bpf_shtab_elem.hash (not of its bucket)",
                                at,
                                value: u64::from(hash),
                            });
                        }
                        self.mem.read_kernel(field(elem, l.elem_key)?, key)?;
                        let sk_at = field(elem, l.elem_sk)?;
                        self.sock_cookie(sk_at, self.mem.read_kernel_u64(sk_at)?, value)?;
                        count = count.saturating_add(1);
                        Ok(f(key, value))
                    },
                )?;
            }
            _ => {
                let (ptrs, n) = self.object_slots(map)?;
                self.pointer_slots(ptrs, n, |index, slot, ptr| {
                    self.array_object_value(map, (index, slot, ptr), value)?;
                    put(key, &[&index.to_le_bytes()]);
                    count = count.saturating_add(1);
                    Ok(f(key, value))
                })?;
            }
        }
        Ok(count)
    }
}

/// Writes `parts` one after another into `value` (whose length the caller checked;
/// what does not fit is left out, and a short part leaves the rest as it was).
fn put(value: &mut [u8], parts: &[&[u8]]) {
    let mut rest = value;
    for p in parts {
        let (head, tail) = rest.split_at_mut(p.len().min(rest.len()));
        head.copy_from_slice(p.get(..head.len()).unwrap_or_default());
        rest = tail;
    }
}

#[cfg(test)]
#[path = "objmaps_tests.rs"]
mod tests;
