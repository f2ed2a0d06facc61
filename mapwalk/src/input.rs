//! The files a user names (symbols, BTF, a vmlinux, guest RAM, a core), checked before
//! they are read: of the right kind (a regular file; guest memory may also be a block
//! device), never a FIFO, a directory or a character device such as `/dev/zero`; and
//! read whole only up to a cap, whatever the file claims its size is (files of procfs
//! and sysfs say 0 or 4096).
//!
//! ```
//! use mapwalk::input::{read_capped, MAX_SYMBOLS_FILE};
//!
//! let err = read_capped("/dev/zero".as_ref(), MAX_SYMBOLS_FILE).unwrap_err();
//! assert!(err.to_string().contains("character device"), "{err}");
//! ```

use std::fmt;
use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The largest symbol file read (a System.map or a `/proc/kallsyms` copy): a
/// distribution kernel's kallsyms with its modules is 4-10 MB (5.4 MB on a 6.18 host).
pub const MAX_SYMBOLS_FILE: u64 = 64 << 20;

/// The largest raw BTF file read: a distribution kernel's is 5-10 MB (5.5 MB on a 6.18
/// host). A BTF file that is an ELF (a vmlinux with `.BTF`) has [`MAX_VMLINUX_FILE`].
pub const MAX_BTF_FILE: u64 = 64 << 20;

/// The largest vmlinux read: about 55 MB with symbols only (Debian 12 and 13), up to
/// about 1 GB with debug information.
pub const MAX_VMLINUX_FILE: u64 = 2 << 30;

/// Why a user's file was not read.
#[derive(Debug)]
pub enum InputError {
    /// Not a kind of file that can be read whole (a FIFO, a directory, a device).
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is instead (`"a FIFO"`, `"a directory"`, ...).
        kind: &'static str,
        /// What it should have been.
        wanted: &'static str,
    },
    /// Larger than the cap for its kind.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or the bytes read before giving up when it says less.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// It could not be inspected, opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl InputError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotAFile { path, .. } | Self::TooLarge { path, .. } | Self::Io { path, .. } => {
                path
            }
        }
    }
}

impl InputError {
    /// What is wrong with the file, without its name.
    fn what(&self) -> String {
        match self {
            Self::NotAFile { kind, wanted, .. } => format!("{kind}, not {wanted}"),
            Self::TooLarge { size, cap, .. } => format!(
                "{} ({size} bytes) is over the cap of {} ({cap} bytes) on such a file",
                human(*size),
                human(*cap)
            ),
            Self::Io { source, .. } => source.to_string(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path().display(), self.what())
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<InputError> for crate::describe::DescribeError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Io { path, source } => Self::Io { path, source },
            e => Self::BadFile {
                what: e.what(),
                path: e.path().to_path_buf(),
            },
        }
    }
}

/// `12.3 MiB`, `2 GiB`, `512 bytes`.
fn human(n: u64) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if n >= 1 << shift {
            // Tenths, rounded down; exact values without them.
            let whole = n >> shift;
            let tenths = ((n & ((1 << shift) - 1)) * 10) >> shift;
            return if tenths == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenths} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// What a file type is, in words.
fn kind_of(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Refuses anything but a regular file (or, with `block`, a block device).
fn check_type(path: &Path, meta: &Metadata, block: bool) -> Result<(), InputError> {
    let t = meta.file_type();
    if t.is_file() || (block && t.is_block_device()) {
        return Ok(());
    }
    Err(InputError::NotAFile {
        path: path.to_path_buf(),
        kind: kind_of(t),
        wanted: if block {
            "a regular file or a block device"
        } else {
            "a regular file"
        },
    })
}

/// Checks that `path` is a regular file (or, with `block`, a block device) without
/// opening it: opening a FIFO would wait for a writer.
///
/// # Errors
/// [`InputError::NotAFile`], or [`InputError::Io`] when it cannot be inspected (it
/// does not exist, among others).
pub fn check_file(path: &Path, block: bool) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    check_type(path, &meta, block)
}

/// Opens the regular file `path`, refused when its size says it is over `cap`.
///
/// # Errors
/// As [`check_file`]; [`InputError::TooLarge`].
fn open_checked(path: &Path, cap: u64) -> Result<File, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    check_file(path, false)?;
    let file = File::open(path).map_err(io)?;
    // The file opened is the one checked (not swapped for another kind meanwhile).
    let meta = file.metadata().map_err(io)?;
    check_type(path, &meta, false)?;
    if meta.len() > cap {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            cap,
        });
    }
    Ok(file)
}

/// Appends the rest of `file` to `buf`, at most until `buf` holds `cap` bytes.
fn read_rest(path: &Path, file: &mut File, buf: &mut Vec<u8>, cap: u64) -> Result<(), InputError> {
    let have = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    // One byte past the cap tells a file at the cap from a larger one.
    let limit = cap.saturating_add(1).saturating_sub(have);
    file.take(limit)
        .read_to_end(buf)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let size = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    if size > cap {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            size,
            cap,
        });
    }
    Ok(())
}

/// Reads the regular file `path` whole, refused when it is over `cap` bytes (by its
/// size, or by reading at most `cap + 1` bytes of it when it says less).
///
/// # Errors
/// [`InputError`].
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let mut file = open_checked(path, cap)?;
    let mut buf = Vec::new();
    read_rest(path, &mut file, &mut buf, cap)?;
    Ok(buf)
}

/// Reads a BTF file: raw BTF up to [`MAX_BTF_FILE`], or an ELF (whose `.BTF` the
/// caller takes) up to [`MAX_VMLINUX_FILE`].
///
/// # Errors
/// [`InputError`].
pub fn read_btf_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let mut file = open_checked(path, MAX_VMLINUX_FILE)?;
    let mut buf = Vec::new();
    // The magic first: it says which cap applies.
    (&mut file)
        .take(4)
        .read_to_end(&mut buf)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let cap = if buf.starts_with(b"\x7fELF") {
        MAX_VMLINUX_FILE
    } else {
        MAX_BTF_FILE
    };
    read_rest(path, &mut file, &mut buf, cap)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tmp();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
        ] {
            let e = read_capped(path, MAX_SYMBOLS_FILE).unwrap_err();
            assert!(matches!(e, InputError::NotAFile { .. }), "{e}");
            let text = e.to_string();
            assert!(text.contains(kind), "{text}");
            assert!(text.starts_with(&path.display().to_string()), "{text}");
            assert!(read_btf_file(path).is_err());
            assert!(check_file(path, true).is_err());
        }
        assert!(check_file(dir.path(), false)
            .unwrap_err()
            .to_string()
            .ends_with("a directory, not a regular file"));
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_capped(&missing, 1).unwrap_err(),
            InputError::Io { .. }
        ));
    }

    #[test]
    fn a_file_over_its_cap_is_refused_with_its_size_and_the_cap() {
        let dir = tmp();
        let f = dir.path().join("syms");
        std::fs::write(&f, [b'x'; 2048]).unwrap();
        assert_eq!(read_capped(&f, 2048).unwrap().len(), 2048);
        let e = read_capped(&f, 1024).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: 2048,
                    cap: 1024,
                    ..
                }
            ),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("2 KiB (2048 bytes)"), "{text}");
        assert!(text.contains("1 KiB (1024 bytes)"), "{text}");
        // A procfs file says its size is 0: the read itself stops past the cap.
        let e = read_capped(Path::new("/proc/self/maps"), 8).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: 9,
                    cap: 8,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn btf_files_are_capped_by_what_they_are() {
        let dir = tmp();
        let raw = dir.path().join("btf");
        std::fs::write(&raw, b"\x9f\xeb\x01\x00").unwrap();
        assert_eq!(read_btf_file(&raw).unwrap(), b"\x9f\xeb\x01\x00");
        let tiny = dir.path().join("two");
        std::fs::write(&tiny, b"ab").unwrap();
        assert_eq!(read_btf_file(&tiny).unwrap(), b"ab");
        let elf = dir.path().join("vmlinux");
        std::fs::write(&elf, b"\x7fELF....").unwrap();
        assert_eq!(read_btf_file(&elf).unwrap().len(), 8);
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(MAX_SYMBOLS_FILE), "64 MiB");
        assert_eq!(human(MAX_VMLINUX_FILE), "2 GiB");
        assert_eq!(human(5_481_434), "5.2 MiB");
    }

    #[test]
    fn describe_errors_keep_the_path_and_the_words() {
        let e = crate::describe::DescribeError::from(InputError::TooLarge {
            path: "/x".into(),
            size: 2048,
            cap: 1024,
        });
        assert_eq!(
            e.to_string(),
            "/x: 2 KiB (2048 bytes) is over the cap of 1 KiB (1024 bytes) on such a file"
        );
    }
}
