//! Why a `mapwalk` run failed: one typed error from each layer, kept typed up to
//! `main`, which prints it as one line and picks the exit status.

use std::fmt;
use std::io;

use mapwalk::describe::DescribeError;
use mapwalk::source::SourceError;

/// A failed run.
#[derive(Debug)]
pub enum CliError {
    /// Arguments that do not go together, or a value that cannot be parsed.
    Usage(String),
    /// Writing the output failed (a closed pipe among others: see [`Self::is_closed_pipe`]).
    Output(io::Error),
    /// The map source refused or failed.
    Source(SourceError),
    /// The guest kernel could not be described.
    Describe(DescribeError),
    /// The RAM file or ELF core could not be opened (the error names the file).
    Memory(mapwalk_file::Error),
    /// A `--layout` that does not parse.
    Layout(mapwalk_file::LayoutError),
    /// QEMU's QMP socket failed or answered nonsense.
    Qmp(io::Error),
    /// The guest RAM regions of a `--pid` process are not a valid set.
    Regions(mapwalk_kvm::RegionsError),
    /// A file named by an option cannot be read as one (a FIFO, a directory, a device,
    /// too large): the option, and what is wrong with its file.
    Input(&'static str, mapwalk::input::InputError),
    /// No map goes by the name given (with a hint at what was likely meant).
    NoSuchMap(String),
    /// The map has no entry at the key given (`lookup`), or no key after it
    /// (`getnext`).
    NoSuchKey(String),
    /// A snapshot file that cannot be read or written (the error names the file).
    Snapshot(mapwalk::snapshot::SnapshotError),
}

impl CliError {
    /// Whether the output's reader went away (`mapwalk dump x | head`): not worth a
    /// complaint.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => f.write_str(m),
            Self::Output(e) => write!(f, "writing output: {e}"),
            Self::Source(e) => write!(f, "{e}"),
            Self::Describe(e) => write!(f, "describing the kernel: {e}"),
            Self::Memory(e) => write!(f, "{e}"),
            Self::Layout(e) => write!(f, "--layout: {e}"),
            Self::Qmp(e) => write!(f, "QMP: {e}"),
            Self::Regions(e) => write!(f, "guest RAM regions: {e}"),
            Self::Input(option, e) => write!(f, "{option}: {e}"),
            Self::NoSuchMap(m) | Self::NoSuchKey(m) => f.write_str(m),
            Self::Snapshot(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Usage(_) | Self::NoSuchMap(_) | Self::NoSuchKey(_) => None,
            Self::Output(e) => Some(e),
            Self::Source(e) => Some(e),
            Self::Describe(e) => Some(e),
            Self::Memory(e) => Some(e),
            Self::Layout(e) => Some(e),
            Self::Qmp(e) => Some(e),
            Self::Regions(e) => Some(e),
            Self::Input(_, e) => Some(e),
            Self::Snapshot(e) => Some(e),
        }
    }
}

impl From<SourceError> for CliError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

impl From<DescribeError> for CliError {
    fn from(e: DescribeError) -> Self {
        Self::Describe(e)
    }
}

impl From<mapwalk_file::Error> for CliError {
    fn from(e: mapwalk_file::Error) -> Self {
        Self::Memory(e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        Self::Output(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_by_its_kind_not_its_text() {
        let pipe = CliError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_closed_pipe());
        // The same words in another error are not a closed pipe.
        let other = CliError::Usage("Broken pipe".into());
        assert!(!other.is_closed_pipe());
        let full = CliError::Output(io::Error::other("Broken pipe (os error 32)"));
        assert!(!full.is_closed_pipe());
        assert_eq!(pipe.to_string(), "writing output: broken pipe");
    }
}
