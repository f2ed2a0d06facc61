//! STRUCT_OPS maps decoded: the registered struct named through the kernel's BTF, each
//! function pointer with the program (id, name) behind it, and the sched_ext scheduler
//! a `sched_ext_ops` map registers.
//!
//! A dump of a STRUCT_OPS map stays in bpftool's entry form: one entry, key 0 (4 zero
//! bytes), the value as `BPF_MAP_LOOKUP_ELEM` returns it (docs/struct-ops.md), so memory
//! and live dumps are the same bytes. That value is a `struct bpf_struct_ops_<name>`
//! (the map's `btf_vmlinux_value_type_id`, in the kernel's BTF) whose `data` member is
//! the struct itself, the kernel having put each program's id in its function-pointer
//! slot. [`decode`] reads those bytes through the BTF; [`from_memory`] reads the map
//! from a described kernel and names the programs from the map's own links.
//!
//! ```
//! # fn demo<M: mapwalk_core::PhysRead>(
//! #     kernel: &mapwalk::describe::Kernel<M>,
//! #     map: &mapwalk::source::MapInfo,
//! # ) -> Result<(), mapwalk::source::SourceError> {
//! let ops = mapwalk::struct_ops::from_memory(kernel, map)?;
//! for f in &ops.funcs {
//!     if let Some(p) = &f.prog {
//!         println!("{}.{} -> program {} ({})", ops.struct_name, f.member, p.id, p.name);
//!     }
//! }
//! if let Some(name) = ops.sched_ext_scheduler() {
//!     println!("sched_ext scheduler: {name}");
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use mapwalk_core::bpf::{
    StructOpsState, STRUCT_OPS_STATE_INIT, STRUCT_OPS_STATE_INUSE, STRUCT_OPS_STATE_READY,
    STRUCT_OPS_STATE_TOBEFREE,
};
use mapwalk_core::{KernelRead, MapType, PhysRead};
use serde_json::{json, Value};

use crate::btf::{BtfError, BtfReader, Kind};
use crate::describe::Kernel;
use crate::source::{MapInfo, SourceError};

/// The program behind one function pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgRef {
    /// The program's id (what the kernel wrote into the slot of the lookup's value).
    pub id: u32,
    /// Its name (`bpf_prog_aux.name`), empty when it could not be found.
    pub name: String,
}

/// One function-pointer member of the registered struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructOpsFunc {
    /// The member's name (`ssthresh`, `init`, ...).
    pub member: String,
    /// Its index among the struct's members (a program's `expected_attach_type`).
    pub index: u32,
    /// Its byte offset in the value (the `data` member's offset included).
    pub offset: u32,
    /// The program in the slot, `None` when the slot is empty.
    pub prog: Option<ProgRef>,
}

/// A STRUCT_OPS map's value, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructOps {
    /// The value type (`bpf_struct_ops_tcp_congestion_ops`).
    pub value_type: String,
    /// The struct registered (`tcp_congestion_ops`, `sched_ext_ops`, ...).
    pub struct_name: String,
    /// The struct's `name` member, when it has one (a char array) and it is not empty.
    pub name: Option<String>,
    /// The state the lookup reports (`STRUCT_OPS_STATE_*`).
    pub state: u32,
    /// The reference count the lookup reports.
    pub refcnt: u32,
    /// Every function-pointer member, in member order.
    pub funcs: Vec<StructOpsFunc>,
}

impl StructOps {
    /// The state as the kernel's enum names it, lower case (`init`, `inuse`,
    /// `tobefree`, `ready`), or `unknown`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            STRUCT_OPS_STATE_INIT => "init",
            STRUCT_OPS_STATE_INUSE => "inuse",
            STRUCT_OPS_STATE_TOBEFREE => "tobefree",
            STRUCT_OPS_STATE_READY => "ready",
            _ => "unknown",
        }
    }

    /// The sched_ext scheduler's name, when this map registers a `sched_ext_ops` in
    /// state INUSE or READY (a `BPF_F_LINK` map is READY from its update on, so it is
    /// the active scheduler once its link is attached).
    pub fn sched_ext_scheduler(&self) -> Option<&str> {
        (self.struct_name == "sched_ext_ops"
            && matches!(self.state, STRUCT_OPS_STATE_INUSE | STRUCT_OPS_STATE_READY))
        .then_some(self.name.as_deref())
        .flatten()
    }

    /// The decoded struct as JSON: `{"type", "name", "state", "refcnt", "funcs":
    /// [{"member", "index", "offset", "prog": {"id", "name"} | null}], "sched_ext"}`.
    pub fn to_json(&self) -> Value {
        let funcs: Vec<Value> = self
            .funcs
            .iter()
            .map(|f| {
                json!({
                    "member": f.member,
                    "index": f.index,
                    "offset": f.offset,
                    "prog": f.prog.as_ref().map(|p| json!({"id": p.id, "name": p.name})),
                })
            })
            .collect();
        json!({
            "type": self.struct_name,
            "name": self.name,
            "state": self.state_name(),
            "refcnt": self.refcnt,
            "funcs": funcs,
            "sched_ext": self.sched_ext_scheduler(),
        })
    }
}

fn btf_err(e: BtfError) -> SourceError {
    SourceError::Btf(format!("struct_ops value type: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether type `id` is a pointer to a function.
fn is_func_ptr(r: &BtfReader<'_>, id: u32) -> Result<bool, BtfError> {
    let t = r.strip(id)?;
    if t.kind != Kind::PTR {
        return Ok(false);
    }
    Ok(r.strip(t.size_or_type)?.kind == Kind::FUNC_PROTO)
}

/// Decodes `value`, the bytes a lookup of a STRUCT_OPS map returns, through `btf` (the
/// kernel's) and its `value_type_id` (the map's `btf_vmlinux_value_type_id`); `name_of`
/// names the program of an id (`None`: left empty). `state` and `refcnt` are read from
/// the value's `common` (or, on 6.1, its own `refcnt` and `state`).
///
/// # Errors
/// [`SourceError::Btf`] when the type is not a struct with a struct member `data`, or
/// the BTF does not decode; [`SourceError::Unsupported`] for a value shorter than the
/// type.
pub fn decode(
    btf: &BtfReader<'_>,
    value_type_id: u32,
    value: &[u8],
    name_of: &dyn Fn(u32) -> Option<String>,
) -> Result<StructOps, SourceError> {
    let vt = btf.strip(value_type_id).map_err(btf_err)?;
    let value_type = text(btf.name(&vt).map_err(btf_err)?);
    if vt.kind != Kind::STRUCT {
        return Err(SourceError::Btf(format!(
            "struct_ops value type {value_type_id} ({value_type}) is not a struct"
        )));
    }
    if usize::try_from(vt.size_or_type).map_or(true, |n| n > value.len()) {
        return Err(SourceError::Unsupported(format!(
            "struct_ops value of {} bytes, shorter than {value_type} ({} bytes)",
            value.len(),
            vt.size_or_type
        )));
    }
    let u32_at = |off: u64| -> u32 {
        usize::try_from(off)
            .ok()
            .and_then(|o| value.get(o..o.checked_add(4)?))
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (mut state, mut refcnt, mut data) = (0, 0, None);
    for m in vt.members() {
        let off = u64::from(m.bit_offset / 8);
        match btf.str_at(m.name_off).map_err(btf_err)? {
            b"refcnt" => refcnt = u32_at(off),
            b"state" => state = u32_at(off),
            b"common" => {
                let ct = btf.strip(m.type_id).map_err(btf_err)?;
                for c in ct.members() {
                    let at = off.saturating_add(u64::from(c.bit_offset / 8));
                    match btf.str_at(c.name_off).map_err(btf_err)? {
                        b"refcnt" => refcnt = u32_at(at),
                        b"state" => state = u32_at(at),
                        _ => {}
                    }
                }
            }
            b"data" => data = Some((m.type_id, m.bit_offset / 8)),
            _ => {}
        }
    }
    let (data_type, data_off) = data.ok_or_else(|| {
        SourceError::Btf(format!("struct_ops value type {value_type} has no `data`"))
    })?;
    let st = btf.strip(data_type).map_err(btf_err)?;
    if !st.kind.is_aggregate() {
        return Err(SourceError::Btf(format!(
            "{value_type}.data is not a struct"
        )));
    }
    let struct_name = text(btf.name(&st).map_err(btf_err)?);
    let (mut funcs, mut name) = (Vec::new(), None);
    for (index, m) in (0u32..).zip(st.members()) {
        let member = text(btf.str_at(m.name_off).map_err(btf_err)?);
        let offset = data_off.saturating_add(m.bit_offset / 8);
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        if is_func_ptr(btf, m.type_id).map_err(btf_err)? {
            let slot = value
                .get(at..at.saturating_add(8))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes);
            let prog = u32::try_from(slot)
                .ok()
                .filter(|&id| id != 0)
                .map(|id| ProgRef {
                    id,
                    name: name_of(id).unwrap_or_default(),
                });
            funcs.push(StructOpsFunc {
                member,
                index,
                offset,
                prog,
            });
        } else if member == "name" {
            let t = btf.strip(m.type_id).map_err(btf_err)?;
            if t.kind == Kind::ARRAY {
                let len = t
                    .array()
                    .map_or(0, |a| usize::try_from(a.nelems).unwrap_or(0));
                let bytes = value.get(at..at.saturating_add(len)).unwrap_or(&[]);
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                name = Some(text(&bytes[..end])).filter(|s| !s.is_empty());
            }
        }
    }
    Ok(StructOps {
        value_type,
        struct_name,
        name,
        state,
        refcnt,
        funcs,
    })
}

/// Whether `map` is a STRUCT_OPS map with a kernel value type, which [`decode`] and
/// [`from_memory`] read.
pub fn decodable(map: &MapInfo) -> bool {
    map.map_type == MapType::STRUCT_OPS && map.btf_vmlinux_value_type_id != 0
}

/// Reads STRUCT_OPS `map` from a described kernel and decodes it ([`decode`]) through
/// the kernel's BTF, naming each program from the map's own `links[]`.
///
/// # Errors
/// [`SourceError::Unsupported`] for another map type or one without
/// `btf_vmlinux_value_type_id`; [`SourceError::Core`] when the map cannot be read;
/// [`SourceError::Btf`] as [`decode`].
pub fn from_memory<M: PhysRead>(
    kernel: &Kernel<M>,
    map: &MapInfo,
) -> Result<StructOps, SourceError> {
    if !decodable(map) {
        return Err(SourceError::Unsupported(format!(
            "map {} is no struct_ops map with a kernel value type",
            map.id
        )));
    }
    let bpf = kernel.bpf();
    let size = usize::try_from(map.value_size).unwrap_or(usize::MAX);
    if u64::from(map.value_size) > kernel.view.limits().value_size {
        return Err(SourceError::Unsupported(format!(
            "struct_ops value_size {} above the cap",
            map.value_size
        )));
    }
    let mut value = vec![0u8; size];
    let StructOpsState { .. } = bpf.struct_ops_value(map, &mut value)?;
    let btf = kernel.btf.reader().map_err(btf_err)?;
    let members = btf
        .strip(map.btf_vmlinux_value_type_id)
        .ok()
        .and_then(|vt| {
            vt.members()
                .find(|m| btf.str_at(m.name_off).ok() == Some(b"data"))
        })
        .and_then(|m| btf.strip(m.type_id).ok())
        .map_or(0, |t| u32::from(t.vlen));
    let mut names = BTreeMap::new();
    bpf.for_each_struct_ops_prog(map, members, |p| {
        names.insert(p.id, p.name.to_string());
        ControlFlow::Continue(())
    })?;
    decode(&btf, map.btf_vmlinux_value_type_id, &value, &|id| {
        names.get(&id).cloned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testing::Builder;

    /// `bpf_struct_ops_<ops>` (the 6.9+ shape with `common`, or 6.1's) over a struct
    /// `ops` of 32 bytes: `ssthresh` (a function pointer) at 0, `name[16]` at 8,
    /// `cong_avoid` at 24, `flags` (u32) at 28. Returns the BTF and the value's id.
    fn btf(ops: &str, common: bool) -> (Vec<u8>, u32) {
        let mut b = Builder::new();
        let int = b.int("unsigned int", 4);
        let chr = b.int("char", 1);
        let name = b.array(chr, int, 16);
        let proto = b.head("", Kind::FUNC_PROTO, false, 0, int);
        let ptr = b.alias(Kind::PTR, "", proto);
        let st = b.agg(
            Kind::STRUCT,
            ops,
            false,
            32,
            &[
                ("ssthresh", ptr, 0),
                ("name", name, 64),
                ("cong_avoid", ptr, 192),
                ("flags", int, 224),
            ],
        );
        let vname = format!("bpf_struct_ops_{ops}");
        let value = if common {
            let c = b.agg(
                Kind::STRUCT,
                "bpf_struct_ops_common_value",
                false,
                8,
                &[("refcnt", int, 0), ("state", int, 32)],
            );
            b.agg(
                Kind::STRUCT,
                &vname,
                false,
                96,
                &[("common", c, 0), ("data", st, 512)],
            )
        } else {
            b.agg(
                Kind::STRUCT,
                &vname,
                false,
                96,
                &[("refcnt", int, 0), ("state", int, 32), ("data", st, 512)],
            )
        };
        (b.bytes(), value)
    }

    /// A lookup's bytes: refcnt 2, state `state`, name "mw_ca", program 7 in
    /// `ssthresh`, none in `cong_avoid`, flags 0.
    fn value(state: u32) -> Vec<u8> {
        let mut v = vec![0u8; 96];
        v[0..4].copy_from_slice(&2u32.to_le_bytes());
        v[4..8].copy_from_slice(&state.to_le_bytes());
        v[64..72].copy_from_slice(&7u64.to_le_bytes());
        v[72..77].copy_from_slice(b"mw_ca");
        v
    }

    fn names(id: u32) -> Option<String> {
        (id == 7).then(|| "mw_ssthresh".to_owned())
    }

    #[test]
    fn function_pointers_name_their_programs_in_both_shapes() {
        for common in [true, false] {
            let (raw, id) = btf("tcp_congestion_ops", common);
            let r = BtfReader::new(&raw).unwrap();
            let ops = decode(&r, id, &value(1), &names).unwrap();
            assert_eq!(
                ops,
                StructOps {
                    value_type: "bpf_struct_ops_tcp_congestion_ops".into(),
                    struct_name: "tcp_congestion_ops".into(),
                    name: Some("mw_ca".into()),
                    state: 1,
                    refcnt: 2,
                    funcs: vec![
                        StructOpsFunc {
                            member: "ssthresh".into(),
                            index: 0,
                            offset: 64,
                            prog: Some(ProgRef {
                                id: 7,
                                name: "mw_ssthresh".into()
                            }),
                        },
                        StructOpsFunc {
                            member: "cong_avoid".into(),
                            index: 2,
                            offset: 88,
                            prog: None,
                        },
                    ],
                },
                "common: {common}"
            );
            assert_eq!(ops.sched_ext_scheduler(), None);
            assert_eq!(
                ops.to_json()["funcs"][0],
                json!({"member":"ssthresh","index":0,"offset":64,
                       "prog":{"id":7,"name":"mw_ssthresh"}})
            );
            assert_eq!(ops.to_json()["state"], "inuse");
        }
        // A program the caller cannot name keeps its id.
        let (raw, id) = btf("tcp_congestion_ops", true);
        let r = BtfReader::new(&raw).unwrap();
        let ops = decode(&r, id, &value(1), &|_| None).unwrap();
        assert_eq!(
            ops.funcs[0].prog,
            Some(ProgRef {
                id: 7,
                name: String::new()
            })
        );
    }

    #[test]
    fn a_registered_sched_ext_ops_names_the_scheduler() {
        let (raw, id) = btf("sched_ext_ops", true);
        let r = BtfReader::new(&raw).unwrap();
        for (state, want) in [(1, Some("mw_ca")), (3, Some("mw_ca")), (2, None), (0, None)] {
            let ops = decode(&r, id, &value(state), &names).unwrap();
            assert_eq!(ops.sched_ext_scheduler(), want, "state {state}");
            assert_eq!(ops.to_json()["sched_ext"], json!(want));
        }
    }

    #[test]
    fn short_values_and_wrong_types_are_refused() {
        let (raw, id) = btf("tcp_congestion_ops", true);
        let r = BtfReader::new(&raw).unwrap();
        assert!(matches!(
            decode(&r, id, &value(1)[..95], &names),
            Err(SourceError::Unsupported(_))
        ));
        // The struct itself is no value type: it has no `data`.
        assert!(matches!(
            decode(&r, id - 2, &value(1), &names),
            Err(SourceError::Btf(m)) if m.contains("has no `data`")
        ));
        // An int is no struct.
        assert!(matches!(
            decode(&r, 1, &value(1), &names),
            Err(SourceError::Btf(m)) if m.contains("is not a struct")
        ));
    }
}
