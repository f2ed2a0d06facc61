//! ARENA maps: written by their owner through its own mapping, read by mapwalk-live
//! through a read-only mapping at the same user address. bpftool cannot dump arenas, so
//! the reference is what the owner wrote.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::{Command, Stdio};

use mapwalk_live::sys::{self, MapCreate};
use mapwalk_live::{ArenaAddr, Errno, Error, LiveMap, MapType};

use crate::common::{create, need_root, pattern, skip};

const BPF_F_MMAPABLE: u32 = 1 << 10;
const PAGES: u32 = 16;
const PAGE: usize = 4096;
/// A fixed user address for the arena of the first test: 4 GiB-aligned, so the arena
/// does not cross a 32-bit boundary, and far from anything this process maps.
const FIXED: u64 = 0x3f00_0000_0000;
/// Pages the owner writes.
const WRITTEN: [u32; 3] = [1, 4, 9];

/// The owner's read-write mapping of an arena (test code: the library only maps
/// read-only).
struct OwnerMapping {
    ptr: *mut u8,
    len: usize,
}

impl OwnerMapping {
    fn new(fd: BorrowedFd<'_>, addr: u64, len: usize) -> std::io::Result<Self> {
        let flags = libc::MAP_SHARED
            | if addr != 0 {
                libc::MAP_FIXED_NOREPLACE
            } else {
                0
            };
        // SAFETY:
        // - MAP_FIXED_NOREPLACE (or no fixed address) never replaces existing mappings;
        // - `fd` is a live arena descriptor.
        let p = unsafe {
            libc::mmap(
                addr as usize as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { ptr: p.cast(), len })
    }

    fn addr(&self) -> u64 {
        self.ptr as usize as u64
    }

    fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY:
        // - `offset + bytes.len() <= len` (asserted): the destination lies in this
        //   read-write mapping, which is live; the source is a distinct Rust slice;
        // - the page is faulted in (allocated by the arena) by the write itself.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.wrapping_add(offset),
                bytes.len(),
            )
        };
    }
}

impl Drop for OwnerMapping {
    fn drop(&mut self) {
        // SAFETY:
        // - exactly the mapping made in `new`, unmapped once; no references into it.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn page_content(page: u32) -> Vec<u8> {
    pattern(0xA5E7A + u64::from(page), PAGE)
}

/// Creates an arena, or explains why this kernel cannot.
fn create_arena(test: &str, name: &str, map_extra: u64) -> Option<LiveMap> {
    let spec = MapCreate::new(MapType::ARENA, name, 0, 0, PAGES)
        .flags(BPF_F_MMAPABLE)
        .extra(map_extra);
    match sys::map_create(&spec) {
        Ok(fd) => Some(LiveMap::from_fd(fd).expect("info")),
        Err(e)
            if matches!(
                e.errno(),
                Some(Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOTSUPP)
            ) =>
        {
            let why = format!(
                "this kernel cannot create arenas ({e}): needs Linux 6.9+ and a JIT with \
                 arena support"
            );
            skip(test, &why);
            None
        }
        // A host whose policy refuses arenas to this process (root without the
        // capability the kernel wants for them): one line, and the test ends. The kernel
        // itself can: that is what the guests of the real-kernel tests are for.
        Err(e) if e.errno() == Some(Errno::EPERM) => {
            // Policy against arenas only if a plain ARRAY can be made: otherwise this
            // process may not create maps at all, which is a loud skip.
            let array = MapCreate::new(MapType::ARRAY, "mw_ar_probe", 4, 4, 1);
            if let Err(a) = sys::map_create(&array) {
                skip(
                    test,
                    &format!("cannot create any map here ({a}); arenas: {e}"),
                );
                return None;
            }
            let _ = writeln!(
                std::io::stderr(),
                "{test}: this host refuses BPF arenas by policy ({e}); not tested here"
            );
            None
        }
        Err(e) => panic!("creating an arena: {e}"),
    }
}

#[test]
fn arena_at_a_fixed_address_reads_what_the_owner_wrote() {
    let test = "arena::arena_at_a_fixed_address_reads_what_the_owner_wrote";
    if !need_root(test) {
        return;
    }
    assert_eq!(sys::page_size(), PAGE, "the test assumes 4 KiB pages");
    let Some(map) = create_arena(test, "mw_arena_fix", FIXED) else {
        return;
    };
    assert_eq!(map.map_extra(), FIXED);
    {
        let owner = OwnerMapping::new(map.fd(), FIXED, PAGES as usize * PAGE).expect("owner mmap");
        assert_eq!(owner.addr(), FIXED);
        for p in WRITTEN {
            owner.write(p as usize * PAGE, &page_content(p));
        }
        // The owner unmaps; the pages stay in the arena.
    }
    let view = map
        .map_arena(ArenaAddr::Auto)
        .expect("map the arena at map_extra");
    assert_eq!(view.user_addr(), FIXED);
    assert_eq!(view.pages(), PAGES);
    // A fresh mapping has no page-table entries: mincore cannot tell which pages the
    // arena has.
    assert!(view.resident().expect("mincore").iter().all(|&r| !r));
    for p in WRITTEN {
        assert_eq!(
            view.read_page(p).expect("read"),
            page_content(p),
            "page {p}"
        );
    }
    let resident = view.resident().expect("mincore");
    for p in 0..PAGES {
        assert_eq!(
            resident[p as usize],
            WRITTEN.contains(&p),
            "page {p} residency"
        );
    }
    // A page nobody wrote reads as zeros (and is allocated by that read).
    assert!(view.read_page(2).expect("read").iter().all(|&b| b == 0));
    assert!(view.read_page(PAGES).is_err());
    let mut partial = [0u8; 10];
    view.read(4 * PAGE as u64 + 100, &mut partial)
        .expect("read");
    assert_eq!(&partial[..], &page_content(4)[100..110]);
    // A second mapping in this process cannot be at the same address.
    assert!(map.map_arena(ArenaAddr::Auto).is_err());
    drop(view);
    // The wrong address is refused by the kernel.
    let err = map.map_arena(ArenaAddr::At(FIXED + (1 << 32))).unwrap_err();
    assert!(
        matches!(err, Error::Mmap { .. } | Error::ArenaAddress { .. }),
        "{err}"
    );
    // Other maps are refused.
    let arr = create(&MapCreate::new(MapType::ARRAY, "mw_ar_arr", 4, 8, 1));
    assert!(matches!(
        arr.map_arena(ArenaAddr::Auto),
        Err(Error::Unsupported { .. })
    ));
}

const CHILD_ENV: &str = "MAPWALK_LIVE_ARENA_OWNER";

/// Not a test by itself: the arena owner process of
/// `arena_mapped_by_another_process_is_found_through_proc`, run as a child.
#[test]
fn arena_owner_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let map = create_arena("arena::arena_owner_child", "mw_arena_own", 0).expect("arena");
    let owner = OwnerMapping::new(map.fd(), 0, PAGES as usize * PAGE).expect("owner mmap");
    for p in WRITTEN {
        owner.write(p as usize * PAGE, &page_content(p));
    }
    println!("READY {} {:#x}", map.id(), owner.addr());
    std::io::stdout().flush().expect("flush");
    // Keep the arena (and the mapping) until the parent closes stdin.
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
}

#[test]
fn arena_mapped_by_another_process_is_found_through_proc() {
    let test = "arena::arena_mapped_by_another_process_is_found_through_proc";
    if !need_root(test) {
        return;
    }
    // Check arenas work here at all before starting the child.
    if create_arena(test, "mw_arena_probe", 0).is_none() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "arena::arena_owner_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the owner");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (id, addr) = loop {
        let line = lines.next().expect("the owner's READY line").expect("read");
        // The harness may print "test ... " on the same line first.
        if let Some(rest) = line.split_once("READY ").map(|(_, r)| r) {
            let mut it = rest.split_whitespace();
            let id: u32 = it.next().unwrap().parse().unwrap();
            let addr =
                u64::from_str_radix(it.next().unwrap().trim_start_matches("0x"), 16).unwrap();
            break (id, addr);
        }
    };
    let map = LiveMap::open(id).expect("open").expect("the owner's arena");
    assert_eq!(map.map_extra(), 0, "the owner let mmap choose the address");
    let view = map.map_arena(ArenaAddr::Auto).expect("found through /proc");
    assert_eq!(view.user_addr(), addr);
    for p in WRITTEN {
        assert_eq!(
            view.read_page(p).expect("read"),
            page_content(p),
            "page {p}"
        );
    }
    drop(view);
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
}

#[test]
fn arena_dumps_are_refused_with_the_reason() {
    // No root or arena needed: the refusal is decided by the type.
    let why = mapwalk_live::dump::unlisted_by_bpf(MapType::ARENA).expect("arenas are refused");
    assert!(why.contains("allocates every page"), "{why}");
    assert!(why.contains("memory source"), "{why}");
}
