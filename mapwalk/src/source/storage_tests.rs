//! Local-storage maps through a memory source: the dump's own form, text and JSON,
//! BTF-typed values, `--agree`, snapshots, and refused key lookups.

use super::tests::{source, RamImage};
use super::*;
use crate::dump::{dump_all, dump_map};
use crate::render::Format;
use mapwalk_core::bpf::storage::{CgroupOwner, InodeOwner, OwnerDesc, SockOwner, TaskOwner};
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::{Kva, Pa};

fn comm(s: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..s.len()].copy_from_slice(s.as_bytes());
    c
}

/// Four maps, one of each kind (ids 1 to 4), and an ARRAY (5); map 2's values are
/// typed by BTF (a `u32`).
fn guest() -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false);
    let mut lo6 = [0u8; 16];
    lo6[15] = 1;
    let v4 = |local: [u8; 4], lport, remote: [u8; 4], rport| {
        let (mut l, mut r) = ([0u8; 16], [0u8; 16]);
        l[..4].copy_from_slice(&local);
        r[..4].copy_from_slice(&remote);
        (l, lport, r, rport)
    };
    let (l, lp, r, rp) = v4([127, 0, 0, 1], 40000, [127, 0, 0, 1], 47001);
    b.add_map(
        MapSpec::storage(1, MapType::TASK_STORAGE, "tasks", 4)
            .storage_elem(
                OwnerDesc::Task(TaskOwner {
                    pid: 1,
                    tgid: 1,
                    comm: comm("init"),
                }),
                &[1, 2, 3, 4],
            )
            .storage_elem(
                OwnerDesc::Task(TaskOwner {
                    pid: 43,
                    tgid: 42,
                    comm: comm("th\u{e9}"),
                }),
                &[5, 6, 7, 8],
            ),
    )
    .add_map({
        let mut s = MapSpec::storage(2, MapType::INODE_STORAGE, "inodes", 4).storage_elem(
            OwnerDesc::Inode(InodeOwner {
                ino: 1234,
                dev: 8 << 20 | 1,
            }),
            &7u32.to_le_bytes(),
        );
        s.btf_ids = (1, 1);
        s
    })
    .add_map(
        MapSpec::storage(3, MapType::SK_STORAGE, "socks", 2)
            .storage_elem_in_bucket(
                0,
                OwnerDesc::Sock(SockOwner {
                    cookie: 4097,
                    family: 2,
                    local_port: lp,
                    remote_port: rp,
                    local_addr: l,
                    remote_addr: r,
                }),
                &[0xaa, 0xbb],
            )
            .storage_elem_in_bucket(
                1,
                OwnerDesc::Sock(SockOwner {
                    cookie: 0,
                    family: 10,
                    local_port: 47003,
                    remote_port: 0,
                    local_addr: lo6,
                    remote_addr: [0; 16],
                }),
                &[0xcc, 0xdd],
            ),
    )
    .add_map(
        MapSpec::storage(4, MapType::CGRP_STORAGE, "cgroups", 1)
            .storage_elem(OwnerDesc::Cgroup(CgroupOwner::new(1, b"")), &[9])
            .storage_elem(OwnerDesc::Cgroup(CgroupOwner::new(4242, b"mw_cg")), &[10]),
    )
    .add_map(MapSpec::array(5, "arr", 4, 1));
    let mut g = b.build();
    // Map 2's `struct btf`: one type, `u32`.
    let mut raw = crate::btf::testing::Builder::new();
    raw.int("u32", 4);
    let raw = raw.bytes();
    let l = g.layout.btf_object.unwrap();
    let dm = g.addrs.direct_map.unwrap().virt.0;
    let obj = g.ram.alloc(256, 64);
    let data = g.ram.alloc(raw.len() as u64, 8);
    g.ram.write(data, &raw);
    g.ram.write_u64(Pa(obj.0 + u64::from(l.data)), dm + data.0);
    g.ram
        .write_u32(Pa(obj.0 + u64::from(l.data_size)), raw.len() as u32);
    g.ram.write_u32(Pa(obj.0 + u64::from(l.id)), 7);
    let map = g.maps.iter().find(|m| m.id == 2).unwrap().kva;
    let field = g.pa_of(Kva(map.0 + u64::from(g.layout.bpf_map.btf)));
    g.ram.write_u64(field, dm + obj.0);
    g
}

fn owner(g: &SyntheticGuest, id: u32, i: usize) -> String {
    format!("{:#x}", g.storage[&id].elems[i].owner.0)
}

fn dump(src: &dyn MapSource, id: u32, format: Format) -> String {
    let meta = src.map_by_id(id).unwrap().unwrap();
    let mut out = Vec::new();
    dump_map(src, &meta, format, &mut out, &mut |w| panic!("{w}")).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn each_element_is_dumped_with_its_owner() {
    let g = guest();
    let ram = RamImage::new(&g, "storage-json");
    let src = source(&g, &ram, false);
    let a = |id, i| owner(&g, id, i);
    assert_eq!(
        dump(&src, 1, Format::Json),
        format!(
            concat!(
                r#"[{{"owner":{{"kind":"task","address":"{}","pid":1,"tgid":1,"comm":"init"}},"#,
                r#""value":["0x01","0x02","0x03","0x04"]}},"#,
                r#"{{"owner":{{"kind":"task","address":"{}","pid":43,"tgid":42,"comm":"thé"}},"#,
                r#""value":["0x05","0x06","0x07","0x08"]}}]"#,
                "\n"
            ),
            a(1, 0),
            a(1, 1)
        )
    );
    // BTF-typed values are rendered too; the key type (an fd) is not.
    assert_eq!(
        dump(&src, 2, Format::Json),
        format!(
            concat!(
                r#"[{{"owner":{{"kind":"inode","address":"{}","ino":1234,"dev":{{"major":8,"minor":1}}}},"#,
                r#""value":["0x07","0x00","0x00","0x00"],"formatted":{{"value":7}}}}]"#,
                "\n"
            ),
            a(2, 0)
        )
    );
    assert_eq!(
        dump(&src, 3, Format::Json),
        format!(
            concat!(
                r#"[{{"owner":{{"kind":"sock","address":"{}","cookie":4097,"family":"inet","#,
                r#""local_address":"127.0.0.1","local_port":40000,"remote_address":"127.0.0.1","remote_port":47001}},"#,
                r#""value":["0xaa","0xbb"]}},"#,
                r#"{{"owner":{{"kind":"sock","address":"{}","cookie":0,"family":"inet6","#,
                r#""local_address":"::1","local_port":47003,"remote_address":"::","remote_port":0}},"#,
                r#""value":["0xcc","0xdd"]}}]"#,
                "\n"
            ),
            a(3, 0),
            a(3, 1)
        )
    );
    assert_eq!(
        dump(&src, 4, Format::Json),
        format!(
            concat!(
                r#"[{{"owner":{{"kind":"cgroup","address":"{}","id":1,"name":""}},"value":["0x09"]}},"#,
                r#"{{"owner":{{"kind":"cgroup","address":"{}","id":4242,"name":"mw_cg"}},"value":["0x0a"]}}]"#,
                "\n"
            ),
            a(4, 0),
            a(4, 1)
        )
    );
}

#[test]
fn text_dumps_give_an_owner_line_and_a_value_line() {
    let g = guest();
    let ram = RamImage::new(&g, "storage-text");
    let src = source(&g, &ram, false);
    assert_eq!(
        dump(&src, 3, Format::Human),
        format!(
            "owner: sock cookie 4097 family inet local 127.0.0.1:40000 remote \
             127.0.0.1:47001 at {}\nvalue: aa bb\nowner: sock cookie 0 family inet6 \
             local [::1]:47003 remote [::]:0 at {}\nvalue: cc dd\nFound 2 elements\n",
            owner(&g, 3, 0),
            owner(&g, 3, 1)
        )
    );
    assert_eq!(
        dump(&src, 2, Format::Human),
        format!(
            "owner: inode ino 1234 dev 8:1 at {}\nvalue: 7\nFound 1 element\n",
            owner(&g, 2, 0)
        )
    );
}

#[test]
fn dump_all_agree_and_snapshots_keep_the_owners() {
    let g = guest();
    let ram = RamImage::new(&g, "storage-all");
    let src = source(&g, &ram, false);
    let mut out = Vec::new();
    let summary = dump_all(&src, Format::Json, &mut out, &mut |_| {}).unwrap();
    assert!(summary.is_whole(), "{:?}", summary.problems());
    assert_eq!((summary.maps, summary.entries), (5, 8));
    let all: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(all[3]["entries"][1]["owner"]["name"], "mw_cg");
    assert_eq!(all[0]["type"], "task_storage");

    // Reading until two reads agree gives the same (fixed-size owner records).
    let agree = source(&g, &ram, false).with_settle(Settle::Agree(3));
    for id in 1..=4 {
        assert_eq!(
            dump(&agree, id, Format::Json),
            dump(&src, id, Format::Json),
            "map {id}"
        );
    }

    // A snapshot replays the same dump, through its file too.
    let snap = crate::snapshot::Snapshot::capture(
        &src,
        "test",
        &crate::snapshot::CaptureOptions {
            maps: Vec::new(),
            no_btf: false,
            progs: false,
        },
    )
    .unwrap();
    let mut file = Vec::new();
    snap.write_to(&mut file).unwrap();
    let back = crate::snapshot::Snapshot::read_from(&mut file.as_slice()).unwrap();
    let replay = SnapshotSource::new(back);
    for id in 1..=4 {
        assert_eq!(
            dump(&replay, id, Format::Json),
            dump(&src, id, Format::Json),
            "map {id}"
        );
    }
}

#[test]
fn keys_of_local_storage_are_refused_with_the_reason() {
    let g = guest();
    let ram = RamImage::new(&g, "storage-lookup");
    let src = source(&g, &ram, false);
    let meta = src.map_by_id(1).unwrap().unwrap();
    let err = src.lookup(&meta, &[3, 0, 0, 0], &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, SourceError::Unsupported(m) if m.contains("file descriptor of its owner")),
        "{err}"
    );
    assert!(matches!(
        src.next_key(&meta, None),
        Err(SourceError::Unsupported(_))
    ));
    // Other maps still look up.
    let arr = src.map_by_id(5).unwrap().unwrap();
    assert!(src.lookup(&arr, &[0, 0, 0, 0], &mut |_| {}).unwrap());
}

#[test]
fn owners_as_json_and_text_refuse_what_is_not_a_record() {
    use crate::render::storage::{owner_json, owner_text};
    use mapwalk_core::bpf::storage::OwnerKind;
    assert_eq!(owner_json(OwnerKind::Task, &[0; 4]), None);
    assert_eq!(owner_text(OwnerKind::Sock, &[0; 64]), None);
    // A UNIX socket: family by name, no addresses.
    let owner = mapwalk_core::bpf::StorageOwner {
        kind: OwnerKind::Sock,
        kva: Kva(0xffff_8880_0000_0040),
        desc: Some(OwnerDesc::Sock(SockOwner {
            cookie: 3,
            family: 1,
            local_port: 0,
            remote_port: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
        })),
    };
    let mut rec = [0u8; 64];
    owner.write_record(&mut rec).unwrap();
    assert_eq!(
        owner_json(OwnerKind::Sock, &rec).unwrap().to_string(),
        r#"{"kind":"sock","address":"0xffff888000000040","cookie":3,"family":"unix"}"#
    );
    assert_eq!(
        owner_text(OwnerKind::Sock, &rec).unwrap(),
        "sock cookie 3 family unix at 0xffff888000000040"
    );
}
