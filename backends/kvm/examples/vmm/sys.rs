//! The example VMM's one `unsafe` call: registering its guest RAM with KVM.
#![allow(unsafe_code)]

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Registers every region of `mem` with `vm` as a memory slot (slot numbers in order).
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), kvm_ioctls::Error> {
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|_| kvm_ioctls::Error::new(libc::EFAULT))?;
        let region_desc = kvm_userspace_memory_region {
            slot: u32::try_from(slot).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: - `host .. host + len` is `mem`'s own mapping of the region, which
        //           `main` keeps alive until after the VM (and its vCPU) are dropped
        //         - the slot numbers are distinct and the guest ranges of a
        //           `GuestMemoryMmap` do not overlap
        unsafe { vm.set_user_memory_region(region_desc)? };
    }
    Ok(())
}
