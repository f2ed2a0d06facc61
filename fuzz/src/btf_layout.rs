//! Target `btf_layout`: [`mapwalk::btf::layout_from_bytes`], the kernel layout resolved
//! from raw BTF.
//!
//! The first byte picks how the rest becomes BTF (`% 3`):
//! - 0, **raw**: the rest is the blob;
//! - 1, **framed**: the rest is a type section (its first `at` bytes) and a string
//!   section, behind a well-formed header that says so, so that every input gets past
//!   the magic and the section bounds;
//! - 2, **synthetic**: [`kernel_btf`], which resolves to
//!   [`default_layout`](mapwalk_core::synth::default_layout), with the rest written over
//!   it at offset `at` (`% (len + 1)`, so it may also extend it).
//!
//! Only the resolver's public face is used (`layout_from_bytes`, `ResolvedLayout`,
//! `BtfError`), so the target outlives changes to the BTF reader behind it. Checks: a
//! second resolution of the same bytes gives the same result.

use arbitrary::Unstructured;
use mapwalk::btf::layout_from_bytes;

use crate::btf_synth::{blob, kernel_btf};
use crate::{sink, Enc, Res};

/// The fixed part of an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// `% 3`: raw, framed, synthetic.
    pub mode: u8,
    /// Framed: the type section's length; synthetic: where the rest goes.
    pub at: u16,
}

impl Header {
    /// Decodes the header (3 bytes).
    pub fn decode(u: &mut Unstructured<'_>) -> Res<Self> {
        Ok(Self {
            mode: u.arbitrary()?,
            at: u.arbitrary()?,
        })
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u16(self.at);
    }
}

/// `base` with `tail` written at `at % (len + 1)` (extending it when it runs past).
pub fn splice(base: &[u8], at: u16, tail: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    let at = usize::from(at) % (v.len() + 1);
    let end = at + tail.len();
    if end > v.len() {
        v.resize(end, 0);
    }
    v[at..end].copy_from_slice(tail);
    v
}

/// The BTF blob an input describes (see the module doc), or `None` for an input too
/// short for its header.
pub fn blob_of(data: &[u8], kernel: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let h = Header::decode(&mut u).ok()?;
    let rest = u.take_rest();
    Some(match h.mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let t = usize::from(h.at).min(rest.len());
            blob(&rest[..t], &rest[t..])
        }
        _ => splice(kernel, h.at, rest),
    })
}

/// The target.
pub fn run(data: &[u8]) {
    let Some(bytes) = blob_of(data, kernel_btf()) else {
        return;
    };
    let first = layout_from_bytes(&bytes);
    match &first {
        Ok(r) => {
            for w in &r.warnings {
                std::hint::black_box(w.len());
            }
            std::hint::black_box(format!("{r:?}"));
        }
        Err(e) => sink(e),
    }
    assert_eq!(
        layout_from_bytes(&bytes),
        first,
        "a second resolution differs"
    );
}
