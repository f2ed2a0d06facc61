//! Section `bpf-queues` of the guest's report (`e2e/guest/queue.c`): the QUEUE and
//! STACK maps' elements in pop order, as the guest computed them from what it pushed
//! and popped, and what a peek returned.

use crate::{failed, GuestReport, Result};
use std::collections::BTreeMap;

/// One QUEUE or STACK map of section `bpf-queues`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestQueue {
    /// The map's id.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// What `BPF_MAP_LOOKUP_ELEM` (a peek) returned.
    pub peek: Vec<u8>,
    /// Every element, in the order pops would return them.
    pub pop: Vec<Vec<u8>>,
    /// The errno of a push past `max_entries` without `BPF_EXIST` (line `FULL`), if
    /// the guest tried one.
    pub full_errno: Option<i32>,
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(failed(format!("bpf-queues: {what}: not hex: {s:?}")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|e| failed(format!("bpf-queues: {what}: {e}")))
        })
        .collect()
}

/// The value of `name=` among a line's words.
fn field<'a>(line: &str, words: &[&'a str], name: &str) -> Result<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(name).and_then(|w| w.strip_prefix('=')))
        .ok_or_else(|| failed(format!("bpf-queues: no {name}= in {line:?}")))
}

/// The maps of section `bpf-queues` by id: lines `QS <id> name=<s> peek=<hex>
/// pop=<hex>,<hex>,...` and `FULL <id> errno=<n>`. `None` without the section (the
/// in-guest guests make no such maps).
///
/// # Errors
/// [`crate::Error::Failed`] for a malformed line.
pub fn queue_truth(report: &GuestReport) -> Result<Option<BTreeMap<u32, GuestQueue>>> {
    let Some(text) = report.section("bpf-queues") else {
        return Ok(None);
    };
    let mut out: BTreeMap<u32, GuestQueue> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let id: u32 = words
            .get(1)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| failed(format!("bpf-queues: no map id in {line:?}")))?;
        match words[0] {
            "QS" => {
                let pop = field(line, &words, "pop")?;
                let q = GuestQueue {
                    id,
                    name: field(line, &words, "name")?.to_owned(),
                    peek: unhex("peek", field(line, &words, "peek")?)?,
                    pop: if pop.is_empty() {
                        Vec::new()
                    } else {
                        pop.split(',')
                            .map(|v| unhex("pop", v))
                            .collect::<Result<_>>()?
                    },
                    full_errno: None,
                };
                if out.insert(id, q).is_some() {
                    return Err(failed(format!("bpf-queues: map {id} twice")));
                }
            }
            "FULL" => {
                let errno = field(line, &words, "errno")?
                    .parse()
                    .map_err(|e| failed(format!("bpf-queues: {line:?}: {e}")))?;
                out.get_mut(&id)
                    .ok_or_else(|| failed(format!("bpf-queues: FULL before QS: {line:?}")))?
                    .full_errno = Some(errno);
            }
            _ => return Err(failed(format!("bpf-queues: unknown line {line:?}"))),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk::kallsyms::SymbolTable;
    use std::collections::HashMap;

    fn report(section: Option<&str>) -> GuestReport {
        let mut sections = HashMap::new();
        if let Some(s) = section {
            sections.insert("bpf-queues".to_owned(), s.to_owned());
        }
        GuestReport {
            sections,
            kallsyms: SymbolTable::default(),
        }
    }

    #[test]
    fn queue_and_stack_lines_parse_in_pop_order() {
        let r = report(Some(
            "QS 35 name=mw_queue peek=0300 pop=0300,0400,11ff\n\
             QS 36 name=mw_stackq peek=5c08 pop=5c08\n\
             FULL 36 errno=7\n",
        ));
        let got = queue_truth(&r).unwrap().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[&35],
            GuestQueue {
                id: 35,
                name: "mw_queue".into(),
                peek: vec![3, 0],
                pop: vec![vec![3, 0], vec![4, 0], vec![0x11, 0xff]],
                full_errno: None,
            }
        );
        assert_eq!(got[&36].pop, [vec![0x5c, 8]]);
        assert_eq!(got[&36].full_errno, Some(7));
    }

    #[test]
    fn no_section_is_none_and_bad_lines_are_errors() {
        assert!(queue_truth(&report(None)).unwrap().is_none());
        for bad in [
            "QS 1 name=q peek=0 pop=00",
            "QS 1 name=q peek=00 pop=zz",
            "QS x name=q peek=00 pop=00",
            "QS 1 name=q pop=00",
            "FULL 2 errno=7",
            "HUH 1",
            "QS 1 name=q peek=00 pop=00\nQS 1 name=q peek=00 pop=00",
        ] {
            assert!(queue_truth(&report(Some(bad))).is_err(), "{bad:?}");
        }
    }
}
