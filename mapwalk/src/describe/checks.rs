//! Checks of what the user supplied against the memory, before anything is walked: a
//! page-table root that does not map the kernel, or a `struct bpf_map` layout (or a
//! `map_idr`) that no map in memory fits, is refused with the option at fault named,
//! rather than turned into an empty or partial answer.

use mapwalk_core::{arch, Bpf, KernelLayout, KernelView, Kva, Paging, PhysRead, Translation};

use mapwalk_core::kernel::KernelRead;

use super::{c_string, DescribeError, Loaded, Symbols, Vmcoreinfo, BANNER_MAX, BANNER_PREFIX};

/// The most maps [`check_maps_fit`] reads.
pub const MAX_CHECKED_MAPS: usize = 16;

/// Refuses memory the kernel encrypts: a VMCOREINFO whose `NUMBER(sme_mask)` is not
/// zero (AMD SME, or an SEV guest) describes pages that read as ciphertext from
/// outside. A kernel without memory encryption writes no `sme_mask`, or zero.
///
/// # Errors
/// [`DescribeError::Encrypted`].
pub(super) fn check_not_encrypted(info: &Vmcoreinfo) -> Result<(), DescribeError> {
    match info.number("sme_mask") {
        Some(mask) if mask != 0 => Err(DescribeError::Encrypted {
            what: format!("the VMCOREINFO's sme_mask is {mask:#x}: AMD SME or SEV"),
        }),
        _ => Ok(()),
    }
}

/// Whether the page tables of `view` map kernel symbol `at` (`linux_banner`) where
/// the kernel image places it. `given` says the root came from the user (`--cr3`).
///
/// # Errors
/// [`DescribeError::PageTables`].
pub(super) fn check_page_tables<M: PhysRead>(
    view: &KernelView<M>,
    at: Kva,
    given: bool,
) -> Result<(), DescribeError> {
    let root = match view.paging() {
        Paging::X86_64(p) => p.root().0,
        Paging::Aarch64(p) => p.root().0,
    };
    let fail = |what: String| DescribeError::PageTables { root, given, what };
    let Some(expected) = view.addrs().image.and_then(|r| r.lookup(at)) else {
        return Err(fail(format!(
            "linux_banner at {at} is outside the kernel image"
        )));
    };
    match arch::translate(view.mem(), view.paging(), at) {
        Ok(Translation::Mapped(m)) if m.pa == expected.start => Ok(()),
        Ok(Translation::Mapped(m)) => Err(fail(format!(
            "linux_banner at {at} translates to {}, but the kernel image is at {}",
            m.pa, expected.start
        ))),
        Ok(Translation::NotPresent { level }) => Err(fail(format!(
            "linux_banner at {at} is not mapped (no entry at level {level})"
        ))),
        Err(e) => Err(fail(format!("walking to linux_banner at {at}: {e}"))),
    }
}

/// Whether the first maps of `map_idr` read as `struct bpf_map`s with `layout`: when
/// there are maps and not one of the first [`MAX_CHECKED_MAPS`] reads, the layout (or
/// `map_idr`) is not this kernel's. `layout_from` names where the layout came from.
///
/// # Errors
/// [`DescribeError::LayoutMismatch`].
pub(super) fn check_maps_fit<M: PhysRead>(
    view: &KernelView<M>,
    layout: &KernelLayout,
    map_idr: Kva,
    layout_from: &str,
) -> Result<(), DescribeError> {
    let bpf = Bpf::new(view, layout, map_idr);
    let Ok(maps) = bpf.maps() else {
        // The IDR itself does not walk: the per-map walk reports it, with its cause.
        return Ok(());
    };
    let mut first_error = None;
    for item in maps.take(MAX_CHECKED_MAPS) {
        match item {
            Ok(_) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(DescribeError::LayoutMismatch {
            layout_from: layout_from.to_owned(),
            what: e.to_string(),
        }),
    }
}

/// Reads `linux_banner` and checks it against VMCOREINFO and the vmlinux. Returns the
/// release it names.
pub(super) fn check_banner<K: KernelRead>(
    view: &K,
    symbols: &Symbols,
    info: Option<&Vmcoreinfo>,
    loaded: &Loaded,
) -> Result<String, DescribeError> {
    let at = symbols
        .lookup("linux_banner")
        .ok_or(DescribeError::MissingSymbol("linux_banner"))?;
    let mut buf = vec![0u8; BANNER_MAX];
    let files = format!("\"Linux version ...\" at linux_banner = {at}");
    if let Err(e) = view.read_kernel(at, &mut buf) {
        return Err(DescribeError::mismatch(
            "linux_banner",
            files,
            format!("no readable memory there ({e})"),
        ));
    }
    let text = c_string(&buf);
    let Some(rest) = text.strip_prefix(BANNER_PREFIX) else {
        let shown: String = text.chars().take(48).collect();
        return Err(DescribeError::mismatch(
            "linux_banner",
            files,
            format!("{shown:?} ({:02x?})", &buf[..16]),
        ));
    };
    let release = rest.split_whitespace().next().unwrap_or("").to_owned();
    if let Some(os) = info.and_then(Vmcoreinfo::osrelease) {
        if os != release {
            return Err(DescribeError::mismatch(
                "kernel release",
                format!("{release} (linux_banner, read by the symbols)"),
                format!("{os} (VMCOREINFO OSRELEASE)"),
            ));
        }
    }
    if let Some(elf) = &loaded.elf_banner {
        if elf.trim_end() != text.trim_end() {
            return Err(DescribeError::mismatch(
                "linux_banner",
                format!("{:?} (in {})", elf.trim_end(), loaded.path.display()),
                format!("{:?}", text.trim_end()),
            ));
        }
    }
    Ok(release)
}
