//! Whole-map dumps: `BPF_MAP_LOOKUP_BATCH`, or `BPF_MAP_GET_NEXT_KEY` +
//! `BPF_MAP_LOOKUP_ELEM` where the kernel or the map type refuses batches.
//!
//! # Consistency while other processes write
//! A dump is not a snapshot: entries inserted or deleted during the pass may or may not
//! appear. What one pass guarantees:
//! - no key twice. Batches walk a hash map bucket by bucket under the bucket lock and a
//!   key lives in one bucket, so they cannot repeat a key; the fallback keeps a set of
//!   the keys it returned, because `BPF_MAP_GET_NEXT_KEY` on a key that was deleted
//!   meanwhile restarts from the first key;
//! - no invented entry: every key/value pair was in the map at the moment it was
//!   copied. A key that vanishes between `GET_NEXT_KEY` and `LOOKUP_ELEM` is skipped and
//!   counted in [`DumpStats::vanished`];
//! - termination: the fallback's steps are capped ([`Error::LimitExceeded`] past
//!   `4 * max_entries + 1024` steps).

use std::collections::HashSet;
use std::ops::ControlFlow;

use mapwalk_core::MapType;

use crate::error::{Error, Result};
use crate::map::LiveMap;
use crate::sys::Batch;
use crate::value::{Entry, ValueRef};

/// How to walk a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DumpMode {
    /// Batches where the kernel offers them, else the key-by-key walk.
    #[default]
    Auto,
    /// Batches only: [`Error::Unsupported`] when the kernel or the map refuses them.
    Batch,
    /// `BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`, one key at a time.
    NextKey,
}

/// Options of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DumpOptions {
    /// How to walk.
    pub mode: DumpMode,
    /// Elements per `BPF_MAP_LOOKUP_BATCH` call to start with (doubled on `ENOSPC`).
    pub batch_size: u32,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self {
            mode: DumpMode::Auto,
            batch_size: 4096,
        }
    }
}

impl DumpOptions {
    /// Options with this mode and the default batch size.
    pub fn mode(mode: DumpMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }
}

/// Which walk a dump used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Walk {
    /// `BPF_MAP_LOOKUP_BATCH`.
    #[default]
    Batch,
    /// `BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`.
    NextKey,
}

/// What happened during a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DumpStats {
    /// The walk used.
    pub walk: Walk,
    /// Entries handed to the caller.
    pub entries: u64,
    /// `bpf()` calls made.
    pub syscalls: u64,
    /// Keys that vanished between `GET_NEXT_KEY` and `LOOKUP_ELEM` (skipped).
    pub vanished: u64,
    /// Keys `GET_NEXT_KEY` returned again (it restarts from the first key when the
    /// current one was deleted); skipped.
    pub repeats: u64,
    /// Times a batch buffer was grown after `ENOSPC`.
    pub grown: u32,
    /// Whether the caller stopped the walk early.
    pub stopped: bool,
}

/// A whole dump, owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dump {
    /// The entries, in the kernel's order.
    pub entries: Vec<Entry>,
    /// What happened.
    pub stats: DumpStats,
}

/// Why `bpf()` cannot list a map of type `t` whose keys it could walk: the
/// operation it lacks, or `None` when it can.
///
/// A BLOOM_FILTER's lookup only tests whether a value is in the filter, so its bit
/// array is not to be had; PERF_EVENT_ARRAY and CGROUP_ARRAY refuse lookups from user
/// space (`ENOTSUPP`), XSKMAP too (`EOPNOTSUPP`); local storage (TASK, INODE, SK and
/// CGRP_STORAGE) is looked up by an owner's file descriptor and never listed. An ARENA
/// can only be read by mapping it, and reading a page it has not got allocates that
/// page (or kills the reader, `BPF_F_SEGV_ON_FAULT`): no system call tells which pages
/// exist without changing the arena (see [`crate::mmap`]). Memory holds all of them.
pub fn unlisted_by_bpf(t: MapType) -> Option<&'static str> {
    match t {
        MapType::BLOOM_FILTER => {
            Some("listing its bit array (a lookup only tests whether a value is in the filter)")
        }
        MapType::PERF_EVENT_ARRAY | MapType::CGROUP_ARRAY => {
            Some("lookups from user space (the kernel refuses them: ENOTSUPP)")
        }
        MapType::XSKMAP => Some("lookups from user space (the kernel refuses them: EOPNOTSUPP)"),
        MapType::TASK_STORAGE
        | MapType::INODE_STORAGE
        | MapType::SK_STORAGE
        | MapType::CGRP_STORAGE => Some(
            "listing through bpf(): local storage is looked up by a file descriptor of its \
             owner (pidfd, socket, file, cgroup) and bpf() cannot enumerate the owners; a \
             memory source lists them",
        ),
        MapType::ARENA => Some(
            "reading its pages without side effects: reading an arena through a mapping \
             allocates every page it has not got (and bpf() cannot list which pages it \
             has); a memory source lists exactly its pages",
        ),
        _ => None,
    }
}

/// Batch buffers above this many elements are not grown further.
const MAX_BATCH: u32 = 1 << 20;

impl LiveMap {
    /// Calls `f` with every entry of the map, keys and values borrowed from the read
    /// buffers; `f` returns [`ControlFlow::Break`] to stop early.
    ///
    /// Works for hash maps (HASH, LRU_HASH and their per-CPU kinds), arrays (ARRAY,
    /// PERCPU_ARRAY, and the fd arrays, whose values are object ids) and any other map
    /// that `BPF_MAP_GET_NEXT_KEY` walks (LPM_TRIE, ...). See the [module docs](self)
    /// for what a dump guarantees while others write.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for maps without keys (RINGBUF, ARENA, QUEUE, STACK,
    /// BLOOM_FILTER: use their own readers), for maps `bpf()` cannot list
    /// ([`unlisted_by_bpf`]: PERF_EVENT_ARRAY, CGROUP_ARRAY, XSKMAP and local storage),
    /// and for [`DumpMode::Batch`] on maps without batches; [`Error::Denied`],
    /// [`Error::Sys`], [`Error::LimitExceeded`]. Entries already handed to `f` stay valid
    /// when an error ends the walk.
    pub fn for_each_entry(
        &self,
        opts: DumpOptions,
        mut f: impl FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()>,
    ) -> Result<DumpStats> {
        let info = self.info();
        if let Some(op) = unlisted_by_bpf(info.map_type) {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: info.map_type,
                op,
            });
        }
        if info.key_size == 0
            || matches!(
                info.map_type,
                MapType::RINGBUF | MapType::USER_RINGBUF | MapType::ARENA
            )
        {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: info.map_type,
                op: "key/value dumps",
            });
        }
        let mut stats = DumpStats::default();
        if opts.mode != DumpMode::NextKey {
            match self.batch_walk(opts, &mut stats, &mut f)? {
                Some(()) => return Ok(stats),
                None if opts.mode == DumpMode::Batch => {
                    return Err(Error::Unsupported {
                        id: info.id,
                        map_type: info.map_type,
                        op: "BPF_MAP_LOOKUP_BATCH",
                    })
                }
                None => {}
            }
        }
        stats.walk = Walk::NextKey;
        self.next_key_walk(&mut stats, &mut f)?;
        Ok(stats)
    }

    /// Every entry of the map, owned (see [`for_each_entry`](Self::for_each_entry)).
    ///
    /// # Errors
    /// As [`for_each_entry`](Self::for_each_entry).
    pub fn dump(&self, opts: DumpOptions) -> Result<Dump> {
        let mut entries = Vec::new();
        let stats = self.for_each_entry(opts, |k, v| {
            entries.push(Entry {
                key: k.to_vec(),
                value: v.to_owned(),
            });
            ControlFlow::Continue(())
        })?;
        Ok(Dump { entries, stats })
    }

    /// The batch walk; `Ok(None)` when the first call says batches are not supported.
    fn batch_walk(
        &self,
        opts: DumpOptions,
        stats: &mut DumpStats,
        f: &mut impl FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()>,
    ) -> Result<Option<()>> {
        let h = self.handle();
        let info = self.info();
        let kb = h.key_bytes();
        let vb = h.value_bytes().ok_or(Error::Unsupported {
            id: info.id,
            map_type: info.map_type,
            op: "BPF_MAP_LOOKUP_BATCH (unknown map type)",
        })?;
        let cpus = self.cpu_ids()?;
        let tb = h.batch_token_bytes();
        let mut in_tok = vec![0u8; tb];
        let mut out_tok = vec![0u8; tb];
        let mut first = true;
        let mut cap = opts.batch_size.clamp(1, MAX_BATCH);
        let mut keys = Vec::new();
        let mut values = Vec::new();
        // Each successful call moves past at least one bucket or key; bound the calls
        // anyway, in case a kernel bug returns "more" forever.
        let max_calls = u64::from(info.max_entries)
            .saturating_mul(2)
            .saturating_add(1024);
        loop {
            let n = usize::try_from(cap).unwrap_or(usize::MAX);
            keys.resize(kb.saturating_mul(n), 0);
            values.resize(vb.saturating_mul(n), 0);
            stats.syscalls = stats.syscalls.saturating_add(1);
            if stats.syscalls > max_calls {
                return Err(Error::LimitExceeded {
                    what: "BPF_MAP_LOOKUP_BATCH calls",
                    limit: max_calls,
                    value: stats.syscalls,
                });
            }
            let prev = if first { None } else { Some(&in_tok[..]) };
            let (count, done) =
                match h.lookup_batch(prev, &mut out_tok, &mut keys, &mut values, cap)? {
                    Batch::More(c) => (c, false),
                    Batch::Done(c) => (c, true),
                    Batch::NoSpace => {
                        if cap >= MAX_BATCH {
                            return Err(Error::LimitExceeded {
                                what: "batch elements (ENOSPC: one bucket holds more)",
                                limit: u64::from(MAX_BATCH),
                                value: u64::from(cap),
                            });
                        }
                        cap = cap.saturating_mul(2).min(MAX_BATCH);
                        stats.grown = stats.grown.saturating_add(1);
                        continue;
                    }
                    Batch::Unsupported(errno) => {
                        if first {
                            return Ok(None);
                        }
                        return Err(Error::Sys {
                            cmd: crate::sys::Cmd::MAP_LOOKUP_BATCH,
                            errno,
                        });
                    }
                };
            let count = usize::try_from(count).unwrap_or(0);
            for (k, v) in keys
                .chunks_exact(kb)
                .zip(values.chunks_exact(vb))
                .take(count)
            {
                stats.entries = stats.entries.saturating_add(1);
                if f(k, self.value_ref(v, cpus)).is_break() {
                    stats.stopped = true;
                    return Ok(Some(()));
                }
            }
            if done {
                return Ok(Some(()));
            }
            std::mem::swap(&mut in_tok, &mut out_tok);
            first = false;
        }
    }

    /// The key-by-key walk.
    fn next_key_walk(
        &self,
        stats: &mut DumpStats,
        f: &mut impl FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let h = self.handle();
        let info = self.info();
        let cpus = self.cpu_ids()?;
        let mut value = vec![
            0u8;
            h.value_bytes().ok_or(Error::Unsupported {
                id: info.id,
                map_type: info.map_type,
                op: "lookups (unknown map type)",
            })?
        ];
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut cur: Option<Vec<u8>> = None;
        let mut vanished: Option<Vec<u8>> = None;
        let mut next = vec![0u8; h.key_bytes()];
        let max_steps = u64::from(info.max_entries)
            .saturating_mul(4)
            .saturating_add(1024);
        let mut steps = 0u64;
        loop {
            steps = steps.saturating_add(1);
            if steps > max_steps {
                return Err(Error::LimitExceeded {
                    what: "BPF_MAP_GET_NEXT_KEY steps (the map changes faster than it is walked)",
                    limit: max_steps,
                    value: steps,
                });
            }
            stats.syscalls = stats.syscalls.saturating_add(1);
            if !h.next_key(cur.as_deref(), &mut next)? {
                return Ok(());
            }
            if seen.contains(&next) {
                // GET_NEXT_KEY restarted from the first key (ours was deleted), or
                // the map handed out a key twice: skip it but walk on from it.
                stats.repeats = stats.repeats.saturating_add(1);
                cur = Some(next.clone());
                continue;
            }
            stats.syscalls = stats.syscalls.saturating_add(1);
            if !h.lookup(&next, &mut value)? {
                // Deleted since GET_NEXT_KEY: skip it. Go on from the previous key (in a
                // hash map, GET_NEXT_KEY from a deleted key would start over); a key
                // that vanishes twice in a row is a hole that stays (an empty slot of
                // an fd array): step over it.
                stats.vanished = stats.vanished.saturating_add(1);
                if vanished.as_deref() == Some(&next[..]) {
                    cur = Some(next.clone());
                    vanished = None;
                } else {
                    vanished = Some(next.clone());
                }
                continue;
            }
            vanished = None;
            stats.entries = stats.entries.saturating_add(1);
            if f(&next, self.value_ref(&value, cpus)).is_break() {
                stats.stopped = true;
                return Ok(());
            }
            seen.insert(next.clone());
            cur = Some(next.clone());
        }
    }
}
