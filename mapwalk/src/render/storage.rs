//! Local-storage entries (TASK_STORAGE, INODE_STORAGE, SK_STORAGE, CGRP_STORAGE) in a
//! form of our own (`docs/local-storage.md`): each element's owner, described, instead
//! of a key. The key a memory source hands over for such an element is its owner
//! record (see `mapwalk_core::bpf::storage`); these functions read it back.
//!
//! JSON, one object per element:
//! `{"owner":{"kind":"task","address":"0x..","pid":1,"tgid":1,"comm":"init"},
//! "value":["0x01",..]}` (plus `"formatted":{"value":..}` when the map's BTF is known);
//! text, an `owner: ..` line then a `value: ..` line.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use mapwalk_core::bpf::storage::{OwnerDesc, OwnerKind, StorageOwner, AF_INET, AF_INET6};
use serde_json::{json, Map, Value};

use super::{push_hex_bpftool, write_hex_json, Types};

/// The version of the JSON form, as `docs/local-storage.md` documents it.
pub const STORAGE_FORM_VERSION: u32 = 1;

/// Text that is UTF-8 as it is, else with its bytes escaped (`\xNN`).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

/// A socket family's name (`inet`, `inet6`), or its number.
fn family(f: u16) -> Value {
    match f {
        AF_INET => json!("inet"),
        AF_INET6 => json!("inet6"),
        1 => json!("unix"),
        n => json!(n),
    }
}

/// An address of a socket of family `f`, as text; `None` for families without one.
fn address(f: u16, a: &[u8; 16]) -> Option<String> {
    match f {
        AF_INET => Some(Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()),
        AF_INET6 => Some(Ipv6Addr::from(*a).to_string()),
        _ => None,
    }
}

/// The owner `key` (an owner record of `kind`) describes, as JSON: `kind`, `address`
/// and the kind's fields; `None` when `key` is not such a record.
pub fn owner_json(kind: OwnerKind, key: &[u8]) -> Option<Value> {
    let owner = StorageOwner::from_record(kind, key)?;
    let mut o = Map::new();
    o.insert("kind".into(), json!(kind.name()));
    o.insert("address".into(), json!(format!("{:#x}", owner.kva.0)));
    match owner.desc {
        None => {}
        Some(OwnerDesc::Task(t)) => {
            o.insert("pid".into(), json!(t.pid));
            o.insert("tgid".into(), json!(t.tgid));
            o.insert("comm".into(), json!(text(t.comm())));
        }
        Some(OwnerDesc::Inode(i)) => {
            o.insert("ino".into(), json!(i.ino));
            o.insert(
                "dev".into(),
                json!({"major": i.major(), "minor": i.minor()}),
            );
        }
        Some(OwnerDesc::Sock(s)) => {
            o.insert("cookie".into(), json!(s.cookie));
            o.insert("family".into(), family(s.family));
            if let (Some(local), Some(remote)) = (
                address(s.family, &s.local_addr),
                address(s.family, &s.remote_addr),
            ) {
                o.insert("local_address".into(), json!(local));
                o.insert("local_port".into(), json!(s.local_port));
                o.insert("remote_address".into(), json!(remote));
                o.insert("remote_port".into(), json!(s.remote_port));
            }
        }
        Some(OwnerDesc::Cgroup(c)) => {
            o.insert("id".into(), json!(c.id));
            o.insert("name".into(), json!(text(c.name())));
        }
    }
    Some(Value::Object(o))
}

/// The owner `key` describes, as one line of text (`task pid 1 tgid 1 comm init at
/// 0x..`); `None` when `key` is not an owner record of `kind`.
pub fn owner_text(kind: OwnerKind, key: &[u8]) -> Option<String> {
    let owner = StorageOwner::from_record(kind, key)?;
    let what = match owner.desc {
        None => kind.name().to_owned(),
        Some(OwnerDesc::Task(t)) => {
            format!("task pid {} tgid {} comm {}", t.pid, t.tgid, text(t.comm()))
        }
        Some(OwnerDesc::Inode(i)) => {
            format!("inode ino {} dev {}:{}", i.ino, i.major(), i.minor())
        }
        Some(OwnerDesc::Sock(s)) => {
            let name = match family(s.family) {
                Value::String(n) => n,
                n => n.to_string(),
            };
            let mut line = format!("sock cookie {} family {name}", s.cookie);
            if let (Some(l), Some(r)) = (
                address(s.family, &s.local_addr),
                address(s.family, &s.remote_addr),
            ) {
                let join = |a: String, p: u16| match s.family {
                    AF_INET6 => format!("[{a}]:{p}"),
                    _ => format!("{a}:{p}"),
                };
                line.push_str(&format!(
                    " local {} remote {}",
                    join(l, s.local_port),
                    join(r, s.remote_port)
                ));
            }
            line
        }
        Some(OwnerDesc::Cgroup(c)) => format!("cgroup id {} name {}", c.id, text(c.name())),
    };
    Some(format!("{what} at {:#x}", owner.kva.0))
}

/// Writes one element as JSON (a comma first unless it is the first). A key that is
/// not an owner record is written as bpftool writes keys, under `"key"`, so that
/// nothing read is hidden.
pub(super) fn entry_json<W: Write + ?Sized>(
    b: &mut W,
    types: Option<&Types<'_>>,
    count: u64,
    kind: OwnerKind,
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    if count > 0 {
        b.write_all(b",")?;
    }
    match owner_json(kind, key) {
        Some(owner) => {
            b.write_all(b"{\"owner\":")?;
            serde_json::to_writer(&mut *b, &owner)?;
        }
        None => {
            b.write_all(b"{\"key\":")?;
            write_hex_json(b, key)?;
        }
    }
    b.write_all(b",\"value\":")?;
    write_hex_json(b, value)?;
    if let Some(t) = types.filter(|t| t.value != 0) {
        b.write_all(b",\"formatted\":{\"value\":")?;
        t.renderer.write(t.value, value, b)?;
        b.write_all(b"}")?;
    }
    b.write_all(b"}")
}

/// Writes one element as text: `owner: ..`, then `value: ..` (bytes as bpftool groups
/// them, or the value rendered through BTF).
pub(super) fn entry_human<W: Write + ?Sized>(
    b: &mut W,
    types: Option<&Types<'_>>,
    kind: OwnerKind,
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let mut line = Vec::new();
    match owner_text(kind, key) {
        Some(owner) => line.extend_from_slice(format!("owner: {owner}\n").as_bytes()),
        None => {
            line.extend_from_slice(b"key: ");
            push_hex_bpftool(&mut line, key);
            line.push(b'\n');
        }
    }
    b.write_all(&line)?;
    match types.filter(|t| t.value != 0) {
        Some(t) => {
            b.write_all(b"value: ")?;
            t.renderer.write(t.value, value, b)?;
            b.write_all(b"\n")
        }
        None => {
            let mut line = b"value:".to_vec();
            line.push(if value.len() > 16 { b'\n' } else { b' ' });
            push_hex_bpftool(&mut line, value);
            line.push(b'\n');
            b.write_all(&line)
        }
    }
}
