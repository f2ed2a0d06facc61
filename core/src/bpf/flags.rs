//! `map_flags`: the `BPF_F_*` flags a map was created with.

bitflags::bitflags! {
    /// A map's `map_flags` (`BPF_F_*` of `include/uapi/linux/bpf.h`).
    ///
    /// Bits this crate does not name are kept: build from raw bits with
    /// [`from_bits_retain`](Self::from_bits_retain), and [`bits`](Self::bits) gives back
    /// exactly what the kernel holds.
    #[repr(transparent)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct MapFlags: u32 {
        /// `BPF_F_NO_PREALLOC`: hash elements are allocated on update.
        const NO_PREALLOC = 1 << 0;
        /// `BPF_F_NO_COMMON_LRU`: one LRU list per CPU.
        const NO_COMMON_LRU = 1 << 1;
        /// `BPF_F_NUMA_NODE`: `numa_node` is honoured.
        const NUMA_NODE = 1 << 2;
        /// `BPF_F_RDONLY`: read-only from user space.
        const RDONLY = 1 << 3;
        /// `BPF_F_WRONLY`: write-only from user space.
        const WRONLY = 1 << 4;
        /// `BPF_F_STACK_BUILD_ID`: STACK_TRACE entries hold build ids.
        const STACK_BUILD_ID = 1 << 5;
        /// `BPF_F_ZERO_SEED`: hash seed zero.
        const ZERO_SEED = 1 << 6;
        /// `BPF_F_RDONLY_PROG`: read-only from programs.
        const RDONLY_PROG = 1 << 7;
        /// `BPF_F_WRONLY_PROG`: write-only from programs.
        const WRONLY_PROG = 1 << 8;
        /// `BPF_F_CLONE`: storage is cloned with its socket.
        const CLONE = 1 << 9;
        /// `BPF_F_MMAPABLE`: an ARRAY whose (page-aligned) values can be mmap'd.
        const MMAPABLE = 1 << 10;
        /// `BPF_F_PRESERVE_ELEMS`: perf event array entries outlive their file.
        const PRESERVE_ELEMS = 1 << 11;
        /// `BPF_F_INNER_MAP`: an inner map whose `max_entries` may vary.
        const INNER_MAP = 1 << 12;
        /// `BPF_F_LINK`: a STRUCT_OPS map attached through a link.
        const LINK = 1 << 13;
        /// `BPF_F_PATH_FD`: a path relative to a directory descriptor.
        const PATH_FD = 1 << 14;
        /// `BPF_F_VTYPE_BTF_OBJ_FD`: the value type is in a module's BTF.
        const VTYPE_BTF_OBJ_FD = 1 << 15;
        /// `BPF_F_TOKEN_FD`: created through a BPF token.
        const TOKEN_FD = 1 << 16;
        /// `BPF_F_SEGV_ON_FAULT`: an arena fault is a SIGSEGV.
        const SEGV_ON_FAULT = 1 << 17;
        /// `BPF_F_NO_USER_CONV`: arena pointers are not converted.
        const NO_USER_CONV = 1 << 18;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_kept() {
        let f = MapFlags::from_bits_retain(0x8000_0401);
        assert!(f.contains(MapFlags::MMAPABLE | MapFlags::NO_PREALLOC));
        assert_eq!(f.bits(), 0x8000_0401);
        assert_eq!((f & MapFlags::all()).bits(), 0x401);
        assert_eq!(MapFlags::MMAPABLE.bits(), crate::bpf::BPF_F_MMAPABLE);
        assert_eq!(MapFlags::NO_USER_CONV.bits(), 0x4_0000);
    }
}
