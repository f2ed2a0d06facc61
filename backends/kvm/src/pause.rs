//! Reading while the guest is paused, and never leaving it paused.

/// A guest that can be paused and resumed: a VMM's vCPUs, or QEMU through QMP
/// (`stop` / `cont`).
pub trait Pause {
    /// Why pausing or resuming failed.
    type Error;

    /// Stops every vCPU; returns once none runs.
    ///
    /// # Errors
    /// When the guest could not be paused (it then still runs).
    fn pause(&mut self) -> Result<(), Self::Error>;

    /// Lets the vCPUs run again.
    ///
    /// # Errors
    /// When the guest could not be resumed.
    fn resume(&mut self) -> Result<(), Self::Error>;
}

/// Runs `f` with `guest` paused (and lent to it: a QMP client, say, to ask more while
/// the guest is still) and resumes it afterwards: after `f` returns, and also
/// when `f` panics (the panic then goes on), so an embedding cannot leave its guest
/// frozen.
///
/// # Errors
/// When the guest cannot be paused (`f` is not run) or resumed (`f`'s result is then
/// dropped: the guest is in a state the caller must hear about).
///
/// # Example
/// ```
/// use mapwalk_kvm::{with_paused, Pause};
///
/// struct Vm { running: bool }
/// impl Pause for Vm {
///     type Error = std::convert::Infallible;
///     fn pause(&mut self) -> Result<(), Self::Error> { self.running = false; Ok(()) }
///     fn resume(&mut self) -> Result<(), Self::Error> { self.running = true; Ok(()) }
/// }
///
/// let mut vm = Vm { running: true };
/// let n = with_paused(&mut vm, |vm| { assert!(!vm.running); 42 }).unwrap();
/// assert_eq!(n, 42);
/// assert!(vm.running);
/// ```
pub fn with_paused<P: Pause, R>(guest: &mut P, f: impl FnOnce(&mut P) -> R) -> Result<R, P::Error> {
    guest.pause()?;
    let mut resumer = Resumer { guest, armed: true };
    let out = f(&mut *resumer.guest);
    resumer.armed = false;
    resumer.guest.resume().map(|()| out)
}

/// Resumes the guest when dropped while armed: when the closure panics.
struct Resumer<'a, P: Pause> {
    guest: &'a mut P,
    armed: bool,
}

impl<P: Pause> Drop for Resumer<'_, P> {
    fn drop(&mut self) {
        // Unwinding: nobody can be told of a failure to resume but stderr.
        if self.armed && self.guest.resume().is_err() {
            eprintln!("mapwalk: the guest could not be resumed after a panic");
        }
    }
}

impl<P: Pause> std::fmt::Debug for Resumer<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumer")
            .field("armed", &self.armed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[derive(Debug, Default)]
    struct Vm {
        paused: bool,
        pauses: u32,
        resumes: u32,
        refuse_pause: bool,
        refuse_resume: bool,
    }

    impl Pause for Vm {
        type Error = &'static str;
        fn pause(&mut self) -> Result<(), &'static str> {
            if self.refuse_pause {
                return Err("cannot pause");
            }
            self.paused = true;
            self.pauses += 1;
            Ok(())
        }
        fn resume(&mut self) -> Result<(), &'static str> {
            self.resumes += 1;
            if self.refuse_resume {
                return Err("cannot resume");
            }
            self.paused = false;
            Ok(())
        }
    }

    #[test]
    fn resumes_after_the_closure() {
        let mut vm = Vm::default();
        let seen = with_paused(&mut vm, |vm| vm.paused).unwrap();
        assert!(seen);
        assert!(!vm.paused);
        assert_eq!((vm.pauses, vm.resumes), (1, 1));
    }

    #[test]
    fn resumes_when_the_closure_panics() {
        let mut vm = Vm::default();
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_paused(&mut vm, |_| -> u32 { panic!("walker bug") })
        }));
        assert!(r.is_err());
        assert!(!vm.paused, "the guest was left paused");
        assert_eq!((vm.pauses, vm.resumes), (1, 1));
    }

    #[test]
    fn a_refused_pause_runs_nothing_and_a_refused_resume_is_reported() {
        let mut vm = Vm {
            refuse_pause: true,
            ..Vm::default()
        };
        let mut ran = false;
        assert_eq!(with_paused(&mut vm, |_| ran = true), Err("cannot pause"));
        assert!(!ran);
        assert_eq!(vm.resumes, 0);

        let mut vm = Vm {
            refuse_resume: true,
            ..Vm::default()
        };
        assert_eq!(with_paused(&mut vm, |_| 7), Err("cannot resume"));
        assert_eq!(vm.resumes, 1);
    }
}
