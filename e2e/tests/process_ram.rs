//! A running QEMU read from outside (`mapwalk_kvm::ProcessRam`): its guest RAM is
//! anonymous memory of the QEMU process, found through QMP (`info mtree -f`,
//! `gpa2hva`) and read with `process_vm_readv`. No guest kernel is needed: SeaBIOS
//! writes low RAM as it starts (the interrupt table, the BIOS data area), and QEMU's own
//! view of guest-physical memory (HMP `xp`) is the truth to match, byte for byte.
//!
//! A 3 GiB q35 machine, so the RAM is two regions: below the PCI hole and at 4 GiB.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mapwalk::qmp::Qmp;
use mapwalk_core::{Pa, PhysRead};
use mapwalk_e2e as e2e;
use mapwalk_kvm::{AccessError, ProcessRam};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bytes of `len` at `gpa` as QEMU's monitor shows them (`xp /Nbx`).
fn xp(qmp: &mut Qmp, gpa: u64, len: usize) -> Vec<u8> {
    let text = qmp.hmp(&format!("xp /{len}bx {gpa:#x}")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .flat_map(|(_, bytes)| bytes.split_whitespace())
        .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).unwrap())
        .collect()
}

#[test]
fn qemu_anonymous_ram_read_from_outside_matches_qemus_own_view() {
    let test = "process_ram::qemu_anonymous_ram";
    let dir = std::env::temp_dir().join(format!("mapwalk-process-ram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("qmp.sock");
    let child = match Command::new("qemu-system-x86_64")
        .args(["-machine", "q35,accel=tcg", "-m", "3072", "-nodefaults"])
        .args(["-display", "none", "-no-reboot"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Killed(c),
        Err(e) => {
            e2e::unavailable(test, &format!("qemu-system-x86_64: {e}"));
            return;
        }
    };
    let pid = i32::try_from(child.0.id()).unwrap();
    let mut qmp = Qmp::connect(&sock, Duration::from_secs(30)).unwrap();
    // Let SeaBIOS write its tables (the interrupt vector at 0 is filled early).
    let started = Instant::now();
    while xp(&mut qmp, 0x20, 4) == [0; 4] {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "SeaBIOS never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    qmp.stop().unwrap();

    let regions = qmp.process_regions().unwrap();
    let spans: Vec<(u64, u64)> = regions.iter().map(|r| (r.gpa, r.len)).collect();
    // Below the hole (with the legacy VGA window cut out) and 1 GiB at 4 GiB.
    assert_eq!(spans.first().map(|s| s.0), Some(0), "{regions:x?}");
    assert_eq!(spans.last(), Some(&(1 << 32, 1 << 30)), "{regions:x?}");
    let ram = ProcessRam::new(pid, &regions).unwrap();

    for (gpa, len) in [
        (0u64, 0x400usize),
        (0x400, 0x100),
        (0x7_0000, 0x40),
        (1 << 32, 0x40),
    ] {
        let mut buf = vec![0u8; len];
        ram.read_phys(Pa(gpa), &mut buf).unwrap();
        assert_eq!(buf, xp(&mut qmp, gpa, len), "{len:#x} bytes at {gpa:#x}");
    }
    // The interrupt vector table is not all zero: the comparison compared something.
    let mut ivt = [0u8; 0x80];
    ram.read_phys(Pa(0), &mut ivt).unwrap();
    assert!(ivt.iter().any(|&b| b != 0));
    // The PCI hole is no RAM of QEMU's: an error, not zeros.
    let mut b = [0u8; 8];
    assert!(matches!(
        ram.read_phys(Pa(0xc000_0000), &mut b),
        Err(AccessError::Hole { .. })
    ));
    qmp.cont().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
