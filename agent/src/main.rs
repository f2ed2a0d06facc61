//! mapwalk-agent: a firmware-like, freestanding reader of BPF maps.
//!
//! `#![no_std]`, `#![no_main]`, no allocator, no C runtime: what a hypervisor's
//! firmware or a bare-metal introspection agent would be. It holds a synthetic guest's
//! RAM in a static buffer (built at compile time by build.rs), walks its page tables,
//! discovers its BPF maps through `map_idr` and reads their values with mapwalk-core
//! (default features: no `alloc`), compares everything with the values the guest was
//! built with, prints one line, and exits 0, or with the status of the first wrong
//! result (see [`Failure::code`]).
#![no_std]
#![no_main]
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
// The memory functions in `rt` must not be compiled into calls to themselves.
#![no_builtins]

mod rt;

use core::fmt::{self, Write as _};

use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{HtabMap, PerCpuOffsets, PossibleCpus};
use mapwalk_core::kernel::{KernelRead, KernelView};
use mapwalk_core::{translate, Bpf, Error, Kva, MapType, Pa, Paging, Ram};

use rt::{Line, STDOUT};

/// The generated guest: RAM, paging state, layout and expected results.
mod guest {
    #![allow(clippy::all, clippy::pedantic, dead_code)]
    #[allow(unused_imports)]
    use mapwalk_core::bpf::PptrPlacement;
    #[allow(unused_imports)]
    use mapwalk_core::kernel::{KernelAddrs, LinearRegion};
    #[allow(unused_imports)]
    use mapwalk_core::layout::*;
    #[allow(unused_imports)]
    use mapwalk_core::{Kva, MapType, Pa};

    use super::{ExpectedEntry, ExpectedMap};

    include!(concat!(env!("OUT_DIR"), "/guest.rs"));
}

/// A map as the guest was built with it.
pub struct ExpectedMap {
    /// Its id.
    pub id: u32,
    /// Its name.
    pub name: &'static [u8],
    /// `map_type`.
    pub map_type: MapType,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// Every value, by key (ARRAY).
    pub values: &'static [&'static [u8]],
    /// Every element (hash maps).
    pub entries: &'static [ExpectedEntry],
    /// Every value by key, then by CPU (PERCPU_ARRAY).
    pub cpu_values: &'static [&'static [&'static [u8]]],
    /// Where the `__percpu` pointers are (per-CPU hash maps).
    pub pptr_placement: Option<mapwalk_core::bpf::PptrPlacement>,
}

/// An element of a hash map as the guest was built with it.
pub struct ExpectedEntry {
    /// The key.
    pub key: &'static [u8],
    /// The value (HASH, LRU_HASH).
    pub value: &'static [u8],
    /// The value by CPU (the per-CPU types).
    pub cpu_values: &'static [&'static [u8]],
}

/// The most elements of one hash map the agent checks.
const MAX_ENTRIES: usize = 64;

/// The largest value the agent reads in one piece (its only buffer).
const VALUE_BUF: usize = 4096;

/// The first wrong result.
#[derive(Debug)]
enum Failure {
    /// A page walk failed.
    Translate { va: u64, err: Error },
    /// A page walk gave the wrong physical address.
    Translation { va: u64, got: u64, want: u64 },
    /// The kernel view failed to read or translate.
    View { va: u64, err: Error },
    /// The kernel view read or translated to a wrong value.
    ViewValue { va: u64, got: u64, want: u64 },
    /// Discovery failed.
    Discovery(Error),
    /// Discovery found other maps than the guest holds (by position in id order).
    MapSet { index: usize, got: Option<u32> },
    /// A map's metadata differs.
    MapInfo { id: u32, field: &'static str },
    /// `map_by_id` or `find_by_name` did not find a map.
    Lookup {
        id: u32,
        how: &'static str,
        err: Option<Error>,
    },
    /// An ARRAY map could not be opened.
    Array { id: u32, err: Error },
    /// An ARRAY value could not be read.
    ArrayRead { id: u32, key: u32, err: Error },
    /// An ARRAY value differs from what the guest holds.
    ArrayValue { id: u32, key: u32, offset: usize },
    /// A key past the end of an ARRAY was not refused.
    ArrayBounds { id: u32, key: u32 },
    /// `__per_cpu_offset` could not be read.
    PerCpuOffsets(Error),
    /// The possible-CPU count differs.
    PossibleCpus { got: u32 },
    /// A hash map could not be opened.
    Hash { id: u32, err: Error },
    /// A hash walk yielded an error.
    HashWalk { id: u32, err: Error },
    /// A hash element that the guest does not hold, or holds with another value.
    HashEntry {
        id: u32,
        index: usize,
        cpu: Option<u32>,
    },
    /// A hash walk found another number of elements.
    HashCount { id: u32, got: usize },
    /// The per-CPU pointer placement differs.
    Placement { id: u32 },
    /// A PERCPU_ARRAY could not be opened or read.
    PerCpuArray { id: u32, key: u32, err: Error },
    /// A PERCPU_ARRAY copy differs.
    PerCpuValue { id: u32, key: u32, cpu: u32 },
}

impl Failure {
    /// The exit status: one per kind of check, so that CI can tell them apart.
    ///
    /// | status | check |
    /// |---|---|
    /// | 10, 11 | page walk: failed, wrong address |
    /// | 12, 13 | kernel view: failed, wrong value |
    /// | 20 | discovery walk failed |
    /// | 21 | wrong set of maps |
    /// | 22 | wrong map metadata |
    /// | 23 | `map_by_id` / `find_by_name` lookup |
    /// | 30, 31 | ARRAY: open failed, read failed |
    /// | 32 | ARRAY: wrong value |
    /// | 33 | ARRAY: key past the end accepted |
    /// | 40, 41 | `__per_cpu_offset`: read failed, wrong possible count |
    /// | 50, 51 | hash map: open failed, walk error |
    /// | 52, 53 | hash map: wrong element, wrong number of elements |
    /// | 54 | per-CPU hash map: wrong pointer placement |
    /// | 60, 61 | PERCPU_ARRAY: open or read failed, wrong copy |
    /// | 101 | panic |
    const fn code(&self) -> u8 {
        match self {
            Self::Translate { .. } => 10,
            Self::Translation { .. } => 11,
            Self::View { .. } => 12,
            Self::ViewValue { .. } => 13,
            Self::Discovery(_) => 20,
            Self::MapSet { .. } => 21,
            Self::MapInfo { .. } => 22,
            Self::Lookup { .. } => 23,
            Self::Array { .. } => 30,
            Self::ArrayRead { .. } => 31,
            Self::ArrayValue { .. } => 32,
            Self::ArrayBounds { .. } => 33,
            Self::PerCpuOffsets(_) => 40,
            Self::PossibleCpus { .. } => 41,
            Self::Hash { .. } => 50,
            Self::HashWalk { .. } => 51,
            Self::HashEntry { .. } => 52,
            Self::HashCount { .. } => 53,
            Self::Placement { .. } => 54,
            Self::PerCpuArray { .. } => 60,
            Self::PerCpuValue { .. } => 61,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Translate { va, err } => write!(f, "page walk of {va:#x}: {err}"),
            Self::Translation { va, got, want } => {
                write!(f, "page walk of {va:#x} gave {got:#x}, not {want:#x}")
            }
            Self::View { va, err } => write!(f, "kernel view at {va:#x}: {err}"),
            Self::ViewValue { va, got, want } => {
                write!(f, "kernel view at {va:#x} gave {got:#x}, not {want:#x}")
            }
            Self::Discovery(err) => write!(f, "discovery: {err}"),
            Self::MapSet { index, got } => {
                write!(
                    f,
                    "map #{index} in id order: found {got:?}, expected another"
                )
            }
            Self::MapInfo { id, field } => write!(f, "map {id}: wrong {field}"),
            Self::Lookup { id, how, err } => match err {
                Some(err) => write!(f, "map {id} by {how}: {err}"),
                None => write!(f, "map {id} by {how}: not found"),
            },
            Self::Array { id, err } => write!(f, "ARRAY {id}: {err}"),
            Self::ArrayRead { id, key, err } => write!(f, "ARRAY {id} key {key}: {err}"),
            Self::ArrayValue { id, key, offset } => {
                write!(f, "ARRAY {id} key {key}: wrong byte at offset {offset}")
            }
            Self::ArrayBounds { id, key } => write!(f, "ARRAY {id}: key {key} was accepted"),
            Self::PerCpuOffsets(err) => write!(f, "__per_cpu_offset: {err}"),
            Self::PossibleCpus { got } => write!(f, "{got} possible CPUs"),
            Self::Hash { id, err } => write!(f, "hash map {id}: {err}"),
            Self::HashWalk { id, err } => write!(f, "hash map {id} walk: {err}"),
            Self::HashEntry { id, index, cpu } => match cpu {
                Some(cpu) => write!(
                    f,
                    "hash map {id} element #{index}: CPU {cpu}'s value differs"
                ),
                None => write!(
                    f,
                    "hash map {id} element #{index}: not in the guest, or its value differs"
                ),
            },
            Self::HashCount { id, got } => write!(f, "hash map {id}: {got} elements"),
            Self::Placement { id } => write!(f, "per-CPU hash map {id}: wrong pointer placement"),
            Self::PerCpuArray { id, key, err } => write!(f, "PERCPU_ARRAY {id} key {key}: {err}"),
            Self::PerCpuValue { id, key, cpu } => {
                write!(f, "PERCPU_ARRAY {id} key {key}: CPU {cpu}'s copy differs")
            }
        }
    }
}

/// What was checked.
#[derive(Debug, Default)]
struct Summary {
    translations: usize,
    maps: usize,
    values: usize,
    bytes: usize,
    elements: usize,
    copies: usize,
}

/// Every check, in order; the first wrong result ends the run.
fn run() -> Result<Summary, Failure> {
    let mut done = Summary::default();
    let ram = Ram::new(Pa(guest::RAM_BASE), &guest::RAM[..]);
    let paging = Paging::X86_64(X86Paging::new(guest::CR3, guest::FIVE_LEVEL));

    // Page walks from CR3, against the builder's records.
    for &(va, want) in &guest::TRANSLATIONS {
        let m = translate(&ram, &paging, Kva(va))
            .and_then(|t| t.mapped(Kva(va)))
            .map_err(|err| Failure::Translate { va, err })?;
        if m.pa.0 != want {
            return Err(Failure::Translation {
                va,
                got: m.pa.0,
                want,
            });
        }
        done.translations += 1;
    }

    // The kernel view: linear mappings and the cached walk agree with the records, and
    // the kernel's own `phys_base` variable reads back.
    let view = KernelView::new(ram, paging, guest::ADDRS);
    for &(va, want) in &guest::TRANSLATIONS {
        let span = view
            .kva_to_pa(Kva(va))
            .map_err(|err| Failure::View { va, err })?;
        if span.start.0 != want {
            return Err(Failure::ViewValue {
                va,
                got: span.start.0,
                want,
            });
        }
    }
    let (symbol, phys_base) = guest::PHYS_BASE;
    let got = view
        .read_kernel_u64(symbol)
        .map_err(|err| Failure::View { va: symbol.0, err })?;
    if got != phys_base {
        return Err(Failure::ViewValue {
            va: symbol.0,
            got,
            want: phys_base,
        });
    }

    // Discovery: every map, in id order, with its metadata.
    let bpf = Bpf::new(&view, &guest::LAYOUT, guest::MAP_IDR);
    let mut found = 0usize;
    for (index, item) in bpf.maps().map_err(Failure::Discovery)?.enumerate() {
        let info = item.map_err(Failure::Discovery)?;
        let want = guest::MAPS.get(index).ok_or(Failure::MapSet {
            index,
            got: Some(info.id),
        })?;
        if info.id != want.id {
            return Err(Failure::MapSet {
                index,
                got: Some(info.id),
            });
        }
        let id = info.id;
        let fields = [
            ("name", info.name.as_bytes() == want.name),
            ("map_type", info.map_type == want.map_type),
            ("key_size", info.key_size == want.key_size),
            ("value_size", info.value_size == want.value_size),
            ("max_entries", info.max_entries == want.max_entries),
            ("map_flags", info.map_flags.bits() == want.map_flags),
        ];
        if let Some(&(field, _)) = fields.iter().find(|(_, ok)| !ok) {
            return Err(Failure::MapInfo { id, field });
        }
        found += 1;
    }
    if found != guest::MAPS.len() {
        return Err(Failure::MapSet {
            index: found,
            got: None,
        });
    }
    done.maps = found;

    // `__per_cpu_offset`, with the possible count from `nr_cpu_ids`, into a fixed buffer.
    let offsets = PerCpuOffsets::read(
        &view,
        guest::PER_CPU_OFFSET,
        PossibleCpus::NrCpuIds(guest::NR_CPU_IDS),
        [0u64; 64],
    )
    .map_err(Failure::PerCpuOffsets)?;
    if offsets.possible() != guest::POSSIBLE_CPUS {
        return Err(Failure::PossibleCpus {
            got: offsets.possible(),
        });
    }

    let mut buf = [0u8; VALUE_BUF];
    for want in &guest::MAPS {
        let id = want.id;
        // Both lookups find it.
        let by_id = bpf.map_by_id(id).map_err(|err| Failure::Lookup {
            id,
            how: "id",
            err: Some(err),
        })?;
        let info = by_id.ok_or(Failure::Lookup {
            id,
            how: "id",
            err: None,
        })?;
        let name = core::str::from_utf8(want.name).unwrap_or("");
        let by_name = bpf.find_by_name(name).map_err(|err| Failure::Lookup {
            id,
            how: "name",
            err: Some(err),
        })?;
        if by_name.map(|m| m.id) != Some(id) {
            return Err(Failure::Lookup {
                id,
                how: "name",
                err: None,
            });
        }

        if want.map_type == MapType::ARRAY {
            let array = bpf.array(&info).map_err(|err| Failure::Array { id, err })?;
            for (key, value) in (0u32..).zip(want.values.iter()) {
                let got = buf.get_mut(..value.len()).ok_or(Failure::ArrayRead {
                    id,
                    key,
                    err: Error::BufferSize {
                        need: value.len() as u64,
                        have: VALUE_BUF as u64,
                    },
                })?;
                array
                    .read(&view, key, 0, got)
                    .map_err(|err| Failure::ArrayRead { id, key, err })?;
                if let Some(offset) = got.iter().zip(value.iter()).position(|(a, b)| a != b) {
                    return Err(Failure::ArrayValue { id, key, offset });
                }
                done.values += 1;
                done.bytes += value.len();
            }
            let past = want.max_entries;
            if array.read(&view, past, 0, &mut buf[..1]).is_ok() {
                return Err(Failure::ArrayBounds { id, key: past });
            }
        }

        match want.map_type {
            MapType::HASH | MapType::LRU_HASH => {
                let map = bpf.htab(&info).map_err(|err| Failure::Hash { id, err })?;
                check_hash(&view, &map, want, None, &mut done)?;
            }
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => {
                // The pointer placement is found from the data, not told.
                let map = bpf
                    .percpu_htab(&info, &offsets, None)
                    .map_err(|err| Failure::Hash { id, err })?;
                if map.pptr_decision().map(|d| d.placement) != want.pptr_placement {
                    return Err(Failure::Placement { id });
                }
                check_hash(&view, &map, want, Some(&offsets), &mut done)?;
            }
            MapType::PERCPU_ARRAY => {
                let map = bpf
                    .percpu_array(&info)
                    .map_err(|err| Failure::PerCpuArray { id, key: 0, err })?;
                for (key, cpus) in (0u32..).zip(want.cpu_values.iter()) {
                    for (cpu, value) in (0u32..).zip(cpus.iter()) {
                        let got = buf.get_mut(..value.len()).unwrap_or_default();
                        map.read_cpu(&view, &offsets, key, cpu, 0, got)
                            .map_err(|err| Failure::PerCpuArray { id, key, err })?;
                        if got != *value {
                            return Err(Failure::PerCpuValue { id, key, cpu });
                        }
                        done.copies += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(done)
}

/// Walks a hash map without allocating: every element must be one the guest holds,
/// with its value (or each CPU's copy), and every one the guest holds must be found.
fn check_hash<K: KernelRead>(
    view: &K,
    map: &HtabMap,
    want: &ExpectedMap,
    offsets: Option<&PerCpuOffsets<[u64; 64]>>,
    done: &mut Summary,
) -> Result<(), Failure> {
    let id = want.id;
    let (mut key, mut value, mut copy) = ([0u8; 64], [0u8; 256], [0u8; 256]);
    let key = key
        .get_mut(..want.key_size as usize)
        .ok_or(Failure::HashCount { id, got: 0 })?;
    let value_len = if offsets.is_some() {
        0
    } else {
        want.value_size as usize
    };
    let value = value
        .get_mut(..value_len)
        .ok_or(Failure::HashCount { id, got: 0 })?;
    let mut seen = [false; MAX_ENTRIES];
    let mut found = 0usize;
    let mut walk = map.walk(view);
    while let Some(item) = walk.next_into(key, value) {
        let entry = item.map_err(|err| Failure::HashWalk { id, err })?;
        let index = want
            .entries
            .iter()
            .position(|e| e.key == &key[..])
            .filter(|&i| !seen.get(i).copied().unwrap_or(true))
            .ok_or(Failure::HashEntry {
                id,
                index: found,
                cpu: None,
            })?;
        let expected = &want.entries[index];
        match offsets {
            None => {
                if expected.value != &value[..] {
                    return Err(Failure::HashEntry {
                        id,
                        index: found,
                        cpu: None,
                    });
                }
            }
            Some(offsets) => {
                for (cpu, v) in (0u32..).zip(expected.cpu_values.iter()) {
                    let got = copy.get_mut(..v.len()).unwrap_or_default();
                    walk.copy_cpu_value(offsets, &entry, cpu, got)
                        .map_err(|err| Failure::HashWalk { id, err })?;
                    if got != *v {
                        return Err(Failure::HashEntry {
                            id,
                            index: found,
                            cpu: Some(cpu),
                        });
                    }
                    done.copies += 1;
                }
            }
        }
        seen[index] = true;
        found += 1;
    }
    if found != want.entries.len() {
        return Err(Failure::HashCount { id, got: found });
    }
    done.elements += found;
    Ok(())
}

/// The agent: runs the checks, prints one line, returns the exit status.
pub fn main() -> u8 {
    let mut line = Line::new();
    let code = match run() {
        Ok(s) => {
            let _ = write!(
                line,
                "mapwalk-agent: ok: {} page walks, {} maps discovered, {} ARRAY values \
                 ({} bytes), {} hash elements, {} per-CPU copies checked; {} KiB of guest \
                 RAM in a static buffer, no allocator",
                s.translations,
                s.maps,
                s.values,
                s.bytes,
                s.elements,
                s.copies,
                guest::RAM_LEN / 1024
            );
            0
        }
        Err(f) => {
            let _ = write!(line, "mapwalk-agent: FAIL (exit {}): {f}", f.code());
            f.code()
        }
    };
    line.emit(STDOUT);
    code
}
