//! The agent's runtime: the entry point, the two system calls it makes, and the panic
//! handler. Everything unsafe in the agent is in this file.
//!
//! Linked with `-nostartfiles -nostdlib -static` (see build.rs): there is no C runtime,
//! so nothing runs before [`_start`](self) and nothing after [`exit`].
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use core::fmt;

/// `write(2)` on x86_64.
const SYS_WRITE: usize = 1;
/// `exit_group(2)` on x86_64.
const SYS_EXIT_GROUP: usize = 231;
/// Standard output.
pub const STDOUT: usize = 1;
/// Standard error.
pub const STDERR: usize = 2;
/// The exit status of a panic.
pub const PANIC_EXIT: u8 = 101;

// The ELF entry point. The kernel enters it with `rsp` pointing at `argc` (16-byte
// aligned) and no return address; the System V ABI wants `rsp + 8` 16-byte aligned at a
// function's first instruction, which a `call` from an aligned `rsp` gives.
// - `rbp` is zeroed to end frame-pointer walks here.
// - `rsp` is re-aligned defensively; nothing on the initial stack is used.
// - `start` never returns; `ud2` stops the process if it ever did.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".size _start, . - _start",
    start = sym start,
);

/// Runs the agent and exits with its status.
extern "C" fn start() -> ! {
    exit(crate::main())
}

/// Ends the process with `code`.
pub fn exit(code: u8) -> ! {
    // SAFETY: - `exit_group` takes one integer argument and does not return
    //           (`noreturn`); it reads and writes no memory of this process (`nostack`
    //           holds: nothing is pushed).
    unsafe {
        asm!(
            "syscall",
            in("rax") SYS_EXIT_GROUP,
            in("rdi") usize::from(code),
            options(noreturn, nostack),
        );
    }
}

/// Writes all of `bytes` to file descriptor `fd`; gives up on an error.
pub fn write_all(fd: usize, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let ret: isize;
        // SAFETY: - `write` reads `bytes.len()` bytes at `bytes.as_ptr()`, which is a
        //           live, initialized slice for the duration of the call;
        //         - it writes no memory of this process;
        //         - the kernel clobbers `rcx` and `r11` (declared) and returns in `rax`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_WRITE => ret,
                in("rdi") fd,
                in("rsi") bytes.as_ptr(),
                in("rdx") bytes.len(),
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, readonly),
            );
        }
        match usize::try_from(ret) {
            Ok(n) if n > 0 => bytes = bytes.get(n..).unwrap_or_default(),
            // -EINTR: try again; anything else (or 0): give up.
            _ if ret == -4 => {}
            _ => return,
        }
    }
}

/// A line of text in a fixed buffer; what does not fit is dropped.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Writes the line and a newline to `fd`.
    pub fn emit(&mut self, fd: usize) {
        let _ = fmt::Write::write_str(self, "\n");
        write_all(fd, self.buf.get(..self.len).unwrap_or_default());
        self.len = 0;
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(self.len);
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len.saturating_add(n)),
            s.as_bytes().get(..n),
        ) {
            dst.copy_from_slice(src);
            self.len = self.len.saturating_add(n);
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = Line::new();
    let _ = fmt::write(&mut line, format_args!("mapwalk-agent: PANIC: {info}"));
    line.emit(STDERR);
    exit(PANIC_EXIT)
}

// The memory functions the compiler calls. Without a C library, nobody else provides
// them (compiler_builtins has them only on targets without one). The crate is
// `#![no_builtins]`, so LLVM does not turn these loops back into calls to themselves.
// Byte loops: the agent copies a few kilobytes.

/// `memcpy`: copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` is valid for `n` reads and `dst` for `n` writes, and they do not overlap (the C
/// contract; the compiler only emits calls that meet it).
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: - `i < n`: `src + i` is readable by the contract.
        let byte = unsafe { src.wrapping_add(i).read() };
        // SAFETY: - `i < n`: `dst + i` is writable by the contract.
        unsafe { dst.wrapping_add(i).write(byte) };
        i += 1;
    }
    dst
}

/// `memmove`: copies `n` bytes from `src` to `dst`, which may overlap.
///
/// # Safety
/// `src` is valid for `n` reads and `dst` for `n` writes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let copy = |i: usize| {
        // SAFETY: - `i < n` (both loops below): `src + i` is readable by the contract.
        let byte = unsafe { src.wrapping_add(i).read() };
        // SAFETY: - `i < n`: `dst + i` is writable by the contract.
        unsafe { dst.wrapping_add(i).write(byte) };
    };
    if (dst as usize) <= (src as usize) {
        // Forwards: each byte is read before a later write can reach it.
        let mut i = 0;
        while i < n {
            copy(i);
            i += 1;
        }
    } else {
        // Backwards, for `dst` above `src`.
        let mut i = n;
        while i > 0 {
            i -= 1;
            copy(i);
        }
    }
    dst
}

/// `memset`: fills `n` bytes at `s` with the low byte of `c`.
///
/// # Safety
/// `s` is valid for `n` writes.
#[no_mangle]
pub unsafe extern "C" fn memset(s: *mut u8, c: i32, n: usize) -> *mut u8 {
    let byte = c.to_le_bytes()[0];
    let mut i = 0;
    while i < n {
        // SAFETY: - `i < n`: `s + i` is writable by the contract.
        unsafe { s.wrapping_add(i).write(byte) };
        i += 1;
    }
    s
}

/// `memcmp`: compares `n` bytes as unsigned chars.
///
/// # Safety
/// `a` and `b` are valid for `n` reads.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: - `i < n`: `a + i` is readable by the contract.
        let x = unsafe { a.wrapping_add(i).read() };
        // SAFETY: - `i < n`: `b + i` is readable by the contract.
        let y = unsafe { b.wrapping_add(i).read() };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp`: zero when `n` bytes are equal.
///
/// # Safety
/// `a` and `b` are valid for `n` reads.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: - the same contract as `memcmp`, which the caller meets.
    unsafe { memcmp(a, b, n) }
}

/// The personality routine that the precompiled `core` names in its unwind tables.
/// With `panic = "abort"` nothing unwinds, so it is never called; it only has to exist.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
