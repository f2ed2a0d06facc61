//! Raw BTF written type by type, for tests.

use super::{Kind, BTF_MAGIC};

/// Raw BTF built type by type, for the reader's and the renderer's edge cases.
#[derive(Default)]
pub(crate) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            strings: vec![0],
            next_id: 1,
            ..Self::default()
        }
    }

    pub(crate) fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.strings.len() as u32;
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
