//! Tables built by [`KsymtabBuilder`] in a plain RAM buffer, read back, and corrupted.

use super::*;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelView, X86_START_KERNEL_MAP};
use mapwalk_core::{Pa, Paging, Ram};

/// Where the table starts: 4 KiB into an image loaded at physical 0.
const AT: u64 = X86_START_KERNEL_MAP + 0x1000;
const TEXT: u64 = 0xffff_ffff_8100_0000;

/// A kernel view whose image mapping puts `AT` at offset 0x1000 of `ram`.
fn view(ram: Vec<u8>) -> KernelView<Ram<Vec<u8>>> {
    let image = KernelAddrs {
        direct_map: None,
        ..KernelAddrs::x86_64(0, 0, 0)
    };
    KernelView::new(
        Ram::new(Pa(0), ram),
        Paging::X86_64(X86Paging::new(0, false)),
        image,
    )
}

/// `bytes` at `AT`, in RAM of `len` bytes (at least the table and its page).
fn ram_with(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut ram = vec![0u8; len.max(0x1000 + bytes.len())];
    ram[0x1000..0x1000 + bytes.len()].copy_from_slice(bytes);
    ram
}

fn sample() -> KsymtabBuilder {
    let mut b = KsymtabBuilder::new();
    b.token(0x80, "map_")
        .token(0x81, "_base")
        .token(0x82, "page_offset")
        .push('A', "fixed_percpu_data", 0)
        .push('A', "cpu_number", 0x2_0000)
        .push('T', "_text", TEXT)
        .push('t', "helper", TEXT + 0x100)
        .push('T', "helper", TEXT + 0x200)
        .push('d', "map_idr", TEXT + 0x150_0000)
        .push('D', "page_offset_base", TEXT + 0x150_0040)
        .push('d', "phys_base", TEXT + 0x150_0080)
        .push('b', "phys_base", TEXT + 0x160_0000);
    b
}

fn read(b: &KsymtabBuilder, enc: BuildEncoding) -> Result<Ksymtab, KsymtabError> {
    let (bytes, loc) = b.build(AT, enc).unwrap();
    Ksymtab::read(&view(ram_with(&bytes, 0x2000)), &loc)
}

#[test]
fn every_encoding_round_trips() {
    let b = sample();
    for (enc, want) in [
        (
            BuildEncoding::AbsolutePercpu,
            AddressEncoding::AbsolutePercpu { base: TEXT },
        ),
        (
            BuildEncoding::Relative,
            AddressEncoding::Relative { base: 0 },
        ),
        (
            BuildEncoding::PlaceRelative,
            AddressEncoding::PlaceRelative { offsets: 0 },
        ),
    ] {
        let b = if enc == BuildEncoding::AbsolutePercpu {
            b.clone()
        } else {
            // Without absolute per-CPU symbols everything is relative to the image.
            let mut only = KsymtabBuilder::new();
            only.token(0x80, "map_")
                .push('T', "_text", TEXT)
                .push('d', "map_idr", TEXT + 0x150_0000)
                .push('T', "map_x", TEXT + 0x4000_0000);
            only
        };
        let t = read(&b, enc).unwrap_or_else(|e| panic!("{enc:?}: {e}"));
        match (t.encoding(), want) {
            (AddressEncoding::AbsolutePercpu { base }, AddressEncoding::AbsolutePercpu { .. }) => {
                assert_eq!(base, TEXT)
            }
            (AddressEncoding::Relative { base }, AddressEncoding::Relative { .. }) => {
                assert_eq!(base, TEXT)
            }
            (AddressEncoding::PlaceRelative { offsets }, AddressEncoding::PlaceRelative { .. }) => {
                assert_eq!(offsets, t.location().offsets.0)
            }
            (got, _) => panic!("{enc:?}: decoded as {got:?}"),
        }
        let got: Vec<(char, String, u64)> = t.iter().map(|e| (e.kind, e.name, e.addr)).collect();
        assert_eq!(got, b.symbols, "{enc:?}");
        assert_eq!(t.len(), b.symbols.len());
        assert!(t.iter().enumerate().all(|(i, e)| e.index as usize == i));
    }
}

#[test]
fn find_prefers_the_first_global_symbol() {
    let t = read(&sample(), BuildEncoding::AbsolutePercpu).unwrap();
    let found = t.find(&["helper", "phys_base", "cpu_number", "nope", "helper", ""]);
    let brief: Vec<Option<(char, u64)>> = found
        .iter()
        .map(|f| f.as_ref().map(|e| (e.kind, e.addr)))
        .collect();
    assert_eq!(
        brief,
        [
            Some(('T', TEXT + 0x200)),
            Some(('d', TEXT + 0x150_0080)),
            Some(('A', 0x2_0000)),
            None,
            Some(('T', TEXT + 0x200)),
            None,
        ]
    );
    assert_eq!(found[0].as_ref().unwrap().index, 4);
    assert_eq!(t.lookup("map_idr"), Some(TEXT + 0x150_0000));
    assert!(t.find(&[]).is_empty());
    // The tokens compress: "Dpage_offset" + "_base" is 3 bytes, its length 1.
    assert!(t.names_len() < 120, "{}", t.names_len());
}

#[test]
fn lengths_of_one_and_two_bytes() {
    // 127 compressed bytes (type letter and 126 characters) take one length byte; 128
    // and more take two; 511 characters (KSYM_NAME_LEN - 1) is the longest name.
    let n126 = "a".repeat(126);
    let n127 = "b".repeat(127);
    let n511 = "c".repeat(511);
    let mut b = KsymtabBuilder::new();
    b.push('T', &n126, TEXT)
        .push('T', &n127, TEXT + 1)
        .push('t', &n511, TEXT + 2);
    let (bytes, loc) = b.build(AT, BuildEncoding::Relative).unwrap();
    let names = (loc.names.0 - AT) as usize;
    assert_eq!(bytes[names], 127);
    let second = names + 1 + 127;
    assert_eq!(&bytes[second..second + 2], &[0x80, 1]);
    let third = second + 2 + 128;
    assert_eq!(&bytes[third..third + 2], &[0x80, 4], "512 = 0 | 4 << 7");
    let t = Ksymtab::read(&view(ram_with(&bytes, 0x2000)), &loc).unwrap();
    let names: Vec<String> = t.iter().map(|e| e.name).collect();
    assert_eq!(names, [n126, n127, n511.clone()]);
    assert_eq!(t.lookup(&n511), Some(TEXT + 2));
    assert_eq!(t.names_len(), 1 + 127 + 2 + 128 + 2 + 512);
}

/// Builds `b`, lets `patch` change the bytes (offsets from `AT`), reads it back.
fn patched(
    b: &KsymtabBuilder,
    ram_len: usize,
    patch: impl FnOnce(&mut Vec<u8>, &KsymtabLocation),
) -> Result<Ksymtab, KsymtabError> {
    let (mut bytes, loc) = b.build(AT, BuildEncoding::AbsolutePercpu).unwrap();
    patch(&mut bytes, &loc);
    Ksymtab::read(&view(ram_with(&bytes, ram_len)), &loc)
}

fn off(kva: Kva) -> usize {
    (kva.0 - AT) as usize
}

#[test]
fn bad_lengths_are_refused() {
    let b = sample();
    let names = off(read(&b, BuildEncoding::AbsolutePercpu)
        .unwrap()
        .location()
        .names);
    let err = patched(&b, 0x2000, |bytes, _| bytes[names] = 0).unwrap_err();
    assert_eq!(
        err,
        KsymtabError::BadName {
            index: 0,
            at: Kva(AT + names as u64),
            what: "empty compressed name",
            value: 0,
        }
    );
    // 0x81 0x05: 1 | 5 << 7 = 641 compressed bytes.
    let err = patched(&b, 0x2000, |bytes, _| {
        bytes[names] = 0x81;
        bytes[names + 1] = 5;
    })
    .unwrap_err();
    assert!(
        matches!(err, KsymtabError::BadName { index: 0, value: 641, what, .. } if what.contains("KSYM_NAME_LEN")),
        "{err}"
    );
    // Three tokens of 300 characters: 3 compressed bytes, 901 expanded.
    let long = "x".repeat(300);
    let mut b = KsymtabBuilder::new();
    b.token(0x90, &long).push('T', &long.repeat(3), TEXT);
    let (bytes, loc) = b.build(AT, BuildEncoding::Relative).unwrap();
    let err = Ksymtab::read(&view(ram_with(&bytes, 0x2000)), &loc).unwrap_err();
    assert_eq!(
        err,
        KsymtabError::BadName {
            index: 0,
            at: loc.names,
            what: "expands past KSYM_NAME_LEN",
            value: 901,
        }
    );
    // A name of nothing but its type letter.
    let mut b = KsymtabBuilder::new();
    b.push('T', "", TEXT);
    let err = read(&b, BuildEncoding::Relative).unwrap_err();
    assert!(matches!(
        err,
        KsymtabError::BadName {
            what: "expands to no name",
            value: 1,
            ..
        }
    ));
}

#[test]
fn bad_token_indexes_are_refused() {
    let b = sample();
    // Token b'e' pointing at 600 bytes without a NUL (in the RAM right after the table).
    let err = patched(&b, 0x4000, |bytes, loc| {
        let table = off(loc.token_table);
        let index = off(loc.token_index);
        let at = bytes.len() - table;
        bytes.resize(bytes.len() + 600, b'z');
        bytes[index + 2 * usize::from(b'e')..][..2].copy_from_slice(&(at as u16).to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(err, KsymtabError::BadToken { token: b'e', .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("kallsyms_token_index[101]"),
        "{err}"
    );
    // Token 0xff at the last offset, past the end of memory.
    let err = patched(&b, 0, |bytes, loc| {
        let index = off(loc.token_index);
        bytes[index + 2 * 255..][..2].copy_from_slice(&u16::MAX.to_le_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            KsymtabError::Read {
                what: "kallsyms_token_table",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn counts_are_capped() {
    let b = sample();
    for n in [0, MAX_SYMS + 1, u32::MAX] {
        let err = patched(&b, 0x2000, |bytes, _| {
            bytes[..4].copy_from_slice(&n.to_le_bytes())
        })
        .unwrap_err();
        assert_eq!(
            err,
            KsymtabError::Cap {
                what: "kallsyms_num_syms",
                at: Kva(AT),
                value: u64::from(n),
                cap: u64::from(MAX_SYMS),
            }
        );
    }
    // More symbols than names: the names run into the token table and past memory.
    let err = patched(&b, 0x2000, |bytes, _| {
        bytes[..4].copy_from_slice(&1000u32.to_le_bytes())
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            KsymtabError::BadName { .. }
                | KsymtabError::Read {
                    what: "kallsyms_names",
                    ..
                }
        ),
        "{err}"
    );
}

#[test]
fn names_are_capped() {
    // MAX_SYMS names of 127 bytes of 0x01 each: the names pass MAX_NAMES_BYTES first.
    let mut pattern = [0x01u8; 128];
    pattern[0] = 127;
    let len = MAX_NAMES_BYTES + (1 << 20);
    let mut ram: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
    // The header page: the count, then the token index (every token at offset 0) and
    // a token table of "\x01\0".
    let head = [0u8; 0x1000];
    ram.splice(0..0, head);
    ram[0..4].copy_from_slice(&MAX_SYMS.to_le_bytes());
    ram[0x10..0x12].copy_from_slice(&[1, 0]);
    let loc = KsymtabLocation {
        names: Kva(X86_START_KERNEL_MAP + 0x1000),
        num_syms: Kva(X86_START_KERNEL_MAP),
        token_table: Kva(X86_START_KERNEL_MAP + 0x10),
        token_index: Kva(X86_START_KERNEL_MAP + 0x100),
        offsets: Kva(X86_START_KERNEL_MAP + 0x400),
        relative_base: None,
    };
    let err = Ksymtab::read(&view(ram), &loc).unwrap_err();
    assert!(
        matches!(err, KsymtabError::Cap { what: "kallsyms_names", cap, .. } if cap == MAX_NAMES_BYTES as u64),
        "{err}"
    );
}

#[test]
fn addresses_that_overflow_are_refused() {
    let mut b = KsymtabBuilder::new();
    b.push('T', "a", TEXT).push('T', "b", TEXT + 0x10);
    let (mut bytes, loc) = b.build(AT, BuildEncoding::Relative).unwrap();
    let base = off(loc.relative_base.unwrap());
    bytes[base..base + 8].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    let err = Ksymtab::read(&view(ram_with(&bytes, 0x2000)), &loc).unwrap_err();
    assert_eq!(
        err,
        KsymtabError::BadAddress {
            index: 1,
            offset: 0x10
        }
    );
    assert_eq!(
        AddressEncoding::AbsolutePercpu { base: 10 }.address(0, i32::MIN),
        Some(10 + 0x7fff_ffff)
    );
    assert_eq!(
        AddressEncoding::PlaceRelative { offsets: 0x1000 }.address(2, -8),
        Some(0x1000)
    );
    assert_eq!(
        AddressEncoding::PlaceRelative { offsets: 0 }.address(0, -1),
        None
    );
}

#[test]
fn unreadable_parts_are_named() {
    let b = sample();
    let (bytes, mut loc) = b.build(AT, BuildEncoding::AbsolutePercpu).unwrap();
    let ram = ram_with(&bytes, 0x2000);
    loc.offsets = Kva(0xffff_8880_0000_0000);
    let err = Ksymtab::read(&view(ram), &loc).unwrap_err();
    assert!(
        matches!(err, KsymtabError::Read { what: "kallsyms_offsets", at, .. } if at == loc.offsets),
        "{err}"
    );
    let info = Vmcoreinfo::parse(
        b"OSRELEASE=5.15.0\nPAGESIZE=4096\nSYMBOL(kallsyms_names)=ffffffff82000000\n",
    );
    assert_eq!(
        KsymtabLocation::from_vmcoreinfo(&info),
        Err(KsymtabError::NotInVmcoreinfo {
            symbol: "kallsyms_num_syms"
        })
    );
}

#[test]
fn find_sees_names_whose_tokens_span_the_type_letter() {
    // "Tfo" holds the type letter and the name's first two bytes.
    let mut b = KsymtabBuilder::new();
    b.token(0x83, "Tfo")
        .push('T', "foo", TEXT)
        .push('t', "fox", TEXT + 8)
        .push('T', "fo", TEXT + 16)
        .push('T', "f", TEXT + 24)
        .push('D', "o", TEXT + 32);
    let (bytes, loc) = b.build(AT, BuildEncoding::Relative).unwrap();
    let names = off(loc.names);
    assert_eq!(&bytes[names..names + 3], &[2, 0x83, b'o']);
    let t = Ksymtab::read(&view(ram_with(&bytes, 0x2000)), &loc).unwrap();
    let got: Vec<Option<u64>> = t
        .find(&["foo", "fox", "fo", "f", "o", "Tfo", "oo"])
        .into_iter()
        .map(|e| e.map(|e| e.addr))
        .collect();
    assert_eq!(
        got,
        [
            Some(TEXT),
            Some(TEXT + 8),
            Some(TEXT + 16),
            Some(TEXT + 24),
            Some(TEXT + 32),
            None,
            None
        ]
    );
}
