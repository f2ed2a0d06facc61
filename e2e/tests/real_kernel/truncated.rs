//! A RAM file cut short, read with no kernel option: refused in one line that says how
//! far the memory goes and how far the kernel's RAM goes, never read as far as it goes.
//!
//! The cut lies just past what the description needs before it checks the RAM (the
//! VMCOREINFO page and the kernel image, where the kernel's own symbols and BTF are),
//! so the refusal comes from the RAM check; a second cut below the kernel image and the
//! VMCOREINFO must be refused too.

use mapwalk::describe::vmcoreinfo::find_vmcoreinfo;
use mapwalk_core::kernel::X86_START_KERNEL_MAP;
use mapwalk_core::PhysRead;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

const TWO_MIB: u64 = 2 << 20;

/// Copies the first `len` bytes of `from` to `to`.
fn copy_prefix(test: &str, from: &Path, to: &Path, len: u64) {
    let mut src = std::fs::File::open(from)
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", from.display()))
        .take(len);
    let mut dst =
        std::fs::File::create(to).unwrap_or_else(|e| panic!("{test}: {}: {e}", to.display()));
    let copied = std::io::copy(&mut src, &mut dst)
        .unwrap_or_else(|e| panic!("{test}: copy to {}: {e}", to.display()));
    assert_eq!(copied, len, "{test}: bytes copied");
    dst.flush().unwrap();
}

/// `mapwalk --ram FILE maps` with no kernel option: exit status 2, nothing on stdout,
/// one line on stderr, which is returned.
fn refused(test: &str, file: &Path) -> String {
    let bin = mapwalk_e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("{test}: {e}"));
    let out = Command::new(bin)
        .arg("--ram")
        .arg(file)
        .arg("maps")
        .output()
        .unwrap_or_else(|e| panic!("{test}: run mapwalk: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{test}: {stderr}");
    assert!(out.stdout.is_empty(), "{test}: stdout of a refusal");
    assert_eq!(stderr.lines().count(), 1, "{test}: one line: {stderr}");
    stderr
}

/// The checks on the paused guest's RAM file `ram_path` (read as one range, `mem`),
/// scratch files in `dir`. Returns a summary.
pub(super) fn truncated_files<M: PhysRead>(
    test: &str,
    report: &mapwalk_e2e::GuestReport,
    mem: &M,
    ram_path: &Path,
    dir: &Path,
) -> String {
    let len = std::fs::metadata(ram_path)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .len();
    let found = find_vmcoreinfo(mem, &[])
        .unwrap_or_else(|e| panic!("{test}: find_vmcoreinfo: {e}"))
        .unwrap_or_else(|| panic!("{test}: no VMCOREINFO in memory"));
    let phys_base = found
        .vmcoreinfo
        .number("phys_base")
        .unwrap_or_else(|| panic!("{test}: no NUMBER(phys_base)"));
    let pa = |name: &str| {
        let va = report
            .kallsyms
            .get(name)
            .unwrap_or_else(|| panic!("{test}: no {name} in /proc/kallsyms"))
            .addr;
        va.wrapping_sub(X86_START_KERNEL_MAP)
            .wrapping_add(phys_base)
    };
    let (image_start, image_end) = (pa("_text"), pa("_end"));
    let info_page = found.pa.0 & !0xfff;
    let needed_end = image_end.max(info_page + 0x1000);
    let file = dir.join("cut");
    let mut summary = Vec::new();

    // Just past what the description needs: the RAM check refuses, with the sizes.
    let cut = (needed_end.div_ceil(TWO_MIB) + 1) * TWO_MIB;
    if cut + TWO_MIB <= len {
        copy_prefix(test, ram_path, &file, cut);
        let stderr = refused(test, &file);
        for part in [
            "does not hold all the kernel's RAM".to_owned(),
            format!("the memory ends at {cut:#x} ({} MiB)", cut >> 20),
            "a truncated file".to_owned(),
        ] {
            assert!(stderr.contains(&part), "{test}: {part:?} not in {stderr}");
        }
        summary.push(format!("cut at {} MiB: {}", cut >> 20, stderr.trim()));
    } else {
        summary.push(format!(
            "no cut past the kernel (image {image_start:#x}-{image_end:#x}, VMCOREINFO at \
             {:#x}) fits the {} MiB file",
            found.pa.0,
            len >> 20
        ));
    }

    // Below the kernel image or the VMCOREINFO: refused too.
    let low = image_start.min(info_page) / TWO_MIB * TWO_MIB;
    if low >= TWO_MIB {
        copy_prefix(test, ram_path, &file, low);
        let stderr = refused(test, &file);
        summary.push(format!("cut at {} MiB: {}", low >> 20, stderr.trim()));
    }
    let _ = std::fs::remove_file(&file);
    summary.join("\n    ")
}
