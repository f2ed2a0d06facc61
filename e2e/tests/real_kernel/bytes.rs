//! Bytes as the tests read and write them: bpftool's JSON byte arrays
//! (`["0x0a","0x00"]`) and the guest report's plain hex.

use serde_json::Value;

/// `bytes` as bpftool's JSON prints them: `["0x0a", ...]`.
pub(super) fn hex_json(bytes: &[u8]) -> Value {
    bytes.iter().map(|b| format!("0x{b:02x}")).collect()
}

/// The bytes of a JSON byte array as bpftool prints them (panics on anything else).
pub(super) fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a byte array: {v}"))
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// The bytes of plain hex (`0a00...`), as the guest's report writes them.
pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
