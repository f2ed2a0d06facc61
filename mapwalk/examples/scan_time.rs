//! Times the VMCOREINFO search over a RAM file where the page probe cannot find it, so
//! that the fallback scan reads everything.
//!
//! ```text
//! cargo run --release -p mapwalk --example scan_time             # 512 MiB synthetic
//! cargo run --release -p mapwalk --example scan_time -- PATH     # a RAM file
//! ```
//!
//! The synthetic file (in `/dev/shm` when it exists, else the temp directory) is
//! pseudo-random bytes, the worst case for the substring search, with a VMCOREINFO text
//! 1000 bytes before its end, off any page start.

use std::io::Write;
use std::time::Instant;

use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo_with, FindOptions};
use mapwalk_file::RamFile;

const LEN: usize = 512 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")?
    } else {
        tempfile::tempdir()?
    };
    let path = match &arg {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let path = dir.path().join("ram");
            let mut file = std::fs::File::create(&path)?;
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut block = vec![0u8; 1 << 20];
            for i in 0..LEN >> 20 {
                for b in block.chunks_exact_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.copy_from_slice(&x.to_le_bytes());
                }
                if i == (LEN >> 20) - 1 {
                    let text = b"OSRELEASE=6.1.0-56-cloud-amd64\nPAGESIZE=4096\n\0";
                    let at = block.len() - 1000;
                    block[at..at + text.len()].copy_from_slice(text);
                }
                file.write_all(&block)?;
            }
            path
        }
    };
    let ram = RamFile::open(&path)?;
    println!("{}: {} MiB", path.display(), ram.file_len() >> 20);
    for (what, opts) in [
        ("probe, then scan", FindOptions::default()),
        (
            "scan only",
            FindOptions {
                page_probe: false,
                ..FindOptions::default()
            },
        ),
        (
            "probe only",
            FindOptions {
                scan: false,
                ..FindOptions::default()
            },
        ),
    ] {
        for round in 0..3 {
            let t = Instant::now();
            let found = find_vmcoreinfo_with(&ram, &opts)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            match found {
                Some(f) => println!(
                    "{what} #{round}: found at {} by {:?}, read {} MiB, {ms:.1} ms",
                    f.pa,
                    f.method,
                    f.bytes_read >> 20
                ),
                None => println!("{what} #{round}: not found, {ms:.1} ms"),
            }
        }
    }
    Ok(())
}
