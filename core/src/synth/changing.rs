//! A memory backend whose contents change between reads, as a running guest's do: to
//! drive the walkers' handling of concurrent change.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use crate::addr::Pa;
use crate::error::PhysErrorKind;
use crate::mem::{PhysRange, PhysRead};
use crate::synth::SynthRam;

/// A change to make to the memory.
pub type Change = Box<dyn FnMut(&mut SynthRam)>;

/// Guest RAM that changes while it is read: before its `n`th read (counting from 1),
/// the changes scheduled at `n` are made, in the order they were scheduled. A change
/// scheduled with [`every`](Self::every) is made before every read from then on.
///
/// ```
/// use mapwalk_core::synth::{ChangingRam, SynthRam};
/// use mapwalk_core::{Pa, PhysReadExt};
/// let mut ram = SynthRam::new(Pa(0), 4096);
/// ram.write_u64(Pa(8), 1);
/// let mem = ChangingRam::new(ram).at(2, |r| r.write_u64(Pa(8), 2));
/// assert_eq!(mem.read_u64(Pa(8)).unwrap(), 1);
/// assert_eq!(mem.read_u64(Pa(8)).unwrap(), 2);
/// assert_eq!(mem.reads(), 2);
/// ```
pub struct ChangingRam {
    ram: RefCell<SynthRam>,
    ranges: [PhysRange; 1],
    reads: Cell<u32>,
    scheduled: RefCell<Vec<(u32, Change)>>,
    watched: RefCell<Vec<Watch>>,
    every: RefCell<Vec<Change>>,
}

/// A change made before the `nth` read that touches `pa`.
struct Watch {
    pa: Pa,
    nth: u32,
    seen: u32,
    change: Change,
}

impl fmt::Debug for ChangingRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangingRam")
            .field("reads", &self.reads.get())
            .field("scheduled", &self.scheduled.borrow().len())
            .field("every", &self.every.borrow().len())
            .finish_non_exhaustive()
    }
}

impl ChangingRam {
    /// RAM that changes only as scheduled.
    pub fn new(ram: SynthRam) -> Self {
        let ranges = [PhysRange {
            start: ram.base(),
            len: ram.len(),
        }];
        Self {
            ram: RefCell::new(ram),
            ranges,
            reads: Cell::new(0),
            scheduled: RefCell::new(Vec::new()),
            watched: RefCell::new(Vec::new()),
            every: RefCell::new(Vec::new()),
        }
    }

    /// Schedules `change` before read number `n` (from 1).
    pub fn at(self, n: u32, change: impl FnMut(&mut SynthRam) + 'static) -> Self {
        self.scheduled.borrow_mut().push((n, Box::new(change)));
        self
    }

    /// Schedules `change` before the `nth` read (from 1) whose bytes include `pa`.
    pub fn on_read(self, pa: Pa, nth: u32, change: impl FnMut(&mut SynthRam) + 'static) -> Self {
        self.watched.borrow_mut().push(Watch {
            pa,
            nth,
            seen: 0,
            change: Box::new(change),
        });
        self
    }

    /// Makes `change` before every read.
    pub fn every(self, change: impl FnMut(&mut SynthRam) + 'static) -> Self {
        self.every.borrow_mut().push(Box::new(change));
        self
    }

    /// Reads made so far.
    pub fn reads(&self) -> u32 {
        self.reads.get()
    }

    /// Changes the memory now.
    pub fn change(&self, change: impl FnOnce(&mut SynthRam)) {
        change(&mut self.ram.borrow_mut());
    }

    /// The memory as it is now.
    pub fn snapshot(&self) -> SynthRam {
        self.ram.borrow().clone()
    }
}

impl PhysRead for ChangingRam {
    type Error = PhysErrorKind;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), PhysErrorKind> {
        let n = self.reads.get().saturating_add(1);
        self.reads.set(n);
        {
            let mut ram = self.ram.borrow_mut();
            for (at, change) in self.scheduled.borrow_mut().iter_mut() {
                if *at == n {
                    change(&mut ram);
                }
            }
            let end = pa.0.saturating_add(buf.len() as u64);
            for w in self.watched.borrow_mut().iter_mut() {
                if pa.0 <= w.pa.0 && w.pa.0 < end {
                    w.seen = w.seen.saturating_add(1);
                    if w.seen == w.nth {
                        (w.change)(&mut ram);
                    }
                }
            }
            for change in self.every.borrow_mut().iter_mut() {
                change(&mut ram);
            }
        }
        let ram = self.ram.borrow();
        ram.as_ram().read_phys(pa, buf).map_err(|e| {
            use crate::error::PhysError;
            e.kind()
        })
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }
}
