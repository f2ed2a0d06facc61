//! Laying local-storage maps out: buckets, elements, each owner's
//! `struct bpf_local_storage` and the owner object itself.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Layouter;
use crate::addr::Kva;
use crate::bpf::storage::{OwnerDesc, AF_INET, AF_INET6};
use crate::layout::StorageLayout;
use crate::synth::guest::{BuiltStorage, BuiltStorageElem, MapSpec};

/// Bytes past the largest offset an owner object gets.
const OWNER_SLACK: u64 = 64;

impl Layouter<'_> {
    /// The buckets and elements of the local-storage map whose
    /// `struct bpf_local_storage_map` is at `base`.
    pub(super) fn lay_storage(&mut self, spec: &MapSpec, base: u64, l: &StorageLayout) {
        let n = 1u64 << spec.bucket_log.min(13);
        let stride = u64::from(l.bucket_size);
        let buckets = self.kmalloc(n * stride).0;
        self.write_u64(base + u64::from(l.buckets), buckets);
        self.write_u32(base + u64::from(l.bucket_log), spec.bucket_log);
        let mut chains: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut elems = Vec::new();
        for (i, e) in spec.storage.iter().enumerate() {
            let bucket = e.bucket.map_or(i as u64 % n, u64::from);
            assert!(bucket < n, "bucket {bucket} of a map of {n} buckets");
            chains.entry(bucket).or_default().push(i);
            let owner = self.lay_owner(l, &e.owner);
            let storage = self.kmalloc(u64::from(l.storage_owner) + 8).0;
            self.write_u64(storage + u64::from(l.storage_owner), owner);
            let elem = self
                .kmalloc(u64::from(l.elem_data) + u64::from(spec.value_size).max(1))
                .0;
            self.write_u64(elem + u64::from(l.elem_local_storage), storage);
            self.write_u64(elem + u64::from(l.elem_smap), base);
            self.write(elem + u64::from(l.elem_data), &e.value);
            elems.push(BuiltStorageElem {
                bucket: bucket as u32,
                kva: Kva(elem),
                local_storage: Kva(storage),
                owner: Kva(owner),
            });
        }
        for (&bucket, list) in &chains {
            let head = buckets + bucket * stride + u64::from(l.bucket_first);
            let node = |i: usize| elems[i].kva.0 + u64::from(l.elem_map_node);
            let next_of = |i: usize| elems[i].kva.0 + u64::from(l.elem_next);
            self.write_u64(head, node(list[0]));
            for (j, &i) in list.iter().enumerate() {
                let next = list.get(j + 1).map_or(0, |&k| node(k));
                self.write_u64(next_of(i), next);
                let pprev = if j == 0 { head } else { next_of(list[j - 1]) };
                self.write_u64(elems[i].kva.0 + u64::from(l.elem_pprev), pprev);
            }
        }
        self.storage.insert(
            spec.id,
            BuiltStorage {
                buckets: Kva(buckets),
                bucket_log: spec.bucket_log,
                elems,
            },
        );
    }

    /// An owner object holding `desc` (with its superblock or kernfs node and name):
    /// its address. Kinds without offsets in `l` get a bare object.
    fn lay_owner(&mut self, l: &StorageLayout, desc: &OwnerDesc) -> u64 {
        match (desc, l.task, l.inode, l.sock, l.cgroup) {
            (OwnerDesc::Task(t), Some(o), _, _, _) => {
                let at = self
                    .kmalloc(u64::from(o.pid.max(o.tgid).max(o.comm)) + OWNER_SLACK)
                    .0;
                self.write(at + u64::from(o.pid), &t.pid.to_le_bytes());
                self.write(at + u64::from(o.tgid), &t.tgid.to_le_bytes());
                self.write(at + u64::from(o.comm), &t.comm);
                at
            }
            (OwnerDesc::Inode(i), _, Some(o), _, _) => {
                let at = self.kmalloc(u64::from(o.ino.max(o.sb)) + OWNER_SLACK).0;
                let sb = self.kmalloc(u64::from(o.s_dev) + OWNER_SLACK).0;
                self.write_u64(at + u64::from(o.ino), i.ino);
                self.write_u64(at + u64::from(o.sb), sb);
                self.write_u32(sb + u64::from(o.s_dev), i.dev);
                at
            }
            (OwnerDesc::Sock(s), _, _, Some(o), _) => {
                let top = [o.cookie, o.family, o.num, o.dport, o.rcv_saddr, o.daddr]
                    .into_iter()
                    .chain(o.v6_rcv_saddr)
                    .chain(o.v6_daddr)
                    .max()
                    .unwrap_or(0);
                let at = self.kmalloc(u64::from(top) + OWNER_SLACK).0;
                self.write_u64(at + u64::from(o.cookie), s.cookie);
                self.write(at + u64::from(o.family), &s.family.to_le_bytes());
                self.write(at + u64::from(o.num), &s.local_port.to_le_bytes());
                self.write(at + u64::from(o.dport), &s.remote_port.to_be_bytes());
                match (s.family, o.v6_rcv_saddr, o.v6_daddr) {
                    (AF_INET, _, _) => {
                        self.write(at + u64::from(o.rcv_saddr), &s.local_addr[..4]);
                        self.write(at + u64::from(o.daddr), &s.remote_addr[..4]);
                    }
                    (AF_INET6, Some(local), Some(remote)) => {
                        self.write(at + u64::from(local), &s.local_addr);
                        self.write(at + u64::from(remote), &s.remote_addr);
                    }
                    _ => {}
                }
                at
            }
            (OwnerDesc::Cgroup(c), _, _, _, Some(o)) => {
                let at = self.kmalloc(u64::from(o.kn) + OWNER_SLACK).0;
                let kn = self
                    .kmalloc(u64::from(o.kn_id.max(o.kn_name)) + OWNER_SLACK)
                    .0;
                let mut name = c.name().to_vec();
                name.push(0);
                let name_at = self.kmalloc(name.len() as u64).0;
                self.write(name_at, &name);
                self.write_u64(at + u64::from(o.kn), kn);
                self.write_u64(kn + u64::from(o.kn_id), c.id);
                self.write_u64(kn + u64::from(o.kn_name), name_at);
                at
            }
            _ => self.kmalloc(OWNER_SLACK).0,
        }
    }
}
