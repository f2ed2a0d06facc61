//! Numbers written as hexadecimal text: addresses (`/proc/kallsyms`, VMCOREINFO, QEMU's
//! monitor) with [`parse_hex`], and byte strings (`01 02`, `0x0102`) with
//! [`parse_hex_bytes`].

use std::fmt;

/// The most digits a [`parse_hex`] number may have: 64 bits.
pub const MAX_HEX_DIGITS: usize = 16;

/// Why a hex text was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HexError {
    /// No digits: an empty text, `0x` alone, or no byte at all.
    Empty,
    /// More than [`MAX_HEX_DIGITS`] digits (leading zeros count): wider than a `u64`.
    TooLong {
        /// The number of digits.
        digits: usize,
    },
    /// A character that is not a hex digit (signs and whitespace included).
    NotHex {
        /// Its byte offset in the text given.
        at: usize,
    },
    /// A byte token with an odd number of digits (more than one).
    OddDigits {
        /// The byte offset of the token in the text given.
        at: usize,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no hex digits"),
            Self::TooLong { digits } => write!(
                f,
                "{digits} hex digits, more than the {MAX_HEX_DIGITS} of 64 bits"
            ),
            Self::NotHex { at } => write!(f, "not a hex digit at offset {at}"),
            Self::OddDigits { at } => {
                write!(f, "odd number of hex digits in the bytes at offset {at}")
            }
        }
    }
}

impl std::error::Error for HexError {}

/// `s` without a leading `0x` or `0X`, and the prefix's length.
fn strip_0x(s: &str) -> (&str, usize) {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(rest) => (rest, 2),
        None => (s, 0),
    }
}

/// The value of one ASCII hex digit.
fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(b.wrapping_sub(b'a').wrapping_add(10)),
        b'A'..=b'F' => Some(b.wrapping_sub(b'A').wrapping_add(10)),
        _ => None,
    }
}

/// A hexadecimal `u64`: digits in either case, with an optional `0x` or `0X` prefix, as
/// the kernel prints addresses (`ffffffff81000000`) and as people type them
/// (`0xffff888000000000`).
///
/// Nothing else is accepted: no surrounding whitespace (trim first), no sign, no `_`,
/// no empty text, and at most [`MAX_HEX_DIGITS`] digits. Never panics.
///
/// ```
/// use mapwalk::text::{parse_hex, HexError};
/// assert_eq!(parse_hex("ffffffff81000000"), Ok(0xffff_ffff_8100_0000));
/// assert_eq!(parse_hex("0x2A"), Ok(42));
/// assert_eq!(parse_hex("0x"), Err(HexError::Empty));
/// assert_eq!(parse_hex("+1"), Err(HexError::NotHex { at: 0 }));
/// assert_eq!(parse_hex("10000000000000000"), Err(HexError::TooLong { digits: 17 }));
/// ```
///
/// # Errors
/// [`HexError::Empty`], [`HexError::NotHex`] (the first offending character) or
/// [`HexError::TooLong`].
pub fn parse_hex(s: &str) -> Result<u64, HexError> {
    let (digits, prefix) = strip_0x(s);
    let mut value = 0u64;
    for (i, b) in digits.bytes().enumerate() {
        let d = digit(b).ok_or(HexError::NotHex {
            at: i.saturating_add(prefix),
        })?;
        value = value.wrapping_shl(4) | u64::from(d);
    }
    match digits.len() {
        0 => Err(HexError::Empty),
        n if n > MAX_HEX_DIGITS => Err(HexError::TooLong { digits: n }),
        _ => Ok(value),
    }
}

/// Bytes written in hex, as a user gives a map key or value: tokens separated by
/// whitespace or commas, each with an optional `0x` or `0X` and `_` between digits
/// anywhere. A one-digit token is one byte; a longer one is read two digits per byte,
/// in order (`0x0102` is `[1, 2]`), and must have an even number of digits.
///
/// ```
/// use mapwalk::text::{parse_hex_bytes, HexError};
/// assert_eq!(parse_hex_bytes("01 02, 0xff0A 7"), Ok(vec![1, 2, 0xff, 0x0a, 7]));
/// assert_eq!(parse_hex_bytes("dead_beef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
/// assert_eq!(parse_hex_bytes("012"), Err(HexError::OddDigits { at: 0 }));
/// assert_eq!(parse_hex_bytes(" , "), Err(HexError::Empty));
/// ```
///
/// # Errors
/// [`HexError::Empty`] when there is no byte or a token is `0x` alone,
/// [`HexError::NotHex`], or [`HexError::OddDigits`].
pub fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, HexError> {
    let sep = |c: char| c.is_whitespace() || c == ',';
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let tail = rest.trim_start_matches(sep);
        if tail.is_empty() {
            break;
        }
        let start = s.len().saturating_sub(tail.len());
        let (tok, after) = tail.split_at(tail.find(sep).unwrap_or(tail.len()));
        rest = after;
        let (digits, prefix) = strip_0x(tok);
        let mut nibbles = Vec::with_capacity(digits.len());
        for (i, b) in digits.bytes().enumerate() {
            if b == b'_' {
                continue;
            }
            nibbles.push(digit(b).ok_or(HexError::NotHex {
                at: start.saturating_add(prefix).saturating_add(i),
            })?);
        }
        match nibbles.as_slice() {
            [] => return Err(HexError::Empty),
            [one] => out.push(*one),
            n if n.len() % 2 != 0 => return Err(HexError::OddDigits { at: start }),
            n => out.extend(n.chunks_exact(2).map(|p| match p {
                [hi, lo] => hi.wrapping_shl(4) | lo,
                _ => 0,
            })),
        }
    }
    if out.is_empty() {
        return Err(HexError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_numbers() {
        assert_eq!(parse_hex("0"), Ok(0));
        assert_eq!(parse_hex("ffffffffad822000"), Ok(0xffff_ffff_ad82_2000));
        assert_eq!(parse_hex("FFFFFFFFFFFFFFFF"), Ok(u64::MAX));
        assert_eq!(parse_hex("0xdeadBEEF"), Ok(0xdead_beef));
        assert_eq!(parse_hex("0X10"), Ok(16));
        assert_eq!(parse_hex("0000000000000001"), Ok(1));
        assert_eq!(parse_hex("0x0000000000000001"), Ok(1));
        // `0x` is a prefix only once; `x` is not a digit.
        assert_eq!(parse_hex("0x0x1"), Err(HexError::NotHex { at: 3 }));
    }

    #[test]
    fn hex_rejects() {
        assert_eq!(parse_hex(""), Err(HexError::Empty));
        assert_eq!(parse_hex("0X"), Err(HexError::Empty));
        assert_eq!(parse_hex("-1"), Err(HexError::NotHex { at: 0 }));
        assert_eq!(parse_hex("+f"), Err(HexError::NotHex { at: 0 }));
        assert_eq!(parse_hex(" 1"), Err(HexError::NotHex { at: 0 }));
        assert_eq!(parse_hex("1 "), Err(HexError::NotHex { at: 1 }));
        assert_eq!(parse_hex("0x12g4"), Err(HexError::NotHex { at: 4 }));
        assert_eq!(parse_hex("1_000"), Err(HexError::NotHex { at: 1 }));
        assert_eq!(parse_hex("ffé"), Err(HexError::NotHex { at: 2 }));
        assert_eq!(
            parse_hex("00000000000000001"),
            Err(HexError::TooLong { digits: 17 })
        );
        assert_eq!(
            parse_hex(&"f".repeat(1000)),
            Err(HexError::TooLong { digits: 1000 })
        );
        // A bad character is reported before the length.
        assert_eq!(
            parse_hex(&format!("{}z", "f".repeat(20))),
            Err(HexError::NotHex { at: 20 })
        );
    }

    #[test]
    fn hex_bytes() {
        assert_eq!(parse_hex_bytes("01 02"), Ok(vec![1, 2]));
        assert_eq!(parse_hex_bytes("0x0102"), Ok(vec![1, 2]));
        assert_eq!(parse_hex_bytes("0102"), Ok(vec![1, 2]));
        assert_eq!(parse_hex_bytes("0aFF"), Ok(vec![10, 255]));
        assert_eq!(parse_hex_bytes("1,2,\t3\n"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_hex_bytes("0X_ab_cd_"), Ok(vec![0xab, 0xcd]));
        assert_eq!(parse_hex_bytes("f"), Ok(vec![0xf]));
        assert_eq!(parse_hex_bytes(&"ab".repeat(40)).map(|b| b.len()), Ok(40));
    }

    #[test]
    fn hex_bytes_rejects() {
        assert_eq!(parse_hex_bytes(""), Err(HexError::Empty));
        assert_eq!(parse_hex_bytes("0x"), Err(HexError::Empty));
        assert_eq!(parse_hex_bytes("01 __"), Err(HexError::Empty));
        assert_eq!(parse_hex_bytes("0g"), Err(HexError::NotHex { at: 1 }));
        assert_eq!(parse_hex_bytes("01 0xzz"), Err(HexError::NotHex { at: 5 }));
        assert_eq!(parse_hex_bytes("é 01"), Err(HexError::NotHex { at: 0 }));
        assert_eq!(parse_hex_bytes("01 é"), Err(HexError::NotHex { at: 3 }));
        assert_eq!(
            parse_hex_bytes("01  abc"),
            Err(HexError::OddDigits { at: 4 })
        );
        assert_eq!(parse_hex_bytes("-1"), Err(HexError::NotHex { at: 0 }));
        assert_eq!(
            HexError::OddDigits { at: 4 }.to_string(),
            "odd number of hex digits in the bytes at offset 4"
        );
    }
}
