//! BPF programs: listed out of memory (`prog_idr`) or from the running kernel
//! (`BPF_PROG_GET_NEXT_ID`), and printed as `bpftool prog show` prints them.
//!
//! Both sources give the core's [`ProgInfo`]. Fields that memory cannot give the way
//! bpftool prints them are left out of both: `loaded_at` (bpftool turns the kernel's
//! `CLOCK_BOOTTIME` load time into wall-clock seconds with the reading host's clocks,
//! which a memory image does not have), `bytes_memlock` (from `/proc/PID/fdinfo`),
//! `run_time_ns` / `run_cnt` (per-CPU statistics, only while `kernel.bpf_stats_enabled`)
//! and `pids`.

use std::io::{self, Write};

use mapwalk_core::{Kva, PhysRead, ProgInfo, ProgType};
use serde_json::{json, Map, Value};

use crate::describe::Kernel;
use crate::source::SourceError;

/// Every program a listing could read, and the ones it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgReport {
    /// The programs read, in id order.
    pub progs: Vec<ProgInfo>,
    /// The programs that could not be read: their id when it is known, and why.
    pub errors: Vec<(Option<u32>, String)>,
}

/// Every program of a described kernel, walked from `prog_idr`.
///
/// # Errors
/// [`SourceError::Unsupported`] when the kernel's symbols have no `prog_idr`;
/// [`SourceError::Core`] when the walk itself fails (no `bpf_prog` layout, a corrupt
/// tree, a cap crossed).
pub fn memory_progs<M: PhysRead>(kernel: &Kernel<M>) -> Result<ProgReport, SourceError> {
    let idr = kernel.progs().ok_or_else(|| {
        SourceError::Unsupported("programs: the kernel's symbols have no prog_idr".into())
    })?;
    let list = idr.collect_progs()?;
    Ok(ProgReport {
        progs: list.progs,
        errors: list
            .errors
            .into_iter()
            .map(|(id, e)| (id, e.to_string()))
            .collect(),
    })
}

/// A program as the running kernel describes it, in the core's terms.
///
/// # Errors
/// [`SourceError::Core`] for more map ids than a program can use.
pub fn from_live(p: &mapwalk_live::sys::ProgObject) -> Result<ProgInfo, SourceError> {
    // Fields one by one: `ProgInfo` keeps its map ids private.
    let mut info = ProgInfo::default();
    info.id = p.id;
    info.prog_type = ProgType(p.prog_type);
    info.name = mapwalk_core::bpf::MapName::from_field(&p.name);
    info.tag = p.tag;
    info.gpl_compatible = Some(p.gpl_compatible);
    info.xlated_len = u64::from(p.xlated_len);
    info.jited_len = u64::from(p.jited_len);
    info.uid = Some(p.uid);
    info.btf_id = p.btf_id;
    info.kva = Kva::NULL;
    info.set_map_ids(&p.map_ids)?;
    Ok(info)
}

/// Every program of the running kernel, through `bpf()`: ids by
/// `BPF_PROG_GET_NEXT_ID`, each opened by id and described by
/// `BPF_OBJ_GET_INFO_BY_FD`. A program that goes away between the two is not listed.
///
/// # Errors
/// [`SourceError::Live`] when the ids cannot be listed (no `CAP_SYS_ADMIN`). A program
/// that cannot be opened or described is an error in the report.
pub fn live_progs() -> Result<ProgReport, SourceError> {
    let mut report = ProgReport::default();
    let mut id = 0u32;
    // Each pass takes a larger id: ids are bounded by u32.
    while let Some(next) = mapwalk_live::sys::prog_get_next_id(id)? {
        id = next;
        let fd = match mapwalk_live::sys::prog_get_fd_by_id(id) {
            Ok(Some(fd)) => fd,
            Ok(None) => continue,
            Err(e) => {
                report.errors.push((Some(id), e.to_string()));
                continue;
            }
        };
        let read = mapwalk_live::sys::prog_info(std::os::fd::AsFd::as_fd(&fd))
            .map_err(SourceError::from)
            .and_then(|p| from_live(&p));
        match read {
            Ok(p) => report.progs.push(p),
            Err(e) => report.errors.push((Some(id), e.to_string())),
        }
    }
    Ok(report)
}

/// The tag as bpftool prints it: 16 lowercase hex digits.
pub fn tag_hex(p: &ProgInfo) -> String {
    p.tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// One program as `bpftool -j prog show` prints it, for the fields both sources have:
/// `id`, `type`, `name`, `tag`, `gpl_compatible`, `uid`, `bytes_xlated`, `jited`,
/// `bytes_jited`, `map_ids`, `btf_id`, in bpftool's order.
pub fn prog_json(p: &ProgInfo) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(p.id));
    o.insert(
        "type".into(),
        match p.prog_type.name() {
            Some(n) => json!(n),
            None => json!(p.prog_type.0),
        },
    );
    if !p.name.as_bytes().is_empty() {
        o.insert(
            "name".into(),
            json!(String::from_utf8_lossy(p.name.as_bytes())),
        );
    }
    o.insert("tag".into(), json!(tag_hex(p)));
    if let Some(gpl) = p.gpl_compatible {
        o.insert("gpl_compatible".into(), json!(gpl));
    }
    if let Some(uid) = p.uid {
        o.insert("uid".into(), json!(uid));
    }
    o.insert("bytes_xlated".into(), json!(p.xlated_len));
    o.insert("jited".into(), json!(p.jited()));
    if p.jited() {
        o.insert("bytes_jited".into(), json!(p.jited_len));
    }
    if !p.map_ids().is_empty() {
        o.insert("map_ids".into(), json!(p.map_ids()));
    }
    if p.btf_id != 0 {
        o.insert("btf_id".into(), json!(p.btf_id));
    }
    Value::Object(o)
}

/// One program as `bpftool prog show` prints it (without `loaded_at` and `memlock`):
/// `ID: TYPE  name NAME  tag TAG  gpl` / `\tuid U` / `\txlated NB  jited NB  map_ids
/// A,B` / `\tbtf_id N`.
///
/// # Errors
/// The writer's.
pub fn write_prog_human(w: &mut impl Write, p: &ProgInfo) -> io::Result<()> {
    write!(w, "{}: {}  ", p.id, p.prog_type)?;
    if !p.name.as_bytes().is_empty() {
        write!(w, "name {}  ", p.name)?;
    }
    write!(w, "tag {}", tag_hex(p))?;
    if p.gpl_compatible == Some(true) {
        write!(w, "  gpl")?;
    }
    writeln!(w)?;
    if let Some(uid) = p.uid {
        writeln!(w, "\tuid {uid}")?;
    }
    write!(w, "\txlated {}B", p.xlated_len)?;
    if p.jited() {
        write!(w, "  jited {}B", p.jited_len)?;
    } else {
        write!(w, "  not jited")?;
    }
    if !p.map_ids().is_empty() {
        let ids: Vec<String> = p.map_ids().iter().map(u32::to_string).collect();
        write!(w, "  map_ids {}", ids.join(","))?;
    }
    writeln!(w)?;
    if p.btf_id != 0 {
        writeln!(w, "\tbtf_id {}", p.btf_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk_core::bpf::MapName;

    fn sample() -> ProgInfo {
        let mut p = ProgInfo::default();
        p.id = 12;
        p.prog_type = ProgType::SOCKET_FILTER;
        p.name = MapName::from_field(b"known\0\0\0\0\0\0\0\0\0\0\0");
        p.tag = [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3];
        p.gpl_compatible = Some(true);
        p.xlated_len = 16;
        p.jited_len = 42;
        p.uid = Some(0);
        p.btf_id = 5;
        p.set_map_ids(&[3, 1]).unwrap();
        p
    }

    #[test]
    fn json_is_bpftools_in_its_order() {
        let v = prog_json(&sample());
        assert_eq!(
            v.to_string(),
            r#"{"id":12,"type":"socket_filter","name":"known","tag":"deadbeef00010203","gpl_compatible":true,"uid":0,"bytes_xlated":16,"jited":true,"bytes_jited":42,"map_ids":[3,1],"btf_id":5}"#
        );
        let mut bare = ProgInfo::default();
        bare.prog_type = ProgType(77);
        assert_eq!(
            prog_json(&bare).to_string(),
            r#"{"id":0,"type":77,"tag":"0000000000000000","bytes_xlated":0,"jited":false}"#
        );
    }

    #[test]
    fn text_is_bpftools_without_load_time() {
        let mut out = Vec::new();
        write_prog_human(&mut out, &sample()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "12: socket_filter  name known  tag deadbeef00010203  gpl\n\tuid 0\n\
             \txlated 16B  jited 42B  map_ids 3,1\n\tbtf_id 5\n"
        );
    }

    #[test]
    fn live_objects_convert_field_by_field() {
        let obj = mapwalk_live::sys::ProgObject {
            id: 12,
            prog_type: 1,
            name: *b"known\0\0\0\0\0\0\0\0\0\0\0",
            tag: [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3],
            gpl_compatible: true,
            xlated_len: 16,
            jited_len: 42,
            load_time: 1,
            uid: 0,
            map_ids: vec![3, 1],
            btf_id: 5,
            run_time_ns: 0,
            run_cnt: 0,
        };
        assert_eq!(from_live(&obj).unwrap(), sample());
        let too_many = mapwalk_live::sys::ProgObject {
            map_ids: vec![1; 65],
            ..obj
        };
        assert!(from_live(&too_many).is_err());
    }
}
