//! Laying out BLOOM_FILTER maps and the maps whose slots hold kernel objects.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{key_hash, Layouter};
use crate::addr::Kva;
use crate::bpf::{bloom_bitset_mask, MapType};
use crate::synth::guest::{BuiltObject, MapSpec, SlotObject};

/// Bytes of every synthetic kernel object a slot points at (enough for any offset of
/// the default layout).
const OBJ: u64 = 1024;

/// The bytes the map struct of `spec` needs beyond its `struct bpf_map` header, or
/// `None` for a type laid out elsewhere.
pub(super) fn object_map_size(b: &crate::layout::KernelLayout, spec: &MapSpec) -> Option<u64> {
    let max = u64::from(spec.max_entries);
    let header = u64::from(b.bpf_map.name) + 64;
    match spec.map_type {
        MapType::BLOOM_FILTER => {
            let l = b.bloom?;
            let (k, _, _) = spec.bloom.as_ref()?;
            let mask = bloom_bitset_mask(spec.max_entries, *k);
            let bytes = (u64::from(mask) + 1).div_ceil(8).next_multiple_of(8);
            Some(u64::from(l.bitset) + bytes)
        }
        MapType::DEVMAP | MapType::DEVMAP_HASH | MapType::CPUMAP => Some(header.max(320)),
        MapType::SOCKMAP | MapType::SOCKHASH => Some(header.max(320)),
        MapType::REUSEPORT_SOCKARRAY => Some(u64::from(b.reuseport?.ptrs) + 8 * max),
        MapType::XSKMAP => Some(u64::from(b.xskmap?.xsk_map) + 8 * max),
        _ => None,
    }
}

impl Layouter<'_> {
    /// A zeroed kernel object: its address.
    fn object(&mut self) -> u64 {
        self.kmalloc(OBJ).0
    }

    /// The object `o` of a slot of `spec` with key `key`, laid out: its address.
    fn lay_slot_object(&mut self, key: &[u8], o: &SlotObject) -> u64 {
        let l = self.b.layout;
        let index = key
            .get(..4)
            .map_or(0, |k| u32::from_le_bytes(k.try_into().unwrap()));
        let at = self.object();
        match o {
            SlotObject::NetDev(val) => {
                let d = l.devmap.expect("devmap layout");
                self.write_u32(at + u64::from(d.idx), index);
                self.write(at + u64::from(d.val), val);
            }
            SlotObject::CpuEntry(value) => {
                let c = l.cpumap.expect("cpumap layout");
                self.write_u32(at + u64::from(c.entry_cpu), index);
                self.write(at + u64::from(c.entry_value), value);
            }
            SlotObject::Sock(cookie) => {
                let s = l.sock.expect("sock layout");
                self.write_u64(at + u64::from(s.cookie), *cookie);
            }
            SlotObject::Cgroup(id) => {
                let c = l.cgroup.expect("cgroup layout");
                let kn = self.object();
                self.write_u64(kn + u64::from(c.kn_id), *id);
                self.write_u64(at + u64::from(c.kn), kn);
            }
            SlotObject::PerfEvent {
                event_type,
                config,
                cpu,
            } => {
                let p = l.perf_event.expect("perf_event layout");
                let event = self.object();
                let attr = event + u64::from(p.event_attr);
                self.write_u32(attr + u64::from(p.attr_type), *event_type);
                self.write_u64(attr + u64::from(p.attr_config), *config);
                self.write(event + u64::from(p.event_cpu), &cpu.to_le_bytes());
                self.write_u64(at + u64::from(p.entry_event), event);
            }
            SlotObject::Xsk { ifindex, queue_id } => {
                let x = l.xskmap.expect("xskmap layout");
                let dev = self.object();
                self.write_u32(dev + u64::from(x.ifindex), *ifindex);
                self.write_u64(at + u64::from(x.dev), dev);
                self.write(
                    at + u64::from(x.queue_id),
                    &(*queue_id as u16).to_le_bytes(),
                );
            }
        }
        at
    }

    /// Points the slots of an array of `count` pointers at `ptrs` at their objects.
    fn lay_pointer_slots(&mut self, spec: &MapSpec, ptrs: u64) -> Vec<BuiltObject> {
        let mut built = Vec::new();
        for (key, o) in &spec.objects {
            let index = u32::from_le_bytes(key[..4].try_into().unwrap());
            assert!(
                index < spec.max_entries,
                "slot {index} of {}",
                spec.max_entries
            );
            let object = self.lay_slot_object(key, o);
            let slot = ptrs + 8 * u64::from(index);
            self.write_u64(slot, object);
            built.push(BuiltObject {
                slot: Kva(slot),
                object: Kva(object),
            });
        }
        built
    }

    /// Chains the objects of a hash kind into `n` buckets of `stride` bytes at
    /// `buckets` (each one's first pointer there), through the `hlist_node` at `node`
    /// in each element (its `next` at `node + next`), each in bucket `bucket(key)`.
    /// `elem(key, object)` lays the element and returns it.
    fn lay_chains(
        &mut self,
        spec: &MapSpec,
        (buckets, n, stride): (u64, u64, u64),
        (node, next): (u64, u64),
        bucket: impl Fn(&[u8]) -> u64,
        mut elem: impl FnMut(&mut Self, &[u8], &SlotObject) -> u64,
    ) -> Vec<BuiltObject> {
        let mut chains: BTreeMap<u64, Vec<(usize, u64)>> = BTreeMap::new();
        for (i, (key, o)) in spec.objects.iter().enumerate() {
            let e = elem(self, key, o);
            chains
                .entry(bucket(key) & (n - 1))
                .or_default()
                .push((i, e));
        }
        let mut built = alloc::vec![BuiltObject::default(); spec.objects.len()];
        for (b, list) in chains {
            let mut link = buckets + b * stride;
            for (i, e) in list {
                self.write_u64(link, e + node);
                built[i] = BuiltObject {
                    slot: Kva(link),
                    object: Kva(e),
                };
                link = e + node + next;
            }
        }
        built
    }

    /// The contents of a BLOOM_FILTER or an object map whose map struct is at `base`.
    pub(super) fn lay_object_map(&mut self, spec: &MapSpec, base: u64) {
        let l = self.b.layout;
        let max = u64::from(spec.max_entries);
        let built = match spec.map_type {
            MapType::BLOOM_FILTER => {
                if let (Some(b), Some((k, seed, bits))) = (l.bloom, &spec.bloom) {
                    let mask = bloom_bitset_mask(spec.max_entries, *k);
                    self.write_u32(base + u64::from(b.nr_hash_funcs), *k);
                    self.write_u32(base + u64::from(b.hash_seed), *seed);
                    self.write_u32(base + u64::from(b.bitset_mask), mask);
                    for &bit in bits {
                        assert!(bit <= mask, "bit {bit} past the mask {mask:#x}");
                        let at = base + u64::from(b.bitset) + u64::from(bit / 8);
                        let old = self.ram.slice(self.pa_of(at), 1)[0];
                        self.write(at, &[old | 1 << (bit % 8)]);
                    }
                }
                return;
            }
            MapType::DEVMAP | MapType::CPUMAP | MapType::SOCKMAP => {
                let field = match spec.map_type {
                    MapType::DEVMAP => l.devmap.map(|d| d.netdev_map),
                    MapType::CPUMAP => l.cpumap.map(|c| c.cpu_map),
                    _ => l.sockmap.map(|s| s.sks),
                };
                let Some(field) = field else { return };
                let ptrs = self.map_alloc(spec, 8 * max.max(1));
                self.write_u64(base + u64::from(field), ptrs);
                self.lay_pointer_slots(spec, ptrs)
            }
            MapType::REUSEPORT_SOCKARRAY | MapType::XSKMAP => {
                let field = match spec.map_type {
                    MapType::XSKMAP => l.xskmap.map(|x| x.xsk_map),
                    _ => l.reuseport.map(|r| r.ptrs),
                };
                let Some(field) = field else { return };
                self.lay_pointer_slots(spec, base + u64::from(field))
            }
            MapType::CGROUP_ARRAY | MapType::PERF_EVENT_ARRAY => {
                let Some(a) = l.array else { return };
                self.lay_pointer_slots(spec, base + u64::from(a.value))
            }
            MapType::DEVMAP_HASH => {
                let Some(d) = l.devmap else { return };
                let n = max.max(1).next_power_of_two();
                let heads = self.map_alloc(spec, 8 * n);
                self.write_u64(base + u64::from(d.dev_index_head), heads);
                self.write_u32(base + u64::from(d.n_buckets), n as u32);
                self.lay_chains(
                    spec,
                    (heads, n, 8),
                    (u64::from(d.index_hlist), u64::from(d.node_next)),
                    |k| u64::from(u32::from_le_bytes(k[..4].try_into().unwrap())),
                    |me, key, o| me.lay_slot_object(key, o),
                )
            }
            MapType::SOCKHASH => {
                let Some(s) = l.sockmap else { return };
                let n = max.max(1).next_power_of_two();
                let stride = u64::from(s.bucket_size);
                let buckets = self.map_alloc(spec, stride * n);
                self.write_u64(base + u64::from(s.buckets), buckets);
                self.write_u32(base + u64::from(s.buckets_num), n as u32);
                let heads = buckets + u64::from(s.bucket_head);
                self.lay_chains(
                    spec,
                    (heads, n, stride),
                    (u64::from(s.elem_node), u64::from(s.node_next)),
                    |k| u64::from(key_hash(k)),
                    |me, key, o| {
                        let sk = me.lay_slot_object(key, o);
                        let elem = me.kmalloc(u64::from(s.elem_key) + key.len() as u64).0;
                        me.write_u32(elem + u64::from(s.elem_hash), key_hash(key));
                        me.write_u64(elem + u64::from(s.elem_sk), sk);
                        me.write(elem + u64::from(s.elem_key), key);
                        elem
                    },
                )
            }
            _ => return,
        };
        self.objects.insert(spec.id, built);
    }
}
