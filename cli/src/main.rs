//! `mapwalk`: list, dump and patch BPF maps of the live host, a VM's RAM file or a
//! memory dump.
//!
//! ```text
//! mapwalk [SOURCE] [KERNEL] maps [--json]
//! mapwalk [SOURCE] [KERNEL] dump MAP [--json]
//! mapwalk [SOURCE] [KERNEL] dump --all [--json]
//! mapwalk [SOURCE] [KERNEL] write MAP [--key HEX] --offset N --value HEX
//! SOURCE: --live (default) | --ram FILE [--layout GPA:OFFSET:LEN ...] | --core FILE
//! KERNEL: --vmlinux FILE | --symbols FILE [--btf FILE] [--cr3 PA]   (memory sources)
//! MAP:    a name, a name suffix (such as .bss), or id:N
//! ```

//!
//! The crate is the command line only: [`args`] parses it, [`choose`] picks the map
//! source it names (the live host, or a kernel in a RAM file or an ELF core, described by
//! the `mapwalk` library), and [`output`] prints what the source yields. Errors stay
//! typed ([`error::CliError`]) up to [`main`], which prints one line and sets the exit
//! status.

mod args;
mod choose;
mod error;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    mapwalk::timing::start();
    let cli = Cli::parse();
    let result = choose::run(&cli);
    mapwalk::timing::mark("done");
    mapwalk::timing::memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`mapwalk dump x | head`) is not worth a complaint.
        Err(e) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "mapwalk: error: {line}");
            ExitCode::FAILURE
        }
    }
}
