//! Reading the maps of a guest that may be running.
//!
//! A running kernel changes a map while it is read: the core's walkers read a hash
//! bucket again when it changes under them, and yield each element once, but an update
//! links a key's new element before it unlinks the old one, and keys come and go while
//! the walk moves on. What a memory source hands on from one read of a map:
//! - each key once (the first element read with it);
//! - never more distinct keys than the map can hold (`max_entries`): a read that meets
//!   more is refused as [`SourceError::Unstable`] after the keys it already handed on;
//! - with [`Settle::Agree`], only a read that equals the read before it, entry for
//!   entry and byte for byte.

use std::collections::HashSet;
use std::ops::ControlFlow;

use mapwalk_core::{MapInfo, MapType};

use super::SourceError;

/// How a memory source reads each map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Settle {
    /// One read (the default): exact when the guest is paused or the memory is a dump;
    /// of a running guest, each entry is as it was at some moment of the read, an entry
    /// changed during the read may be torn, and entries added or removed during the
    /// read may or may not be listed.
    #[default]
    Once,
    /// Reads the map again until two reads in a row agree, at most this many times
    /// (at least 2); otherwise the map is [`SourceError::Unstable`]. Costs two reads
    /// of each map at least, and holds two copies of its entries.
    Agree(u32),
}

/// Hands on each key of a hash map once, and notices more keys than the map holds.
#[derive(Debug)]
pub(super) struct OnceEach {
    /// The keys handed on; `None` for the maps whose keys cannot repeat (arrays).
    seen: Option<HashSet<Box<[u8]>>>,
    cap: usize,
    id: u32,
    over: bool,
}

impl OnceEach {
    pub(super) fn new(map: &MapInfo) -> Self {
        let hashed = matches!(
            map.map_type,
            MapType::HASH | MapType::LRU_HASH | MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
        );
        Self {
            seen: hashed.then(HashSet::new),
            cap: usize::try_from(map.max_entries).unwrap_or(usize::MAX),
            id: map.id,
            over: false,
        }
    }

    /// Whether to hand on the entry of `key`: `Continue(true)` yes, `Continue(false)`
    /// no (handed on already), `Break` when it would be one key more than the map holds.
    pub(super) fn admit(&mut self, key: &[u8]) -> ControlFlow<(), bool> {
        let Some(seen) = self.seen.as_mut() else {
            return ControlFlow::Continue(true);
        };
        if seen.contains(key) {
            return ControlFlow::Continue(false);
        }
        if seen.len() >= self.cap {
            self.over = true;
            return ControlFlow::Break(());
        }
        seen.insert(key.into());
        ControlFlow::Continue(true)
    }

    /// The error of a read that met more keys than the map holds.
    pub(super) fn finish(self) -> Result<(), SourceError> {
        if self.over {
            return Err(SourceError::Unstable(format!(
                "map {}: the read met more distinct keys than the map holds ({}): it \
                 changed during the read (the guest is running: pause it, or read with \
                 --agree, for a whole answer)",
                self.id, self.cap
            )));
        }
        Ok(())
    }
}

/// The error of a map no two reads of which agreed.
pub(super) fn unsettled(map: &MapInfo, reads: u32, last: Option<&SourceError>) -> SourceError {
    let why = last.map_or(String::new(), |e| format!("; the last read: {e}"));
    SourceError::Unstable(format!(
        "map {}: no two of {reads} reads in a row agreed: it kept changing (the guest is \
         running: pause it for a whole answer){why}",
        map.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk_core::bpf::MapFlags;

    fn info(t: MapType, max: u32) -> MapInfo {
        MapInfo {
            id: 7,
            map_type: t,
            key_size: 2,
            value_size: 4,
            max_entries: max,
            map_flags: MapFlags::empty(),
            ..MapInfo::default()
        }
    }

    #[test]
    fn hash_keys_pass_once_and_no_more_than_the_map_holds() {
        let mut once = OnceEach::new(&info(MapType::HASH, 2));
        assert_eq!(once.admit(b"ab"), ControlFlow::Continue(true));
        assert_eq!(once.admit(b"ab"), ControlFlow::Continue(false));
        assert_eq!(once.admit(b"cd"), ControlFlow::Continue(true));
        assert_eq!(once.admit(b"cd"), ControlFlow::Continue(false));
        assert_eq!(once.admit(b"ef"), ControlFlow::Break(()));
        let msg = once.finish().unwrap_err().to_string();
        assert!(
            msg.starts_with("map 7: the read met more distinct keys than the map holds (2)"),
            "{msg}"
        );
        // At the cap exactly: whole.
        let mut once = OnceEach::new(&info(MapType::LRU_PERCPU_HASH, 2));
        for k in [b"ab", b"cd", b"ab"] {
            assert!(once.admit(k).is_continue());
        }
        assert!(once.finish().is_ok());
    }

    #[test]
    fn array_keys_are_not_tracked() {
        let mut once = OnceEach::new(&info(MapType::ARRAY, 1));
        for _ in 0..3 {
            assert_eq!(once.admit(&[0, 0, 0, 0]), ControlFlow::Continue(true));
        }
        assert!(once.finish().is_ok());
        assert!(once_seen_is_none(&OnceEach::new(&info(
            MapType::PERCPU_ARRAY,
            1
        ))));
    }

    fn once_seen_is_none(o: &OnceEach) -> bool {
        o.seen.is_none()
    }
}
