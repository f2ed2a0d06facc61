//! Loading and running programs, behind the `test-util` feature: for tests; not part of
//! the stable API.

use core::mem::{offset_of, size_of};
use std::os::fd::{BorrowedFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{addr_of, addr_of_mut, bpf, fd_u32, owned_fd, Cmd};
use crate::error::{Errno, Error, Result};

/// `BPF_PROG_LOAD`'s part, up to `prog_name`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `BPF_PROG_TEST_RUN`'s part, up to `duration`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
}

/// One BPF instruction (`struct bpf_insn`): `code`, `dst_reg:4 | src_reg:4`, `off`, `imm`.
///
/// For tests; not part of the stable API (cargo feature `test-util`).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub struct Insn {
    /// The opcode.
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble (little-endian hosts).
    pub regs: u8,
    /// `off`.
    pub off: i16,
    /// `imm`.
    pub imm: i32,
}

layout!(ProgLoadAttr, 64, prog_type @ 0, insn_cnt @ 4, insns @ 8, license @ 16,
    log_level @ 24, log_size @ 28, log_buf @ 32, kern_version @ 40, prog_flags @ 44,
    prog_name @ 48);
layout!(TestRunAttr, 40, prog_fd @ 0, retval @ 4, data_size_in @ 8, data_size_out @ 12,
    data_in @ 16, data_out @ 24, repeat @ 32, duration @ 36);
layout!(Insn, 8, code @ 0, regs @ 1, off @ 2, imm @ 4);

/// `BPF_PROG_TYPE_SOCKET_FILTER`.
///
/// For tests; not part of the stable API (cargo feature `test-util`).
pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// `BPF_PROG_LOAD`—Loads a program of `prog_type` with license `"GPL"`; on a verifier
/// rejection the error's text holds the verifier log.
///
/// For tests; not part of the stable API (cargo feature `test-util`).
///
/// # Errors
/// [`Error::Denied`] without `CAP_BPF`; [`Error::Verifier`] with the log when the
/// verifier rejects the program; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_load(prog_type: u32, name: &str, insns: &[Insn]) -> Result<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().take(15).zip(name.bytes()) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| Error::BufferSize {
            need: u32::MAX as usize,
            have: insns.len(),
        })?,
        insns: addr_of(insns.as_bytes()),
        license: addr_of(LICENSE),
        log_level: 1,
        log_size: u32::try_from(log.len()).unwrap_or(0),
        log_buf: addr_of_mut(&mut log),
        prog_name,
        ..ProgLoadAttr::default()
    };
    // SAFETY:
    // - `insns` points to `insn_cnt` instructions of 8 bytes, read only;
    // - `license` points to a NUL-terminated static string;
    // - `log_buf` points to `log_size` writable bytes, exclusively borrowed.
    match unsafe { bpf(Cmd::PROG_LOAD, &mut attr) } {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(e) if e == Errno::EACCES || e == Errno::EINVAL => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default()).into_owned();
            if text.is_empty() {
                Err(Error::from_errno(Cmd::PROG_LOAD, e))
            } else {
                Err(Error::Verifier {
                    errno: e,
                    log: text,
                })
            }
        }
        Err(e) => Err(Error::from_errno(Cmd::PROG_LOAD, e)),
    }
}

/// `BPF_PROG_TEST_RUN`—Runs a program once on `data` (for a socket filter: a packet of
/// at least 14 bytes) and returns its return value.
///
/// For tests; not part of the stable API (cargo feature `test-util`).
///
/// # Errors
/// [`Error::Denied`], [`Error::Sys`].
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_test_run(prog: BorrowedFd<'_>, data: &[u8]) -> Result<u32> {
    let mut attr = TestRunAttr {
        prog_fd: fd_u32(prog),
        data_size_in: u32::try_from(data.len()).map_err(|_| Error::BufferSize {
            need: u32::MAX as usize,
            have: data.len(),
        })?,
        data_in: addr_of(data),
        repeat: 1,
        ..TestRunAttr::default()
    };
    // SAFETY:
    // - `data_in` points to `data_size_in` readable bytes; `data_out` and `ctx_*` are 0,
    //   so the kernel writes nothing through pointers.
    unsafe { bpf(Cmd::PROG_TEST_RUN, &mut attr) }
        .map_err(|e| Error::from_errno(Cmd::PROG_TEST_RUN, e))?;
    Ok(attr.retval)
}
