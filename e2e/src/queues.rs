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
