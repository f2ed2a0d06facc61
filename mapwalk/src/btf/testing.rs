//! Raw BTF written type by type, for tests.

use super::{Kind, BTF_MAGIC};

/// Raw BTF built type by type, for the reader's and the renderer's edge cases.
#[derive(Default)]
pub(crate) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    /// Split BTF: the size of the base's string section (name offsets start there).
    str_base: u32,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            strings: vec![0],
            next_id: 1,
            ..Self::default()
        }
    }

    /// Split BTF over a base of `types` types and `strings` bytes of strings.
    pub(crate) fn split(types: u32, strings: u32) -> Self {
        Self {
            strings: vec![0],
            next_id: types + 1,
            str_base: strings,
            ..Self::default()
        }
    }

    /// The last id given.
    pub(crate) fn last_id(&self) -> u32 {
        self.next_id - 1
    }

    pub(crate) fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        at
    }

    pub(crate) fn head(
        &mut self,
        name: &str,
        kind: Kind,
        flag: bool,
        vlen: u32,
        size_or_type: u32,
    ) -> u32 {
        let name = self.str(name);
        let info = (u32::from(flag) << 31) | (u32::from(kind.0) << 24) | vlen;
        for v in [name, info, size_or_type] {
            self.types.extend_from_slice(&v.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
        let id = self.head(name, Kind::INT, false, 0, size);
        self.types.extend_from_slice(&(size * 8).to_le_bytes());
        id
    }

    /// An INT with encoding bits `enc` (1 signed, 2 char, 4 bool).
    pub(crate) fn int_enc(&mut self, name: &str, size: u32, enc: u32) -> u32 {
        let id = self.head(name, Kind::INT, false, 0, size);
        self.raw(&[(enc << 24) | (size * 8)]);
        id
    }

    /// Little-endian words after the last record.
    pub(crate) fn raw(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    pub(crate) fn enum32(
        &mut self,
        name: &str,
        signed: bool,
        size: u32,
        values: &[(&str, u32)],
    ) -> u32 {
        let id = self.head(name, Kind::ENUM, signed, values.len() as u32, size);
        for &(n, v) in values {
            let n = self.str(n);
            self.raw(&[n, v]);
        }
        id
    }

    pub(crate) fn enum64(
        &mut self,
        name: &str,
        signed: bool,
        size: u32,
        values: &[(&str, u64)],
    ) -> u32 {
        let id = self.head(name, Kind::ENUM64, signed, values.len() as u32, size);
        for &(n, v) in values {
            let n = self.str(n);
            self.raw(&[n, v as u32, (v >> 32) as u32]);
        }
        id
    }

    pub(crate) fn decl_tag(&mut self, name: &str, to: u32, component: i32) -> u32 {
        let id = self.head(name, Kind::DECL_TAG, false, 0, to);
        self.raw(&[component as u32]);
        id
    }

    pub(crate) fn var(&mut self, name: &str, ty: u32, linkage: u32) -> u32 {
        let id = self.head(name, Kind::VAR, false, 0, ty);
        self.raw(&[linkage]);
        id
    }

    /// A DATASEC of (var, offset, size) entries.
    pub(crate) fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.head(name, Kind::DATASEC, false, vars.len() as u32, size);
        for &(v, off, sz) in vars {
            self.raw(&[v, off, sz]);
        }
        id
    }

    pub(crate) fn alias(&mut self, kind: Kind, name: &str, to: u32) -> u32 {
        self.head(name, kind, false, 0, to)
    }

    /// A struct (or union) with (name, type, offset word) members.
    pub(crate) fn agg(
        &mut self,
        kind: Kind,
        name: &str,
        flag: bool,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let id = self.head(name, kind, flag, members.len() as u32, size);
        for &(n, t, off) in members {
            let n = self.str(n);
            for v in [n, t, off] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
        }
        id
    }

    /// An array of `nelems` elements of type `elem` (index type `index`).
    pub(crate) fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        let id = self.head("", Kind::ARRAY, false, 0, 0);
        for v in [elem, index, nelems] {
            self.types.extend_from_slice(&v.to_le_bytes());
        }
        id
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.types);
        b.extend_from_slice(&self.strings);
        b
    }
}
