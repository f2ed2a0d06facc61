//! STACK_TRACE maps from outside, on 6.1 and 6.12: the guest's `/init`
//! (`e2e/guest/stack.c`) fills `mw_stacks` from a raw-tracepoint program on `sys_enter`
//! that calls `bpf_get_stackid`, detaches it, and reports every stored stack as its
//! lookups returned it (section `bpf-maps`, `HVAL`). `mapwalk dump --json` of the map,
//! read from the guest's RAM file, must hold exactly those entries, byte for byte and
//! in `GET_NEXT_KEY` order (bucket order); and the frames, named with the guest's
//! kallsyms (`mapwalk::stack`), must be the system-call entry path.

use super::bytes::bytes;
use mapwalk::stack::{frames, Frame, KernelSymbolizer};
use mapwalk_core::bpf::MapFlags;
use mapwalk_core::{Kva, MapType};
use mapwalk_e2e::{self as e2e, GuestConfig};

use super::cli::Outside;

#[test]
fn deb12_kaslr_5level_stack_trace() {
    stack_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_stack_trace() {
    stack_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

fn stack_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::stack::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    check_stack(test, &Outside::x86(test, guest, "stack"));
}

/// The checks of `stack_from_memory`, on any guest read from outside.
pub(super) fn check_stack(test: &str, out: &Outside<'_>) {
    let report = out.report;
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let map = maps
        .iter()
        .find(|m| m.name == "mw_stacks")
        .unwrap_or_else(|| panic!("{test}: the guest did not report mw_stacks"));
    assert_eq!(map.map_type, MapType::STACK_TRACE.0, "{test}");
    assert!(!map.hash_values.is_empty(), "{test}: no stack reported");

    let cli = out.cli();
    let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
    let got: Vec<(Vec<u8>, Vec<u8>)> = dump
        .as_array()
        .unwrap_or_else(|| panic!("{test}: dump: {dump}"))
        .iter()
        .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
        .collect();
    // HVAL keys are little-endian u32 bucket ids; the dump's order is bucket order.
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = map
        .hash_values
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    want.sort_by_key(|(k, _)| u32::from_le_bytes(k[..4].try_into().unwrap()));
    assert_eq!(got, want, "{test}: mw_stacks from memory");

    // Every stack names kernel functions (a frame in the freed program itself may stay
    // unnamed), and one passes through the system-call entry.
    let syms = KernelSymbolizer::new(
        report
            .kallsyms
            .symbols()
            .iter()
            .filter(|s| s.module.is_none())
            .map(|s| (s.name.clone(), Kva(s.addr))),
    );
    // The system-call entry: x86_64's, or arm64's.
    let (entries, entry_fn): (&[&str], &str) = if out.arm64 {
        (&["el0_svc+"], "el0_svc")
    } else {
        (&["do_syscall_64+", "entry_SYSCALL_64"], "do_syscall_64")
    };
    let mut seen_entry = false;
    for (key, value) in &got {
        let all: Vec<(u64, Option<String>)> = frames(value, MapFlags::empty())
            .into_iter()
            .map(|f| match f {
                Frame::Ip(ip) => (ip, syms.name(ip)),
                Frame::BuildId { .. } => panic!("{test}: a build-id frame"),
            })
            .collect();
        let named: Vec<String> = all
            .iter()
            .map(|(ip, n)| n.clone().unwrap_or_else(|| format!("{ip:#x}")))
            .collect();
        // At most one address unnamed (arm64's unwinder lists the program's twice).
        let unnamed: std::collections::BTreeSet<u64> = all
            .iter()
            .filter(|(_, n)| n.is_none())
            .map(|(ip, _)| *ip)
            .collect();
        assert!(
            all.len() >= 3 && unnamed.len() <= 1,
            "{test}: stack {key:?}: {named:?}"
        );
        seen_entry |= named
            .iter()
            .any(|n| entries.iter().any(|e| n.starts_with(e)));
        eprintln!("{test}: stack {key:?}: {}", named.join(" <- "));
    }
    assert!(seen_entry, "{test}: no stack through {entry_fn}");

    // The dump names the frames itself: `"frames"` beside each value, every address
    // a kernel function holds named as the guest's kallsyms name it.
    for (e, (key, value)) in dump.as_array().unwrap().iter().zip(&got) {
        let listed = e["frames"]
            .as_array()
            .unwrap_or_else(|| panic!("{test}: stack {key:?}: no frames in {e}"));
        let want = frames(value, MapFlags::empty());
        assert_eq!(listed.len(), want.len(), "{test}: stack {key:?}: {e}");
        for (f, w) in listed.iter().zip(want) {
            let Frame::Ip(ip) = w else { unreachable!() };
            assert_eq!(f["ip"], format!("{ip:#x}"), "{test}: stack {key:?}");
            if let Some(name) = syms.name(ip) {
                assert_eq!(f["symbol"], name, "{test}: stack {key:?} frame {ip:#x}");
            }
        }
    }
    // And the text dump, a `frames:` block per stack.
    let text = cli.run(&["dump", &format!("id:{}", map.id)]);
    assert!(text.status.success(), "{test}: text dump");
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(
        text.matches("frames:\n").count(),
        got.len(),
        "{test}: {text}"
    );
    assert!(text.contains(&format!(" {entry_fn}+0x")), "{test}: {text}");
}
