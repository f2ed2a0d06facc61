//! Laying programs out: `struct bpf_prog`, `bpf_prog_aux`, and `prog_idr`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Layouter;
use crate::addr::Kva;
use crate::bpf::MapType;
use crate::limits::BPF_OBJ_NAME_LEN;
use crate::synth::build_xarray;
use crate::synth::guest::{BuiltMap, BuiltProg, ProgSpec};

/// Bytes of the synthetic `struct bpf_prog_aux` and `struct bpf_prog` headers, at least.
const OBJ: u64 = 512;

impl Layouter<'_> {
    /// Lays one program out; `maps` are the guest's maps by id.
    fn lay_prog(&mut self, spec: &ProgSpec, maps: &BTreeMap<u32, Kva>) -> BuiltProg {
        let layout = self.b.layout;
        let l = layout.prog.expect("prog layout");
        let prog = self.kmalloc(OBJ).0;
        let aux = self.kmalloc(OBJ).0;
        self.write_u64(prog + u64::from(l.aux), aux);
        self.write_u32(prog + u64::from(l.prog_type), spec.prog_type.0);
        self.write_u32(prog + u64::from(l.len), spec.len);
        self.write_u32(prog + u64::from(l.jited_len), spec.jited_len);
        self.write(prog + u64::from(l.tag), &spec.tag);
        if let (Some(bit), true) = (l.gpl_compatible_bit, spec.gpl_compatible) {
            let at = prog + u64::from(bit / 8);
            self.write(at, &[1u8 << (bit % 8)]);
        }
        self.write_u32(aux + u64::from(l.aux_id), spec.id);
        self.write_u64(aux + u64::from(l.aux_prog), prog);
        let mut name = [0u8; BPF_OBJ_NAME_LEN];
        name[..spec.name.len()].copy_from_slice(&spec.name);
        self.write(aux + u64::from(l.aux_name), &name);
        if !spec.subprog_jited.is_empty() {
            let func = self.kmalloc(8 * spec.subprog_jited.len() as u64).0;
            for (i, &len) in spec.subprog_jited.iter().enumerate() {
                let sub = self.kmalloc(OBJ).0;
                self.write_u32(sub + u64::from(l.jited_len), len);
                self.write_u64(func + 8 * i as u64, sub);
            }
            self.write_u32(
                aux + u64::from(l.aux_func_cnt),
                spec.subprog_jited.len() as u32,
            );
            self.write_u64(aux + u64::from(l.aux_func), func);
        }
        if !spec.map_ids.is_empty() {
            let used = self.kmalloc(8 * spec.map_ids.len() as u64).0;
            for (i, id) in spec.map_ids.iter().enumerate() {
                let map = match maps.get(id) {
                    Some(kva) => kva.0,
                    None => {
                        let bare = self.kmalloc(OBJ).0;
                        self.write_u32(bare + u64::from(layout.bpf_map.id), *id);
                        bare
                    }
                };
                self.write_u64(used + 8 * i as u64, map);
            }
            self.write_u32(
                aux + u64::from(l.aux_used_map_cnt),
                spec.map_ids.len() as u32,
            );
            self.write_u64(aux + u64::from(l.aux_used_maps), used);
        }
        if let (Some(id), Some(b)) = (spec.btf_id, layout.btf_object) {
            let btf = self.kmalloc(OBJ).0;
            self.write_u32(btf + u64::from(b.id), id);
            self.write_u64(aux + u64::from(l.aux_btf), btf);
        }
        if let (Some(uid), Some(user_off), Some(uid_off)) = (spec.uid, l.aux_user, l.user_uid) {
            let user = self.kmalloc(64).0;
            self.write_u32(user + u64::from(uid_off), uid);
            self.write_u64(aux + u64::from(user_off), user);
        }
        BuiltProg {
            id: spec.id,
            kva: Kva(prog),
            aux: Kva(aux),
        }
    }

    /// Points the slots of the guest's PROG_ARRAY, ARRAY_OF_MAPS and HASH_OF_MAPS maps at
    /// their programs and maps (laying a bare object for an id the guest lacks).
    pub(super) fn lay_fd_slots(&mut self, maps: &[BuiltMap], progs: &[BuiltProg]) {
        let layout = self.b.layout;
        let map_at: BTreeMap<u32, Kva> = maps.iter().map(|m| (m.id, m.kva)).collect();
        let prog_at: BTreeMap<u32, Kva> = progs.iter().map(|p| (p.id, p.kva)).collect();
        let specs = self.b.maps.clone();
        for (spec, built) in specs.iter().zip(maps) {
            for (i, (key, id)) in spec.fd_slots.iter().enumerate() {
                let target = if spec.map_type == MapType::PROG_ARRAY {
                    match prog_at.get(id) {
                        Some(kva) => kva.0,
                        None => {
                            let l = layout.prog.expect("prog layout");
                            let prog = self.kmalloc(OBJ).0;
                            let aux = self.kmalloc(OBJ).0;
                            self.write_u64(prog + u64::from(l.aux), aux);
                            self.write_u32(aux + u64::from(l.aux_id), *id);
                            prog
                        }
                    }
                } else {
                    match map_at.get(id) {
                        Some(kva) => kva.0,
                        None => {
                            let bare = self.kmalloc(OBJ).0;
                            self.write_u32(bare + u64::from(layout.bpf_map.id), *id);
                            bare
                        }
                    }
                };
                let slot = if spec.map_type == MapType::HASH_OF_MAPS {
                    let h = layout.htab.expect("htab layout");
                    let elem = self.htabs[&spec.id].elems[i].kva.0;
                    elem + u64::from(h.elem_key) + u64::from(spec.key_size).next_multiple_of(8)
                } else {
                    let a = layout.array.expect("array layout");
                    let index = u32::from_le_bytes(key[..4].try_into().unwrap());
                    built.kva.0 + u64::from(a.value) + 8 * u64::from(index)
                };
                self.write_u64(slot, target);
            }
        }
    }

    /// Lays out `prog_idr` (an image variable) and every program; after the maps, so
    /// that a guest without programs is laid out as before.
    pub(super) fn lay_progs(&mut self, maps: &[BuiltMap]) -> (Kva, Vec<BuiltProg>) {
        let l = self.b.layout;
        let prog_idr = self.image_var(64);
        if self.b.progs.is_empty() || l.prog.is_none() {
            return (prog_idr, Vec::new());
        }
        let by_id: BTreeMap<u32, Kva> = maps.iter().map(|m| (m.id, m.kva)).collect();
        let specs = self.b.progs.clone();
        let progs: Vec<BuiltProg> = specs.iter().map(|s| self.lay_prog(s, &by_id)).collect();
        let entries: Vec<(u64, u64)> = progs.iter().map(|p| (u64::from(p.id), p.kva.0)).collect();
        let direct = self.addrs.direct_map.unwrap();
        let direct_base = direct.virt.0.wrapping_sub(direct.phys.0);
        let head = build_xarray(&mut self.ram, &l.xarray, direct_base, &entries);
        let xa = prog_idr.0 + u64::from(l.idr.idr_rt);
        self.write_u64(xa + u64::from(l.xarray.xa_head), head);
        let next = progs.iter().map(|p| p.id + 1).max().unwrap_or(1);
        self.write_u32(prog_idr.0 + u64::from(l.idr.idr_next), next);
        (prog_idr, progs)
    }
}
