//! The snapshot file format (version 1), documented in `docs/snapshot.md`.
//!
//! ```text
//! header (20 bytes, not compressed)
//!   magic        8  b"MWSNAP\r\n"
//!   version      u16  FORMAT_VERSION
//!   reserved     u16  0
//!   body length  u64  bytes of the body once decompressed (at most MAX_BODY)
//! body (a zlib stream): fields below, little-endian; bytes = u32 length + bytes
//! ```
//!
//! Every count and length the reader meets is checked against a named cap and against
//! the bytes left before anything is allocated for it.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use mapwalk_core::bpf::MapName;
use mapwalk_core::limits::{BPF_OBJ_NAME_LEN, MAX_CPUS, MAX_USED_MAPS};
use mapwalk_core::{Kva, MapFlags, MapType, ProgInfo, ProgType};

use super::{
    unix_time, BtfBlob, KernelIdentity, Snapshot, SnapshotMeta, StoredBtf, StoredEntry, StoredMap,
    StoredProgs, StoredValue,
};
use crate::source::{MapInfo, MapState};

/// The file's first bytes.
pub const MAGIC: [u8; 8] = *b"MWSNAP\r\n";
/// The format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// The header's size.
pub const HEADER_LEN: usize = 20;
/// The largest body, decompressed.
pub const MAX_BODY: u64 = 4 << 30;
/// The longest text field (release, boot, source, error messages).
pub const MAX_TEXT: u32 = 4096;
/// The most BTF objects.
pub const MAX_BTF_OBJECTS: u32 = 1 << 16;
/// The largest BTF object (the kernel's included).
pub const MAX_BTF_BYTES: u32 = 256 << 20;
/// The most maps, and the most unlisted maps.
pub const MAX_MAPS: u32 = 1 << 20;
/// The most entries of one map.
pub const MAX_ENTRIES: u64 = 1 << 31;
/// The longest key or value copy.
pub const MAX_VALUE_BYTES: u32 = 64 << 20;
/// The most programs, and the most unread programs.
pub const MAX_PROGS: u32 = 1 << 20;
/// The decompressed bytes the reader sets aside before it has seen them.
const PREALLOC: u64 = 64 << 20;

/// Why a snapshot file could not be read.
#[derive(Debug)]
pub enum SnapshotError {
    /// The file does not start with [`MAGIC`].
    NotASnapshot,
    /// A format version this crate does not read.
    Version {
        /// The file's.
        found: u16,
    },
    /// The file ends early.
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A field holds what the format does not allow.
    Corrupt {
        /// What, and where.
        what: String,
    },
    /// A count or length past its cap.
    LimitExceeded {
        /// What.
        what: &'static str,
        /// The value found.
        found: u64,
        /// The cap.
        limit: u64,
    },
    /// Reading failed.
    Io(io::Error),
    /// One of the above, in a named file.
    File(String, Box<SnapshotError>),
}

impl SnapshotError {
    /// The same error, naming the file.
    pub fn in_file(self, path: &Path) -> Self {
        Self::File(path.display().to_string(), Box::new(self))
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASnapshot => f.write_str("not a mapwalk snapshot (bad magic)"),
            Self::Version { found } if *found > FORMAT_VERSION => write!(
                f,
                "snapshot format version {found} is newer than this mapwalk reads \
                 ({FORMAT_VERSION}): read it with a newer mapwalk"
            ),
            Self::Version { found } => write!(f, "snapshot format version {found} is unknown"),
            Self::Truncated { what } => write!(f, "snapshot truncated: ends in {what}"),
            Self::Corrupt { what } => write!(f, "snapshot corrupt: {what}"),
            Self::LimitExceeded { what, found, limit } => {
                write!(
                    f,
                    "snapshot corrupt: {what} is {found}, over the cap {limit}"
                )
            }
            Self::Io(e) => write!(f, "reading the snapshot: {e}"),
            Self::File(path, e) => write!(f, "{path}: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Writes `snap` in the format.
pub(super) fn write(snap: &Snapshot, out: &mut dyn Write) -> io::Result<()> {
    let mut b = Vec::new();
    put_body(&mut b, snap);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&u64::try_from(b.len()).unwrap_or(u64::MAX).to_le_bytes());
    out.write_all(&header)?;
    let mut z = ZlibEncoder::new(out, Compression::default());
    z.write_all(&b)?;
    z.finish()?.flush()
}

fn put_u8(b: &mut Vec<u8>, v: u8) {
    b.push(v);
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_len(b: &mut Vec<u8>, n: usize) {
    put_u32(b, u32::try_from(n).unwrap_or(u32::MAX));
}
fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    put_len(b, v.len());
    b.extend_from_slice(v);
}
/// Text, cut to [`MAX_TEXT`] bytes at a character boundary.
fn put_text(b: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MAX_TEXT as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put_bytes(b, &s.as_bytes()[..end]);
}
fn put_opt_text(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_u8(b, 0),
        Some(s) => {
            put_u8(b, 1);
            put_text(b, s);
        }
    }
}

fn put_body(b: &mut Vec<u8>, s: &Snapshot) {
    put_opt_text(b, s.meta.kernel.release.as_deref());
    put_opt_text(b, s.meta.kernel.boot.as_deref());
    put_text(b, &s.meta.source);
    let (secs, nanos) = unix_time(s.meta.taken);
    put_u64(b, secs);
    put_u32(b, nanos);
    match &s.base_btf {
        None => put_u8(b, 0),
        Some(base) => {
            put_u8(b, 1);
            put_bytes(b, base);
        }
    }
    put_len(b, s.btfs.len());
    for blob in &s.btfs {
        put_u8(b, u8::from(blob.split));
        put_bytes(b, &blob.bytes);
    }
    put_len(b, s.unlisted.len());
    for (id, why) in &s.unlisted {
        put_u8(b, u8::from(id.is_some()));
        put_u32(b, id.unwrap_or(0));
        put_text(b, why);
    }
    put_len(b, s.maps.len());
    for m in &s.maps {
        put_map(b, m);
    }
    put_progs(b, &s.progs);
}

fn put_progs(b: &mut Vec<u8>, progs: &StoredProgs) {
    let report = match progs {
        StoredProgs::NotRead(why) => {
            put_u8(b, 0);
            put_text(b, why);
            return;
        }
        StoredProgs::Read(report) => report,
    };
    put_u8(b, 1);
    put_len(b, report.progs.len());
    for p in &report.progs {
        put_u32(b, p.id);
        put_u32(b, p.prog_type.0);
        put_bytes(b, p.name.as_bytes());
        b.extend_from_slice(&p.tag);
        put_u8(
            b,
            match p.gpl_compatible {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            },
        );
        put_u64(b, p.xlated_len);
        put_u64(b, p.jited_len);
        put_u8(b, u8::from(p.uid.is_some()));
        put_u32(b, p.uid.unwrap_or(0));
        put_u32(b, p.btf_id);
        put_len(b, p.map_ids().len());
        for id in p.map_ids() {
            put_u32(b, *id);
        }
        put_u64(b, p.kva.0);
    }
    put_len(b, report.errors.len());
    for (id, why) in &report.errors {
        put_u8(b, u8::from(id.is_some()));
        put_u32(b, id.unwrap_or(0));
        put_text(b, why);
    }
}

fn put_map(b: &mut Vec<u8>, m: &StoredMap) {
    let i = &m.info;
    put_u32(b, i.id);
    put_u32(b, i.map_type.0);
    put_bytes(b, i.name.as_bytes());
    for v in [
        i.map_flags.bits(),
        i.key_size,
        i.value_size,
        i.max_entries,
        i.btf_id,
        i.btf_key_type_id,
        i.btf_value_type_id,
        i.btf_vmlinux_value_type_id,
    ] {
        put_u32(b, v);
    }
    put_u64(b, i.kva.0);
    put_u64(b, i.btf.0);
    put_u8(
        b,
        match m.state.frozen {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        },
    );
    put_u8(b, u8::from(m.state.memlock.is_some()));
    put_u64(b, m.state.memlock.unwrap_or(0));
    match &m.btf {
        StoredBtf::None => put_u8(b, 0),
        StoredBtf::Index(n) => {
            put_u8(b, 1);
            put_u32(b, *n);
        }
        StoredBtf::Error(e) => {
            put_u8(b, 2);
            put_text(b, e);
        }
    }
    put_u64(b, u64::try_from(m.entries.len()).unwrap_or(u64::MAX));
    for e in &m.entries {
        put_bytes(b, &e.key);
        match &e.value {
            StoredValue::Single(v) => {
                put_u8(b, 0);
                put_bytes(b, v);
            }
            StoredValue::PerCpu(copies) => {
                put_u8(b, 1);
                put_len(b, copies.len());
                for (cpu, v) in copies {
                    put_u32(b, *cpu);
                    put_bytes(b, v);
                }
            }
        }
    }
    put_opt_text(b, m.error.as_deref());
}

/// Reads a snapshot.
pub(super) fn read(input: &mut dyn Read) -> Result<Snapshot, SnapshotError> {
    let mut header = [0u8; HEADER_LEN];
    read_header(input, &mut header)?;
    let (magic, rest) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let mut r = Rd { buf: rest, pos: 0 };
    let version = u16::from_le_bytes(r.array("the header")?);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    let reserved = u16::from_le_bytes(r.array("the header")?);
    if reserved != 0 {
        return Err(corrupt(format!("header: reserved field {reserved:#x}")));
    }
    let body_len = r.u64("the header")?;
    if body_len > MAX_BODY {
        return Err(SnapshotError::LimitExceeded {
            what: "the body length",
            found: body_len,
            limit: MAX_BODY,
        });
    }
    let mut body = Vec::with_capacity(usize::try_from(body_len.min(PREALLOC)).unwrap_or(0));
    ZlibDecoder::new(input)
        .take(body_len.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated {
                what: "the compressed body",
            },
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                corrupt(format!("the compressed body: {e}"))
            }
            _ => SnapshotError::Io(e),
        })?;
    let got = u64::try_from(body.len()).unwrap_or(u64::MAX);
    if got < body_len {
        return Err(SnapshotError::Truncated { what: "the body" });
    }
    if got > body_len {
        return Err(corrupt(format!(
            "the body is longer than the header's {body_len} bytes"
        )));
    }
    let mut r = Rd { buf: &body, pos: 0 };
    let snap = read_body(&mut r)?;
    if r.pos != body.len() {
        return Err(corrupt(format!(
            "{} bytes after the last map",
            body.len().saturating_sub(r.pos)
        )));
    }
    Ok(snap)
}

fn read_header(input: &mut dyn Read, header: &mut [u8; HEADER_LEN]) -> Result<(), SnapshotError> {
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = match input.read(header.get_mut(filled..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SnapshotError::Io(e)),
        };
        if n == 0 {
            // A file shorter than the magic is no snapshot; one with the magic, cut.
            return Err(
                if filled < MAGIC.len() || header.get(..MAGIC.len()) != Some(&MAGIC) {
                    SnapshotError::NotASnapshot
                } else {
                    SnapshotError::Truncated { what: "the header" }
                },
            );
        }
        filled += n;
    }
    Ok(())
}

fn corrupt(what: String) -> SnapshotError {
    SnapshotError::Corrupt { what }
}

/// A cursor over the decompressed body; every read is bounds-checked.
struct Rd<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(SnapshotError::Truncated { what })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(SnapshotError::Truncated { what })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let s = self.take(N, what)?;
        <[u8; N]>::try_from(s).map_err(|_| SnapshotError::Truncated { what })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, SnapshotError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(corrupt(format!("{what}: flag {v}"))),
        }
    }

    /// A count of items of at least `min_size` bytes each, capped at `limit`.
    fn count(
        &mut self,
        limit: u64,
        min_size: usize,
        what: &'static str,
    ) -> Result<usize, SnapshotError> {
        let n = u64::from(self.u32(what)?);
        self.check_count(n, limit, min_size, what)
    }

    fn check_count(
        &self,
        n: u64,
        limit: u64,
        min_size: usize,
        what: &'static str,
    ) -> Result<usize, SnapshotError> {
        if n > limit {
            return Err(SnapshotError::LimitExceeded {
                what,
                found: n,
                limit,
            });
        }
        let n = usize::try_from(n).map_err(|_| SnapshotError::Truncated { what })?;
        if n.checked_mul(min_size.max(1))
            .is_none_or(|need| need > self.left())
        {
            return Err(SnapshotError::Truncated { what });
        }
        Ok(n)
    }

    fn bytes(&mut self, limit: u32, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let n = self.count(u64::from(limit), 1, what)?;
        self.take(n, what)
    }

    fn text(&mut self, what: &'static str) -> Result<String, SnapshotError> {
        let b = self.bytes(MAX_TEXT, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt(format!("{what}: not UTF-8")))
    }

    fn opt_text(&mut self, what: &'static str) -> Result<Option<String>, SnapshotError> {
        if self.flag(what)? {
            self.text(what).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn read_body(r: &mut Rd<'_>) -> Result<Snapshot, SnapshotError> {
    let release = r.opt_text("the kernel release")?;
    let boot = r.opt_text("the boot identity")?;
    let source = r.text("the source")?;
    let secs = r.u64("the time")?;
    let nanos = r.u32("the time")?;
    if nanos >= 1_000_000_000 {
        return Err(corrupt(format!("the time: {nanos} nanoseconds")));
    }
    let taken = UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos))
        .ok_or_else(|| corrupt(format!("the time: {secs} s")))?;
    let base_btf = if r.flag("the base BTF")? {
        Some(r.bytes(MAX_BTF_BYTES, "the base BTF")?.to_vec())
    } else {
        None
    };
    let n = r.count(u64::from(MAX_BTF_OBJECTS), 5, "the BTF objects")?;
    let mut btfs = Vec::with_capacity(n);
    for _ in 0..n {
        let split = r.flag("a BTF object")?;
        if split && base_btf.is_none() {
            return Err(corrupt("a split BTF object without a base BTF".into()));
        }
        let bytes = r.bytes(MAX_BTF_BYTES, "a BTF object")?.to_vec();
        btfs.push(BtfBlob { split, bytes });
    }
    let n = r.count(u64::from(MAX_MAPS), 9, "the unlisted maps")?;
    let mut unlisted = Vec::with_capacity(n);
    for _ in 0..n {
        let known = r.flag("an unlisted map")?;
        let id = r.u32("an unlisted map")?;
        unlisted.push((known.then_some(id), r.text("an unlisted map's reason")?));
    }
    // A map is at least 80 bytes.
    let n = r.count(u64::from(MAX_MAPS), 80, "the maps")?;
    let mut maps = Vec::with_capacity(n);
    let mut last_id = None;
    for _ in 0..n {
        let m = read_map(r, &btfs)?;
        if last_id.is_some_and(|l| m.info.id <= l) {
            return Err(corrupt(format!("map id {} out of order", m.info.id)));
        }
        last_id = Some(m.info.id);
        maps.push(m);
    }
    let progs = read_progs(r)?;
    Ok(Snapshot {
        meta: SnapshotMeta {
            kernel: KernelIdentity { release, boot },
            source,
            taken,
        },
        base_btf,
        btfs,
        unlisted,
        maps,
        progs,
    })
}

fn read_progs(r: &mut Rd<'_>) -> Result<StoredProgs, SnapshotError> {
    if !r.flag("the programs")? {
        return Ok(StoredProgs::NotRead(
            r.text("why the programs were not read")?,
        ));
    }
    // A program is at least 54 bytes.
    let n = r.count(u64::from(MAX_PROGS), 54, "the programs")?;
    let mut progs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32("a program's id")?;
        if progs.last().is_some_and(|p: &ProgInfo| p.id >= id) {
            return Err(corrupt(format!("program id {id} out of order")));
        }
        let prog_type = ProgType(r.u32("a program's type")?);
        let raw_name = r.bytes(
            u32::try_from(BPF_OBJ_NAME_LEN).unwrap_or(16),
            "a program's name",
        )?;
        if raw_name.contains(&0) {
            return Err(corrupt(format!("program id {id}: a NUL in its name")));
        }
        let mut field = [0u8; BPF_OBJ_NAME_LEN];
        field
            .get_mut(..raw_name.len())
            .ok_or_else(|| corrupt(format!("program id {id}: name too long")))?
            .copy_from_slice(raw_name);
        let tag = r.array::<8>("a program's tag")?;
        let gpl_compatible = match r.u8("a program's licence")? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            x => return Err(corrupt(format!("program id {id}: licence flag {x}"))),
        };
        let xlated_len = r.u64("a program's size")?;
        let jited_len = r.u64("a program's size")?;
        let has_uid = r.flag("a program's uid")?;
        let uid = r.u32("a program's uid")?;
        let btf_id = r.u32("a program's BTF id")?;
        let n_maps = r.count(MAX_USED_MAPS as u64, 4, "a program's maps")?;
        let mut map_ids = Vec::with_capacity(n_maps);
        for _ in 0..n_maps {
            map_ids.push(r.u32("a program's map id")?);
        }
        let kva = Kva(r.u64("a program's address")?);
        let mut p = ProgInfo::default();
        p.id = id;
        p.prog_type = prog_type;
        p.name = MapName::from_field(&field);
        p.tag = tag;
        p.gpl_compatible = gpl_compatible;
        p.xlated_len = xlated_len;
        p.jited_len = jited_len;
        p.uid = has_uid.then_some(uid);
        p.btf_id = btf_id;
        p.kva = kva;
        p.set_map_ids(&map_ids)
            .map_err(|e| corrupt(format!("program id {id}: {e}")))?;
        progs.push(p);
    }
    let n = r.count(u64::from(MAX_PROGS), 9, "the unread programs")?;
    let mut errors = Vec::with_capacity(n);
    for _ in 0..n {
        let known = r.flag("an unread program")?;
        let id = r.u32("an unread program")?;
        errors.push((known.then_some(id), r.text("an unread program's reason")?));
    }
    Ok(StoredProgs::Read(crate::progs::ProgReport {
        progs,
        errors,
    }))
}

fn read_map(r: &mut Rd<'_>, btfs: &[BtfBlob]) -> Result<StoredMap, SnapshotError> {
    let id = r.u32("a map's id")?;
    let map_type = MapType(r.u32("a map's type")?);
    let raw_name = r.bytes(
        u32::try_from(BPF_OBJ_NAME_LEN).unwrap_or(16),
        "a map's name",
    )?;
    // The writer writes the name up to its first NUL; one inside would not read back.
    if raw_name.contains(&0) {
        return Err(corrupt(format!("map id {id}: a NUL in its name")));
    }
    let mut field = [0u8; BPF_OBJ_NAME_LEN];
    field
        .get_mut(..raw_name.len())
        .ok_or_else(|| corrupt(format!("map id {id}: name too long")))?
        .copy_from_slice(raw_name);
    let mut v = [0u32; 8];
    for x in &mut v {
        *x = r.u32("a map's metadata")?;
    }
    let [flags, key_size, value_size, max_entries, btf_id, key_t, value_t, vmlinux_t] = v;
    let info = MapInfo {
        id,
        map_type,
        name: MapName::from_field(&field),
        map_flags: MapFlags::from_bits_retain(flags),
        key_size,
        value_size,
        max_entries,
        btf_id,
        btf_key_type_id: key_t,
        btf_value_type_id: value_t,
        btf_vmlinux_value_type_id: vmlinux_t,
        kva: Kva(r.u64("a map's address")?),
        btf: Kva(r.u64("a map's BTF address")?),
    };
    let frozen = match r.u8("a map's state")? {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        v => return Err(corrupt(format!("map id {id}: frozen {v}"))),
    };
    let has_memlock = r.flag("a map's state")?;
    let memlock = r.u64("a map's state")?;
    let state = MapState {
        frozen,
        memlock: has_memlock.then_some(memlock),
    };
    let btf = match r.u8("a map's BTF")? {
        0 => StoredBtf::None,
        1 => {
            let i = r.u32("a map's BTF")?;
            if usize::try_from(i).map_or(true, |i| i >= btfs.len()) {
                return Err(corrupt(format!(
                    "map id {id}: BTF object {i} of {}",
                    btfs.len()
                )));
            }
            StoredBtf::Index(i)
        }
        2 => StoredBtf::Error(r.text("a map's BTF error")?),
        v => return Err(corrupt(format!("map id {id}: BTF tag {v}"))),
    };
    let n = r.u64("a map's entry count")?;
    // An entry is at least 9 bytes (empty key, tag, empty value).
    let n = r.check_count(n, MAX_ENTRIES, 9, "a map's entries")?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.bytes(MAX_VALUE_BYTES, "a key")?.to_vec();
        let value = match r.u8("a value")? {
            0 => StoredValue::Single(r.bytes(MAX_VALUE_BYTES, "a value")?.to_vec()),
            1 => {
                let cpus = r.count(u64::from(MAX_CPUS), 8, "a per-CPU value")?;
                let mut copies = Vec::with_capacity(cpus);
                for _ in 0..cpus {
                    let cpu = r.u32("a per-CPU value")?;
                    copies.push((cpu, r.bytes(MAX_VALUE_BYTES, "a per-CPU value")?.to_vec()));
                }
                StoredValue::PerCpu(copies)
            }
            v => return Err(corrupt(format!("map id {id}: value tag {v}"))),
        };
        entries.push(StoredEntry { key, value });
    }
    let error = r.opt_text("a map's walk error")?;
    Ok(StoredMap {
        info,
        state,
        btf,
        entries,
        error,
    })
}
