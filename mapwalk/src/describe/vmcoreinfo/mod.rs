//! VMCOREINFO: the kernel's `KEY=VALUE` description of itself for dump tools.
//!
//! [`Vmcoreinfo::parse`] reads the text, wherever it comes from: an ELF core's
//! `VMCOREINFO` note ([`mapwalk_file::ElfCore::vmcoreinfo_note`]) or guest memory, where
//! [`find_vmcoreinfo`] looks for it over any [`PhysRead`](mapwalk_core::PhysRead).

mod search;

use std::fmt;

pub use search::{
    find_vmcoreinfo, find_vmcoreinfo_with, FindMethod, FindOptions, FoundVmcoreinfo, MAX_SEARCH_LEN,
};

/// Parsed VMCOREINFO text: `KEY=VALUE` lines such as `OSRELEASE=6.1.0-56-cloud-amd64`,
/// `PAGESIZE=4096`, `KERNELOFFSET=2c000000`, `SYMBOL(init_top_pgt)=ffffffff...`,
/// `NUMBER(phys_base)=...`, `OFFSET(page.flags)=0`, `SIZE(page)=64`.
///
/// ```
/// use mapwalk::describe::vmcoreinfo::Vmcoreinfo;
/// let info = Vmcoreinfo::parse(b"OSRELEASE=6.12.1\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0c000\nNUMBER(phys_base)=-2097152\nKERNELOFFSET=1e000000\n\0junk");
/// assert_eq!(info.osrelease(), Some("6.12.1"));
/// assert_eq!(info.page_size(), Some(4096));
/// assert_eq!(info.symbol("swapper_pg_dir"), Some(0xffff_ffff_82a0_c000));
/// assert_eq!(info.number("phys_base"), Some(-2097152i64 as u64));
/// assert_eq!(info.kernel_offset(), Some(0x1e00_0000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vmcoreinfo {
    entries: Vec<(String, String)>,
}

/// The most text a VMCOREINFO can hold (`VMCOREINFO_BYTES` is one page; the largest
/// kernel page size is 64 KiB).
pub const VMCOREINFO_MAX: usize = 64 * 1024;

impl Vmcoreinfo {
    /// Parses the text up to the first NUL byte (or [`VMCOREINFO_MAX`] bytes). Lines
    /// without `=` are skipped; bytes that are not UTF-8 are replaced.
    pub fn parse(bytes: &[u8]) -> Self {
        let bytes = bytes.get(..VMCOREINFO_MAX).unwrap_or(bytes);
        let end = memchr::memchr(0, bytes).unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(bytes.get(..end).unwrap_or_default());
        let entries = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { entries }
    }

    /// The value of the first line with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every `(key, value)`, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `OSRELEASE`: the kernel release (`uname -r`).
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `PAGESIZE`, in bytes.
    pub fn page_size(&self) -> Option<u64> {
        self.get("PAGESIZE").and_then(parse_dec)
    }

    /// `KERNELOFFSET`: the KASLR slide of the kernel image (hex without `0x`).
    pub fn kernel_offset(&self) -> Option<u64> {
        self.get("KERNELOFFSET").and_then(parse_hex)
    }

    /// `SYMBOL(name)`: a symbol's address (hex, as the kernel prints it without `0x`).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.get(&format!("SYMBOL({name})")).and_then(parse_hex)
    }

    /// `NUMBER(name)`: decimal (the kernel prints a `long`, so negative values occur and
    /// are returned as their 64-bit two's complement), or hex with `0x` (arm64 prints
    /// some that way).
    pub fn number(&self, name: &str) -> Option<u64> {
        self.get(&format!("NUMBER({name})")).and_then(parse_number)
    }

    /// `OFFSET(name)`: a member's offset (`OFFSET(page.flags)`), decimal.
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.get(&format!("OFFSET({name})")).and_then(parse_dec)
    }

    /// `SIZE(name)`: a type's size, decimal.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.get(&format!("SIZE({name})")).and_then(parse_dec)
    }

    /// `LENGTH(name)`: an array's length, decimal.
    pub fn length(&self, name: &str) -> Option<u64> {
        self.get(&format!("LENGTH({name})")).and_then(parse_dec)
    }

    /// Whether this is plausibly the kernel's VMCOREINFO rather than bytes that happen to
    /// contain `OSRELEASE=`: it starts with `OSRELEASE=` and a release string (which the
    /// `OSRELEASE=%s` format in `.rodata` does not) and has a power-of-two `PAGESIZE`.
    pub fn is_plausible(&self) -> bool {
        let release_ok = self.entries.first().is_some_and(|(k, v)| {
            k == "OSRELEASE"
                && (1..=64).contains(&v.len())
                && v.bytes().all(is_release_byte)
                && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        });
        release_ok && self.page_size().is_some_and(u64::is_power_of_two)
    }
}

impl fmt::Display for Vmcoreinfo {
    /// The text form: one `KEY=VALUE` line each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.entries {
            writeln!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

fn is_release_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~')
}

fn parse_dec(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// Hex with or without `0x`, as [`crate::text::parse_hex`] reads it, after trimming.
fn parse_hex(s: &str) -> Option<u64> {
    crate::text::parse_hex(s.trim()).ok()
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.starts_with("0x") {
        return crate::text::parse_hex(s).ok();
    }
    match s.strip_prefix('-') {
        Some(neg) => neg.parse::<u64>().ok().map(u64::wrapping_neg),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const TEXT: &[u8] = b"OSRELEASE=6.12.38+deb13-cloud-amd64\nBUILD-ID=3b43fad5\nPAGESIZE=4096\nKERNELOFFSET=2ac00000\nNUMBER(phys_base)=-339738624\nSYMBOL(init_top_pgt)=ffffffffad822000\nNUMBER(kimage_voffset)=0xffff800008000000\nOFFSET(page.flags)=0\nSIZE(page)=64\nLENGTH(free_area)=11\nCRASHTIME=\n";
    /// What `.rodata` holds: the format strings.
    pub(super) const RODATA: &[u8] =
        b"\0VMCOREINFO\0OSRELEASE=%s\n\0BUILD-ID=%20phN\n\0PAGESIZE=%ld\n\0";

    #[test]
    fn parses_keys_and_numbers() {
        let v = Vmcoreinfo::parse(TEXT);
        assert_eq!(v.osrelease(), Some("6.12.38+deb13-cloud-amd64"));
        assert_eq!(v.page_size(), Some(4096));
        assert_eq!(v.kernel_offset(), Some(0x2ac0_0000));
        assert_eq!(v.number("phys_base"), Some((-339_738_624i64) as u64));
        assert_eq!(v.number("kimage_voffset"), Some(0xffff_8000_0800_0000));
        assert_eq!(v.symbol("init_top_pgt"), Some(0xffff_ffff_ad82_2000));
        assert_eq!(v.offset("page.flags"), Some(0));
        assert_eq!(v.size("page"), Some(64));
        assert_eq!(v.length("free_area"), Some(11));
        assert_eq!(v.get("CRASHTIME"), Some(""));
        assert_eq!(v.get("NOPE"), None);
        assert_eq!(v.symbol("nope"), None);
        assert_eq!(v.len(), 11);
        assert!(v.is_plausible());
        assert_eq!(Vmcoreinfo::parse(v.to_string().as_bytes()), v);
        assert_eq!(
            v.entries().next(),
            Some(("OSRELEASE", "6.12.38+deb13-cloud-amd64"))
        );
    }

    #[test]
    fn parse_stops_at_nul_and_survives_junk() {
        let v = Vmcoreinfo::parse(
            b"OSRELEASE=1\nno equals sign\n=novalue\nPAGESIZE=4096\0PAGESIZE=1\n",
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v.page_size(), Some(4096));
        let v = Vmcoreinfo::parse(b"OSRELEASE=\xff\xfe\nPAGESIZE=x\nSYMBOL(a)=zz\nNUMBER(b)=-\n");
        assert_eq!(v.osrelease(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(
            (v.page_size(), v.symbol("a"), v.number("b")),
            (None, None, None)
        );
        assert!(!v.is_plausible());
        assert!(Vmcoreinfo::parse(b"").is_empty());
        // The format strings of .rodata are not a VMCOREINFO.
        assert!(!Vmcoreinfo::parse(&RODATA[12..]).is_plausible());
        // Neither is a page size that is not a power of two, or a release that is not one.
        assert!(!Vmcoreinfo::parse(b"OSRELEASE=6.1\nPAGESIZE=4095\n").is_plausible());
        assert!(!Vmcoreinfo::parse(b"OSRELEASE=%s x\nPAGESIZE=4096\n").is_plausible());
        assert!(!Vmcoreinfo::parse(b"PAGESIZE=4096\nOSRELEASE=6.1\n").is_plausible());
    }

    #[test]
    fn hex_values_are_strict() {
        let v = Vmcoreinfo::parse(
            b"KERNELOFFSET= 0x1e000000\r\nSYMBOL(a)=+ff\nSYMBOL(b)=1ffffffff81000000\n\
              SYMBOL(c)=0x\nNUMBER(d)=0x-1\nNUMBER(e)=0XfF\nNUMBER(f)=-0\n",
        );
        assert_eq!(v.kernel_offset(), Some(0x1e00_0000));
        assert_eq!(
            (v.symbol("a"), v.symbol("b"), v.symbol("c")),
            (None, None, None)
        );
        assert_eq!(v.number("d"), None);
        // Only a lower-case `0x` marks a hex NUMBER, as the kernel prints it.
        assert_eq!(v.number("e"), None);
        assert_eq!(v.number("f"), Some(0));
    }
}
