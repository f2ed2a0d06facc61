//! A vCPU's paging state: where the guest kernel's page tables are and how they are
//! walked, read from KVM (`KVM_GET_SREGS` on x86_64, `KVM_GET_ONE_REG` on aarch64)
//! through `kvm-ioctls`.

/// The x86_64 control registers a page walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct X86PagingState {
    /// CR0 (PG, bit 31: paging on).
    pub cr0: u64,
    /// CR3: the page-table root.
    pub cr3: u64,
    /// CR4 (LA57, bit 12: 5-level paging).
    pub cr4: u64,
    /// EFER (LMA, bit 10: long mode active).
    pub efer: u64,
}

impl X86PagingState {
    /// CR0.PG.
    pub const CR0_PG: u64 = 1 << 31;
    /// CR4.LA57.
    pub const CR4_LA57: u64 = 1 << 12;
    /// EFER.LMA.
    pub const EFER_LMA: u64 = 1 << 10;
    /// The bits of CR3 that hold the root's physical address (bits 12..51; the low bits
    /// are PCID or flags, bit 63 is the no-flush hint).
    pub const CR3_ROOT_MASK: u64 = 0x000f_ffff_ffff_f000;

    /// The page-table root's physical address.
    pub fn root(&self) -> u64 {
        self.cr3 & Self::CR3_ROOT_MASK
    }

    /// Whether the vCPU is in long mode with paging on (what a 64-bit kernel runs in).
    pub fn is_long_mode(&self) -> bool {
        self.cr0 & Self::CR0_PG != 0 && self.efer & Self::EFER_LMA != 0
    }

    /// Whether 5-level paging is on.
    pub fn is_five_level(&self) -> bool {
        self.cr4 & Self::CR4_LA57 != 0
    }

    /// The state in KVM's special registers.
    #[cfg(all(feature = "kvm", target_arch = "x86_64"))]
    pub fn from_sregs(s: &kvm_bindings::kvm_sregs) -> Self {
        Self {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }

    /// Reads the state of `vcpu` (`KVM_GET_SREGS`). Call it while the vCPU is not
    /// running (from its own thread, or with the VM paused).
    ///
    /// # Errors
    /// KVM's.
    #[cfg(all(feature = "kvm", target_arch = "x86_64"))]
    pub fn from_vcpu(vcpu: &kvm_ioctls::VcpuFd) -> Result<Self, kvm_ioctls::Error> {
        vcpu.get_sregs().map(|s| Self::from_sregs(&s))
    }
}

/// The aarch64 system registers a walk of the kernel's half of the address space needs.
/// The `mapwalk` library takes `ttbr1_el1` as it is (`KernelSpec::ttbr1`), as the root
/// to walk once it checked that it maps the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arm64PagingState {
    /// TTBR1_EL1: the root of the kernel's (upper) half.
    pub ttbr1_el1: u64,
    /// TCR_EL1: granule (TG1), size (T1SZ) of that half.
    pub tcr_el1: u64,
}

impl Arm64PagingState {
    /// The `KVM_GET_ONE_REG` id of TTBR1_EL1 (op0 3, op1 0, CRn 2, CRm 0, op2 1).
    pub const TTBR1_EL1: u64 = sysreg(3, 0, 2, 0, 1);
    /// The `KVM_GET_ONE_REG` id of TCR_EL1 (op0 3, op1 0, CRn 2, CRm 0, op2 2).
    pub const TCR_EL1: u64 = sysreg(3, 0, 2, 0, 2);

    /// The page-table root's physical address (bits 1..47 of TTBR1, as BADDR for a
    /// 48-bit output; the ASID in bits 48..63 and CnP in bit 0 are not address).
    pub fn root(&self) -> u64 {
        self.ttbr1_el1 & 0x0000_ffff_ffff_fffe
    }

    /// The granule of the kernel's half in bytes, from TCR_EL1.TG1 (bits 30..31):
    /// 4 KiB, 16 KiB or 64 KiB; `None` for the reserved encoding.
    pub fn granule(&self) -> Option<u64> {
        match (self.tcr_el1 >> 30) & 3 {
            0b10 => Some(4 << 10),
            0b01 => Some(16 << 10),
            0b11 => Some(64 << 10),
            _ => None,
        }
    }

    /// The size of the kernel's half in address bits: 64 - TCR_EL1.T1SZ (bits 16..21).
    pub fn va_bits(&self) -> u32 {
        64u32.saturating_sub(u32::try_from((self.tcr_el1 >> 16) & 0x3f).unwrap_or(64))
    }

    /// Reads the state of `vcpu` (`KVM_GET_ONE_REG` twice).
    ///
    /// # Errors
    /// KVM's.
    #[cfg(all(feature = "kvm", target_arch = "aarch64"))]
    pub fn from_vcpu(vcpu: &kvm_ioctls::VcpuFd) -> Result<Self, kvm_ioctls::Error> {
        let read = |id: u64| -> Result<u64, kvm_ioctls::Error> {
            let mut v = [0u8; 8];
            vcpu.get_one_reg(id, &mut v)?;
            Ok(u64::from_le_bytes(v))
        };
        Ok(Self {
            ttbr1_el1: read(Self::TTBR1_EL1)?,
            tcr_el1: read(Self::TCR_EL1)?,
        })
    }
}

/// `KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | encoding`, as the kernel's
/// `ARM64_SYS_REG(op0, op1, crn, crm, op2)` makes it.
const fn sysreg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    const KVM_REG_ARM64: u64 = 0x6000_0000_0000_0000;
    const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
    const KVM_REG_ARM64_SYSREG: u64 = 0x0013 << 16;
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG
        | (op0 << 14)
        | (op1 << 11)
        | (crn << 7)
        | (crm << 3)
        | op2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_state_bits() {
        let s = X86PagingState {
            cr0: 0x8005_0033,
            cr3: 0x8000_0000_0123_4805,
            cr4: 0x0037_06f0 | X86PagingState::CR4_LA57,
            efer: 0xd01,
        };
        assert_eq!(s.root(), 0x0123_4000);
        assert!(s.is_long_mode());
        assert!(s.is_five_level());
        assert!(!X86PagingState::default().is_long_mode());
    }

    #[test]
    fn arm64_register_ids_and_fields() {
        // The ids KVM documents for these registers (api.rst, ARM64 system registers).
        assert_eq!(Arm64PagingState::TTBR1_EL1, 0x6030_0000_0013_c101);
        assert_eq!(Arm64PagingState::TCR_EL1, 0x6030_0000_0013_c102);
        // A 48-bit, 4 KiB-granule kernel half (TG1 = 0b10, T1SZ = 16).
        let s = Arm64PagingState {
            ttbr1_el1: 0x0001_0000_4123_5001,
            tcr_el1: (0b10 << 30) | (16 << 16),
        };
        assert_eq!(s.root(), 0x4123_5000);
        assert_eq!(s.granule(), Some(4096));
        assert_eq!(s.va_bits(), 48);
        let s16 = Arm64PagingState {
            ttbr1_el1: 0,
            tcr_el1: (0b01 << 30) | (17 << 16),
        };
        assert_eq!((s16.granule(), s16.va_bits()), (Some(16384), 47));
    }
}
