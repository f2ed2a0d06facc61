//! What the guest's `/init` writes to its second serial port: sections of
//! `MAPWALK-BEGIN name` / content / `MAPWALK-END name byte-count`.

use crate::{failed, Result};
use mapwalk::kallsyms::SymbolTable;
use mapwalk::text::{parse_hex, parse_hex_bytes};
use std::collections::{BTreeMap, HashMap};

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

/// A BPF map the guest's `/init` created, as it reported it (section `bpf-maps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestMap {
    /// Its id.
    pub id: u32,
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// Its name.
    pub name: String,
    /// Key size.
    pub key_size: u32,
    /// Value size.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// For ARRAY maps: every key's value, as the kernel returned it to a lookup.
    pub values: BTreeMap<u32, Vec<u8>>,
    /// For HASH and LRU_HASH maps (`HVAL` lines): every key the map held and its value,
    /// as the kernel returned them (`BPF_MAP_GET_NEXT_KEY`, then a lookup).
    pub hash_values: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For per-CPU maps (`PVAL` lines): every key, then every possible CPU's copy
    /// (`value_size` bytes of it) by CPU number, as a lookup returned them.
    pub percpu_values: BTreeMap<Vec<u8>, BTreeMap<u32, Vec<u8>>>,
    /// For maps whose lookups the kernel refuses (`OVAL` lines: CGROUP_ARRAY,
    /// PERF_EVENT_ARRAY): every populated key and its value in mapwalk's own form
    /// (docs/object-maps.md), as the guest knows it.
    pub object_values: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For BLOOM_FILTER maps (`BLOOM` lines): every value pushed, and whether a lookup
    /// (a membership test) found it.
    pub bloom_values: Vec<(Vec<u8>, bool)>,
    /// `map_extra` as the guest created the map (the `extra=` of its `MAP` line; 0
    /// without): a bloom filter's hash count.
    pub map_extra: u64,
}

impl GuestReport {
    /// The maps of section `bpf-maps`: lines `MAP id=.. type=.. name=.. key=.. value=..
    /// max=.. flags=..` and `VAL <id> <key> <hex>`.
    ///
    /// # Errors
    /// [`super::Error::Failed`] without the section or for a malformed line.
    pub fn bpf_maps(&self) -> Result<Vec<GuestMap>> {
        self.maps_in("bpf-maps")
    }

    /// The maps of another section written as `bpf-maps` is (`churn-final`).
    ///
    /// # Errors
    /// [`super::Error::Failed`] without the section or for a malformed line.
    pub fn maps_in(&self, section: &str) -> Result<Vec<GuestMap>> {
        let text = self
            .section(section)
            .ok_or_else(|| failed(format!("guest report: no section {section:?}")))?;
        parse_bpf_maps(text)
    }

    /// The possible CPUs the guest counted when it made its maps (the line
    /// `CPUS possible=<n>` of section `bpf-maps`).
    ///
    /// # Errors
    /// [`super::Error::Failed`] without the section or the line.
    pub fn bpf_possible_cpus(&self) -> Result<u32> {
        let text = self
            .section("bpf-maps")
            .ok_or_else(|| failed("guest report: no section \"bpf-maps\""))?;
        text.lines()
            .find_map(|l| l.strip_prefix("CPUS possible=")?.trim().parse().ok())
            .ok_or_else(|| failed("guest bpf-maps: no line \"CPUS possible=<n>\""))
    }
}

pub(crate) fn parse_bpf_maps(text: &str) -> Result<Vec<GuestMap>> {
    let mut maps: Vec<GuestMap> = Vec::new();
    for line in text.lines() {
        let bad = || failed(format!("guest bpf-maps: bad line {line:?}"));
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("MAP") => {
                let mut kv = HashMap::new();
                for w in words {
                    let (k, v) = w.split_once('=').ok_or_else(bad)?;
                    kv.insert(k, v);
                }
                let num = |k: &str| -> Result<u32> {
                    kv.get(k).and_then(|v| v.parse().ok()).ok_or_else(bad)
                };
                maps.push(GuestMap {
                    id: num("id")?,
                    map_type: num("type")?,
                    name: (*kv.get("name").ok_or_else(bad)?).to_owned(),
                    key_size: num("key")?,
                    value_size: num("value")?,
                    max_entries: num("max")?,
                    flags: num("flags")?,
                    values: BTreeMap::new(),
                    hash_values: BTreeMap::new(),
                    percpu_values: BTreeMap::new(),
                    object_values: BTreeMap::new(),
                    bloom_values: Vec::new(),
                    map_extra: match kv.get("extra") {
                        None => 0,
                        Some(v) => v.parse().map_err(|_| bad())?,
                    },
                });
            }
            Some("VAL") => {
                let id: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let key: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let bytes = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let map = maps.iter_mut().find(|m| m.id == id).ok_or_else(bad)?;
                if bytes.len() != map.value_size as usize {
                    return Err(bad());
                }
                map.values.insert(key, bytes);
            }
            Some("HVAL") => {
                let id: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let key = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let bytes = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let map = maps.iter_mut().find(|m| m.id == id).ok_or_else(bad)?;
                if key.len() != map.key_size as usize
                    || bytes.len() != map.value_size as usize
                    || map.hash_values.insert(key, bytes).is_some()
                {
                    return Err(bad());
                }
            }
            Some("PVAL") => {
                let id: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let key = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let cpu: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let bytes = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let map = maps.iter_mut().find(|m| m.id == id).ok_or_else(bad)?;
                if key.len() != map.key_size as usize
                    || bytes.len() != map.value_size as usize
                    || map
                        .percpu_values
                        .entry(key)
                        .or_default()
                        .insert(cpu, bytes)
                        .is_some()
                {
                    return Err(bad());
                }
            }
            Some("OVAL") => {
                let id: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let key = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let bytes = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let map = maps.iter_mut().find(|m| m.id == id).ok_or_else(bad)?;
                if key.len() != map.key_size as usize
                    || map.object_values.insert(key, bytes).is_some()
                {
                    return Err(bad());
                }
            }
            Some("BLOOM") => {
                let id: u32 = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let value = parse_hex_bytes(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
                let found = match words.next() {
                    Some("1") => true,
                    Some("0") => false,
                    _ => return Err(bad()),
                };
                let map = maps.iter_mut().find(|m| m.id == id).ok_or_else(bad)?;
                if value.len() != map.value_size as usize {
                    return Err(bad());
                }
                map.bloom_values.push((value, found));
            }
            Some("CPUS") => {}
            None => {}
            Some(_) => return Err(bad()),
        }
    }
    Ok(maps)
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
            let lo = parse_hex(lo.trim()).ok()?;
            let hi = parse_hex(hi.trim()).ok()?;
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
    fn parses_bpf_maps() {
        let text = "MAP id=3 type=2 name=mw_array key=4 value=2 max=2 flags=0\n\
                    VAL 3 0 0aff\nVAL 3 1 1000\n\
                    MAP id=4 type=1 name=mw_hash key=8 value=16 max=64 flags=1024\n";
        let maps = parse_bpf_maps(text).unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!((maps[0].id, maps[0].name.as_str()), (3, "mw_array"));
        assert_eq!(maps[0].values[&0], [0x0a, 0xff]);
        assert_eq!(maps[0].values[&1], [0x10, 0]);
        assert_eq!((maps[1].flags, maps[1].key_size), (1024, 8));
        assert!(parse_bpf_maps("VAL 3 0 00\n").is_err());
        assert!(
            parse_bpf_maps("MAP id=3 type=2 name=a key=4 value=2 max=2 flags=0\nVAL 3 0 0\n")
                .is_err()
        );
        assert!(parse_bpf_maps("MAP id=x\n").is_err());
        let text = "CPUS possible=2\n\
                    MAP id=5 type=1 name=h key=2 value=1 max=4 flags=0\n\
                    HVAL 5 0a0b ff\n\
                    MAP id=6 type=5 name=p key=3 value=2 max=4 flags=0\n\
                    PVAL 6 010203 0 aabb\nPVAL 6 010203 1 ccdd\n";
        let maps = parse_bpf_maps(text).unwrap();
        assert_eq!(maps[0].hash_values[&vec![0x0a, 0x0b]], [0xff]);
        assert_eq!(maps[1].percpu_values[&vec![1, 2, 3]][&1], [0xcc, 0xdd]);
        let dup = format!("{text}PVAL 6 010203 1 ccdd\n");
        assert!(parse_bpf_maps(&dup).is_err());
        assert!(parse_bpf_maps(&text.replace("HVAL 5 0a0b", "HVAL 5 0a")).is_err());
        assert!(parse_bpf_maps(&text.replace("1 ccdd", "1 cc")).is_err());
        let r = GuestReport::parse(&(sample() + &section("bpf-maps", text))).unwrap();
        assert_eq!(r.bpf_possible_cpus().unwrap(), 2);
        assert!(GuestReport::parse(&sample())
            .unwrap()
            .bpf_possible_cpus()
            .is_err());
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
