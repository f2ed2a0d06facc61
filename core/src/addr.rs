//! Typed addresses.
//!
//! Guest-physical and kernel-virtual addresses are different kinds of number; mixing them
//! up is the classic bug of memory introspection. [`Pa`] and [`Kva`] keep them apart.
//! Arithmetic on either is checked: values read from the guest can be anything.

use core::fmt;

macro_rules! address {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// Address zero: the null pointer, or no address at all.
            pub const NULL: Self = Self(0);

            /// Wraps a raw address.
            #[inline]
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw address.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + off`, or `None` on overflow.
            #[inline]
            pub const fn checked_add(self, off: u64) -> Option<Self> {
                match self.0.checked_add(off) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self - off`, or `None` on underflow.
            #[inline]
            pub const fn checked_sub(self, off: u64) -> Option<Self> {
                match self.0.checked_sub(off) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The distance from `base` up to `self`, or `None` when `self < base`.
            #[inline]
            pub const fn offset_from(self, base: Self) -> Option<u64> {
                self.0.checked_sub(base.0)
            }

            /// The offset of this address inside a page of `1 << shift` bytes.
            #[inline]
            pub const fn page_offset(self, shift: u32) -> u64 {
                self.0 & low_mask(shift)
            }

            /// This address rounded down to a page of `1 << shift` bytes.
            #[inline]
            pub const fn page_base(self, shift: u32) -> Self {
                Self(self.0 & !low_mask(shift))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address! {
    /// A guest-physical address: what a memory backend ([`crate::PhysRead`]) understands.
    Pa
}

address! {
    /// A kernel-virtual address: a pointer as the guest kernel sees it.
    Kva
}

/// A mask of the low `shift` bits (`shift` of 64 or more gives all ones).
#[inline]
pub const fn low_mask(shift: u32) -> u64 {
    if shift >= 64 {
        u64::MAX
    } else {
        (1u64 << shift).wrapping_sub(1)
    }
}

/// `value` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.wrapping_sub(1);
    match value.checked_add(mask) {
        Some(v) => Some(v & !mask),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Pa(u64::MAX).checked_add(1), None);
        assert_eq!(Pa(10).checked_add(5), Some(Pa(15)));
        assert_eq!(Kva(3).checked_sub(4), None);
        assert_eq!(Kva(0x1234).offset_from(Kva(0x1000)), Some(0x234));
        assert_eq!(Kva(0x1000).offset_from(Kva(0x1234)), None);
    }

    #[test]
    fn pages_and_alignment() {
        assert_eq!(Pa(0x12345).page_offset(12), 0x345);
        assert_eq!(Pa(0x12345).page_base(12), Pa(0x12000));
        assert_eq!(low_mask(64), u64::MAX);
        assert_eq!(low_mask(0), 0);
        assert_eq!(align_up(13, 8), Some(16));
        assert_eq!(align_up(16, 8), Some(16));
        assert_eq!(align_up(u64::MAX, 8), None);
    }

    #[test]
    fn formatting_is_hex() {
        extern crate std;
        use std::format;
        assert_eq!(
            format!("{}", Kva(0xffff_8880_0000_1000)),
            "0xffff888000001000"
        );
        assert_eq!(format!("{:?}", Pa(0x1000)), "Pa(0x1000)");
    }
}
