//! What the guest's `/init` writes to its second serial port: sections of
//! `MAPWALK-BEGIN name` / content / `MAPWALK-END name byte-count`.

use super::{failed, Result};
use crate::kallsyms::SymbolTable;
use std::collections::HashMap;

/// The guest's own account of itself, the ground truth of the real-kernel tests.
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// Every section by name, exactly as the guest read it.
    pub sections: HashMap<String, String>,
    /// `/proc/kallsyms`, parsed.
    pub kallsyms: SymbolTable,
}

impl GuestReport {
    /// Parses the data port's output. Requires the sections `version`, `cmdline`,
    /// `iomem` and `kallsyms`, with addresses visible in the last.
    ///
    /// # Errors
    /// [`super::Error::Failed`] for a missing, truncated or malformed section.
    pub fn parse(text: &str) -> Result<Self> {
        let sections = parse_sections(text)?;
        for name in ["version", "cmdline", "iomem", "kallsyms"] {
            if !sections.contains_key(name) {
                return Err(failed(format!("guest report: no section {name:?}")));
            }
        }
        let kallsyms = SymbolTable::parse(&sections["kallsyms"])
            .map_err(|e| failed(format!("guest kallsyms: {e}")))?;
        if kallsyms.addresses_hidden() {
            return Err(failed("guest kallsyms: all addresses are zero"));
        }
        Ok(Self { sections, kallsyms })
    }

    /// A section's text.
    pub fn section(&self, name: &str) -> Option<&str> {
        self.sections.get(name).map(String::as_str)
    }

    /// `/proc/version` up to (not including) its newline.
    pub fn version(&self) -> &str {
        self.sections["version"].lines().next().unwrap_or("")
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> &str {
        self.sections["cmdline"].trim_end()
    }

    /// The `System RAM` ranges of `/proc/iomem`, as half-open `(start, end)` physical
    /// ranges.
    pub fn system_ram(&self) -> Vec<(u64, u64)> {
        self.iomem("System RAM")
    }

    /// The ranges of `/proc/iomem` named `name` (at any nesting level: `Kernel code`
    /// lies inside `System RAM`), half-open.
    pub fn iomem(&self, name: &str) -> Vec<(u64, u64)> {
        iomem_ranges(&self.sections["iomem"], name)
    }
}

/// The ranges of `/proc/iomem` text named `name`, half-open.
pub(crate) fn iomem_ranges(iomem: &str, name: &str) -> Vec<(u64, u64)> {
    iomem
        .lines()
        .map(str::trim_start)
        .filter_map(|l| {
            let (range, what) = l.split_once(" : ")?;
            if what.trim() != name {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            let lo = u64::from_str_radix(lo.trim(), 16).ok()?;
            let hi = u64::from_str_radix(hi.trim(), 16).ok()?;
            Some((lo, hi.checked_add(1)?))
        })
        .collect()
}

fn parse_sections(text: &str) -> Result<HashMap<String, String>> {
    const BEGIN: &str = "MAPWALK-BEGIN ";
    let mut sections = HashMap::new();
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        let (name, body) = after
            .split_once('\n')
            .ok_or_else(|| failed("guest report: truncated BEGIN line"))?;
        let end_marker = format!("MAPWALK-END {name} ");
        let end = body
            .find(&end_marker)
            .filter(|&e| e == 0 || body.as_bytes()[e - 1] == b'\n')
            .ok_or_else(|| failed(format!("guest report: section {name:?} has no END line")))?;
        let tail = &body[end + end_marker.len()..];
        let (count, next) = tail.split_once('\n').unwrap_or((tail, ""));
        let count: usize = count.trim().parse().map_err(|_| {
            failed(format!(
                "guest report: section {name:?}: bad count {count:?}"
            ))
        })?;
        let mut content = &body[..end];
        // The guest adds a newline before END when the content lacks one.
        if content.len() == count + 1 && content.ends_with('\n') {
            content = &content[..count];
        }
        if content.len() != count {
            return Err(failed(format!(
                "guest report: section {name:?} holds {} bytes, the guest wrote {count}",
                content.len()
            )));
        }
        sections.insert(name.to_owned(), content.to_owned());
        rest = next;
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section as the guest writes it.
    fn section(name: &str, content: &str) -> String {
        let nl = if content.ends_with('\n') { "" } else { "\n" };
        format!(
            "MAPWALK-BEGIN {name}\n{content}{nl}MAPWALK-END {name} {}\n",
            content.len()
        )
    }

    fn sample() -> String {
        [
            "junk before\n".to_owned(),
            section("version", "Linux version 6.1.0 (x@y) #1 SMP\n"),
            section("cmdline", "console=ttyS0 nokaslr\n"),
            section(
                "iomem",
                "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n\
                 00100000-1ffdffff : System RAM\n  01000000-01ffffff : Kernel code\n\
                 fd000000-fdffffff : PCI Bus 0000:00\n",
            ),
            section("cpu-possible", "0-1"),
            section(
                "kallsyms",
                "ffffffff81000000 T _text\nffffffff82000010 D phys_base\n",
            ),
        ]
        .concat()
    }

    #[test]
    fn parses_sections() {
        let r = GuestReport::parse(&sample()).unwrap();
        assert_eq!(r.version(), "Linux version 6.1.0 (x@y) #1 SMP");
        assert_eq!(r.cmdline(), "console=ttyS0 nokaslr");
        assert_eq!(r.section("cpu-possible"), Some("0-1"));
        assert_eq!(
            r.system_ram(),
            vec![(0x1000, 0x9fc00), (0x10_0000, 0x1ffe_0000)]
        );
        assert_eq!(r.iomem("Kernel code"), vec![(0x100_0000, 0x200_0000)]);
        assert_eq!(r.kallsyms.lookup("phys_base"), Some(0xffff_ffff_8200_0010));
    }

    #[test]
    fn rejects_truncated_or_missing_sections() {
        let good = sample();
        let short = good.replace("MAPWALK-END kallsyms 54", "MAPWALK-END kallsyms 60");
        assert!(GuestReport::parse(&short)
            .unwrap_err()
            .to_string()
            .contains("holds 54 bytes"));
        let cut = &good[..good.find("MAPWALK-END kallsyms").unwrap()];
        assert!(GuestReport::parse(cut)
            .unwrap_err()
            .to_string()
            .contains("no END"));
        // An END marker counts only at the start of a line.
        let glued = good.replace("0-1\nMAPWALK-END", "0-1MAPWALK-END");
        assert!(GuestReport::parse(&glued).is_err());
        let no_iomem = good
            .replace("BEGIN iomem", "BEGIN iomem2")
            .replace("END iomem", "END iomem2");
        assert!(GuestReport::parse(&no_iomem)
            .unwrap_err()
            .to_string()
            .contains("\"iomem\""));
        let hidden = good
            .replace("ffffffff81000000", "0000000000000000")
            .replace("ffffffff82000010", "0000000000000000");
        assert!(GuestReport::parse(&hidden)
            .unwrap_err()
            .to_string()
            .contains("zero"));
    }
}
