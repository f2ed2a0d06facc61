//! Prints what `mapwalk-file` sees in a RAM file or an ELF core, and where the kernel's
//! VMCOREINFO is.
//!
//! ```text
//! cargo run --release -p mapwalk --example inspect -- core /tmp/guest.core
//! cargo run --release -p mapwalk --example inspect -- ram /dev/shm/guest-ram [LAYOUT]
//! cargo run --release -p mapwalk --example inspect -- compare CORE RAM [LAYOUT]
//! ```
//!
//! `compare` checks that every byte of the core's RAM segments reads the same from the
//! RAM file (of the same guest, paused since the dump), and that the RAM file has
//! nothing the core lacks.

use std::time::Instant;

use mapwalk::describe::vmcoreinfo::{
    find_vmcoreinfo, find_vmcoreinfo_with, FindOptions, FoundVmcoreinfo, Vmcoreinfo,
};
use mapwalk_core::PhysRead;
use mapwalk_file::{ElfCore, RamFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["core", path] => {
            let core = ElfCore::open(path)?;
            println!(
                "ELF core: {} bytes, machine {}, {}-bit",
                core.file_len(),
                core.machine(),
                if core.is_64bit() { 64 } else { 32 }
            );
            for s in core.segments() {
                println!(
                    "  PT_LOAD #{}: paddr {} filesz {:#x} memsz {:#x} at file offset {:#x}",
                    s.index, s.paddr, s.file_size, s.mem_size, s.offset
                );
            }
            for s in core.aliases() {
                println!("  alias   #{}: paddr {} memsz {:#x}", s.index, s.paddr, s.mem_size);
            }
            for n in core.notes() {
                println!("  note {:?} type {} ({} bytes)", n.name, n.n_type, n.desc.len());
            }
            for cpu in core.vcpus() {
                println!(
                    "  vCPU {}: pid {:?} CR3 {:x?} CR4 {:x?}",
                    cpu.index,
                    cpu.prstatus.as_ref().map(|p| p.pid),
                    cpu.cr3(),
                    cpu.cr4()
                );
            }
            match core.vmcoreinfo_note().map(Vmcoreinfo::parse) {
                Some(v) => println!("  VMCOREINFO note: {} lines, OSRELEASE={:?}", v.len(), v.osrelease()),
                None => println!("  no VMCOREINFO note"),
            }
            search(&core)
        }
        ["ram", path] => search(&RamFile::open(path)?),
        ["ram", path, layout] => search(&RamFile::options().layout(layout.parse()?).open(path)?),
        ["compare", core, ram] => compare(&ElfCore::open(core)?, &RamFile::open(ram)?),
        ["compare", core, ram, layout] => compare(
            &ElfCore::open(core)?,
            &RamFile::options().layout(layout.parse()?).open(ram)?,
        ),
        _ => Err("usage: inspect core PATH | inspect ram PATH [LAYOUT] | inspect compare CORE RAM [LAYOUT]".into()),
    }
}

fn search<M: PhysRead>(mem: &M) -> Result<(), Box<dyn std::error::Error>> {
    let total: u64 = mem.ranges().iter().map(|r| r.len).sum();
    println!("memory: {} ranges, {} MiB", mem.ranges().len(), total >> 20);
    let t = Instant::now();
    let found = find_vmcoreinfo(mem, &[])?;
    report("probe, then scan", t, found.as_ref());
    let t = Instant::now();
    let only_scan = FindOptions {
        page_probe: false,
        ..FindOptions::default()
    };
    let found = find_vmcoreinfo_with(mem, &only_scan)?;
    report("scan only", t, found.as_ref());
    if let Some(f) = found {
        for key in [
            "OSRELEASE",
            "PAGESIZE",
            "KERNELOFFSET",
            "NUMBER(phys_base)",
            "SYMBOL(init_top_pgt)",
            "NUMBER(pgtable_l5_enabled)",
        ] {
            println!("  {key}={:?}", f.vmcoreinfo.get(key));
        }
    }
    Ok(())
}

fn report(what: &str, t: Instant, found: Option<&FoundVmcoreinfo>) {
    let ms = t.elapsed().as_secs_f64() * 1e3;
    match found {
        Some(f) => println!(
            "{what}: VMCOREINFO at {} by {:?} after reading {} KiB, {ms:.1} ms ({} lines)",
            f.pa,
            f.method,
            f.bytes_read >> 10,
            f.vmcoreinfo.len()
        ),
        None => println!("{what}: no VMCOREINFO, {ms:.1} ms"),
    }
}

/// Compares every RAM file range with the core, 1 MiB at a time.
fn compare(core: &ElfCore, ram: &RamFile) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut same = 0u64;
    for r in ram.ranges() {
        let mut pa = r.start.0;
        while pa < r.end() {
            let n = usize::try_from((r.end() - pa).min(1 << 20))?;
            ram.read_phys(mapwalk_core::Pa(pa), &mut a[..n])?;
            core.read_phys(mapwalk_core::Pa(pa), &mut b[..n])
                .map_err(|e| format!("the core lacks RAM-file bytes: {e}"))?;
            if a[..n] != b[..n] {
                let i = a[..n]
                    .iter()
                    .zip(&b[..n])
                    .position(|(x, y)| x != y)
                    .unwrap_or(0);
                return Err(format!("RAM file and core differ at {:#x}", pa + i as u64).into());
            }
            same += n as u64;
            pa += n as u64;
        }
    }
    println!(
        "compare: {} MiB identical in {:.1} s",
        same >> 20,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
