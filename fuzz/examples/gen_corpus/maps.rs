//! Seeds of the map-type targets: local storage, ring buffers, stack traces, struct_ops,
//! object maps and arenas.

use super::*;

pub(crate) fn storage_seeds() {
    use storage::Header;
    let t = "storage";
    for guest in 0..5u8 {
        let h = Header {
            guest,
            ..Header::default()
        };
        write(
            t,
            &guest_name(guest),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // Owners undescribed (no owner offsets), and a two-element visit cap.
    let h = Header {
        absent: 0xf,
        storage_elems: 2,
        ..Header::default()
    };
    write(
        t,
        "synth-x86-no-owners-cap-2",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // `map_node.pprev` moved: no back link agrees, every bucket is read again.
    let mut h = Header::default();
    h.offsets[6] = 16;
    write(
        t,
        "synth-x86-pprev-moved",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // Raw: a TASK_STORAGE map with two buckets, one element, its storage and owner.
    let l = default_layout();
    let st = l.storage.unwrap();
    let task = st.task.unwrap();
    let mut ram = SynthRam::new(Pa(0), 16 << 10);
    let dm = |pa: Pa| RAW_DIRECT_MAP + pa.0;
    let map = ram.alloc(512, 64);
    let buckets = ram.alloc(2 * u64::from(st.bucket_size), 64);
    let elem = ram.alloc(u64::from(st.elem_data) + 8, 64);
    let storage = ram.alloc(u64::from(st.storage_owner) + 8, 64);
    let owner = ram.alloc(u64::from(task.comm) + 16, 64);
    ram.write_u64(Pa(map.0 + u64::from(st.buckets)), dm(buckets));
    ram.write_u32(Pa(map.0 + u64::from(st.bucket_log)), 1);
    let head = Pa(buckets.0 + u64::from(st.bucket_first));
    ram.write_u64(head, dm(elem) + u64::from(st.elem_map_node));
    ram.write_u64(Pa(elem.0 + u64::from(st.elem_pprev)), dm(head));
    ram.write_u64(Pa(elem.0 + u64::from(st.elem_local_storage)), dm(storage));
    ram.write_u64(Pa(elem.0 + u64::from(st.elem_smap)), dm(map));
    ram.write(Pa(elem.0 + u64::from(st.elem_data)), &[0x5a; 8]);
    ram.write_u64(Pa(storage.0 + u64::from(st.storage_owner)), dm(owner));
    ram.write_u32(Pa(owner.0 + u64::from(task.pid)), 1);
    ram.write_u32(Pa(owner.0 + u64::from(task.tgid)), 1);
    ram.write(Pa(owner.0 + u64::from(task.comm)), b"init");
    let h = Header {
        mode: 1,
        offsets: storage::offsets(&st).map(|o| o as u16),
        value_size: 8,
        map_at: map.0 as u32,
        ..Header::default()
    };
    let used = (ram.bytes().iter().rposition(|&b| b != 0).unwrap() + 1).next_multiple_of(4096);
    write(
        t,
        "raw-one-task",
        &raw(|e| h.encode(e), &ram.bytes()[..used]),
    );
}

pub(crate) fn ringbuf_seeds() {
    use mapwalk_fuzz::ringbuf::Header;
    let t = "ringbuf";
    for guest in 0..7u8 {
        let h = Header {
            guest,
            ..Header::default()
        };
        write(
            t,
            &format!("seed-{}", guest_name(guest)),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // Without pending_pos (a kernel before 6.8).
    let h = Header {
        absent: 2,
        ..Header::default()
    };
    write(
        t,
        "seed-synth-x86-no-pending-pos",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
}

pub(crate) fn stackmap_seeds() {
    use stackmap::Header;
    let t = "stackmap";
    for guest in 0..7u8 {
        let h = Header {
            guest,
            ..Header::default()
        };
        write(
            t,
            &format!("seed-{}", guest_name(guest)),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // Raw: a map of max_entries 3 (four buckets) whose bucket 2 holds two frames.
    let l = default_layout().stackmap.unwrap();
    let mut ram = SynthRam::new(Pa(0), 4096);
    let map = ram.alloc(u64::from(l.buckets) + 32, 64);
    let bucket = ram.alloc(u64::from(l.bucket_data) + 16, 64);
    ram.write_u32(Pa(map.0 + u64::from(l.n_buckets)), 4);
    ram.write_u64(
        Pa(map.0 + u64::from(l.buckets) + 16),
        RAW_DIRECT_MAP + bucket.0,
    );
    ram.write_u32(Pa(bucket.0 + u64::from(l.bucket_nr)), 2);
    ram.write_u64(
        Pa(bucket.0 + u64::from(l.bucket_data)),
        0xffff_ffff_8100_0010,
    );
    ram.write_u64(
        Pa(bucket.0 + u64::from(l.bucket_data) + 8),
        0xffff_ffff_8100_0020,
    );
    let h = Header {
        mode: 1,
        offsets: stackmap::offsets(&default_layout()).map(|o| o as u16),
        kva: map.0 as u32,
        info: [0, 0, 24],
        max_entries: 3,
        ..Header::default()
    };
    write(t, "seed-raw-two-frames", &raw(|e| h.encode(e), ram.bytes()));
}

pub(crate) fn objmaps_seeds() {
    use objmaps::Header;
    let t = "objmaps";
    for guest in 0..7u8 {
        let h = Header {
            guest,
            ..Header::default()
        };
        write(
            t,
            &format!("seed-{}", guest_name(guest)),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // Small caps: chains of one, two buckets.
    let h = Header {
        chain: 1,
        buckets: 2,
        ..Header::default()
    };
    write(
        t,
        "seed-synth-x86-small-caps",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // Raw: a DEVMAP_HASH of four buckets with one element (key 5, ifindex 1), and a
    // BLOOM_FILTER of 64 bits, in one page.
    let l = default_layout();
    let d = l.devmap.unwrap();
    let mut ram = SynthRam::new(Pa(0), 4096);
    let map = ram.alloc(512, 64);
    let heads = ram.alloc(32, 64);
    let dev = ram.alloc(128, 64);
    ram.write_u64(
        Pa(map.0 + u64::from(d.dev_index_head)),
        RAW_DIRECT_MAP + heads.0,
    );
    ram.write_u32(Pa(map.0 + u64::from(d.n_buckets)), 4);
    ram.write_u64(
        Pa(heads.0 + 8),
        RAW_DIRECT_MAP + dev.0 + u64::from(d.index_hlist),
    );
    ram.write_u32(Pa(dev.0 + u64::from(d.idx)), 5);
    ram.write_u32(Pa(dev.0 + u64::from(d.val)), 1);
    let b = l.bloom.unwrap();
    let bloom = ram.alloc(512, 64);
    ram.write_u32(Pa(bloom.0 + u64::from(b.nr_hash_funcs)), 3);
    ram.write_u32(Pa(bloom.0 + u64::from(b.bitset_mask)), 63);
    ram.write_u32(Pa(bloom.0 + u64::from(b.bitset)), 0x8001);
    let offsets = objmaps::offsets(&l).map(|o| o as u16);
    for (name, at, info, max) in [
        ("seed-raw-devmap-hash", map.0, [2u8, 0, 0], 4u32),
        ("seed-raw-bloom", bloom.0, [0, 0, 0], 10),
    ] {
        let h = Header {
            mode: 1,
            offsets,
            kva: at as u32,
            info,
            max_entries: max,
            ..Header::default()
        };
        write(t, name, &raw(|e| h.encode(e), ram.bytes()));
    }
}

/// `arena`: the input's scalars in order (see `mapwalk_fuzz::arena`).
pub(crate) fn arena_seeds() {
    let t = "arena";
    let seed = |five: u8, pages: u32, start: u8, caps: (u16, u16), present: &[u32]| {
        let mut b = vec![five];
        b.extend_from_slice(&pages.to_le_bytes());
        b.push(start);
        b.push(0); // end_delta
        b.extend_from_slice(&0x1234_5000u32.to_le_bytes()); // kern
        b.extend_from_slice(&caps.0.to_le_bytes());
        b.extend_from_slice(&caps.1.to_le_bytes());
        b.push(present.len() as u8);
        for p in present {
            b.extend_from_slice(&p.to_le_bytes());
        }
        b
    };
    // A full 4 GiB arena at a fixed address with pages in the first and last GiB.
    write(
        t,
        "seed-full-4level",
        &seed(0, 1 << 20, 1, (0, 0), &[0, 1, 600, 0xc_0005, 0xf_ffff]),
    );
    write(
        t,
        "seed-full-5level",
        &seed(1, 1 << 20, 1, (0, 0), &[3, 0x8_0000]),
    );
    // Crossing a 4 GiB boundary; never mapped (address 0); small caps.
    write(t, "seed-wrap", &seed(0, 16, 2, (0, 0), &[1, 8, 9, 15]));
    write(t, "seed-unmapped", &seed(0, 64, 0, (0, 0), &[5]));
    write(
        t,
        "seed-caps",
        &seed(0, 4096, 1, (3, 2), &[0, 1, 2, 3, 2048]),
    );
}

pub(crate) fn structops_seeds() {
    use structops::Header;
    let t = "structops";
    for guest in 0..7u8 {
        let h = Header {
            guest,
            members: 20,
            ..Header::default()
        };
        write(
            t,
            &format!("seed-{}", guest_name(guest)),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // The 6.9+ shape: `funcs_cnt`, the map's reference counts, kvalue's retired.
    let mut h = Header {
        shape: 14,
        members: 20,
        ..Header::default()
    };
    h.offsets[3] = 380;
    h.offsets[7] = 128;
    write(
        t,
        "seed-synth-x86-funcs-cnt-map-refcnts",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // Raw: a registered map (state INUSE) with its uvalue and one link to a program.
    let l = default_layout().struct_ops.unwrap();
    let p = default_layout().prog.unwrap();
    let mut ram = SynthRam::new(Pa(0), 8192);
    let map = ram.alloc(u64::from(l.kvalue) + 64, 64);
    let uvalue = ram.alloc(64, 64);
    let links = ram.alloc(16, 64);
    let link = ram.alloc(64, 64);
    let prog = ram.alloc(64, 64);
    let aux = ram.alloc(u64::from(p.aux_name) + 16, 64);
    let kva = |pa: Pa| RAW_DIRECT_MAP + pa.0;
    ram.write_u32(
        Pa(map.0 + u64::from(l.kvalue) + u64::from(l.value_state)),
        1,
    );
    ram.write_u32(
        Pa(map.0 + u64::from(l.kvalue) + u64::from(l.value_refcnt)),
        1,
    );
    ram.write_u64(Pa(map.0 + u64::from(l.uvalue)), kva(uvalue));
    ram.write_u64(Pa(uvalue.0 + 8), 7);
    ram.write_u64(Pa(map.0 + u64::from(l.links)), kva(links));
    ram.write_u64(links, kva(link));
    ram.write_u64(Pa(link.0 + u64::from(l.link_prog)), kva(prog));
    ram.write_u64(Pa(prog.0 + u64::from(p.aux)), kva(aux));
    ram.write_u32(Pa(aux.0 + u64::from(p.aux_id)), 7);
    let h = Header {
        mode: 1,
        offsets: structops::offsets(&default_layout()).map(|o| o as u16),
        shape: 4,
        kva: map.0 as u32,
        info: [0, 64, 0],
        members: 4,
        ..Header::default()
    };
    write(t, "seed-raw-registered", &raw(|e| h.encode(e), ram.bytes()));
}
