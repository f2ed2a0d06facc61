//! `mapwalk`: list, dump and patch BPF maps of the live host, a VM's RAM file or a
//! memory dump.
//!
//! ```text
//! mapwalk [SOURCE] [KERNEL] [--json] maps
//! mapwalk [SOURCE] [KERNEL] [--json] progs
//! mapwalk [SOURCE] [KERNEL] [--json] dump MAP
//! mapwalk [SOURCE] [KERNEL] [--json] dump --all
//! mapwalk [SOURCE] [KERNEL] write MAP [--key HEX] --offset N --value HEX
//! mapwalk [SOURCE] [KERNEL] snapshot -o FILE
//! mapwalk [--json] diff A B [MAP...]  |  mapwalk SOURCE [KERNEL] diff A [MAP...]
//! mapwalk [SOURCE] [KERNEL] [--json] watch [MAP...] [--interval D] [--count N] [--plain]
//! SOURCE: --live (default) | --ram FILE [--layout GPA:OFFSET:LEN ...] | --core FILE
//!         | --snapshot FILE
//! KERNEL: --vmlinux FILE | --symbols FILE [--btf FILE] [--cr3 PA]   (memory sources)
//! MAP:    a name, a name suffix (such as .bss), or id:N
//! ```
//! (`--json`, or `-j`, also after the subcommand.)
//!
//! The crate is the command line only: [`args`] parses it, [`choose`] picks the map
//! source it names (the live host, or a kernel in a RAM file or an ELF core, described by
//! the `mapwalk` library), and [`output`] prints what the source yields. Errors stay
//! typed ([`error::CliError`]) up to [`main`], which prints one line and sets the exit
//! status: 0 for the whole answer, 2 for an error, 3 for a partial answer
//! ([`output::Answer`]); 1 for differences ([`args::EXIT_STATUS_HELP`]).

mod args;
mod choose;
mod error;
mod history;
mod output;
mod progress;
mod tui;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::output::Answer;

/// The exit status of an error (the one clap gives a command line it refuses).
const EXIT_ERROR: u8 = 2;

/// The exit status of a comparison that found differences.
const EXIT_DIFFERENT: u8 = 1;

/// The exit status of a partial answer.
const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    mapwalk::timing::start();
    let cli = Cli::parse();
    progress::install();
    let result = choose::run(&cli);
    mapwalk::timing::mark("done");
    mapwalk::timing::memory();
    match result {
        Ok(Answer::Whole) => ExitCode::SUCCESS,
        Ok(Answer::Partial) => ExitCode::from(EXIT_PARTIAL),
        Ok(Answer::Different) => ExitCode::from(EXIT_DIFFERENT),
        // A closed pipe (`mapwalk dump x | head`) is not worth a complaint.
        Err(e) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            // As `bpftool -j` does, JSON output gets the error as JSON on stdout too
            // (unless writing stdout is what failed); stderr keeps its line.
            if cli.json && !matches!(e, error::CliError::Output(_)) {
                let json = serde_json::json!({ "error": line });
                let _ = writeln!(std::io::stdout(), "{json}");
            }
            let _ = writeln!(std::io::stderr(), "mapwalk: error: {line}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
