//! BTF objects by id: the type information of maps and of the kernel.

use std::os::fd::AsFd;

use crate::error::Result;
use crate::map::LiveMap;
use crate::sys;
pub use crate::sys::BtfObject;

/// The BTF object with id `id` (`BPF_BTF_GET_FD_BY_ID` + `BPF_OBJ_GET_INFO_BY_FD`), or
/// `None` when there is none.
///
/// The bytes are the raw BTF as the kernel holds it. Kernel module BTF
/// ([`BtfObject::kernel`], named after the module) is *split* BTF: its type ids continue
/// after vmlinux's, and it must be parsed on top of vmlinux BTF (id 1, also readable at
/// `/sys/kernel/btf/vmlinux`). Program BTF loaded by libbpf is usually standalone; a
/// parser that meets type ids it lacks should retry with vmlinux as the base.
///
/// # Errors
/// [`Error::Denied`](crate::Error::Denied) without `CAP_SYS_ADMIN`;
/// [`Error::Sys`](crate::Error::Sys).
pub fn btf_by_id(id: u32) -> Result<Option<BtfObject>> {
    match sys::btf_get_fd_by_id(id)? {
        None => Ok(None),
        Some(fd) => sys::btf_info(fd.as_fd()).map(Some),
    }
}

impl LiveMap {
    /// The map's BTF ([`MapInfo::btf_id`](crate::MapInfo::btf_id)), or `None`
    /// when it has none (or it was freed).
    ///
    /// # Errors
    /// As [`btf_by_id`].
    pub fn btf(&self) -> Result<Option<BtfObject>> {
        match self.info().btf_id {
            0 => Ok(None),
            id => btf_by_id(id),
        }
    }
}
