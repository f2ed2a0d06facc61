//! What `bpftool map show` prints beyond a map's metadata: whether it is frozen and the
//! memory it is charged for.

/// A map's state beyond its [`MapInfo`](super::MapInfo), each part `None` where the
/// source cannot know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapState {
    /// Whether `BPF_MAP_FREEZE` was called (no more writes through `bpf()`): from the
    /// live host's `fdinfo`, or the `bpf_map.frozen` field in memory.
    pub frozen: Option<bool>,
    /// The bytes of memory the kernel charges the map for (`memlock` in its `fdinfo`,
    /// bpftool's `bytes_memlock`). Only the live host has it: the kernel computes it
    /// on demand, per map type, and memory holds no such number.
    pub memlock: Option<u64>,
}

impl MapState {
    /// Reads the fields it knows out of a `/proc/PID/fdinfo/FD` text (`memlock:` and
    /// `frozen:` lines); others stay `None`.
    pub fn from_fdinfo(text: &str) -> Self {
        let mut state = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "memlock" => state.memlock = value.parse().ok(),
                "frozen" => state.frozen = value.parse::<u8>().ok().map(|v| v != 0),
                _ => {}
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_lines_are_read() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t2\n\
                    key_size:\t4\nvalue_size:\t8\nmax_entries:\t4\nmap_flags:\t0x0\n\
                    map_extra:\t0x0\nmemlock:\t344\nmap_id:\t838\nfrozen:\t1\n";
        assert_eq!(
            MapState::from_fdinfo(text),
            MapState {
                frozen: Some(true),
                memlock: Some(344)
            }
        );
        assert_eq!(MapState::from_fdinfo("frozen:\tx\n"), MapState::default());
        assert_eq!(MapState::from_fdinfo("frozen:\t0\n").frozen, Some(false));
    }
}
