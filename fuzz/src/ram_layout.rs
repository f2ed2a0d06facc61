//! Target `ram_layout`: [`Layout::from_str`] on the input as text (invalid UTF-8
//! replaced).
//!
//! Checks, when it parses: the ranges are non-empty, sorted by guest-physical address,
//! disjoint there and do not overflow; `phys_ranges()` is one range per layout range, in
//! the same order; `file_end()` is the largest `offset + len`; the text form of the
//! ranges parses back to the same layout, as does [`Layout::new`] of its ranges.

use std::str::FromStr;

use mapwalk_file::Layout;

use crate::sink;

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let layout = match Layout::from_str(&text) {
        Ok(l) => l,
        Err(e) => {
            sink(&e);
            return;
        }
    };
    let ranges = layout.ranges();
    assert!(!ranges.is_empty());
    for r in ranges {
        assert!(r.len > 0, "{r}");
        assert!(r.gpa.0.checked_add(r.len).is_some(), "{r}");
        assert!(r.offset.checked_add(r.len).is_some(), "{r}");
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].gpa.0 + w[0].len <= w[1].gpa.0,
            "{} then {}",
            w[0],
            w[1]
        );
    }
    let phys = layout.phys_ranges();
    assert_eq!(phys.len(), ranges.len());
    for (p, r) in phys.iter().zip(ranges) {
        assert_eq!((p.start, p.len), (r.gpa, r.len));
    }
    let end = ranges.iter().map(|r| r.offset + r.len).max();
    assert_eq!(Some(layout.file_end()), end);
    let back: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    assert_eq!(
        back.join(",").parse::<Layout>().as_ref(),
        Ok(&layout),
        "text form"
    );
    assert_eq!(Layout::new(ranges.iter().copied()).as_ref(), Ok(&layout));
    sink(&format_args!("{layout:?}"));
}
