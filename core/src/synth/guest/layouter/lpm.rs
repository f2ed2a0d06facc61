//! Laying LPM tries out: the kernel's insertion, node by node.

use alloc::vec::Vec;

use super::Layouter;
use crate::layout::LpmLayout;
use crate::synth::guest::MapSpec;

/// `LPM_TREE_NODE_FLAG_IM`.
const FLAG_IM: u32 = 1;

/// A node while the trie is built: indices into the node list.
struct Node {
    prefixlen: u32,
    data: Vec<u8>,
    value: Option<Vec<u8>>,
    child: [Option<usize>; 2],
}

fn extract_bit(data: &[u8], index: u32) -> usize {
    usize::from(data[(index / 8) as usize] >> (7 - index % 8) & 1)
}

fn longest_prefix_match(node: &Node, prefixlen: u32, data: &[u8]) -> u32 {
    let limit = node.prefixlen.min(prefixlen);
    (0..limit)
        .find(|&i| extract_bit(&node.data, i) != extract_bit(data, i))
        .unwrap_or(limit)
}

/// The kernel's `trie_update_elem`, over a node list; returns the root.
fn insert(
    nodes: &mut Vec<Node>,
    root: Option<usize>,
    max: u32,
    plen: u32,
    data: &[u8],
    value: &[u8],
) -> Option<usize> {
    let new = nodes.len();
    nodes.push(Node {
        prefixlen: plen,
        data: data.to_vec(),
        value: Some(value.to_vec()),
        child: [None, None],
    });
    // The slot that points at `node`: None for the root, else (parent, bit).
    let mut slot: Option<(usize, usize)> = None;
    let mut cur = root;
    let mut matchlen = 0;
    while let Some(n) = cur {
        matchlen = longest_prefix_match(&nodes[n], plen, data);
        let node = &nodes[n];
        if node.prefixlen != matchlen || node.prefixlen == plen || node.prefixlen == max {
            break;
        }
        let bit = extract_bit(data, node.prefixlen);
        slot = Some((n, bit));
        cur = node.child[bit];
    }
    let replacement = match cur {
        None => new,
        Some(n) if nodes[n].prefixlen == matchlen => {
            nodes[new].child = nodes[n].child;
            new
        }
        Some(n) if matchlen == plen => {
            let bit = extract_bit(&nodes[n].data, matchlen);
            nodes[new].child[bit] = Some(n);
            new
        }
        Some(n) => {
            let im = nodes.len();
            let child = if extract_bit(data, matchlen) == 1 {
                [Some(n), Some(new)]
            } else {
                [Some(new), Some(n)]
            };
            nodes.push(Node {
                prefixlen: matchlen,
                data: nodes[n].data.clone(),
                value: None,
                child,
            });
            im
        }
    };
    match slot {
        None => Some(replacement),
        Some((parent, bit)) => {
            nodes[parent].child[bit] = Some(replacement);
            root
        }
    }
}

impl Layouter<'_> {
    /// The trie of an LPM_TRIE map whose `struct lpm_trie` is at `base`.
    pub(super) fn lay_lpm(&mut self, spec: &MapSpec, base: u64, l: &LpmLayout) {
        let data_size = spec.key_size - 4;
        let max = data_size * 8;
        self.write_u64(base + u64::from(l.data_size), u64::from(data_size));
        self.write_u64(base + u64::from(l.max_prefixlen), u64::from(max));
        let mut nodes = Vec::new();
        let mut root = None;
        for (plen, data, value) in &spec.lpm_entries {
            root = insert(&mut nodes, root, max, *plen, data, value);
        }
        let size = u64::from(l.node_data) + u64::from(data_size) + u64::from(spec.value_size);
        let kvas: Vec<u64> = nodes.iter().map(|_| self.kmalloc(size).0).collect();
        for (n, node) in nodes.iter().enumerate() {
            let at = kvas[n];
            for (bit, c) in node.child.iter().enumerate() {
                if let Some(c) = c {
                    self.write_u64(at + u64::from(l.node_child) + 8 * bit as u64, kvas[*c]);
                }
            }
            self.write_u32(at + u64::from(l.node_prefixlen), node.prefixlen);
            let flags = if node.value.is_none() { FLAG_IM } else { 0 };
            self.write_u32(at + u64::from(l.node_flags), flags);
            self.write(at + u64::from(l.node_data), &node.data);
            if let Some(v) = &node.value {
                self.write(at + u64::from(l.node_data) + u64::from(data_size), v);
            }
        }
        if let Some(r) = root {
            self.write_u64(base + u64::from(l.root), kvas[r]);
        }
    }
}
