//! Progress of the long steps (the search of memory for VMCOREINFO), for a front end to
//! show.
//!
//! The library reports to the [`Progress`] set for the calling thread, and to nothing
//! when none is set: an embedding VMM sees no output it did not ask for. The `mapwalk`
//! binary sets one that draws a bar on stderr when stderr is a terminal and the step
//! has run for a second.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mapwalk::progress::{self, Progress};
//! use mapwalk::describe::vmcoreinfo::find_vmcoreinfo;
//! use mapwalk_core::{Pa, Ram};
//!
//! /// The last update seen.
//! struct Last(Arc<Mutex<Option<(String, u64, u64)>>>);
//! impl Progress for Last {
//!     fn update(&self, what: &str, done: u64, total: u64) {
//!         *self.0.lock().unwrap() = Some((what.to_owned(), done, total));
//!     }
//!     fn finish(&self, _what: &str) {}
//! }
//!
//! let last = Arc::new(Mutex::new(None));
//! progress::set(Some(Box::new(Last(last.clone()))));
//! let ram = Ram::new(Pa(0), vec![0u8; 1 << 20]);
//! assert!(find_vmcoreinfo(&ram, &[])?.is_none());
//! progress::set(None);
//! let (what, done, total) = last.lock().unwrap().clone().unwrap();
//! assert_eq!((what.as_str(), done, total), ("scanning memory for VMCOREINFO", 1 << 20, 1 << 20));
//! # Ok::<(), mapwalk_core::Error>(())
//! ```

use std::cell::RefCell;

/// Receives the progress of long steps.
pub trait Progress {
    /// `what` has done `done` of `total` (bytes of address space, for the search).
    fn update(&self, what: &str, done: u64, total: u64);
    /// `what` ended (found, failed, or done).
    fn finish(&self, what: &str);
}

thread_local! {
    static CURRENT: RefCell<Option<Box<dyn Progress>>> = const { RefCell::new(None) };
}

/// Sets the calling thread's [`Progress`] (`None`: report to nothing).
pub fn set(progress: Option<Box<dyn Progress>>) {
    CURRENT.with(|c| *c.borrow_mut() = progress);
}

/// Reports `done` of `total` for `what` to the calling thread's [`Progress`], if any.
pub fn update(what: &str, done: u64, total: u64) {
    CURRENT.with(|c| {
        if let Ok(c) = c.try_borrow() {
            if let Some(p) = c.as_ref() {
                p.update(what, done, total);
            }
        }
    });
}

/// Reports that `what` ended to the calling thread's [`Progress`], if any.
pub fn finish(what: &str) {
    CURRENT.with(|c| {
        if let Ok(c) = c.try_borrow() {
            if let Some(p) = c.as_ref() {
                p.finish(what);
            }
        }
    });
}
