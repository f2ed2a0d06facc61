//! A minimal VMM that shows its guest's BPF maps: KVM through `kvm-ioctls`, guest RAM
//! as a rust-vmm `GuestMemoryMmap`, and mapwalk reading the maps while the vCPU is
//! stopped.
//!
//! 1. A synthetic kernel (the `synth` builder of `mapwalk-core`: page tables, `map_idr`,
//!    an ARRAY, a HASH and a PERCPU_ARRAY map) is laid into guest memory, with one more
//!    page mapped executable that holds `hlt`.
//! 2. A vCPU starts in 64-bit mode with paging on, on the guest's own page tables, at
//!    that page, and runs until it halts.
//! 3. CR3, CR4 and EFER come from the vCPU through KVM (`KVM_GET_SREGS`), and the maps
//!    are walked through `mapwalk_kvm::vm_memory::VmMemory`.
//! 4. Every entry read must equal what the builder laid out; the example fails
//!    otherwise.
//!
//! ```sh
//! cargo run -p mapwalk-kvm --features kvm,vm-memory --example vmm
//! ```
//!
//! Without `/dev/kvm` it prints one line saying so and exits 0, except under `CI=true`,
//! where it fails.

mod sys;

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;

use kvm_ioctls::{Kvm, VcpuExit};
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::synth::{GuestBuilder, MapSpec, X86PageTables};
use mapwalk_core::{Bpf, KernelView, Kva, MapType, Paging};
use mapwalk_kvm::vm_memory::VmMemory;
use mapwalk_kvm::X86PagingState;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where the `hlt` page is mapped: a kernel-half address outside the image and the
/// direct map.
const CODE_VA: u64 = 0xffff_ffff_ff60_0000;

/// What the guest's maps hold, by map id and key: the builder's records.
type Records = BTreeMap<u32, BTreeMap<Vec<u8>, Vec<Vec<u8>>>>;

fn specs() -> (Vec<MapSpec>, Records) {
    let mut records = Records::new();
    let array = MapSpec::array(3, "counters", 8, 4)
        .with_values(|k| (u64::from(k) * 1000 + 7).to_le_bytes().to_vec());
    records.insert(
        3,
        (0u32..4)
            .map(|k| {
                let v = (u64::from(k) * 1000 + 7).to_le_bytes().to_vec();
                (k.to_le_bytes().to_vec(), vec![v])
            })
            .collect(),
    );
    let mut hash = MapSpec::hash(7, "flows", 8, 16, 64);
    let mut flows = BTreeMap::new();
    for i in 0u64..20 {
        let key = (0xf100 + i).to_le_bytes().to_vec();
        let value: Vec<u8> = (0..16).map(|b| (i as u8).wrapping_mul(31) ^ b).collect();
        hash = hash.entry(&key, &value);
        flows.insert(key, vec![value]);
    }
    records.insert(7, flows);
    let cpus = 2;
    let pcpu = MapSpec::new(9, MapType::PERCPU_ARRAY, "per_cpu", 4, 8, 3)
        .with_cpu_values(cpus, |k, cpu| {
            (u64::from(k) << 8 | u64::from(cpu)).to_le_bytes().to_vec()
        });
    records.insert(
        9,
        (0u32..3)
            .map(|k| {
                let per_cpu = (0..cpus)
                    .map(|cpu| (u64::from(k) << 8 | u64::from(cpu)).to_le_bytes().to_vec())
                    .collect();
                (k.to_le_bytes().to_vec(), per_cpu)
            })
            .collect(),
    );
    (vec![array, hash, pcpu], records)
}

fn run() -> Result<(), Box<dyn Error>> {
    // 1. The guest.
    let (specs, records) = specs();
    let mut builder = GuestBuilder::x86_64(false).possible_cpus(2).nr_cpus(2);
    for s in &specs {
        builder.add_map(s.clone());
    }
    let mut guest = builder.build();
    let Paging::X86_64(paging) = guest.paging else {
        return Err("the synthetic guest is not x86_64".into());
    };
    let code_pa = guest.ram.alloc_page(12);
    guest.ram.bytes_mut()[code_pa.0 as usize] = 0xf4; // hlt
                                                      // Present, accessed, kernel-only, executable (no NX).
    X86PageTables::at(paging.root(), false).set_entry(
        &mut guest.ram,
        Kva(CODE_VA),
        0,
        code_pa.0 | 0x21,
    );

    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    let size = guest.ram.bytes().len();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size)])?;
    mem.write_slice(guest.ram.bytes(), GuestAddress(0))?;
    sys::register(&vm, &mem)?;

    // 2. A vCPU in long mode on the guest's page tables.
    let mut vcpu = vm.create_vcpu(0)?;
    let mut sregs = vcpu.get_sregs()?;
    sregs.cr3 = paging.root().0;
    sregs.cr4 = 1 << 5; // PAE
    sregs.cr0 = 0x8000_0001 | (1 << 16); // PG, PE, WP
    sregs.efer = 0x500; // LME, LMA
    let mut code = sregs.cs;
    code.base = 0;
    code.limit = 0xffff_ffff;
    code.selector = 0x8;
    code.type_ = 0xb;
    code.present = 1;
    code.dpl = 0;
    code.db = 0;
    code.s = 1;
    code.l = 1;
    code.g = 1;
    sregs.cs = code;
    let mut data = code;
    data.selector = 0x10;
    data.type_ = 0x3;
    data.l = 0;
    data.db = 1;
    sregs.ds = data;
    sregs.es = data;
    sregs.ss = data;
    vcpu.set_sregs(&sregs)?;
    let mut regs = vcpu.get_regs()?;
    regs.rip = CODE_VA;
    regs.rflags = 2;
    vcpu.set_regs(&regs)?;
    match vcpu.run()? {
        VcpuExit::Hlt => {}
        other => return Err(format!("the vCPU stopped with {other:?}, not hlt").into()),
    }

    // 3. The paging state, from KVM.
    let state = X86PagingState::from_vcpu(&vcpu)?;
    if !state.is_long_mode() || state.root() != paging.root().0 {
        return Err(format!("unexpected vCPU state {state:x?}").into());
    }
    let view = KernelView::new(
        VmMemory::new(&mem)?,
        Paging::X86_64(X86Paging::new(state.cr3, state.is_five_level())),
        guest.addrs,
    );

    // 4. The maps, against the builder's records.
    let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
    let offsets = guest.offsets();
    let mut seen = Records::new();
    for info in bpf.maps()? {
        let info = info?;
        let entries = seen.entry(info.id).or_default();
        match info.map_type {
            MapType::ARRAY => {
                let arr = bpf.array(&info)?;
                for k in 0..info.max_entries {
                    entries.insert(k.to_le_bytes().to_vec(), vec![arr.value(&view, k)?]);
                }
            }
            MapType::HASH => {
                let mut key = vec![0; info.key_size as usize];
                let mut value = vec![0; info.value_size as usize];
                let h = bpf.htab(&info)?;
                let mut walk = h.walk(&view);
                while let Some(item) = walk.next_into(&mut key, &mut value) {
                    item?;
                    entries.insert(key.clone(), vec![value.clone()]);
                }
            }
            MapType::PERCPU_ARRAY => {
                for item in bpf.percpu_array(&info)?.walk(&view) {
                    let e = item?;
                    let mut per_cpu = Vec::new();
                    for cpu in 0..offsets.possible() {
                        let mut v = vec![0; info.value_size as usize];
                        offsets.read_copy(&view, e.pptr, cpu, &mut v)?;
                        per_cpu.push(v);
                    }
                    entries.insert(e.key.to_le_bytes().to_vec(), per_cpu);
                }
            }
            t => {
                return Err(
                    format!("map {} has type {t}, which the guest has none of", info.id).into(),
                )
            }
        }
        println!(
            "map {:>2} {:<14} {:<10} {} entries",
            info.id,
            info.map_type,
            info.name,
            entries.len()
        );
    }
    if seen != records {
        return Err(format!(
            "the dump differs from the builder's records:\n{seen:x?}\n{records:x?}"
        )
        .into());
    }
    println!(
        "vmm: the vCPU halted at {CODE_VA:#x} with CR3 {:#x}; {} maps read through KVM's \
         view equal what the guest holds",
        state.cr3,
        seen.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = std::fs::File::open("/dev/kvm") {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            eprintln!("vmm: /dev/kvm: {e} (required under CI=true)");
            return ExitCode::FAILURE;
        }
        println!("vmm: skipped: /dev/kvm cannot be opened ({e})");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmm: {e}");
            ExitCode::FAILURE
        }
    }
}
