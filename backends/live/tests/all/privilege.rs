//! Without privilege: one clear error naming the missing capability.
//!
//! The test runs this test binary again in a child with fewer privileges (via
//! `setpriv`), filtered to `privilege::denied_child`, and checks what the child saw.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use mapwalk_live::sys::MapCreate;
use mapwalk_live::{DumpOptions, Error, LiveMap, MapType};

use crate::common::{need_root, skip};

const CHILD_ENV: &str = "MAPWALK_LIVE_DENIED_CHILD";

/// Not a test by itself: what the unprivileged child runs.
#[test]
fn denied_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // Listing maps needs CAP_SYS_ADMIN (BPF_MAP_GET_NEXT_ID).
    let err = mapwalk_live::maps().expect_err("listing maps must be refused");
    assert!(
        matches!(
            err,
            Error::Denied {
                needs: "CAP_SYS_ADMIN",
                ..
            }
        ),
        "unexpected error: {err:?}"
    );
    println!("DENIED-OK {err}");
    let spec = MapCreate::new(MapType::HASH, "mw_denied", 4, 8, 4);
    match mode.as_str() {
        "nobody" => {
            // kernel.unprivileged_bpf_disabled (default 2 on Debian) also denies
            // creating maps.
            match mapwalk_live::sys::map_create(&spec) {
                Err(
                    e @ Error::Denied {
                        needs: "CAP_BPF", ..
                    },
                ) => println!("CREATE-DENIED-OK {e}"),
                Ok(_) => println!("CREATE-ALLOWED (unprivileged BPF is enabled here)"),
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        "no-sys-admin" => {
            // CAP_BPF is enough to create a map and read it through its own fd, but
            // not to open it by id.
            let fd = mapwalk_live::sys::map_create(&spec).expect("CAP_BPF creates maps");
            let map = LiveMap::from_fd(fd).expect("info through our own fd");
            map.update(&[1, 0, 0, 0], &[7; 8], mapwalk_live::Update::Any)
                .expect("update");
            assert_eq!(
                map.dump(DumpOptions::default())
                    .expect("dump")
                    .entries
                    .len(),
                1
            );
            let err = LiveMap::open(map.id()).expect_err("GET_FD_BY_ID must be refused");
            assert!(
                matches!(
                    err,
                    Error::Denied {
                        needs: "CAP_SYS_ADMIN",
                        ..
                    }
                ),
                "{err:?}"
            );
            println!("OPEN-DENIED-OK {err}");
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn run_child(test: &str, setpriv_args: &[&str], mode: &str) -> Option<String> {
    // The child may not be able to read the build directory: run a copy.
    let exe = std::env::current_exe().expect("test binary");
    let copy = std::env::temp_dir().join(format!("mapwalk-live-privtest-{}", std::process::id()));
    std::fs::copy(&exe, &copy).expect("copy test binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new("setpriv")
        .args(setpriv_args)
        .arg("--")
        .arg(&copy)
        .args([
            "privilege::denied_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .current_dir("/")
        .output();
    let _ = std::fs::remove_file(&copy);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            skip(
                test,
                &format!("setpriv cannot run ({e}): cannot drop privileges"),
            );
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

#[test]
fn unprivileged_user_gets_a_clear_denied_error() {
    let test = "privilege::unprivileged_user_gets_a_clear_denied_error";
    if !need_root(test) {
        return;
    }
    let Some(out) = run_child(
        test,
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        "nobody",
    ) else {
        return;
    };
    eprintln!("{out}");
    let want = "DENIED-OK bpf(BPF_MAP_GET_NEXT_ID) was refused \
                (EPERM: Operation not permitted): needs CAP_SYS_ADMIN";
    assert!(out.contains(want), "{out}");
    assert!(out.contains("CREATE-"), "{out}");
}

#[test]
fn root_without_cap_sys_admin_cannot_open_maps_by_id() {
    let test = "privilege::root_without_cap_sys_admin_cannot_open_maps_by_id";
    if !need_root(test) {
        return;
    }
    let Some(out) = run_child(
        test,
        &["--inh-caps=-sys_admin", "--bounding-set=-sys_admin"],
        "no-sys-admin",
    ) else {
        return;
    };
    eprintln!("{out}");
    assert!(out.contains("DENIED-OK"), "{out}");
    assert!(
        out.contains("OPEN-DENIED-OK bpf(BPF_MAP_GET_FD_BY_ID) was refused"),
        "{out}"
    );
}
