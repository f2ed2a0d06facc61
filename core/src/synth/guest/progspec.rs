//! What to lay into a synthetic guest: BPF programs.

use alloc::vec::Vec;

use crate::bpf::ProgType;
use crate::limits::BPF_OBJ_NAME_LEN;

/// A BPF program to lay into a synthetic guest: a `struct bpf_prog` (kmalloc'd) with its
/// `struct bpf_prog_aux`, entered in `prog_idr` (when the layout has
/// [`crate::layout::KernelLayout::prog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgSpec {
    /// Its id (the `prog_idr` index and `bpf_prog_aux.id`).
    pub id: u32,
    /// `type`.
    pub prog_type: ProgType,
    /// `bpf_prog_aux.name` (at most 15 bytes).
    pub name: Vec<u8>,
    /// `tag`.
    pub tag: [u8; 8],
    /// `len`: instructions.
    pub len: u32,
    /// `jited_len` of the program itself.
    pub jited_len: u32,
    /// The `jited_len` of each subprogram (`bpf_prog_aux.func`); empty for none.
    pub subprog_jited: Vec<u32>,
    /// `gpl_compatible`.
    pub gpl_compatible: bool,
    /// The ids of the maps it uses: maps of the guest with these ids, or bare
    /// `struct bpf_map`s laid for the program when the guest has none.
    pub map_ids: Vec<u32>,
    /// The id of its BTF object (a bare `struct btf`), or none.
    pub btf_id: Option<u32>,
    /// The uid of its `user_struct`, or none (`aux->user` NULL).
    pub uid: Option<u32>,
}

impl ProgSpec {
    /// A socket filter of 2 instructions, jitted to 40 bytes, GPL, loaded by uid 0.
    pub fn new(id: u32, name: &str) -> Self {
        assert!(name.len() < BPF_OBJ_NAME_LEN, "name {name:?} is too long");
        Self {
            id,
            prog_type: ProgType::SOCKET_FILTER,
            name: name.as_bytes().to_vec(),
            tag: id.to_le_bytes().repeat(2).try_into().unwrap(),
            len: 2,
            jited_len: 40,
            subprog_jited: Vec::new(),
            gpl_compatible: true,
            map_ids: Vec::new(),
            btf_id: None,
            uid: Some(0),
        }
    }

    /// Sets the maps it uses.
    #[must_use]
    pub fn maps(mut self, ids: &[u32]) -> Self {
        self.map_ids = ids.to_vec();
        self
    }
}
