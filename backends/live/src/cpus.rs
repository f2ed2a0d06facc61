//! The possible CPUs: how many copies a per-CPU map value has.

use std::sync::OnceLock;

use mapwalk_core::limits::MAX_CPUS;

use crate::error::{Error, Result};

/// Where the kernel lists its possible CPUs (`cpu_possible_mask`).
pub const POSSIBLE_PATH: &str = "/sys/devices/system/cpu/possible";

/// The host's possible CPUs, in ascending order.
///
/// Per-CPU map values come from the kernel as one copy per *possible* CPU
/// (`for_each_possible_cpu`), each padded to a multiple of 8 bytes, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpus {
    ids: Vec<u32>,
}

impl HostCpus {
    /// Parses a CPU list such as `"0-3,8,10-11\n"`.
    ///
    /// # Errors
    /// [`Error::Cpus`] for text that is not a CPU list, or a list that is empty,
    /// descending, or above CPU 8191.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::Cpus {
            path: POSSIBLE_PATH,
            reason,
        };
        let mut ids: Vec<u32> = Vec::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let num = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|e| bad(format!("{part:?}: {e}")))
            };
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi || hi >= MAX_CPUS || ids.last().is_some_and(|&l| l >= lo) {
                return Err(bad(format!("{part:?} is out of order or range")));
            }
            ids.extend(lo..=hi);
        }
        if ids.is_empty() {
            return Err(bad("empty CPU list".to_owned()));
        }
        Ok(Self { ids })
    }

    /// Reads [`POSSIBLE_PATH`].
    ///
    /// # Errors
    /// [`Error::Cpus`] when the file cannot be read or parsed.
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string(POSSIBLE_PATH).map_err(|e| Error::Cpus {
            path: POSSIBLE_PATH,
            reason: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// How many possible CPUs there are: the number of copies in a per-CPU value.
    pub fn count(&self) -> usize {
        self.ids.len()
    }

    /// The CPU numbers, in the order of the copies.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// The host's possible CPUs, read once.
///
/// # Errors
/// As [`HostCpus::read`].
pub fn possible() -> Result<&'static HostCpus> {
    static CPUS: OnceLock<Result<HostCpus>> = OnceLock::new();
    CPUS.get_or_init(HostCpus::read)
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(HostCpus::parse("0-1\n").unwrap().ids(), &[0, 1]);
        assert_eq!(HostCpus::parse("0").unwrap().count(), 1);
        assert_eq!(
            HostCpus::parse("0-2,4,6-7").unwrap().ids(),
            &[0, 1, 2, 4, 6, 7]
        );
        assert!(HostCpus::parse("").is_err());
        assert!(HostCpus::parse("3-1").is_err());
        assert!(HostCpus::parse("0-1,1").is_err());
        assert!(HostCpus::parse("x").is_err());
        assert!(HostCpus::parse("0-9000").is_err());
    }
}
