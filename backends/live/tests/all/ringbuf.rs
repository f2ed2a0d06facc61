//! A RINGBUF filled by a BPF program (`bpf_ringbuf_output`), read through mmap.
//! bpftool cannot dump ring buffers, so the reference is what the program wrote.

use std::os::fd::{AsFd, AsRawFd};

use mapwalk_live::sys::{self, Insn, MapCreate, PROG_TYPE_SOCKET_FILTER};
use mapwalk_live::{Error, LiveMap, MapType};

use crate::common::{create, need_root, pattern};

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R10: u8 = 10;

fn ld_map_fd(dst: u8, map: &LiveMap) -> [Insn; 2] {
    // BPF_LD | BPF_IMM | BPF_DW with src = BPF_PSEUDO_MAP_FD.
    [
        insn(0x18, dst, 1, 0, map.fd().as_raw_fd()),
        insn(0, 0, 0, 0, 0),
    ]
}
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
fn add_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
const RINGBUF_OUTPUT: i32 = 130;
const RINGBUF_RESERVE: i32 = 131;
const RINGBUF_DISCARD: i32 = 133;

/// Runs a socket filter once.
fn run(name: &str, insns: &[Insn]) {
    let prog = sys::prog_load(PROG_TYPE_SOCKET_FILTER, name, insns)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    sys::prog_test_run(prog.as_fd(), &[0u8; 64]).unwrap_or_else(|e| panic!("running {name}: {e}"));
}

/// Emits one record of `len` bytes (1..=64) whose content derives from `seed`;
/// returns the bytes.
fn output(map: &LiveMap, seed: u64, len: i32) -> Vec<u8> {
    let words: Vec<i32> = pattern(seed, 32)
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut insns = Vec::new();
    let mut bytes = Vec::new();
    for (j, &w) in words.iter().enumerate() {
        // *(u64 *)(r10 - 64 + 8j) = w (sign-extended)
        insns.push(insn(0x7a, R10, 0, -64 + 8 * j as i16, w));
        bytes.extend_from_slice(&i64::from(w).to_le_bytes());
    }
    insns.extend(ld_map_fd(R1, map));
    insns.extend([
        mov_reg(R2, R10),
        add_imm(R2, -64),
        mov_imm(R3, len),
        mov_imm(R4, 0),
        call(RINGBUF_OUTPUT),
        mov_imm(R0, 0),
        exit(),
    ]);
    run("mw_rb_out", &insns);
    bytes.truncate(len as usize);
    bytes
}

/// Reserves `len` bytes and discards them.
fn discard(map: &LiveMap, len: i32) {
    let mut insns = Vec::new();
    insns.extend(ld_map_fd(R1, map));
    insns.extend([
        mov_imm(R2, len),
        mov_imm(R3, 0),
        call(RINGBUF_RESERVE),
        insn(0x15, R0, 0, 3, 0), // if r0 == 0 goto exit
        mov_reg(R1, R0),
        mov_imm(R2, 0),
        call(RINGBUF_DISCARD),
        mov_imm(R0, 0),
        exit(),
    ]);
    run("mw_rb_discard", &insns);
}

#[test]
fn ringbuf_records_and_positions_match_what_the_program_wrote() {
    if !need_root("ringbuf::ringbuf_records_and_positions_match_what_the_program_wrote") {
        return;
    }
    let size = 4 * 4096;
    let map = create(&MapCreate::new(MapType::RINGBUF, "mw_ringbuf", 0, 0, size));
    let view = map.map_ringbuf().expect("map ringbuf");
    assert_eq!(view.size(), u64::from(size));
    let empty = view.snapshot().expect("snapshot");
    assert_eq!(
        (empty.consumer_pos, empty.producer_pos, empty.records.len()),
        (0, 0, 0)
    );

    let mut expected = Vec::new();
    let mut pos = 0u64;
    for i in 0..25u64 {
        if i == 12 {
            discard(&map, 24);
            pos += (24 + 8u64).next_multiple_of(8);
            continue;
        }
        let len = 1 + (i as i32 * 7) % 64;
        let data = output(&map, i, len);
        expected.push((pos, data));
        pos += (len as u64 + 8).next_multiple_of(8);
    }
    let snap = view.snapshot().expect("snapshot");
    assert_eq!(snap.consumer_pos, 0);
    assert_eq!(snap.producer_pos, pos);
    assert_eq!(snap.consumer_pos_after, 0);
    assert_eq!(snap.discarded, 1);
    assert!(!snap.stopped_at_busy);
    let got: Vec<(u64, Vec<u8>)> = snap
        .records
        .iter()
        .map(|r| (r.pos, r.data.clone()))
        .collect();
    assert_eq!(got, expected);
    // Reading does not consume.
    assert_eq!(view.snapshot().expect("again"), snap);
    assert_eq!(view.positions().expect("positions"), (0, pos));
    // Other maps are refused.
    let arr = create(&MapCreate::new(MapType::ARRAY, "mw_rb_arr", 4, 8, 1));
    assert!(matches!(arr.map_ringbuf(), Err(Error::Unsupported { .. })));
}

#[test]
fn the_dump_form_has_the_positions_then_every_record_with_its_header() {
    if !need_root("ringbuf::the_dump_form_has_the_positions_then_every_record_with_its_header") {
        return;
    }
    let size = 4096u32;
    let map = create(&MapCreate::new(MapType::RINGBUF, "mw_rb_form", 0, 0, size));
    let view = map.map_ringbuf().expect("map ringbuf");
    let a = output(&map, 1, 5);
    discard(&map, 12);
    let b = output(&map, 2, 64);
    let mut got = Vec::new();
    let n = view
        .for_each_form_entry(MapType::RINGBUF, true, |k, v| {
            got.push((k.to_vec(), v.to_vec()));
            std::ops::ControlFlow::Continue(())
        })
        .expect("form");
    assert_eq!(n, 4);
    let prod = 16u64 + 24 + 72;
    let mut header = 1u32.to_le_bytes().to_vec();
    header.extend(27u32.to_le_bytes());
    for v in [u64::from(size), 0, prod] {
        header.extend(v.to_le_bytes());
    }
    // pending_pos (6.8 and later, and stable kernels with the backport): where the last
    // reservation (of the record at 40) found no busy record before it; without the
    // field, the word after producer_pos is zero.
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    let has = btf.windows(11).any(|w| w == b"pending_pos");
    let pending_pos: u64 = if has { 40 } else { 0 };
    header.extend(pending_pos.to_le_bytes());
    header.extend(prod.to_le_bytes());
    assert_eq!(got[0], (vec![], header));
    let want = [
        (0u64, 5u32, &a[..]),
        (16, 12 | (1 << 30), &[][..]),
        (40, 64, &b[..]),
    ];
    for ((k, v), (pos, len_word, data)) in got[1..].iter().zip(want) {
        assert_eq!(k, &pos.to_le_bytes());
        assert_eq!(v[..4], len_word.to_le_bytes(), "record at {pos}");
        let len = (len_word & 0x3fff_ffff) as usize;
        assert_eq!(v.len(), 8 + len);
        if !data.is_empty() {
            assert_eq!(&v[8..], data, "record at {pos}");
        }
    }
}

#[test]
fn a_user_ringbuf_maps_read_only_and_dumps_its_header() {
    if !need_root("ringbuf::a_user_ringbuf_maps_read_only_and_dumps_its_header") {
        return;
    }
    let map = create(&MapCreate::new(
        MapType::USER_RINGBUF,
        "mw_urb_form",
        0,
        0,
        8192,
    ));
    let view = map.map_ringbuf().expect("map user ringbuf");
    let mut got = Vec::new();
    view.for_each_form_entry(MapType::USER_RINGBUF, true, |k, v| {
        got.push((k.to_vec(), v.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .expect("form");
    let mut header = 1u32.to_le_bytes().to_vec();
    header.extend(31u32.to_le_bytes());
    for v in [8192u64, 0, 0, 0, 0] {
        header.extend(v.to_le_bytes());
    }
    assert_eq!(got, [(vec![], header)]);
}
