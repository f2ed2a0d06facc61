//! `enum bpf_prog_type` as an open set.

use core::fmt;

/// A BPF program type (`enum bpf_prog_type`).
///
/// An open newtype, like [`crate::MapType`]: a kernel newer than this crate may have
/// program types it does not know, and those are data to report.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProgType(pub u32);

macro_rules! prog_types {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl ProgType {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The name `bpftool` prints for this type (`"socket_filter"`, `"xdp"`, ...),
            /// or `None` for a type this crate does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

prog_types! {
    /// `BPF_PROG_TYPE_UNSPEC`.
    UNSPEC = 0, "unspec";
    /// `BPF_PROG_TYPE_SOCKET_FILTER`.
    SOCKET_FILTER = 1, "socket_filter";
    /// `BPF_PROG_TYPE_KPROBE`.
    KPROBE = 2, "kprobe";
    /// `BPF_PROG_TYPE_SCHED_CLS`.
    SCHED_CLS = 3, "sched_cls";
    /// `BPF_PROG_TYPE_SCHED_ACT`.
    SCHED_ACT = 4, "sched_act";
    /// `BPF_PROG_TYPE_TRACEPOINT`.
    TRACEPOINT = 5, "tracepoint";
    /// `BPF_PROG_TYPE_XDP`.
    XDP = 6, "xdp";
    /// `BPF_PROG_TYPE_PERF_EVENT`.
    PERF_EVENT = 7, "perf_event";
    /// `BPF_PROG_TYPE_CGROUP_SKB`.
    CGROUP_SKB = 8, "cgroup_skb";
    /// `BPF_PROG_TYPE_CGROUP_SOCK`.
    CGROUP_SOCK = 9, "cgroup_sock";
    /// `BPF_PROG_TYPE_LWT_IN`.
    LWT_IN = 10, "lwt_in";
    /// `BPF_PROG_TYPE_LWT_OUT`.
    LWT_OUT = 11, "lwt_out";
    /// `BPF_PROG_TYPE_LWT_XMIT`.
    LWT_XMIT = 12, "lwt_xmit";
    /// `BPF_PROG_TYPE_SOCK_OPS`.
    SOCK_OPS = 13, "sock_ops";
    /// `BPF_PROG_TYPE_SK_SKB`.
    SK_SKB = 14, "sk_skb";
    /// `BPF_PROG_TYPE_CGROUP_DEVICE`.
    CGROUP_DEVICE = 15, "cgroup_device";
    /// `BPF_PROG_TYPE_SK_MSG`.
    SK_MSG = 16, "sk_msg";
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`.
    RAW_TRACEPOINT = 17, "raw_tracepoint";
    /// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`.
    CGROUP_SOCK_ADDR = 18, "cgroup_sock_addr";
    /// `BPF_PROG_TYPE_LWT_SEG6LOCAL`.
    LWT_SEG6LOCAL = 19, "lwt_seg6local";
    /// `BPF_PROG_TYPE_LIRC_MODE2`.
    LIRC_MODE2 = 20, "lirc_mode2";
    /// `BPF_PROG_TYPE_SK_REUSEPORT`.
    SK_REUSEPORT = 21, "sk_reuseport";
    /// `BPF_PROG_TYPE_FLOW_DISSECTOR`.
    FLOW_DISSECTOR = 22, "flow_dissector";
    /// `BPF_PROG_TYPE_CGROUP_SYSCTL`.
    CGROUP_SYSCTL = 23, "cgroup_sysctl";
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE`.
    RAW_TRACEPOINT_WRITABLE = 24, "raw_tracepoint_writable";
    /// `BPF_PROG_TYPE_CGROUP_SOCKOPT`.
    CGROUP_SOCKOPT = 25, "cgroup_sockopt";
    /// `BPF_PROG_TYPE_TRACING`.
    TRACING = 26, "tracing";
    /// `BPF_PROG_TYPE_STRUCT_OPS`.
    STRUCT_OPS = 27, "struct_ops";
    /// `BPF_PROG_TYPE_EXT`.
    EXT = 28, "ext";
    /// `BPF_PROG_TYPE_LSM`.
    LSM = 29, "lsm";
    /// `BPF_PROG_TYPE_SK_LOOKUP`.
    SK_LOOKUP = 30, "sk_lookup";
    /// `BPF_PROG_TYPE_SYSCALL`.
    SYSCALL = 31, "syscall";
    /// `BPF_PROG_TYPE_NETFILTER`.
    NETFILTER = 32, "netfilter";
}

impl fmt::Debug for ProgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ProgType({})", self.0),
        }
    }
}

impl fmt::Display for ProgType {
    /// The bpftool name, or the number for an unknown type (as bpftool prints it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.pad(n),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bpftools() {
        assert_eq!(ProgType::SOCKET_FILTER.name(), Some("socket_filter"));
        assert_eq!(ProgType(32).name(), Some("netfilter"));
        assert_eq!(ProgType(33).name(), None);
        assert_eq!(alloc::format!("{}", ProgType(99)), "99");
        assert_eq!(alloc::format!("{:?}", ProgType::XDP), "xdp");
    }
}
