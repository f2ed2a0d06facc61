//! Map values: one copy, or one copy per possible CPU.

/// A value borrowed from a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// One copy (`value_size` bytes).
    Single(&'a [u8]),
    /// One copy per possible CPU.
    PerCpu(PerCpuRef<'a>),
}

/// Every possible CPU's copy of a per-CPU value, borrowed from the kernel's layout: one
/// copy per possible CPU, `stride = round_up(value_size, 8)` bytes apart. The padding
/// between copies is not part of any copy (it can hold garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerCpuRef<'a> {
    bytes: &'a [u8],
    stride: usize,
    size: usize,
    cpus: &'a [u32],
}

impl<'a> ValueRef<'a> {
    /// A per-CPU value over `bytes` (`cpus.len()` copies, `stride` apart, `size` each).
    pub fn per_cpu(bytes: &'a [u8], stride: usize, size: usize, cpus: &'a [u32]) -> Self {
        Self::PerCpu(PerCpuRef {
            bytes,
            stride: stride.max(size).max(1),
            size,
            cpus,
        })
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Value {
        match self {
            Self::Single(b) => Value::Single(b.to_vec()),
            Self::PerCpu(p) => Value::PerCpu(
                p.iter()
                    .map(|(cpu, b)| CpuValue {
                        cpu,
                        bytes: b.to_vec(),
                    })
                    .collect(),
            ),
        }
    }
}

impl<'a> PerCpuRef<'a> {
    /// The number of copies.
    pub fn len(&self) -> usize {
        self.cpus.len()
    }

    /// Whether there are no copies.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    /// The `i`-th copy (of the `i`-th possible CPU), without padding.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let start = i.checked_mul(self.stride)?;
        let end = start.checked_add(self.size)?;
        if i >= self.cpus.len() {
            return None;
        }
        self.bytes.get(start..end)
    }

    /// `(cpu number, copy)` for every possible CPU.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let this = *self;
        this.cpus
            .iter()
            .enumerate()
            .filter_map(move |(i, &cpu)| this.get(i).map(|b| (cpu, b)))
    }
}

/// One CPU's copy of a per-CPU value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuValue {
    /// The CPU number.
    pub cpu: u32,
    /// Its copy (`value_size` bytes).
    pub bytes: Vec<u8>,
}

/// An owned value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// One copy.
    Single(Vec<u8>),
    /// One copy per possible CPU, in CPU order.
    PerCpu(Vec<CpuValue>),
}

impl Value {
    /// The single copy, or `None` for a per-CPU value.
    pub fn single(&self) -> Option<&[u8]> {
        match self {
            Self::Single(b) => Some(b),
            Self::PerCpu(_) => None,
        }
    }

    /// The per-CPU copies, or `None` for a single value.
    pub fn per_cpu(&self) -> Option<&[CpuValue]> {
        match self {
            Self::Single(_) => None,
            Self::PerCpu(v) => Some(v),
        }
    }
}

/// One map element, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_copies_skip_padding() {
        // value_size 3, stride 8, two CPUs; padding bytes are 0xEE.
        let bytes = [
            1, 2, 3, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 4, 5, 6, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE,
        ];
        let cpus = [0, 1];
        let v = ValueRef::per_cpu(&bytes, 8, 3, &cpus);
        let ValueRef::PerCpu(p) = v else { panic!() };
        assert_eq!(p.len(), 2);
        assert_eq!(p.get(1), Some(&[4u8, 5, 6][..]));
        assert_eq!(p.get(2), None);
        assert_eq!(
            v.to_owned(),
            Value::PerCpu(vec![
                CpuValue {
                    cpu: 0,
                    bytes: vec![1, 2, 3]
                },
                CpuValue {
                    cpu: 1,
                    bytes: vec![4, 5, 6]
                },
            ])
        );
    }
}
