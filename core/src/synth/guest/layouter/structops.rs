//! Laying out STRUCT_OPS maps: `kvalue`'s state and refcnt, `*uvalue`, the map's
//! reference counts, and `links[]` with a `struct bpf_link` per program.

use alloc::collections::BTreeMap;

use super::Layouter;
use crate::addr::Kva;
use crate::bpf::MapType;
use crate::limits::{BPF_OBJ_NAME_LEN, MAX_STRUCT_OPS_FUNCS};
use crate::synth::guest::{BuiltMap, BuiltProg, MapSpec};

/// Bytes of a bare `struct bpf_link`, program or `bpf_prog_aux`.
const OBJ: u64 = 256;

/// The bytes a STRUCT_OPS map struct needs (up to the end of `kvalue`), or `None` for
/// another type or without the layout group.
pub(super) fn struct_ops_map_size(b: &crate::layout::KernelLayout, spec: &MapSpec) -> Option<u64> {
    let l = b
        .struct_ops
        .filter(|_| spec.map_type == MapType::STRUCT_OPS)?;
    Some(u64::from(l.kvalue) + u64::from(spec.value_size).max(64))
}

impl Layouter<'_> {
    /// Writes `kvalue`'s state and refcnt, `*uvalue` and the map's reference counts of
    /// a STRUCT_OPS `spec` at `base`.
    pub(super) fn lay_struct_ops(&mut self, spec: &MapSpec, base: u64) {
        let (Some(l), Some(ops)) = (self.b.layout.struct_ops, spec.struct_ops.as_ref()) else {
            return;
        };
        if spec.map_type != MapType::STRUCT_OPS {
            return;
        }
        let kvalue = base + u64::from(l.kvalue);
        self.write_u32(kvalue + u64::from(l.value_state), ops.state);
        self.write_u32(kvalue + u64::from(l.value_refcnt), ops.kvalue_refcnt);
        if let Some(m) = l.map_refcnts {
            self.write_u64(base + u64::from(m.refcnt), ops.map_refcnts.0);
            self.write_u64(base + u64::from(m.usercnt), ops.map_refcnts.1);
        }
        if !ops.uvalue.is_empty() {
            let uvalue = self.kmalloc(ops.uvalue.len() as u64).0;
            self.write(uvalue, &ops.uvalue);
            self.write_u64(base + u64::from(l.uvalue), uvalue);
        }
        if let Some(off) = l.funcs_cnt {
            let n = ops.funcs_cnt.unwrap_or(ops.link_progs.len() as u32);
            self.write_u32(base + u64::from(off), n);
        }
    }

    /// Lays `links[]` of every STRUCT_OPS map, each link leading to its program (a bare
    /// one named `sops_<id>` for an id the guest lacks); after the programs.
    pub(super) fn lay_struct_ops_links(&mut self, maps: &[BuiltMap], progs: &[BuiltProg]) {
        let layout = self.b.layout;
        let (Some(l), Some(pl)) = (layout.struct_ops, layout.prog) else {
            return;
        };
        let prog_at: BTreeMap<u32, Kva> = progs.iter().map(|p| (p.id, p.kva)).collect();
        let specs = self.b.maps.clone();
        for (spec, built) in specs.iter().zip(maps) {
            let Some(ops) = spec.struct_ops.as_ref() else {
                continue;
            };
            if ops.link_progs.is_empty() {
                continue;
            }
            // As many slots as any struct has members (the kernel sizes it by them).
            let slots = (ops.link_progs.len() as u64).max(u64::from(MAX_STRUCT_OPS_FUNCS));
            let links = self.kmalloc(8 * slots).0;
            for (i, id) in ops.link_progs.iter().enumerate() {
                if *id == 0 {
                    continue;
                }
                let prog = match prog_at.get(id) {
                    Some(kva) => kva.0,
                    None => {
                        let prog = self.kmalloc(OBJ).0;
                        let aux = self.kmalloc(OBJ).0;
                        self.write_u64(prog + u64::from(pl.aux), aux);
                        self.write_u32(aux + u64::from(pl.aux_id), *id);
                        let mut name = [0u8; BPF_OBJ_NAME_LEN];
                        let text = alloc::format!("sops_{id}");
                        let n = text.len().min(BPF_OBJ_NAME_LEN - 1);
                        name[..n].copy_from_slice(&text.as_bytes()[..n]);
                        self.write(aux + u64::from(pl.aux_name), &name);
                        prog
                    }
                };
                let link = self.kmalloc(OBJ).0;
                self.write_u64(link + u64::from(l.link_prog), prog);
                self.write_u64(links + 8 * i as u64, link);
            }
            self.write_u64(built.kva.0 + u64::from(l.links), links);
        }
    }
}
