//! Checks of what the user supplied against the memory, before anything is walked: a
//! page-table root that does not map the kernel, or a `struct bpf_map` layout (or a
//! `map_idr`) that no map in memory fits, is refused with the option at fault named,
//! rather than turned into an empty or partial answer.

use mapwalk_core::{arch, Bpf, KernelLayout, KernelView, Kva, Paging, PhysRead, Translation};

use super::{DescribeError, Vmcoreinfo};

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
