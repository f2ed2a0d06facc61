//! Test support: an ELF core writer, so that tests build the cores they parse.

/// `PT_LOAD`.
pub(crate) const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub(crate) const PT_NOTE: u32 = 4;

/// A `PT_LOAD` to write: `data` at physical `paddr`, describing `memsz` bytes.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) paddr: u64,
    pub(crate) vaddr: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) memsz: u64,
}

impl Load {
    pub(crate) fn new(paddr: u64, data: Vec<u8>) -> Self {
        let memsz = data.len() as u64;
        Self {
            paddr,
            vaddr: 0,
            data,
            memsz,
        }
    }
}

/// Builds an ELF core: header, program headers (one `PT_NOTE` first when there are
/// notes, then the loads in the given order), the notes, then each load's bytes.
#[derive(Debug, Clone)]
pub(crate) struct CoreBuilder {
    pub(crate) class64: bool,
    pub(crate) e_type: u16,
    pub(crate) machine: u16,
    pub(crate) loads: Vec<Load>,
    pub(crate) notes: Vec<(String, u32, Vec<u8>)>,
    /// Use extended numbering: `e_phnum = PN_XNUM` and the count in section header 0.
    pub(crate) xnum: bool,
    /// Bytes of padding before the first load's data (to misalign file offsets).
    pub(crate) data_pad: usize,
}

/// Where things landed in a built core.
#[derive(Debug, Clone, Default)]
pub(crate) struct Built {
    pub(crate) bytes: Vec<u8>,
    /// File offset of each program header, in table order.
    pub(crate) phdr_at: Vec<usize>,
    /// File offset of the note segment.
    pub(crate) notes_at: usize,
    /// File offset of each load's data, in `loads` order.
    pub(crate) data_at: Vec<usize>,
}

impl Default for CoreBuilder {
    fn default() -> Self {
        Self {
            class64: true,
            e_type: 4,
            machine: 62,
            loads: Vec::new(),
            notes: Vec::new(),
            xnum: false,
            data_pad: 0,
        }
    }
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
/// A word of the class's size.
fn putw(v: &mut Vec<u8>, class64: bool, x: u64) {
    if class64 {
        put64(v, x);
    } else {
        put32(v, u32::try_from(x).unwrap());
    }
}

/// One ELF note with 4-byte padding.
pub(crate) fn note_bytes(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put32(&mut v, name.len() as u32 + 1);
    put32(&mut v, desc.len() as u32);
    put32(&mut v, n_type);
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

impl CoreBuilder {
    pub(crate) fn build(&self) -> Built {
        let c64 = self.class64;
        let (ehsize, phent, shent) = if c64 { (64, 56, 64) } else { (52, 32, 40) };
        let has_notes = !self.notes.is_empty();
        let phnum = self.loads.len() + usize::from(has_notes);
        let notes: Vec<u8> = self
            .notes
            .iter()
            .flat_map(|(n, t, d)| note_bytes(n, *t, d))
            .collect();
        let phoff = ehsize;
        let shoff = phoff + phnum * phent;
        let notes_at = shoff + if self.xnum { shent } else { 0 };
        let mut data_at = Vec::new();
        let mut at = notes_at + notes.len() + self.data_pad;
        for l in &self.loads {
            data_at.push(at);
            at += l.data.len();
        }

        let mut v = Vec::new();
        v.extend_from_slice(b"\x7fELF");
        v.extend_from_slice(&[if c64 { 2 } else { 1 }, 1, 1, 0]);
        v.extend_from_slice(&[0; 8]);
        put16(&mut v, self.e_type);
        put16(&mut v, self.machine);
        put32(&mut v, 1);
        putw(&mut v, c64, 0); // e_entry
        putw(&mut v, c64, phoff as u64);
        putw(&mut v, c64, if self.xnum { shoff as u64 } else { 0 });
        put32(&mut v, 0); // e_flags
        put16(&mut v, ehsize as u16);
        put16(&mut v, phent as u16);
        put16(&mut v, if self.xnum { 0xffff } else { phnum as u16 });
        put16(&mut v, shent as u16);
        put16(&mut v, u16::from(self.xnum));
        put16(&mut v, 0);
        assert_eq!(v.len(), ehsize);

        let mut phdr_at = Vec::new();
        let mut phdr = |v: &mut Vec<u8>,
                        p_type: u32,
                        off: u64,
                        vaddr: u64,
                        paddr: u64,
                        filesz: u64,
                        memsz: u64| {
            phdr_at.push(v.len());
            put32(v, p_type);
            if c64 {
                put32(v, 0); // p_flags
                put64(v, off);
                put64(v, vaddr);
                put64(v, paddr);
                put64(v, filesz);
                put64(v, memsz);
                put64(v, 0); // p_align
            } else {
                put32(v, off as u32);
                put32(v, vaddr as u32);
                put32(v, paddr as u32);
                put32(v, filesz as u32);
                put32(v, memsz as u32);
                put32(v, 0); // p_flags
                put32(v, 0); // p_align
            }
        };
        if has_notes {
            let n = notes.len() as u64;
            phdr(&mut v, PT_NOTE, notes_at as u64, 0, 0, n, n);
        }
        for (l, &at) in self.loads.iter().zip(&data_at) {
            let n = l.data.len() as u64;
            phdr(&mut v, PT_LOAD, at as u64, l.vaddr, l.paddr, n, l.memsz);
        }
        if self.xnum {
            // Section header 0: all zero but sh_info = phnum.
            let mut sh = vec![0u8; shent];
            let info_at = if c64 { 44 } else { 28 };
            sh[info_at..info_at + 4].copy_from_slice(&(phnum as u32).to_le_bytes());
            v.extend_from_slice(&sh);
        }
        assert_eq!(v.len(), notes_at);
        v.extend_from_slice(&notes);
        v.resize(v.len() + self.data_pad, 0xee);
        for l in &self.loads {
            v.extend_from_slice(&l.data);
        }
        Built {
            bytes: v,
            phdr_at,
            notes_at,
            data_at,
        }
    }
}

/// `n` bytes where byte i is `seed + i` (mod 256).
pub(crate) fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// A small xorshift generator for reproducible "random" inputs.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
