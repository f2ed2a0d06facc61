//! Synthetic guests: `mapwalk_core::synth` lays out page tables, `map_idr` and maps; the
//! tests add what a real kernel also has (a banner, BTF bounds, VMCOREINFO) and write
//! the symbol files and vmlinux ELFs a user would give.

use super::*;
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::{Pa, Ram};
use std::sync::atomic::{AtomicU32, Ordering};

const TEXT: u64 = X86_START_KERNEL_MAP + 0x0100_0000;
const BANNER: u64 = TEXT + 0x1f_0000;
const L5_VAR: u64 = TEXT + 0x1f_1000;
const BTF_AT: u64 = TEXT + 0x1e_0000;
const RELEASE: &str = "6.1.0-99-synth-amd64";
const BANNER_TEXT: &str =
    "Linux version 6.1.0-99-synth-amd64 (synth@example) (gcc 12) #1 SMP Debian\n";
/// Where the VMCOREINFO text goes: free RAM below the synthetic kernel image.
const VMCOREINFO_PA: u64 = 0x10_0000;

/// The smallest raw BTF: a header, no types, an empty string section.
fn tiny_btf() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xeb9fu16.to_le_bytes());
    b.extend_from_slice(&[1, 0]);
    for v in [24u32, 0, 0, 0, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(0);
    b
}

struct Guest {
    g: SyntheticGuest,
    five_level: bool,
}

impl Guest {
    fn new(five_level: bool) -> Self {
        let mut b = GuestBuilder::x86_64(five_level);
        b.add_map(MapSpec::array(3, "counters", 8, 4).with_values(|k| vec![k as u8; 8]));
        b.add_map(MapSpec::hash(9, "flows", 4, 8, 16).entry(&[1, 2, 3, 4], &[7; 8]));
        let mut g = b.build();
        let pa = g.pa_of(Kva(BANNER));
        g.ram.write(pa, BANNER_TEXT.as_bytes());
        g.ram.write(Pa(pa.0 + BANNER_TEXT.len() as u64), &[0]);
        let pa = g.pa_of(Kva(L5_VAR));
        g.ram.write_u32(pa, u32::from(five_level));
        let pa = g.pa_of(Kva(BTF_AT));
        g.ram.write(pa, &tiny_btf());
        Self { g, five_level }
    }

    fn cr3(&self) -> u64 {
        match self.g.paging {
            Paging::X86_64(p) => p.root().0,
            Paging::Aarch64(_) => unreachable!(),
        }
    }

    fn cr4(&self) -> u64 {
        if self.five_level {
            CR4_LA57 | 0x20
        } else {
            0x20
        }
    }

    /// The kernel-image address of the page-table root.
    fn root_kva(&self) -> u64 {
        self.cr3() + X86_START_KERNEL_MAP - self.g.phys_base
    }

    /// Runtime symbols, as `/proc/kallsyms` would list them.
    fn symbols(&self) -> Vec<(&'static str, u64)> {
        let s = self.g.symbols;
        vec![
            ("_text", TEXT),
            ("map_idr", s.map_idr.0),
            ("phys_base", s.phys_base.0),
            ("page_offset_base", s.page_offset_base.0),
            ("__per_cpu_offset", s.per_cpu_offset.0),
            ("nr_cpu_ids", s.nr_cpu_ids.0),
            ("linux_banner", BANNER),
            ("__pgtable_l5_enabled", L5_VAR),
            ("__start_BTF", BTF_AT),
            ("__stop_BTF", BTF_AT + tiny_btf().len() as u64),
            ("init_top_pgt", self.root_kva()),
            ("prog_idr", self.g.prog_idr.0),
        ]
    }

    fn vmcoreinfo(&self, release: &str, kernel_offset: u64) -> String {
        format!(
            "OSRELEASE={release}\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={:x}\n\
             SYMBOL(init_top_pgt)={:x}\nNUMBER(pgtable_l5_enabled)={}\n\
             NUMBER(phys_base)={}\nKERNELOFFSET={kernel_offset:x}\n",
            TEXT + 0x1f_2000,
            self.root_kva(),
            u32::from(self.five_level),
            self.g.phys_base,
        )
    }

    fn write_vmcoreinfo(&mut self, text: &str) {
        self.g.ram.write(Pa(VMCOREINFO_PA), text.as_bytes());
    }

    fn mem(&self) -> Ram<&[u8]> {
        self.g.ram.as_ram()
    }

    fn hints(&self) -> MemoryHints {
        MemoryHints {
            vmcoreinfo: None,
            cr3: Some(self.cr3() | 0x5),
            cr4: Some(self.cr4()),
        }
    }
}

/// A fresh temporary directory, removed by the test that made it (left behind on
/// failure, for a look).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mapwalk-describe-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn kallsyms(syms: &[(&str, u64)], shift: u64) -> String {
    syms.iter()
        .map(|(n, a)| format!("{:016x} D {n}\n", a.wrapping_add(shift)))
        .collect()
}

fn spec(dir: &TempDir, symbols: &str) -> KernelSpec {
    KernelSpec {
        symbols: SymbolSource::SymbolFile(dir.file("kallsyms", symbols.as_bytes())),
        btf: Some(BtfSource::GuestMemory),
        cr3: None,
        ttbr1: None,
        layout_override: Some(mapwalk_core::synth::default_layout()),
    }
}

fn check_maps<M: PhysRead>(k: &Kernel<M>, g: &Guest) {
    let list = k.bpf().collect_maps().unwrap();
    assert!(list.errors.is_empty(), "{:?}", list.errors);
    let ids: Vec<u32> = list.maps.iter().map(|m| m.id).collect();
    assert_eq!(ids, [3, 9]);
    let counters = k.bpf().find_by_name("counters").unwrap().unwrap();
    assert_eq!(
        k.bpf().array(&counters).unwrap().value(&k.view, 2).unwrap(),
        vec![2u8; 8]
    );
    assert_eq!(k.phys_base, g.g.phys_base);
    assert_eq!(
        k.page_offset_base,
        g.g.addrs.direct_map.unwrap().virt.0,
        "page_offset_base"
    );
    assert_eq!(*k.view.addrs(), g.g.addrs, "linear regions");
    let Paging::X86_64(p) = k.view.paging() else {
        panic!()
    };
    assert_eq!(p.five_level(), g.five_level);
    assert_eq!(p.root().0, g.cr3());
    assert_eq!(k.release.as_deref(), Some(RELEASE));
    assert_eq!(k.per_cpu_offset, Some(g.g.symbols.per_cpu_offset));
    assert_eq!(k.nr_cpu_ids, Some(g.g.symbols.nr_cpu_ids));
    assert_eq!(k.map_idr, g.g.map_idr);
    assert_eq!(
        k.possible_cpus().unwrap().resolve(&k.view).unwrap(),
        g.g.possible_cpus
    );
}

#[test]
fn a_ttbr1_for_an_x86_64_kernel_is_refused() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let spec = KernelSpec {
        ttbr1: Some(0x4000_1000),
        ..spec(&dir, &kallsyms(&g.symbols(), 0))
    };
    let err = describe(g.mem(), &spec, &g.hints()).unwrap_err();
    assert!(
        matches!(err, DescribeError::RootOfOtherArch { arch: "x86_64", .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "TTBR1_EL1 0x40001000 (--ttbr1) is no page-table root of this kernel, which is \
         x86_64: its root is CR3 (--cr3)"
    );
}

#[test]
fn kallsyms_and_cpu_state() {
    for l5 in [false, true] {
        let g = Guest::new(l5);
        let dir = TempDir::new();
        let k = describe(g.mem(), &spec(&dir, &kallsyms(&g.symbols(), 0)), &g.hints()).unwrap();
        check_maps(&k, &g);
        assert_eq!(k.slide, 0);
        assert!(k.vmcoreinfo.is_none());
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    }
}

/// The guest's symbols without `names`.
fn symbols_without(g: &Guest, names: &[&str]) -> Vec<(&'static str, u64)> {
    g.symbols()
        .into_iter()
        .filter(|(n, _)| !names.contains(n))
        .collect()
}

#[test]
fn no_cr3_places_the_kernel_by_the_symbols() {
    for l5 in [false, true] {
        // A VMCOREINFO in memory is not even looked for.
        let mut g = Guest::new(l5);
        g.write_vmcoreinfo(&g.vmcoreinfo("6.12.9-not-searched", 0x2a0_0000));
        let dir = TempDir::new();
        let mut searches = 0;
        let k = describe_with(
            g.mem(),
            &spec(&dir, &kallsyms(&g.symbols(), 0)),
            &MemoryHints::default(),
            |_| searches += 1,
        )
        .unwrap();
        check_maps(&k, &g);
        assert_eq!(searches, 1, "the candidates only, no VMCOREINFO");
        assert_ne!(k.phys_base, 0, "the synthetic guest has physical KASLR");
        assert_eq!(k.slide, 0);
        assert!(k.vmcoreinfo.is_none());
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    }
}

#[test]
fn phys_base_zero_is_tried_first() {
    const OFF: u64 = 0x100_0000;
    let mut bytes = vec![0u8; 32 << 20];
    // No physical KASLR: `phys_base` (0) at its link-time place, the banner beside it.
    bytes[OFF as usize + 0x1000..][..BANNER_TEXT.len()].copy_from_slice(BANNER_TEXT.as_bytes());
    let syms = [
        ("phys_base", X86_START_KERNEL_MAP + OFF + 0x100),
        ("linux_banner", X86_START_KERNEL_MAP + OFF + 0x1000),
        ("init_top_pgt", X86_START_KERNEL_MAP + OFF + 0x2000),
    ];
    let dir = TempDir::new();
    let loaded = load_file_symbols(&SymbolSource::SymbolFile(
        dir.file("kallsyms", kallsyms(&syms, 0).as_bytes()),
    ))
    .unwrap();
    let mut symbols = loaded.symbols.clone();
    symbols.prefetch(DESCRIBE_SYMBOLS).unwrap();
    let ram = Ram::new(Pa(0), &bytes[..]);
    assert_eq!(phys_base_by_symbols(&ram, &symbols, &loaded), Some(0));

    // A zero `phys_base` without the banner beside it is passed over: the image is
    // 4 MiB higher, where the variable says so.
    bytes[OFF as usize + 0x1000..][..BANNER_TEXT.len()].fill(0);
    let at = OFF as usize + 0x40_0000;
    bytes[at + 0x100..][..8].copy_from_slice(&0x40_0000u64.to_le_bytes());
    bytes[at + 0x1000..][..BANNER_TEXT.len()].copy_from_slice(BANNER_TEXT.as_bytes());
    let ram = Ram::new(Pa(0), &bytes[..]);
    assert_eq!(
        phys_base_by_symbols(&ram, &symbols, &loaded),
        Some(0x40_0000)
    );

    // A negative `phys_base` (the image loaded below its link-time address).
    let mut low = vec![0u8; 32 << 20];
    let at = OFF as usize - 0x20_0000;
    let minus = 0x20_0000u64.wrapping_neg();
    low[at + 0x100..][..8].copy_from_slice(&minus.to_le_bytes());
    low[at + 0x1000..][..BANNER_TEXT.len()].copy_from_slice(BANNER_TEXT.as_bytes());
    let ram = Ram::new(Pa(0), &low[..]);
    assert_eq!(phys_base_by_symbols(&ram, &symbols, &loaded), Some(minus));
}

/// Memory that claims `len` bytes, every one zero.
struct Zeros([PhysRange; 1]);

impl PhysRead for Zeros {
    type Error = mapwalk_core::PhysErrorKind;
    fn read_phys(&self, _: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        buf.fill(0);
        Ok(())
    }
    fn ranges(&self) -> &[PhysRange] {
        &self.0
    }
}

#[test]
fn hostile_memory_does_not_place_the_kernel() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let syms = g.symbols();
    let loaded = load_file_symbols(&SymbolSource::SymbolFile(
        dir.file("k", kallsyms(&syms, 0).as_bytes()),
    ))
    .unwrap();
    let mut symbols = loaded.symbols.clone();
    symbols.prefetch(DESCRIBE_SYMBOLS).unwrap();
    // A terabyte of zeros: `phys_base` reads 0 at candidate 0, with no banner; the
    // rest stop at the cap.
    let huge = Zeros([PhysRange {
        start: Pa(0),
        len: 1 << 40,
    }]);
    assert_eq!(phys_base_by_symbols(&huge, &symbols, &loaded), None);
    // Ranges at the top of the address space: no overflow.
    let top = Zeros([PhysRange {
        start: Pa(u64::MAX - (8 << 20)),
        len: 8 << 20,
    }]);
    assert_eq!(phys_base_by_symbols(&top, &symbols, &loaded), None);
    assert!(phys_base_candidates(top.ranges(), u64::MAX - 3).count() <= 4);

    // A variable holding nonsense: no candidate passes, no VMCOREINFO either.
    for value in [u64::MAX, 1, 0x200_0000, 0x20_0001] {
        let mut g = Guest::new(false);
        let pa = g.g.pa_of(g.g.symbols.phys_base);
        g.g.ram.write_u64(pa, value);
        let err = describe(
            g.mem(),
            &spec(&dir, &kallsyms(&g.symbols(), 0)),
            &MemoryHints::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DescribeError::NoPagingRoot),
            "{value:#x}: {err}"
        );
    }
}

#[test]
fn symbols_that_cannot_place_fall_back_to_vmcoreinfo() {
    // Another boot's symbols fail the self-check; the VMCOREINFO search then tells.
    let mut g = Guest::new(false);
    g.write_vmcoreinfo(&g.vmcoreinfo(RELEASE, 0x200_0000));
    let dir = TempDir::new();
    let other = kallsyms(&g.symbols(), 0x60_0000);
    let mut searches = 0;
    let err = describe_with(
        g.mem(),
        &spec(&dir, &other),
        &MemoryHints::default(),
        |_| searches += 1,
    )
    .unwrap_err();
    assert_eq!(searches, 2, "the candidates, then VMCOREINFO");
    assert!(
        matches!(&err, DescribeError::Mismatch { what, .. } if what.starts_with("address of ")),
        "{err}"
    );
}

#[test]
fn no_cr3_uses_the_vmcoreinfo_found_in_memory() {
    for l5 in [false, true] {
        let mut g = Guest::new(l5);
        g.write_vmcoreinfo(&g.vmcoreinfo(RELEASE, 0x2a0_0000));
        let dir = TempDir::new();
        // A runtime kallsyms with a KASLR kernel, without `phys_base` to place the
        // kernel by: slide 0 agrees with VMCOREINFO.
        let syms = symbols_without(&g, &["phys_base"]);
        let k = describe(
            g.mem(),
            &spec(&dir, &kallsyms(&syms, 0)),
            &MemoryHints::default(),
        )
        .unwrap();
        check_maps(&k, &g);
        assert_eq!(k.slide, 0);
        assert_eq!(
            k.vmcoreinfo.as_ref().and_then(|v| v.osrelease()),
            Some(RELEASE)
        );
    }
}

#[test]
fn five_level_from_the_variable_without_cr4() {
    for l5 in [false, true] {
        let g = Guest::new(l5);
        let dir = TempDir::new();
        let mut s = spec(&dir, &kallsyms(&g.symbols(), 0));
        s.cr3 = Some(g.cr3());
        let k = describe(g.mem(), &s, &MemoryHints::default()).unwrap();
        check_maps(&k, &g);
    }
}

#[test]
fn link_time_system_map_takes_kerneloffset() {
    const SLIDE: u64 = 0xc0_0000;
    let mut g = Guest::new(true);
    g.write_vmcoreinfo(&g.vmcoreinfo(RELEASE, SLIDE));
    let dir = TempDir::new();
    let map = kallsyms(&g.symbols(), SLIDE.wrapping_neg());
    let k = describe(g.mem(), &spec(&dir, &map), &MemoryHints::default()).unwrap();
    check_maps(&k, &g);
    assert_eq!(k.slide, SLIDE);
    assert_eq!(k.symbols.file_addr("map_idr"), Some(g.g.map_idr.0 - SLIDE));
}

#[test]
fn symbols_of_another_boot_are_a_mismatch() {
    let mut g = Guest::new(false);
    g.write_vmcoreinfo(&g.vmcoreinfo(RELEASE, 0x200_0000));
    let dir = TempDir::new();
    let other = kallsyms(&g.symbols(), 0x60_0000);
    let err = describe(g.mem(), &spec(&dir, &other), &MemoryHints::default()).unwrap_err();
    let DescribeError::Mismatch {
        what,
        files,
        memory,
    } = &err
    else {
        panic!("{err}")
    };
    assert!(what.starts_with("address of "), "{err}");
    assert!(
        files.contains("kallsyms") && memory.contains("VMCOREINFO"),
        "{err}"
    );

    // Without VMCOREINFO: the walk to phys_base or the banner gives it away.
    let g = Guest::new(false);
    for shift in [0x40, 0x60_0000, 0x2000_0000] {
        let other = kallsyms(&g.symbols(), shift);
        let err = describe(g.mem(), &spec(&dir, &other), &g.hints()).unwrap_err();
        assert!(
            matches!(
                err,
                DescribeError::Mismatch { .. } | DescribeError::Kernel { .. }
            ),
            "{shift:#x}: {err}"
        );
        assert!(err.to_string().contains("symbols"), "{err}");
    }
}

#[test]
fn a_banner_that_is_not_one_is_a_mismatch() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let mut syms = g.symbols();
    syms.iter_mut()
        .find(|(n, _)| *n == "linux_banner")
        .unwrap()
        .1 += 0x4000;
    let err = describe(g.mem(), &spec(&dir, &kallsyms(&syms, 0)), &g.hints()).unwrap_err();
    assert!(
        matches!(&err, DescribeError::Mismatch { what, .. } if what == "linux_banner"),
        "{err}"
    );
}

#[test]
fn release_must_match_vmcoreinfo() {
    let mut g = Guest::new(false);
    g.write_vmcoreinfo(&g.vmcoreinfo("6.12.9-amd64", 0));
    let dir = TempDir::new();
    let err = describe(
        g.mem(),
        &spec(&dir, &kallsyms(&symbols_without(&g, &["phys_base"]), 0)),
        &MemoryHints::default(),
    )
    .unwrap_err();
    let DescribeError::Mismatch {
        what,
        files,
        memory,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(what, "kernel release");
    assert!(
        files.contains(RELEASE) && memory.contains("6.12.9-amd64"),
        "{err}"
    );
}

#[test]
fn vmcoreinfo_hint_phys_base_is_checked() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let text = g.vmcoreinfo(RELEASE, 0).replace(
        &format!("NUMBER(phys_base)={}", g.g.phys_base),
        "NUMBER(phys_base)=4194304",
    );
    let hints = MemoryHints {
        vmcoreinfo: Some(Vmcoreinfo::parse(text.as_bytes())),
        ..MemoryHints::default()
    };
    let err = describe(g.mem(), &spec(&dir, &kallsyms(&g.symbols(), 0)), &hints).unwrap_err();
    assert!(
        matches!(&err, DescribeError::Mismatch { what, .. } if what == "phys_base"),
        "{err}"
    );
    // The right one works, with no search of memory.
    let hints = MemoryHints {
        vmcoreinfo: Some(Vmcoreinfo::parse(g.vmcoreinfo(RELEASE, 0).as_bytes())),
        ..MemoryHints::default()
    };
    let k = describe(g.mem(), &spec(&dir, &kallsyms(&g.symbols(), 0)), &hints).unwrap();
    check_maps(&k, &g);
}

#[test]
fn required_and_optional_symbols() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let without = |names: &[&str]| {
        let syms: Vec<_> = g
            .symbols()
            .into_iter()
            .filter(|(n, _)| !names.contains(n))
            .collect();
        kallsyms(&syms, 0)
    };
    let err = describe(g.mem(), &spec(&dir, &without(&["map_idr"])), &g.hints()).unwrap_err();
    assert!(
        matches!(err, DescribeError::MissingSymbol("map_idr")),
        "{err}"
    );
    assert!(err.to_string().contains("map_idr"));

    let k = describe(
        g.mem(),
        &spec(&dir, &without(&["__per_cpu_offset", "nr_cpu_ids"])),
        &g.hints(),
    )
    .unwrap();
    assert_eq!((k.per_cpu_offset, k.nr_cpu_ids), (None, None));
    assert_eq!(k.warnings.len(), 2, "{:?}", k.warnings);
    assert!(k.warnings[0].contains("__per_cpu_offset"));

    let err = describe(g.mem(), &spec(&dir, &without(&["__start_BTF"])), &g.hints()).unwrap_err();
    assert!(
        matches!(err, DescribeError::MissingSymbol("__start_BTF")),
        "{err}"
    );
}

#[test]
fn no_cr3_and_no_vmcoreinfo() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    // Without `init_top_pgt` the symbols do not give a page-table root.
    let err = describe(
        g.mem(),
        &spec(&dir, &kallsyms(&symbols_without(&g, &["init_top_pgt"]), 0)),
        &MemoryHints::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DescribeError::NoPagingRoot), "{err}");
}

#[test]
fn bad_symbol_files() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let hidden = kallsyms(&g.symbols(), 0)
        .lines()
        .map(|l| format!("0000000000000000{}\n", &l[16..]))
        .collect::<String>();
    let err = describe(g.mem(), &spec(&dir, &hidden), &g.hints()).unwrap_err();
    assert!(matches!(err, DescribeError::BadFile { .. }), "{err}");
    let err = describe(g.mem(), &spec(&dir, "not a symbol table\n"), &g.hints()).unwrap_err();
    assert!(matches!(err, DescribeError::BadFile { .. }), "{err}");
    let mut s = spec(&dir, "");
    s.symbols = SymbolSource::Vmlinux(dir.file("vmlinux", b"\x7fELF garbage"));
    let err = describe(g.mem(), &s, &g.hints()).unwrap_err();
    assert!(matches!(err, DescribeError::BadFile { .. }), "{err}");
    s.symbols = SymbolSource::SymbolFile(dir.0.join("missing"));
    let err = describe(g.mem(), &s, &g.hints()).unwrap_err();
    assert!(matches!(err, DescribeError::Io { .. }), "{err}");
}

#[path = "vmlinux_tests.rs"]
mod vmlinux;

#[test]
fn a_cr3_that_does_not_map_the_kernel_is_refused() {
    let g = Guest::new(false);
    let dir = TempDir::new();
    let mut s = spec(&dir, &kallsyms(&g.symbols(), 0));
    // A page of zeros as the root: nothing is mapped.
    s.cr3 = Some(0x1000);
    match describe(g.mem(), &s, &g.hints()) {
        Err(e @ DescribeError::PageTables { given: true, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("0x1000 (given) do not map the kernel"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Past placement, the check of the image through the page tables: the guest's own
    // root maps linux_banner where the image is; an empty root does not.
    let k = describe(g.mem(), &spec(&dir, &kallsyms(&g.symbols(), 0)), &g.hints()).unwrap();
    let banner = k.symbols.lookup("linux_banner").unwrap();
    checks::check_page_tables(&k.view, banner, false).unwrap();
    let empty = KernelView::new(
        g.mem(),
        Paging::X86_64(X86Paging::new(0x1000, false)),
        *k.view.addrs(),
    );
    let err = checks::check_page_tables(&empty, banner, false).unwrap_err();
    assert!(
        err.to_string().contains("linux_banner") && err.to_string().contains("not mapped"),
        "{err}"
    );
}

#[test]
fn a_layout_no_map_fits_is_refused() {
    let g = Guest::new(false);
    let mut layout = mapwalk_core::synth::default_layout();
    layout.bpf_map.id += 4;
    let k = describe(
        g.mem(),
        &spec(&TempDir::new(), &kallsyms(&g.symbols(), 0)),
        &g.hints(),
    )
    .unwrap();
    let err = checks::check_maps_fit(&k.view, &layout, k.map_idr, "test BTF").unwrap_err();
    assert!(err.to_string().contains("laid out by test BTF"), "{err}");
    // The right layout fits.
    checks::check_maps_fit(&k.view, &k.layout, k.map_idr, "test BTF").unwrap();
}

#[test]
fn hints_from_an_elf_core_default_to_nothing() {
    let h = MemoryHints::default();
    assert!(h.vmcoreinfo.is_none() && h.cr3.is_none() && h.cr4.is_none());
}

/// Where the synthetic kernel's own symbol table goes.
const KSYMTAB: u64 = TEXT + 0x10_0000;

/// Writes the guest's symbols (moved by `shift`) as the kernel's own table, encoded as
/// `enc`; returns the VMCOREINFO text that names it.
fn write_ksymtab(g: &mut Guest, enc: ksymtab::BuildEncoding, shift: u64) -> String {
    write_ksymtab_of(g, enc, shift, |_| true)
}

/// [`write_ksymtab`] with only the symbols `keep` keeps.
fn write_ksymtab_of(
    g: &mut Guest,
    enc: ksymtab::BuildEncoding,
    shift: u64,
    keep: impl Fn(&str) -> bool,
) -> String {
    let mut b = ksymtab::KsymtabBuilder::new();
    b.token(0x80, "map_").token(0x81, "_base");
    if enc == ksymtab::BuildEncoding::AbsolutePercpu {
        b.push('A', "fixed_percpu_data", 0);
    }
    let mut syms = g.symbols();
    syms.retain(|&(name, _)| keep(name));
    syms.sort_by_key(|&(_, a)| a);
    for (name, addr) in syms {
        b.push(if name == "_text" { 'T' } else { 'D' }, name, addr + shift);
    }
    let (bytes, loc) = b.build(KSYMTAB, enc).unwrap();
    let pa = g.g.pa_of(Kva(KSYMTAB));
    g.g.ram.write(pa, &bytes);
    let mut text = g.vmcoreinfo(RELEASE, 0x2a0_0000);
    for (name, at) in [
        ("kallsyms_names", Some(loc.names)),
        ("kallsyms_num_syms", Some(loc.num_syms)),
        ("kallsyms_token_table", Some(loc.token_table)),
        ("kallsyms_token_index", Some(loc.token_index)),
        ("kallsyms_offsets", Some(loc.offsets)),
        ("kallsyms_relative_base", loc.relative_base),
    ] {
        if let Some(at) = at {
            text.push_str(&format!("SYMBOL({name})={:x}\n", at.0));
        }
    }
    text
}

fn memory_spec() -> KernelSpec {
    KernelSpec {
        symbols: SymbolSource::GuestMemory,
        btf: Some(BtfSource::GuestMemory),
        cr3: None,
        ttbr1: None,
        layout_override: Some(mapwalk_core::synth::default_layout()),
    }
}

#[test]
fn symbols_from_the_kernels_own_table() {
    use ksymtab::BuildEncoding as E;
    for (l5, enc) in [
        (false, E::AbsolutePercpu),
        (true, E::AbsolutePercpu),
        (true, E::Relative),
        (false, E::PlaceRelative),
    ] {
        let mut g = Guest::new(l5);
        let text = write_ksymtab(&mut g, enc, 0);
        g.write_vmcoreinfo(&text);
        let mut searches = 0;
        let k = describe_with(g.mem(), &memory_spec(), &MemoryHints::default(), |_| {
            searches += 1
        })
        .unwrap_or_else(|e| panic!("{l5} {enc:?}: {e}"));
        check_maps(&k, &g);
        assert_eq!(searches, 1, "one search, for VMCOREINFO");
        assert_eq!((k.slide, k.phys_base), (0, g.g.phys_base));
        assert_eq!(k.release.as_deref(), Some(RELEASE));
        assert_eq!(k.symbols.lookup("map_idr"), Some(g.g.map_idr));
        assert_eq!(k.symbols.ksymtab().map(|t| t.len()), Some(k.symbols.len()));
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);

        // The same description as from a copy of /proc/kallsyms.
        let dir = TempDir::new();
        let by_file =
            describe(g.mem(), &spec(&dir, &kallsyms(&g.symbols(), 0)), &g.hints()).unwrap();
        assert_eq!(
            (by_file.phys_base, by_file.page_offset_base, by_file.map_idr),
            (k.phys_base, k.page_offset_base, k.map_idr)
        );
        assert_eq!(k.view.paging(), by_file.view.paging());
        let _ = std::fs::remove_dir_all(&dir.0);

        // An ELF core's note: no search at all.
        let hints = MemoryHints {
            vmcoreinfo: Some(Vmcoreinfo::parse(text.as_bytes())),
            ..g.hints()
        };
        g.write_vmcoreinfo(&"\0".repeat(text.len()));
        let k = describe_with(g.mem(), &memory_spec(), &hints, |_| panic!("searched")).unwrap();
        check_maps(&k, &g);
    }
}

#[test]
fn no_symbols_in_memory_names_the_options() {
    let mut g = Guest::new(false);
    // No VMCOREINFO at all; an empty note; one of a kernel before 6.0.
    let err = describe(g.mem(), &memory_spec(), &MemoryHints::default()).unwrap_err();
    assert!(
        matches!(&err, DescribeError::NoGuestSymbols { why } if why.contains("no VMCOREINFO")),
        "{err}"
    );
    let empty = MemoryHints {
        vmcoreinfo: Some(Vmcoreinfo::default()),
        ..MemoryHints::default()
    };
    let err = describe(g.mem(), &memory_spec(), &empty).unwrap_err();
    assert!(matches!(err, DescribeError::NoGuestSymbols { .. }), "{err}");
    g.write_vmcoreinfo(&g.vmcoreinfo("5.15.0-99-synth", 0));
    let err = describe(g.mem(), &memory_spec(), &MemoryHints::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("5.15.0-99-synth")
            && msg.contains("SYMBOL(kallsyms_names)")
            && msg.contains("--symbols")
            && msg.contains("--vmlinux"),
        "{msg}"
    );
}

#[test]
fn a_corrupt_or_foreign_table_is_an_error() {
    let mut g = Guest::new(true);
    let text = write_ksymtab(&mut g, ksymtab::BuildEncoding::AbsolutePercpu, 0);
    g.write_vmcoreinfo(&text);
    // kallsyms_num_syms past the cap.
    let pa = g.g.pa_of(Kva(KSYMTAB));
    let good = g.g.ram.bytes()[pa.0 as usize..][..4].to_vec();
    g.g.ram.write_u32(pa, u32::MAX);
    let err = describe(g.mem(), &memory_spec(), &MemoryHints::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            DescribeError::SymbolTable(ksymtab::KsymtabError::Cap {
                what: "kallsyms_num_syms",
                ..
            })
        ),
        "{err}"
    );
    g.g.ram.write(pa, &good);
    // A table whose addresses do not agree with the VMCOREINFO's SYMBOL(init_top_pgt).
    let text = write_ksymtab(&mut g, ksymtab::BuildEncoding::AbsolutePercpu, 0x1000);
    g.write_vmcoreinfo(&text);
    let err = describe(g.mem(), &memory_spec(), &MemoryHints::default()).unwrap_err();
    assert!(matches!(&err, DescribeError::Mismatch { .. }), "{err}");
}

#[test]
fn a_kernel_whose_structures_do_not_resolve_is_refused_by_name_and_version() {
    // The guest's BTF (in memory) has no types at all: nothing resolves.
    let g = Guest::new(false);
    let dir = TempDir::new();
    let mut s = spec(&dir, &kallsyms(&g.symbols(), 0));
    s.layout_override = None;
    let err = describe(g.mem(), &s, &g.hints()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("kernel {RELEASE} is not one mapwalk can read")),
        "{msg}"
    );
    assert!(msg.contains("refused rather than misread"), "{msg}");
    // The first structure it looked for.
    assert!(msg.ends_with("BTF: no struct xarray"), "{msg}");
}

#[test]
fn a_table_without_data_symbols_names_vmlinux() {
    // A kernel built without CONFIG_KALLSYMS_ALL lists functions only: no map_idr.
    let mut g = Guest::new(false);
    let text = write_ksymtab_of(&mut g, ksymtab::BuildEncoding::Relative, 0, |n| {
        n != "map_idr"
    });
    g.write_vmcoreinfo(&text);
    let err = describe(g.mem(), &memory_spec(), &MemoryHints::default()).unwrap_err();
    assert!(
        matches!(&err, DescribeError::NoGuestSymbols { why } if why.contains("CONFIG_KALLSYMS_ALL")),
        "{err}"
    );
    assert!(err.to_string().contains("--vmlinux FILE"), "{err}");
}
