//! Batch commands: many elements per call.

use super::attr::*;
use super::MapHandle;
use super::{addr_of, addr_of_mut, bpf, fd_u32, Cmd};
use crate::error::{Errno, Error, Result};

/// The result of one `BPF_MAP_LOOKUP_BATCH` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `count` elements were copied and there are more: feed `out_batch` back.
    More(u32),
    /// `count` elements were copied (possibly 0) and the map is exhausted (`ENOENT`).
    Done(u32),
    /// The buffers are too small for one bucket (`ENOSPC`): grow them.
    NoSpace,
    /// The kernel or this map type does not do batches (`EINVAL`, `ENOTSUPP`,
    /// `EOPNOTSUPP`): fall back to `BPF_MAP_GET_NEXT_KEY`.
    Unsupported(Errno),
}

impl MapHandle {
    /// Bytes of the `in_batch`/`out_batch` tokens: a hash map writes a `u32` bucket
    /// index, an array a whole key.
    pub fn batch_token_bytes(&self) -> usize {
        self.key_bytes.max(8)
    }

    /// `BPF_MAP_LOOKUP_BATCH`—Copies up to `capacity` elements, starting where
    /// `in_batch` left off (`None`: from the start), into `keys` and `values`, and
    /// writes the position to resume from into `out_batch`.
    ///
    /// `keys` must hold `capacity` keys, `values` `capacity` values
    /// ([`value_bytes`](Self::value_bytes) each), `in_batch`/`out_batch`
    /// [`batch_token_bytes`](Self::batch_token_bytes).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`], [`Error::Sys`].
    /// Kernels and map types without batch support give [`Batch::Unsupported`], not an
    /// error.
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        capacity: u32,
    ) -> Result<Batch> {
        let vb = self.value_bytes_for("BPF_MAP_LOOKUP_BATCH")?;
        let n = usize::try_from(capacity).map_err(|_| Error::BufferSize {
            need: usize::MAX,
            have: keys.len(),
        })?;
        let tb = self.batch_token_bytes();
        if let Some(b) = in_batch {
            Self::check_len(tb, b.len())?;
        }
        Self::check_len(tb, out_batch.len())?;
        let overflow = Error::BufferSize {
            need: usize::MAX,
            have: keys.len(),
        };
        Self::check_len(
            self.key_bytes.checked_mul(n).ok_or(overflow.clone())?,
            keys.len(),
        )?;
        Self::check_len(vb.checked_mul(n).ok_or(overflow)?, values.len())?;
        let mut attr = BatchAttr {
            in_batch: in_batch.map_or(0, addr_of),
            out_batch: addr_of_mut(out_batch),
            keys: addr_of_mut(keys),
            values: addr_of_mut(values),
            count: capacity,
            map_fd: fd_u32(self.fd()),
            ..BatchAttr::default()
        };
        // SAFETY:
        // - `in_batch` is 0 or points to `batch_token_bytes()` readable bytes, at least
        //   the `u32` (hash maps) or `key_size` bytes (arrays) the kernel reads;
        // - `out_batch` points to as many writable bytes, at least what it writes;
        // - `keys` and `values` are exclusively borrowed and hold `count` keys and
        //   `count` values of the sizes the kernel copies (checked above); the kernel
        //   never copies more than `count` elements.
        match unsafe { bpf(Cmd::MAP_LOOKUP_BATCH, &mut attr) } {
            Ok(_) => Ok(Batch::More(attr.count.min(capacity))),
            Err(e) if e == Errno::ENOENT => Ok(Batch::Done(attr.count.min(capacity))),
            Err(e) if e == Errno::ENOSPC => Ok(Batch::NoSpace),
            Err(e) if e == Errno::EINVAL || e == Errno::ENOTSUPP || e == Errno::EOPNOTSUPP => {
                Ok(Batch::Unsupported(e))
            }
            Err(e) => Err(Error::from_errno(Cmd::MAP_LOOKUP_BATCH, e)),
        }
    }
}

impl MapHandle {
    /// `BPF_MAP_UPDATE_BATCH`—Stores `keys.len() / key_size` elements in one call,
    /// the `i`-th value at the `i`-th key, each as [`BPF_ANY`](super::BPF_ANY) would (created or
    /// replaced). Returns how many were stored (all of them). When an element fails,
    /// the kernel stops there: the elements before it stay stored and the call returns
    /// the error.
    ///
    /// There are no per-element flags: kernels that check the batch's `elem_flags`
    /// strictly (6.18 does) refuse [`BPF_NOEXIST`](super::BPF_NOEXIST) and [`BPF_EXIST`](super::BPF_EXIST) there with
    /// `EINVAL`.
    ///
    /// `keys` must hold a whole number of keys and `values` as many values
    /// ([`value_bytes`](Self::value_bytes) each).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`], [`Error::Sys`]
    /// (`EINVAL` for map types without batches, `E2BIG` when the map is full).
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<u32> {
        let vb = self.value_bytes_for("BPF_MAP_UPDATE_BATCH")?;
        let kb = self.key_bytes.max(1);
        let n = keys.len() / kb;
        Self::check_len(n.saturating_mul(kb), keys.len())?;
        Self::check_len(n.saturating_mul(vb), values.len())?;
        let count = u32::try_from(n).map_err(|_| Error::BufferSize {
            need: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            have: n,
        })?;
        if count == 0 {
            return Ok(0);
        }
        let mut attr = BatchAttr {
            keys: addr_of(keys),
            values: addr_of(values),
            count,
            map_fd: fd_u32(self.fd()),
            ..BatchAttr::default()
        };
        // SAFETY:
        // - `attr.keys` and `attr.values` point to `count` keys and `count` values of
        //   the sizes the kernel reads (checked above against the map's info); the
        //   kernel only reads them and never more than `count` elements;
        // - `in_batch` and `out_batch` are 0: the update command does not use them.
        match unsafe { bpf(Cmd::MAP_UPDATE_BATCH, &mut attr) } {
            Ok(_) => Ok(attr.count.min(count)),
            Err(e) => Err(Error::from_errno(Cmd::MAP_UPDATE_BATCH, e)),
        }
    }
}
