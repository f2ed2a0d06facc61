//! BPF maps on real kernels: the guest's `/init` creates maps through bpf() and reports
//! them (section `bpf-maps`); with the guest paused, `mapwalk-core` must find them in
//! `map_idr` with the same metadata and read every ARRAY value byte for byte, using a
//! layout resolved from the BTF in guest memory and `map_idr` from the guest's
//! kallsyms. Then a write through `ArrayMap::write` must reach the guest, which reports
//! the new value of the key it watches.

use super::{kernel_view, MIB};
use mapwalk::btf;
use mapwalk::kallsyms::SymbolTable;
use mapwalk_core::bpf::{MapList, BPF_F_MMAPABLE};
use mapwalk_core::{
    Bpf, KernelLayout, KernelRead, KernelView, Kva, MapInfo, MapType, Pa, PhysErrorKind, PhysRange,
    PhysRead, PhysWrite, Ram,
};
use mapwalk_e2e::{self as e2e, GuestConfig, GuestMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

#[test]
fn deb12_kaslr_5level_bpf_maps() {
    bpf_maps(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb12_nokaslr_4level_bpf_maps() {
    bpf_maps(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

#[test]
fn deb13_kaslr_5level_bpf_maps() {
    bpf_maps(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_4level_smp4_bpf_maps() {
    bpf_maps(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

/// The maps `/init` creates (see `e2e/guest/init.c`).
pub(super) const GUEST_MAPS: [&str; 11] = [
    "mw_array",
    "mw_one.bss",
    "mw_mmap",
    "mw_hash",
    "mw_lru",
    "mw_pcpu",
    "mw_pcpu20",
    "mw_ph6",
    "mw_ph12",
    "mw_lph12",
    "mw_ph8",
];

/// How long the guest may take to notice a write (it polls every 200 ms; TCG is slow).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Guest RAM through the RAM file itself, read and written with `pread`/`pwrite`.
///
/// `PhysWrite` asks that an aligned write of 8 bytes or fewer land as one store, so
/// that a running guest never sees a torn value; a `pwrite` promises no such thing.
/// This backend is only ever used while the guest is paused (QMP `stop`): no vCPU runs,
/// so nothing can observe a write half done, and every write is complete before `cont`.
struct RamFile {
    file: File,
    ranges: [PhysRange; 1],
}

impl RamFile {
    fn check(&self, pa: Pa, len: usize) -> Result<u64, PhysErrorKind> {
        let len = u64::try_from(len).map_err(|_| PhysErrorKind::OutOfRange)?;
        if self.ranges[0].contains(pa, len) || len == 0 {
            Ok(pa.0)
        } else {
            Err(PhysErrorKind::Unmapped)
        }
    }
}

impl PhysRead for RamFile {
    type Error = PhysErrorKind;
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), PhysErrorKind> {
        let at = self.check(pa, buf.len())?;
        self.file
            .read_exact_at(buf, at)
            .map_err(|_| PhysErrorKind::Io)
    }
    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }
}

impl PhysWrite for RamFile {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), PhysErrorKind> {
        let at = self.check(pa, data.len())?;
        self.file
            .write_all_at(data, at)
            .map_err(|_| PhysErrorKind::Io)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bpf_maps(config: &GuestConfig) {
    let test = format!("real_kernel::bpf::{}", config.name);
    let Some(guest) = e2e::guest(&test, config) else {
        return;
    };
    // Writers and exact value checks of the shared guests take turns.
    let _values = e2e::value_lock();
    let report = guest.report();
    let syms = &report.kallsyms;
    let sym = |name: &str| {
        syms.lookup(name)
            .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
    };
    let expected = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    for name in GUEST_MAPS {
        assert!(
            expected.iter().any(|m| m.name == name),
            "{test}: the guest did not report map {name}: {expected:?}"
        );
    }

    // Everything below runs with the guest paused: the reads on a copy of RAM, the
    // write on the RAM file itself. `cont` when `paused` drops.
    let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    let ram = paused.read_ram().unwrap_or_else(|e| panic!("{test}: {e}"));
    let ram_len = u64::try_from(ram.len()).unwrap();
    assert_eq!(ram_len, u64::from(config.mem_mib) * MIB);
    let mem = Ram::new(Pa(0), ram);
    let (view, _, _) = kernel_view(&test, syms, regs, &mem, ram_len);

    let layout = layout_from_guest(&test, syms, &view);
    let map_idr = Kva(sym("map_idr"));
    check_maps(&test, &view, &layout, map_idr, &expected, Key0::Original);

    // The write: key 0 of mw_array, through a view over the RAM file, guest paused.
    let target = expected.iter().find(|m| m.name == "mw_array").unwrap();
    let old = &target.values[&0];
    let new = written_value(old);
    assert_ne!(&new, old);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: open {}: {e}", guest.ram_path().display()));
    let ram_file = RamFile {
        file,
        ranges: [PhysRange {
            start: Pa(0),
            len: ram_len,
        }],
    };
    let (wview, _, _) = kernel_view(&test, syms, regs, &ram_file, ram_len);
    let wbpf = Bpf::new(&wview, &layout, map_idr);
    let info = wbpf.map_by_id(target.id).unwrap().unwrap();
    let array = wbpf.array(&info).unwrap();
    array
        .write(&wview, 0, 0, &new)
        .unwrap_or_else(|e| panic!("{test}: write key 0 of mw_array: {e}"));
    assert_eq!(array.value(&wview, 0).unwrap(), new, "{test}: read back");
    assert_eq!(
        &array.value(&wview, 1).unwrap(),
        &target.values[&1],
        "{test}: key 1 untouched"
    );
    drop(paused);

    let line = format!("CHANGED {} 0 {}", target.id, hex(&new));
    let waited = Instant::now();
    loop {
        let console = guest.console();
        if console.lines().any(|l| l.trim_end() == line) {
            break;
        }
        let changed: Vec<&str> = console
            .lines()
            .filter(|l| l.starts_with("CHANGED"))
            .collect();
        assert!(
            waited.elapsed() < CHANGE_TIMEOUT,
            "{test}: no {line:?} on the console within {} s; CHANGED lines: {changed:?}",
            CHANGE_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{test}: {} maps checked, write seen by the guest after {:.2} s",
        expected.len(),
        waited.elapsed().as_secs_f64()
    );
}

/// What key 0 of `mw_array` may hold when the maps are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key0 {
    /// The value the guest reported: nothing has written it yet.
    Original,
    /// That value or [`written_value`] of it: the write test of this guest may have
    /// run.
    OriginalOrWritten,
}

/// The value the write test stores in key 0 of `mw_array`, whose value was `old`.
pub(super) fn written_value(old: &[u8]) -> Vec<u8> {
    old.iter()
        .enumerate()
        .map(|(i, b)| b ^ 0xa5 ^ u8::try_from(i * 29 % 256).unwrap())
        .collect()
}

/// Discovery and ARRAY values, through `view` and `layout`: every map the guest
/// `expected` is in `map_idr` with its metadata, found by id and name; every ARRAY value
/// byte-exact (key 0 of `mw_array` as `key0` says).
pub(super) fn check_maps<M: PhysRead>(
    test: &str,
    view: &KernelView<M>,
    layout: &KernelLayout,
    map_idr: Kva,
    expected: &[GuestMap],
    key0: Key0,
) {
    let bpf = Bpf::new(view, layout, map_idr);
    let MapList { maps, errors } = bpf
        .collect_maps()
        .unwrap_or_else(|e| panic!("{test}: walk map_idr: {e}"));
    assert!(errors.is_empty(), "{test}: per-map errors: {errors:?}");
    eprintln!(
        "{test}: map_idr holds {} maps: {:?}",
        maps.len(),
        maps.iter()
            .map(|m| format!("{}:{}", m.id, m.name))
            .collect::<Vec<_>>()
    );
    for want in expected {
        let got = maps
            .iter()
            .find(|m| m.id == want.id)
            .unwrap_or_else(|| panic!("{test}: map {} ({}) not in map_idr", want.id, want.name));
        check_info(test, want, got);
        assert_eq!(
            bpf.map_by_id(want.id).unwrap().as_ref(),
            Some(got),
            "{test}: map_by_id({})",
            want.id
        );
        assert_eq!(
            bpf.find_by_name(&want.name).unwrap().map(|m| m.id),
            maps.iter()
                .find(|m| m.name.as_str() == Some(&want.name))
                .map(|m| m.id),
            "{test}: find_by_name({})",
            want.name
        );
        if want.map_type == MapType::ARRAY.0 {
            check_values(test, &bpf, got, want, key0);
        }
    }
    let bss = bpf.find_by_suffix(".bss").unwrap();
    let first_bss = maps.iter().find(|m| m.name.as_bytes().ends_with(b".bss"));
    assert_eq!(bss.as_ref(), first_bss, "{test}: find_by_suffix(.bss)");
    let one_bss = expected.iter().find(|m| m.name == "mw_one.bss").unwrap();
    if maps
        .iter()
        .filter(|m| m.name.as_bytes().ends_with(b".bss"))
        .count()
        == 1
    {
        assert_eq!(bss.map(|m| m.id), Some(one_bss.id), "{test}: .bss map");
    }
    assert_eq!(bpf.find_by_name("no_such_map").unwrap(), None);
}

/// The kernel's layout, from the BTF in guest memory (between `__start_BTF` and
/// `__stop_BTF` of the guest's kallsyms).
pub(super) fn layout_from_guest<M: PhysRead>(
    test: &str,
    syms: &SymbolTable,
    view: &KernelView<M>,
) -> KernelLayout {
    layout_from_btf(test, &btf_from_guest(test, syms, view))
}

/// The kernel's BTF as it lies in guest memory, between `__start_BTF` and `__stop_BTF`
/// of the guest's kallsyms.
pub(super) fn btf_from_guest<M: PhysRead>(
    test: &str,
    syms: &SymbolTable,
    view: &KernelView<M>,
) -> Vec<u8> {
    let sym = |name: &str| {
        syms.lookup(name)
            .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
    };
    let (start, stop) = (sym("__start_BTF"), sym("__stop_BTF"));
    assert!(
        start < stop,
        "{test}: __start_BTF={start:#x} __stop_BTF={stop:#x}"
    );
    let mut raw = vec![0u8; usize::try_from(stop - start).unwrap()];
    view.read_kernel(Kva(start), &mut raw)
        .unwrap_or_else(|e| panic!("{test}: read the BTF at {start:#x}: {e}"));
    assert_eq!(raw[..4], [0x9f, 0xeb, 1, 0], "{test}: BTF magic");
    raw
}

/// The kernel's layout, resolved from its BTF `raw`.
pub(super) fn layout_from_btf(test: &str, raw: &[u8]) -> KernelLayout {
    let started = Instant::now();
    let resolved = btf::layout_from_bytes(raw).unwrap_or_else(|e| panic!("{test}: {e}"));
    eprintln!(
        "{test}: {} bytes of BTF resolved in {:.2} s: {:?}; warnings: {:?}",
        raw.len(),
        started.elapsed().as_secs_f64(),
        resolved.layout,
        resolved.warnings
    );
    resolved.layout
}

fn check_info(test: &str, want: &GuestMap, got: &MapInfo) {
    let got_tuple = (
        got.id,
        got.map_type.0,
        got.name.as_str().unwrap_or("?"),
        got.key_size,
        got.value_size,
        got.max_entries,
        got.map_flags.bits(),
    );
    let want_tuple = (
        want.id,
        want.map_type,
        want.name.as_str(),
        want.key_size,
        want.value_size,
        want.max_entries,
        want.flags,
    );
    assert_eq!(got_tuple, want_tuple, "{test}: map {} metadata", want.name);
}

fn check_values<M: PhysRead>(
    test: &str,
    bpf: &Bpf<'_, KernelView<M>>,
    got: &MapInfo,
    want: &GuestMap,
    key0: Key0,
) {
    let array = bpf
        .array(got)
        .unwrap_or_else(|e| panic!("{test}: {} as an ARRAY: {e}", want.name));
    assert_eq!(
        want.values.len(),
        want.max_entries as usize,
        "{test}: {}: the guest reported {} values",
        want.name,
        want.values.len()
    );
    if want.flags & BPF_F_MMAPABLE != 0 {
        // BPF_F_MMAPABLE: vmalloc'd, page-aligned values.
        assert_eq!(
            array.value_kva(0).unwrap().0 & 0xfff,
            0,
            "{test}: {}",
            want.name
        );
    }
    for (&key, bytes) in &want.values {
        let read = || {
            array
                .value(bpf.mem(), key)
                .unwrap_or_else(|e| panic!("{test}: {} key {key}: {e}", want.name))
        };
        let mut value = read();
        let written = key0 == Key0::OriginalOrWritten && key == 0 && want.name == "mw_array";
        let ok = |v: &Vec<u8>| *v == *bytes || (written && *v == written_value(bytes));
        // A read of a running guest's RAM racing the write test's `pwrite` may see
        // half of each value: read again.
        for _ in 0..(if written { 5 } else { 0 }) {
            if ok(&value) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            value = read();
        }
        assert!(
            ok(&value),
            "{test}: {} key {key}: read {} want {}",
            want.name,
            hex(&value[..value.len().min(64)]),
            hex(&bytes[..bytes.len().min(64)])
        );
    }
}
