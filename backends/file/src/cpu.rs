//! Per-vCPU state from the notes of an ELF core: QEMU's CPU-state note and the
//! `NT_PRSTATUS` note.

/// A segment register as QEMU's CPU-state note records it (`QEMUCPUSegment` in QEMU's
/// `target/i386/arch_dump.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QemuSegment {
    /// Selector.
    pub selector: u32,
    /// Limit.
    pub limit: u32,
    /// QEMU's descriptor flags.
    pub flags: u32,
    /// Base address.
    pub base: u64,
}

/// An x86 vCPU's state from a QEMU core's `"QEMU"` note (`QEMUCPUState`, version 1).
///
/// Layout (little-endian): `version: u32, size: u32`, 16 general registers (`rax, rbx,
/// rcx, rdx, rsi, rdi, rsp, rbp, r8..r15`), `rip, rflags`, ten 24-byte segments (`cs, ds,
/// es, fs, gs, ss, ldt, tr, gdt, idt`), `cr[5]`; 432 bytes. Newer QEMUs append
/// `kernel_gs_base` and say so in `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QemuCpuState {
    /// `QEMUCPUSTATE_VERSION` (1).
    pub version: u32,
    /// The size QEMU wrote.
    pub size: u32,
    /// `rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, ..., r15`, in that order.
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// Flags.
    pub rflags: u64,
    /// `cs, ds, es, fs, gs, ss, ldt, tr, gdt, idt`, in that order.
    pub segments: [QemuSegment; 10],
    /// `cr0` to `cr4`.
    pub cr: [u64; 5],
    /// `MSR_KERNEL_GS_BASE`, when `size` says it is there.
    pub kernel_gs_base: Option<u64>,
}

/// `QEMUCPUSTATE_VERSION`.
const QEMU_CPU_STATE_VERSION: u32 = 1;
/// `sizeof(QEMUCPUState)` of version 1 without the optional tail.
const QEMU_CPU_STATE_SIZE: usize = 432;
/// Offset of `cr[0]`.
const QEMU_CR_OFFSET: usize = 392;
/// Offset of the first segment.
const QEMU_SEG_OFFSET: usize = 152;

impl QemuCpuState {
    /// Parses a QEMU note's descriptor. `None` for another version or a short one.
    pub fn parse(desc: &[u8]) -> Option<Self> {
        let version = u32_at(desc, 0)?;
        let size = u32_at(desc, 4)?;
        if version != QEMU_CPU_STATE_VERSION || desc.len() < QEMU_CPU_STATE_SIZE {
            return None;
        }
        let word = |i: usize| u64_at(desc, i.checked_mul(8)?.checked_add(8)?);
        let mut gpr = [0u64; 16];
        for (i, r) in gpr.iter_mut().enumerate() {
            *r = word(i)?;
        }
        let mut segments = [QemuSegment::default(); 10];
        for (i, s) in segments.iter_mut().enumerate() {
            let at = i.checked_mul(24)?.checked_add(QEMU_SEG_OFFSET)?;
            *s = QemuSegment {
                selector: u32_at(desc, at)?,
                limit: u32_at(desc, at.checked_add(4)?)?,
                flags: u32_at(desc, at.checked_add(8)?)?,
                base: u64_at(desc, at.checked_add(16)?)?,
            };
        }
        let mut cr = [0u64; 5];
        for (i, c) in cr.iter_mut().enumerate() {
            *c = u64_at(desc, i.checked_mul(8)?.checked_add(QEMU_CR_OFFSET)?)?;
        }
        let kernel_gs_base = usize::try_from(size)
            .ok()
            .filter(|&s| s >= QEMU_CPU_STATE_SIZE.saturating_add(8))
            .and_then(|_| u64_at(desc, QEMU_CPU_STATE_SIZE));
        Some(Self {
            version,
            size,
            gpr,
            rip: word(16)?,
            rflags: word(17)?,
            segments,
            cr,
            kernel_gs_base,
        })
    }

    /// CR3: the page-table root (with PCID and, under PTI, the user-half bit).
    pub fn cr3(&self) -> u64 {
        self.cr[3]
    }

    /// CR4 (bit 12, LA57, is 5-level paging).
    pub fn cr4(&self) -> u64 {
        self.cr[4]
    }
}

/// An `NT_PRSTATUS` note (`struct elf_prstatus`): the process id field and the general
/// registers.
///
/// QEMU stores the vCPU's index plus one in `pid`; kdump the crashed task's pid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrStatus {
    /// `pr_pid`.
    pub pid: u32,
    /// `pr_reg`, one word per register in the architecture's `user_regs_struct` order:
    /// on x86_64 `r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
    /// orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs`; on aarch64
    /// `x0..x30, sp, pc, pstate`. 32-bit registers (i386) are zero-extended.
    pub regs: Vec<u64>,
}

impl PrStatus {
    /// Parses an `NT_PRSTATUS` descriptor of a core for `machine` (`e_machine`), 64-bit
    /// (`ELFCLASS64` layout of `struct elf_prstatus`) unless `machine` is i386. `None`
    /// when the descriptor is too short for the fixed part.
    pub fn parse(desc: &[u8], machine: u16) -> Option<Self> {
        // pid offset, pr_reg offset, register width: the fields before pr_reg are
        // `long`-sized, so the layout follows the register width.
        let (pid_at, reg_at, width) = if machine == goblin::elf::header::EM_386 {
            (24usize, 72usize, 4usize)
        } else {
            (32, 112, 8)
        };
        let pid = u32_at(desc, pid_at)?;
        // `pr_reg` is followed by `int pr_fpvalid`, padded to the register width.
        let regs_end = desc.len().checked_sub(width)?;
        let regs_bytes = desc.get(reg_at..regs_end).unwrap_or_default();
        let regs = regs_bytes
            .chunks_exact(width)
            .map(|c| match *c {
                [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                _ => 0,
            })
            .collect();
        Some(Self { pid, regs })
    }
}

/// What an ELF core says about one vCPU. QEMU writes one `NT_PRSTATUS` note per vCPU, then
/// one `"QEMU"` note per vCPU, both in vCPU order; the n-th of each describe vCPU n.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vcpu {
    /// The vCPU's position among the notes (0-based).
    pub index: usize,
    /// Its `NT_PRSTATUS` note.
    pub prstatus: Option<PrStatus>,
    /// Its QEMU CPU-state note (x86 QEMU cores only).
    pub qemu: Option<QemuCpuState>,
}

impl Vcpu {
    /// CR3, when the core has QEMU's CPU-state note.
    pub fn cr3(&self) -> Option<u64> {
        self.qemu.map(|q| q.cr3())
    }

    /// CR4, when the core has QEMU's CPU-state note.
    pub fn cr4(&self) -> Option<u64> {
        self.qemu.map(|q| q.cr4())
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    b.get(at..end)?.try_into().ok().map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    b.get(at..end)?.try_into().ok().map(u64::from_le_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A version-1 `QEMUCPUState` with recognizable values: register i = 0x100 + i,
    /// segment i selector 0x10 * i and base 0x1000 * i, `cr[i]` = 0xc0 + i unless given.
    pub(crate) fn qemu_note_desc(cr3: u64, cr4: u64, kernel_gs_base: Option<u64>) -> Vec<u8> {
        let mut d = Vec::new();
        let size = if kernel_gs_base.is_some() {
            440u32
        } else {
            432
        };
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&size.to_le_bytes());
        for i in 0..18u64 {
            d.extend_from_slice(&(0x100 + i).to_le_bytes());
        }
        for i in 0..10u32 {
            d.extend_from_slice(&(0x10 * i).to_le_bytes());
            d.extend_from_slice(&0xffffu32.to_le_bytes());
            d.extend_from_slice(&0xa09bu32.to_le_bytes());
            d.extend_from_slice(&0u32.to_le_bytes());
            d.extend_from_slice(&(0x1000 * u64::from(i)).to_le_bytes());
        }
        for c in [0x8005_0033u64, 0xc2, 0xc3, cr3, cr4] {
            d.extend_from_slice(&c.to_le_bytes());
        }
        if let Some(g) = kernel_gs_base {
            d.extend_from_slice(&g.to_le_bytes());
        }
        d
    }

    /// An x86_64 `elf_prstatus` (336 bytes) with `pid` and register i = 0x200 + i.
    pub(crate) fn prstatus_desc(pid: u32) -> Vec<u8> {
        let mut d = vec![0u8; 336];
        d[32..36].copy_from_slice(&pid.to_le_bytes());
        for i in 0..27 {
            let at = 112 + 8 * i;
            d[at..at + 8].copy_from_slice(&(0x200 + i as u64).to_le_bytes());
        }
        d
    }

    #[test]
    fn qemu_cpu_state_fields() {
        let s = QemuCpuState::parse(&qemu_note_desc(0x1234_5000, 0x3406f0, None)).unwrap();
        assert_eq!((s.version, s.size), (1, 432));
        assert_eq!(s.gpr[0], 0x100); // rax
        assert_eq!(s.gpr[15], 0x10f); // r15
        assert_eq!((s.rip, s.rflags), (0x110, 0x111));
        assert_eq!(s.segments[0].selector, 0); // cs
        assert_eq!(s.segments[9].selector, 0x90); // idt
        assert_eq!(s.segments[8].base, 0x8000); // gdt
        assert_eq!(s.cr[0], 0x8005_0033);
        assert_eq!((s.cr3(), s.cr4()), (0x1234_5000, 0x3406f0));
        assert_eq!(s.kernel_gs_base, None);
        let t = QemuCpuState::parse(&qemu_note_desc(1, 2, Some(0xffff_8880_0000_0000))).unwrap();
        assert_eq!(t.kernel_gs_base, Some(0xffff_8880_0000_0000));
    }

    #[test]
    fn qemu_cpu_state_rejects_short_or_other_versions() {
        let d = qemu_note_desc(1, 2, None);
        assert!(QemuCpuState::parse(&d[..431]).is_none());
        assert!(QemuCpuState::parse(&[]).is_none());
        let mut v2 = d.clone();
        v2[0] = 2;
        assert!(QemuCpuState::parse(&v2).is_none());
    }

    #[test]
    fn prstatus_x86_64_and_i386() {
        let p = PrStatus::parse(&prstatus_desc(2), goblin::elf::header::EM_X86_64).unwrap();
        assert_eq!(p.pid, 2);
        assert_eq!(p.regs.len(), 27);
        assert_eq!(p.regs[16], 0x210); // rip
        assert!(PrStatus::parse(&[0u8; 20], goblin::elf::header::EM_X86_64).is_none());
        // i386: 144 bytes, pid at 24, 17 registers at 72.
        let mut d = vec![0u8; 144];
        d[24] = 5;
        d[72..76].copy_from_slice(&0xdeadu32.to_le_bytes());
        let p = PrStatus::parse(&d, goblin::elf::header::EM_386).unwrap();
        assert_eq!((p.pid, p.regs.len(), p.regs[0]), (5, 17, 0xdead));
    }
}
