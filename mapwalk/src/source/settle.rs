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

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
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
    seen: Option<KeySet>,
    cap: usize,
    id: u32,
    over: bool,
}

/// A set of byte keys kept in one buffer: each key's hash (keyed, so that a guest
/// cannot choose colliding keys) maps to where the key starts, and keys whose hashes
/// collide are compared in a short list. One hash and no allocation per key.
#[derive(Debug, Default)]
struct KeySet {
    hasher: std::collections::hash_map::RandomState,
    /// The first key of each hash: (start, length) in `bytes`.
    first: HashMap<u64, (usize, usize), BuildHasherDefault<Prehashed>>,
    /// Keys whose hash another key has already.
    collided: Vec<Box<[u8]>>,
    bytes: Vec<u8>,
    len: usize,
}

impl KeySet {
    fn with_capacity(keys: usize, key_size: usize) -> Self {
        Self {
            first: HashMap::with_capacity_and_hasher(keys, BuildHasherDefault::default()),
            bytes: Vec::with_capacity(keys.saturating_mul(key_size)),
            ..Self::default()
        }
    }

    /// Inserts `key`: whether it was new.
    fn insert(&mut self, key: &[u8]) -> bool {
        let h = self.hasher.hash_one(key);
        match self.first.entry(h) {
            Entry::Vacant(v) => {
                v.insert((self.bytes.len(), key.len()));
                self.bytes.extend_from_slice(key);
            }
            Entry::Occupied(o) => {
                let (at, n) = *o.get();
                if self.bytes.get(at..at.saturating_add(n)) == Some(key)
                    || self.collided.iter().any(|k| **k == *key)
                {
                    return false;
                }
                self.collided.push(key.into());
            }
        }
        self.len += 1;
        true
    }
}

/// The hasher of keys that are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Room made up front for this many keys at most (a map's `max_entries` may be far
/// more than it holds).
const RESERVE_KEYS: usize = 4096;

impl OnceEach {
    pub(super) fn new(map: &MapInfo) -> Self {
        let hashed = matches!(
            map.map_type,
            MapType::HASH | MapType::LRU_HASH | MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
        );
        let cap = usize::try_from(map.max_entries).unwrap_or(usize::MAX);
        let key_size = usize::try_from(map.key_size).unwrap_or(0);
        Self {
            seen: hashed.then(|| KeySet::with_capacity(cap.min(RESERVE_KEYS), key_size)),
            cap,
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
        let before = seen.len;
        if !seen.insert(key) {
            return ControlFlow::Continue(false);
        }
        if before >= self.cap {
            self.over = true;
            return ControlFlow::Break(());
        }
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
    fn keys_whose_hashes_collide_are_told_apart() {
        let mut set = KeySet::with_capacity(4, 2);
        // Force two keys into one hash: the second is kept in the collision list.
        let h = set.hasher.hash_one(&b"ab"[..]);
        set.first.insert(h, (0, 2));
        set.bytes.extend_from_slice(b"zz");
        assert!(
            set.insert(b"ab"),
            "a key other than the one stored under its hash"
        );
        assert!(!set.insert(b"ab"));
        assert!(set.insert(b"cd") && !set.insert(b"cd"));
        assert_eq!(set.len, 2);
        assert_eq!(set.collided, [Box::from(&b"ab"[..])]);
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
