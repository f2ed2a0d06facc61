//! Local storage on the live host: `bpf()` cannot list it (it is looked up by a file
//! descriptor of its owner), so a dump says so per map and exits 3, never printing an
//! empty map; a lookup is refused with the reason.

use super::btf_table::{Btf, SIGNED};
use super::*;
use mapwalk_live::sys::{btf_load, map_create_with_btf};
use std::os::fd::{AsFd, AsRawFd};

#[test]
fn live_local_storage_is_unreadable_not_empty() {
    let test = "live_local_storage_is_unreadable_not_empty";
    if !live_ready(test) {
        return;
    }
    // Held: an SK_STORAGE map makes every whole-host dump partial while it lives.
    let _whole = whole_host();
    let mut b = Btf::new();
    let int = b.int("int", 4, SIGNED);
    let btf = btf_load(&b.bytes()).unwrap_or_else(|e| panic!("{test}: BTF_LOAD: {e}"));
    let mut spec = MapCreate::new(MapType::SK_STORAGE, "mw_sk_live", 4, 4, 0);
    spec.map_flags = 1; // BPF_F_NO_PREALLOC, which local storage requires
    let fd = map_create_with_btf(&spec, btf.as_fd(), int, int)
        .unwrap_or_else(|e| panic!("{test}: create SK_STORAGE: {e}"));
    let map = LiveMap::from_fd(fd).unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    map.update(
        &sock.as_raw_fd().to_le_bytes(),
        &0x1122_3344u32.to_le_bytes(),
        Update::Any,
    )
    .unwrap_or_else(|e| panic!("{test}: update by socket fd: {e}"));
    let sel = format!("id:{}", map.id());

    let out = run(&["dump", &sel, "--json"]);
    let (code, err) = status_and_stderr(&out);
    assert_eq!(code, Some(3), "{test}: {err}");
    assert!(err.contains("cannot enumerate"), "{test}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{test}: {err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{test}: {v}");
    assert_eq!(arr[0]["partial"], true, "{test}: {v}");

    let out = run(&["dump", &sel]);
    let (code, _) = status_and_stderr(&out);
    assert_eq!(code, Some(3), "{test}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Incomplete dump: map"),
        "{test}"
    );

    let out = run(&["lookup", &sel, "--key", "03000000"]);
    let (code, err) = status_and_stderr(&out);
    assert_ne!(code, Some(0), "{test}");
    assert!(
        err.contains("file descriptor of its owner"),
        "{test}: {err}"
    );
}
