//! Parsing an ELF core: the headers, the program headers and the notes.

use goblin::container::Ctx;
use goblin::elf::note::NoteDataIterator;
use goblin::elf::program_header::{PT_LOAD, PT_NOTE};
use goblin::elf::{Elf, Header, ProgramHeader, SectionHeader};
use mapwalk_core::Pa;

use super::{
    CoreInfo, Note, Segment, ET_CORE, MAX_NOTE_BYTES, MAX_PROGRAM_HEADERS, NT_PRSTATUS, PN_XNUM,
};
use crate::cpu::{PrStatus, QemuCpuState, Vcpu};
use crate::error::ElfError;
use crate::layout::{len_u64, Piece, PieceMap};
use crate::sys::RawRegion;

/// Copies `offset .. offset + len` of the file, or says which structure is truncated.
fn copy_out(
    region: RawRegion<'_>,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, ElfError> {
    let file_len = len_u64(region.len());
    let truncated = ElfError::Truncated {
        what,
        offset,
        end: offset.saturating_add(len),
        file_len,
    };
    let end = offset.checked_add(len).ok_or(truncated.clone())?;
    if end > file_len {
        return Err(truncated);
    }
    let (Ok(off), Ok(n)) = (usize::try_from(offset), usize::try_from(len)) else {
        return Err(truncated);
    };
    let mut buf = vec![0u8; n];
    region.read(off, &mut buf).map_err(|_| truncated)?;
    Ok(buf)
}

fn malformed(what: &'static str, offset: u64, detail: impl ToString) -> ElfError {
    ElfError::Malformed {
        what,
        offset,
        detail: detail.to_string(),
    }
}

/// Parses the headers and notes of the core in `region`.
pub(super) fn parse(region: RawRegion<'_>) -> Result<CoreInfo, ElfError> {
    let file_len = len_u64(region.len());
    // Identification.
    let mut magic = [0u8; 4];
    let have = region.len().min(4);
    region
        .read(0, magic.get_mut(..have).unwrap_or_default())
        .map_err(|_| ElfError::NotElf { len: have })?;
    if have < 4 || magic != *b"\x7fELF" {
        return Err(ElfError::NotElf { len: have });
    }
    let ident = copy_out(region, 0, 16, "ELF identification")?;
    let class64 = match ident.get(4) {
        Some(1) => false,
        Some(2) => true,
        other => {
            return Err(ElfError::Unsupported {
                what: "ELF class",
                value: other.copied().map_or(0, u64::from),
            })
        }
    };
    let ehdr_len: u64 = if class64 { 64 } else { 52 };
    let ehdr = copy_out(region, 0, ehdr_len, "ELF header")?;
    let header: Header = Elf::parse_header(&ehdr).map_err(|e| malformed("ELF header", 0, e))?;
    let container = header
        .container()
        .map_err(|e| malformed("ELF header", 0, e))?;
    let le = header
        .endianness()
        .map_err(|e| malformed("ELF header", 0, e))?;
    let ctx = Ctx::new(container, le);
    if header.e_type != ET_CORE {
        return Err(ElfError::Unsupported {
            what: "ELF type (not a core file, ET_CORE = 4)",
            value: u64::from(header.e_type),
        });
    }
    let phent = ProgramHeader::size(ctx);
    if usize::from(header.e_phentsize) != phent {
        return Err(malformed(
            "ELF header",
            0,
            format!(
                "e_phentsize {} where this class has {phent}",
                header.e_phentsize
            ),
        ));
    }

    // Program headers (with extended numbering when e_phnum is PN_XNUM).
    let phnum = if header.e_phnum == PN_XNUM {
        let shent = SectionHeader::size(ctx);
        let sh0 = copy_out(
            region,
            header.e_shoff,
            len_u64(shent),
            "section header 0 (extended program header count)",
        )?;
        let sh = SectionHeader::parse_from(&sh0, 0, 1, ctx)
            .map_err(|e| malformed("section header 0", header.e_shoff, e))?;
        sh.first().map_or(0, |s| u64::from(s.sh_info))
    } else {
        u64::from(header.e_phnum)
    };
    if phnum == 0 {
        return Err(malformed("ELF header", 0, "no program headers"));
    }
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(ElfError::Unsupported {
            what: "program header count",
            value: phnum,
        });
    }
    let table_len = phnum.saturating_mul(len_u64(phent));
    let table = copy_out(region, header.e_phoff, table_len, "program header table")?;
    let count = usize::try_from(phnum).map_err(|_| ElfError::Unsupported {
        what: "program header count",
        value: phnum,
    })?;
    let phdrs = ProgramHeader::parse(&table, 0, count, ctx)
        .map_err(|e| malformed("program header table", header.e_phoff, e))?;

    // Segments.
    let mut loads = Vec::new();
    let mut note_segments = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        let ph_at = header
            .e_phoff
            .saturating_add(len_u64(index).saturating_mul(len_u64(phent)));
        let kind = match ph.p_type {
            PT_LOAD => "PT_LOAD",
            PT_NOTE => "PT_NOTE",
            _ => continue,
        };
        let end = ph.p_offset.checked_add(ph.p_filesz);
        if end.is_none_or(|e| e > file_len) {
            return Err(ElfError::SegmentPastEof {
                index,
                kind,
                offset: ph.p_offset,
                end: end.unwrap_or(u64::MAX),
                file_len,
            });
        }
        if ph.p_type == PT_NOTE {
            note_segments.push((index, ph));
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(malformed(
                "PT_LOAD program header",
                ph_at,
                format!(
                    "segment {index}: p_filesz {:#x} > p_memsz {:#x}",
                    ph.p_filesz, ph.p_memsz
                ),
            ));
        }
        if ph.p_paddr.checked_add(ph.p_memsz).is_none() {
            return Err(malformed(
                "PT_LOAD program header",
                ph_at,
                format!(
                    "segment {index}: p_paddr {:#x} + p_memsz {:#x} overflows",
                    ph.p_paddr, ph.p_memsz
                ),
            ));
        }
        if ph.p_memsz == 0 {
            continue;
        }
        loads.push(Segment {
            index,
            paddr: Pa(ph.p_paddr),
            vaddr: ph.p_vaddr,
            offset: ph.p_offset,
            file_size: ph.p_filesz,
            mem_size: ph.p_memsz,
        });
    }
    let (segments, aliases) = disjoint(loads)?;
    let map = PieceMap::new(
        segments
            .iter()
            .map(|s| Piece {
                gpa: s.paddr.0,
                len: s.mem_size,
                offset: s.offset,
                file_len: s.file_size,
            })
            .collect(),
    );

    // Notes.
    let mut notes = Vec::new();
    let mut note_bytes = 0u64;
    for (index, ph) in note_segments {
        note_bytes = note_bytes.saturating_add(ph.p_filesz);
        if note_bytes > MAX_NOTE_BYTES {
            return Err(ElfError::Unsupported {
                what: "total size of PT_NOTE segments",
                value: note_bytes,
            });
        }
        let data = copy_out(region, ph.p_offset, ph.p_filesz, "PT_NOTE segment")?;
        let align = usize::try_from(ph.p_align).map_or(4, |a| if a == 8 { 8 } else { 4 });
        let iter = NoteDataIterator {
            data: &data,
            size: data.len(),
            offset: 0,
            ctx: (align, ctx),
        };
        for note in iter {
            let note = note.map_err(|e| {
                malformed(
                    "note",
                    ph.p_offset,
                    format!("in PT_NOTE segment {index}: {e}"),
                )
            })?;
            // The kernel ends its note lists with an empty header.
            if note.name.is_empty() && note.desc.is_empty() && note.n_type == 0 {
                continue;
            }
            notes.push(Note {
                name: note.name.to_owned(),
                n_type: note.n_type,
                desc: note.desc.to_vec(),
            });
        }
    }
    let machine = header.e_machine;
    let vcpus = vcpus(&notes, machine);
    Ok(CoreInfo {
        file_len,
        class64,
        machine,
        segments,
        aliases,
        map,
        notes,
        vcpus,
    })
}

/// Sorts the loads by physical address and splits off those inside another; fails on
/// any other overlap.
fn disjoint(mut loads: Vec<Segment>) -> Result<(Vec<Segment>, Vec<Segment>), ElfError> {
    // Larger first among equal starts, so that a container precedes what it contains.
    loads.sort_by_key(|s| (s.paddr, core::cmp::Reverse(s.mem_size), s.index));
    let mut kept: Vec<Segment> = Vec::with_capacity(loads.len());
    let mut aliases = Vec::new();
    for s in loads {
        let end = s.paddr.0.saturating_add(s.mem_size);
        match kept.last() {
            Some(last) if last.paddr.0.saturating_add(last.mem_size) > s.paddr.0 => {
                let last_end = last.paddr.0.saturating_add(last.mem_size);
                if end <= last_end {
                    aliases.push(s);
                } else {
                    return Err(ElfError::Overlap {
                        a: last.index,
                        a_start: last.paddr.0,
                        a_end: last_end,
                        b: s.index,
                        b_start: s.paddr.0,
                        b_end: end,
                    });
                }
            }
            _ => kept.push(s),
        }
    }
    Ok((kept, aliases))
}

/// Pairs the n-th `NT_PRSTATUS` note with the n-th QEMU CPU-state note.
fn vcpus(notes: &[Note], machine: u16) -> Vec<Vcpu> {
    let prstatus: Vec<PrStatus> = notes
        .iter()
        .filter(|n| n.name == "CORE" && n.n_type == NT_PRSTATUS)
        .filter_map(|n| PrStatus::parse(&n.desc, machine))
        .collect();
    let qemu: Vec<Option<QemuCpuState>> = notes
        .iter()
        .filter(|n| n.name == "QEMU")
        .map(|n| QemuCpuState::parse(&n.desc))
        .collect();
    let count = prstatus.len().max(qemu.len());
    (0..count)
        .map(|index| Vcpu {
            index,
            prstatus: prstatus.get(index).cloned(),
            qemu: qemu.get(index).copied().flatten(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mapwalk_core::PhysReadExt;

    use super::super::tests::qemu_like;
    use super::super::*;
    use super::*;
    use crate::testutil::{pattern, CoreBuilder, Load, Rng};

    fn elf_err(bytes: Vec<u8>) -> ElfError {
        match ElfCore::from_bytes(bytes) {
            Err(Error::Elf { source, .. }) => source,
            other => panic!("expected an ELF error, got {other:?}"),
        }
    }

    #[test]
    fn elf32_and_extended_numbering() {
        let b = CoreBuilder {
            class64: false,
            machine: 3,
            notes: vec![("CORE".into(), 1, vec![0u8; 144])],
            loads: vec![Load::new(0x1000, pattern(0x100, 9))],
            ..CoreBuilder::default()
        };
        let core = ElfCore::from_bytes(b.build().bytes).unwrap();
        assert!(!core.is_64bit());
        assert_eq!(core.read_u8(Pa(0x1001)).unwrap(), 10);
        assert_eq!(core.vcpus()[0].prstatus.as_ref().unwrap().regs.len(), 17);
        let x = CoreBuilder {
            xnum: true,
            ..qemu_like()
        };
        let core = ElfCore::from_bytes(x.build().bytes).unwrap();
        assert_eq!(core.segments().len(), 4);
        assert_eq!(core.vcpus().len(), 2);
    }

    #[test]
    fn contained_segments_are_aliases() {
        // kdump: the kernel image described again inside the RAM segment.
        let mut b = qemu_like();
        b.loads.push(Load {
            vaddr: 0xffff_ffff_8100_0000,
            ..Load::new(0x1000, pattern(0x800, 0x55))
        });
        b.loads.push(Load::new(0, pattern(0x2000, 0))); // an exact duplicate
        let core = ElfCore::from_bytes(b.build().bytes).unwrap();
        assert_eq!(core.segments().len(), 4);
        let aliases: Vec<(u64, u64)> = core
            .aliases()
            .iter()
            .map(|s| (s.paddr.0, s.vaddr))
            .collect();
        assert_eq!(aliases, [(0, 0), (0x1000, 0xffff_ffff_8100_0000)]);
        // Reads come from the containing segment.
        assert_eq!(core.read_u8(Pa(0x1000)).unwrap(), 0);
    }

    #[test]
    fn no_notes_no_loads() {
        let b = CoreBuilder {
            loads: vec![Load::new(0, vec![1; 8])],
            ..CoreBuilder::default()
        };
        let core = ElfCore::from_bytes(b.build().bytes).unwrap();
        assert!(
            core.vcpus().is_empty() && core.notes().is_empty() && core.vmcoreinfo_note().is_none()
        );
        // Zero-length PT_LOADs are skipped.
        let b = CoreBuilder {
            loads: vec![Load::new(0, vec![]), Load::new(0, vec![1; 8])],
            ..CoreBuilder::default()
        };
        assert_eq!(
            ElfCore::from_bytes(b.build().bytes)
                .unwrap()
                .segments()
                .len(),
            1
        );
    }

    #[test]
    fn empty_file() {
        assert_eq!(elf_err(Vec::new()), ElfError::NotElf { len: 0 });
        assert_eq!(elf_err(b"\x7fEL".to_vec()), ElfError::NotElf { len: 3 });
    }

    #[test]
    fn random_bytes() {
        let mut rng = Rng(0x1234_5678);
        for len in [1, 4, 16, 63, 64, 200, 4096] {
            let mut bytes = rng.bytes(len);
            if bytes.starts_with(b"\x7fELF") {
                bytes[0] = 0;
            }
            assert_eq!(elf_err(bytes), ElfError::NotElf { len: len.min(4) });
        }
        // ELF magic followed by noise: a bad class (or anything else), but an error.
        let mut bytes = b"\x7fELF".to_vec();
        bytes.extend(rng.bytes(60));
        bytes[4] = 7;
        assert_eq!(
            elf_err(bytes),
            ElfError::Unsupported {
                what: "ELF class",
                value: 7
            }
        );
    }

    #[test]
    fn truncated_header() {
        let bytes = qemu_like().build().bytes;
        for len in [5, 15] {
            assert!(
                matches!(
                    elf_err(bytes[..len].to_vec()),
                    ElfError::Truncated {
                        what: "ELF identification",
                        ..
                    }
                ),
                "{len}"
            );
        }
        for len in [16, 40, 63] {
            let e = elf_err(bytes[..len].to_vec());
            assert_eq!(
                e,
                ElfError::Truncated {
                    what: "ELF header",
                    offset: 0,
                    end: 64,
                    file_len: len as u64
                }
            );
            assert!(e.to_string().contains("needs bytes 0x0..0x40"), "{e}");
        }
        // The program header table cut short.
        let e = elf_err(bytes[..64 + 56 * 2].to_vec());
        assert!(
            matches!(
                e,
                ElfError::Truncated {
                    what: "program header table",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn segment_past_eof() {
        let built = qemu_like().build();
        let cut = built.bytes.len() - 1;
        let e = elf_err(built.bytes[..cut].to_vec());
        assert_eq!(
            e,
            ElfError::SegmentPastEof {
                index: 4,
                kind: "PT_LOAD",
                offset: built.data_at[3] as u64,
                end: built.data_at[3] as u64 + 0x100,
                file_len: cut as u64
            }
        );
        // The note segment too, and an offset so large it overflows.
        let mut bytes = built.bytes.clone();
        let at = built.phdr_at[0] + 8; // p_offset of the PT_NOTE
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            elf_err(bytes),
            ElfError::SegmentPastEof {
                index: 0,
                kind: "PT_NOTE",
                ..
            }
        ));
    }

    #[test]
    fn overlapping_segments() {
        let mut b = qemu_like();
        b.loads.push(Load::new(0x1800, pattern(0x1000, 0)));
        let e = elf_err(b.build().bytes);
        assert_eq!(
            e,
            ElfError::Overlap {
                a: 2,
                a_start: 0,
                a_end: 0x2000,
                b: 5,
                b_start: 0x1800,
                b_end: 0x2800
            }
        );
        assert!(
            e.to_string().contains("overlap in physical addresses"),
            "{e}"
        );
    }

    #[test]
    fn malformed_headers() {
        let built = qemu_like().build();
        let patch = |at: usize, v: &[u8]| {
            let mut b = built.bytes.clone();
            b[at..at + v.len()].copy_from_slice(v);
            elf_err(b)
        };
        // ET_EXEC, not a core.
        assert!(matches!(
            patch(16, &2u16.to_le_bytes()),
            ElfError::Unsupported { value: 2, .. }
        ));
        // Bad data encoding.
        assert!(matches!(
            patch(5, &[9]),
            ElfError::Malformed {
                what: "ELF header",
                ..
            }
        ));
        // e_phentsize of the other class.
        assert!(matches!(
            patch(54, &32u16.to_le_bytes()),
            ElfError::Malformed {
                what: "ELF header",
                ..
            }
        ));
        // No program headers.
        assert!(matches!(
            patch(56, &0u16.to_le_bytes()),
            ElfError::Malformed {
                what: "ELF header",
                ..
            }
        ));
        // PN_XNUM without a section header.
        assert!(matches!(
            patch(56, &0xffffu16.to_le_bytes()),
            ElfError::Malformed { .. } | ElfError::Truncated { .. }
        ));
        // p_filesz > p_memsz.
        let ph = built.phdr_at[1];
        let e = patch(ph + 40, &0x10u64.to_le_bytes());
        assert!(
            matches!(
                e,
                ElfError::Malformed {
                    what: "PT_LOAD program header",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("p_filesz 0x1000 > p_memsz 0x10"),
            "{e}"
        );
        // p_paddr + p_memsz overflows.
        let e = patch(ph + 24, &(u64::MAX - 8).to_le_bytes());
        assert!(matches!(e, ElfError::Malformed { .. }), "{e}");
        // A note whose descriptor runs past its segment.
        let e = patch(built.notes_at + 4, &0xffffu32.to_le_bytes());
        assert!(matches!(e, ElfError::Malformed { what: "note", .. }), "{e}");
        // Too many program headers.
        let mut x = CoreBuilder {
            xnum: true,
            ..qemu_like()
        }
        .build();
        let sh_info = 64 + 56 * 5 + 44;
        x.bytes[sh_info..sh_info + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            elf_err(x.bytes),
            ElfError::Unsupported {
                what: "program header count",
                ..
            }
        ));
    }

    #[test]
    fn corrupt_cores_never_panic() {
        let good = qemu_like().build().bytes;
        let mut rng = Rng(0xdead_beef);
        let rounds = if cfg!(miri) { 40 } else { 3000 };
        for _ in 0..rounds {
            let mut b = good.clone();
            match rng.below(3) {
                0 => {
                    // Flip a few bytes in the headers and notes.
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(0x800.min(b.len()));
                        b[i] = rng.next() as u8;
                    }
                }
                1 => b.truncate(rng.below(good.len())),
                _ => {
                    let i = rng.below(b.len() - 8);
                    b[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
                }
            }
            if let Ok(core) = ElfCore::from_bytes(b) {
                let mut buf = [0u8; 64];
                for r in core.ranges().to_vec() {
                    let _ = core.read_phys(r.start, &mut buf);
                    let _ = core.read_phys(Pa(r.end().saturating_sub(8)), &mut buf);
                }
                std::hint::black_box(core.vmcoreinfo_note());
                // Memory inside the ranges reads, the first MiB of it in 4 KiB chunks.
                let mut left = 1u64 << 20;
                let mut chunk = [0u8; 4096];
                for r in core.ranges() {
                    let mut pa = r.start.0;
                    while pa < r.end() && left > 0 {
                        let n = (r.end() - pa).min(4096) as usize;
                        if let Err(e) = core.read_phys(Pa(pa), &mut chunk[..n]) {
                            panic!("{e}");
                        }
                        pa += n as u64;
                        left -= n as u64;
                    }
                }
            }
        }
    }
}
