//! Builds a synthetic x86_64 guest holding a few BPF maps, then finds and reads them the
//! way a VMM would read a paused guest: through page tables and `map_idr`, with nothing
//! but the guest's memory, its CR3 and the kernel's layout.
//!
//! Run with `cargo run -p mapwalk-core --features synth --example discover`.

use mapwalk_core::synth::{GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, MapType};

fn main() -> Result<(), mapwalk_core::Error> {
    let mut builder = GuestBuilder::x86_64(true);
    builder
        .add_map(
            MapSpec::array(3, "counters", 8, 4)
                .with_values(|k| (u64::from(k) * 1000 + 7).to_le_bytes().to_vec()),
        )
        .add_map(
            MapSpec::array(9, "sched.bss", 24, 1)
                .vmalloc()
                .with_values(|_| b"scx: tick=42 nr_running=3".to_vec()[..24].to_vec()),
        )
        .add_map(MapSpec::new(12, MapType::HASH, "flows", 16, 32, 1024))
        .add_map(
            MapSpec::array(4097, "big_mmap", 4096, 300)
                .mmapable()
                .with_values(|k| vec![(k % 251) as u8; 4096]),
        );
    let guest = builder.build();
    let view = guest.view();
    let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);

    println!(
        "{:>6}  {:<14} {:<16} {:>5} {:>7} {:>11}  flags",
        "id", "type", "name", "key", "value", "max_entries"
    );
    for map in bpf.maps()? {
        let m = map?;
        println!(
            "{:>6}  {:<14} {:<16} {:>5} {:>7} {:>11}  {:#x}",
            m.id, m.map_type, m.name, m.key_size, m.value_size, m.max_entries, m.map_flags
        );
    }

    let counters = bpf.find_by_name("counters")?.expect("the guest has it");
    let array = bpf.array(&counters)?;
    for key in 0..counters.max_entries {
        let mut v = [0u8; 8];
        array.read(&view, key, 0, &mut v)?;
        println!("counters[{key}] = {}", u64::from_le_bytes(v));
    }

    let bss = bpf.find_by_suffix(".bss")?.expect("the guest has it");
    let text = bpf.array(&bss)?.value(&view, 0)?;
    println!("{}[0] = {:?}", bss.name, String::from_utf8_lossy(&text));
    Ok(())
}
