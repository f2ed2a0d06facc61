//! The description from a vmlinux (ELF symbols, `.rodata`'s banner, `.BTF`) and the
//! layout from the host's BTF: the tests of `super`, over a minimal ELF of their own.

use super::*;

/// A section of [`vmlinux`]: type, address, data, link, info, entry size.
type Section<'a> = (u32, u64, &'a [u8], u32, u32, u64);

/// A minimal ELF64 vmlinux: `.rodata` holding `banner` at its link address, `.BTF`,
/// and a `.symtab` of global objects.
fn vmlinux(syms: &[(&str, u64)], banner_at: u64, banner: &str, btf: &[u8]) -> Vec<u8> {
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (name, addr) in syms {
        let name_off = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        symtab.extend_from_slice(&name_off.to_le_bytes());
        symtab.push((1 << 4) | 1); // GLOBAL OBJECT
        symtab.push(0);
        symtab.extend_from_slice(&1u16.to_le_bytes()); // .rodata
        symtab.extend_from_slice(&addr.to_le_bytes());
        symtab.extend_from_slice(&8u64.to_le_bytes());
    }
    let mut rodata = banner.as_bytes().to_vec();
    rodata.push(0);
    let names = ["", ".rodata", ".BTF", ".symtab", ".strtab", ".shstrtab"];
    let mut shstrtab = Vec::new();
    let mut name_offs = Vec::new();
    for n in names {
        name_offs.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(n.as_bytes());
        shstrtab.push(0);
    }
    let sections: [Section<'_>; 5] = [
        (1, banner_at, &rodata, 0, 0, 0),
        (1, 0, btf, 0, 0, 0),
        (2, 0, &symtab, 4, 1, 24),
        (3, 0, &strtab, 0, 0, 0),
        (3, 0, &shstrtab, 0, 0, 0),
    ];
    let mut out = vec![0u8; 64];
    let mut headers = vec![0u8; 64]; // the null section
    for (i, (ty, addr, data, link, info, entsize)) in sections.iter().enumerate() {
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let off = out.len() as u64;
        out.extend_from_slice(data);
        let mut h = Vec::new();
        h.extend_from_slice(&name_offs[i + 1].to_le_bytes());
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&(if *addr != 0 { 2u64 } else { 0 }).to_le_bytes());
        h.extend_from_slice(&addr.to_le_bytes());
        h.extend_from_slice(&off.to_le_bytes());
        h.extend_from_slice(&(data.len() as u64).to_le_bytes());
        h.extend_from_slice(&link.to_le_bytes());
        h.extend_from_slice(&info.to_le_bytes());
        h.extend_from_slice(&8u64.to_le_bytes());
        h.extend_from_slice(&entsize.to_le_bytes());
        headers.extend_from_slice(&h);
    }
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&headers);
    let mut eh = Vec::new();
    eh.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    eh.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    eh.extend_from_slice(&62u16.to_le_bytes()); // x86_64
    eh.extend_from_slice(&1u32.to_le_bytes());
    eh.extend_from_slice(&0u64.to_le_bytes()); // entry
    eh.extend_from_slice(&0u64.to_le_bytes()); // phoff
    eh.extend_from_slice(&shoff.to_le_bytes());
    eh.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 0, 64, 6, 5] {
        eh.extend_from_slice(&v.to_le_bytes());
    }
    out[..64].copy_from_slice(&eh);
    out
}

#[test]
fn vmlinux_with_btf_and_kerneloffset() {
    const SLIDE: u64 = 0xe0_0000;
    let mut g = Guest::new(true);
    g.write_vmcoreinfo(&g.vmcoreinfo(RELEASE, SLIDE));
    let dir = TempDir::new();
    let link: Vec<(&str, u64)> = g
        .symbols()
        .into_iter()
        .map(|(n, a)| (n, a - SLIDE))
        .collect();
    let elf = vmlinux(&link, BANNER - SLIDE, BANNER_TEXT, &tiny_btf());
    let spec = KernelSpec {
        symbols: SymbolSource::Vmlinux(dir.file("vmlinux", &elf)),
        btf: None,
        cr3: None,
        ttbr1: None,
        layout_override: Some(mapwalk_core::synth::default_layout()),
    };
    let k = describe(g.mem(), &spec, &MemoryHints::default()).unwrap();
    check_maps(&k, &g);
    assert_eq!(k.slide, SLIDE);

    // The vmlinux's own banner must be the one in memory.
    let other = BANNER_TEXT.replace("#1 SMP", "#2 SMP");
    let elf = vmlinux(&link, BANNER - SLIDE, &other, &tiny_btf());
    let spec = KernelSpec {
        symbols: SymbolSource::Vmlinux(dir.file("vmlinux2", &elf)),
        ..spec
    };
    let err = describe(g.mem(), &spec, &MemoryHints::default()).unwrap_err();
    let DescribeError::Mismatch { what, files, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(what, "linux_banner");
    assert!(files.contains("#2 SMP"), "{err}");

    // BTF from an ELF file given as the BTF source.
    let spec = KernelSpec {
        symbols: SymbolSource::SymbolFile(
            dir.file("kallsyms", kallsyms(&g.symbols(), 0).as_bytes()),
        ),
        btf: Some(BtfSource::File(dir.file(
            "vmlinux3",
            &vmlinux(&link, BANNER - SLIDE, BANNER_TEXT, &tiny_btf()),
        ))),
        ..spec
    };
    let k = describe(g.mem(), &spec, &MemoryHints::default()).unwrap();
    check_maps(&k, &g);
}

#[test]
fn layout_from_the_hosts_btf() {
    const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";
    if !Path::new(HOST_BTF).exists() {
        crate::unavailable(
            "describe::layout_from_the_hosts_btf",
            &format!("{HOST_BTF} (kernel without BTF)"),
        );
        return;
    }
    let g = Guest::new(false);
    let dir = TempDir::new();
    let mut s = spec(&dir, &kallsyms(&g.symbols(), 0));
    s.btf = Some(BtfSource::File(HOST_BTF.into()));
    s.layout_override = None;
    // The host's struct bpf_map is not the synthetic kernel's: no map fits it, and the
    // BTF file is refused by name rather than every map read wrong.
    match describe(g.mem(), &s, &g.hints()) {
        Err(e @ DescribeError::LayoutMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("--btf {HOST_BTF}")), "{msg}");
            assert!(msg.contains("bpf_map.id"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}
