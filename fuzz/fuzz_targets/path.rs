//! Arbitrary bytes as a request path through `spillway_core::path::normalize`: it never panics; what it accepts
//! comes out in the normal form, which is a fixed point (normalising it again changes nothing), starts with
//! `/`, has no empty, `.` or `..` segment and no escape of an unreserved character; and what it refuses has
//! no single safe meaning (the refusal reason is checked against the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway_core::path::{PathError, normalize};

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    match normalize(path) {
        Ok(once) => {
            let twice = normalize(&once).unwrap_or_else(|e| panic!("{path:?} -> {once:?} is refused again: {e}"));
            assert_eq!(twice, once, "not a fixed point: {path:?}");
            assert!(once.starts_with('/'), "{path:?} -> {once:?}");
            assert!(!once.contains("//"), "{path:?} -> {once:?}");
            let body = once.trim_end_matches('/');
            assert!(body.split('/').skip(1).all(|s| s != "." && s != ".."), "{path:?} -> {once:?}");
            let bytes = once.as_bytes();
            for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'%') {
                let decoded = hex(bytes[i + 1]).zip(hex(bytes[i + 2])).map(|(h, l)| h * 16 + l);
                let decoded = decoded.unwrap_or_else(|| panic!("bad escape kept: {once:?}"));
                assert!(!unreserved(decoded), "escaped unreserved byte kept: {once:?}");
                assert!(!matches!(decoded, 0 | b'/' | b'\\'), "ambiguous escape kept: {once:?}");
            }
            assert!(!once.contains('\0') && !once.contains('\\'), "{once:?}");
        }
        Err(PathError::NotAbsolute) => assert!(!path.starts_with('/')),
        Err(PathError::Backslash) => assert!(path.contains('\\')),
        Err(PathError::Nul) => assert!(path.contains('\0') || path.to_ascii_lowercase().contains("%00")),
        Err(PathError::EncodedSeparator) => {
            let lower = path.to_ascii_lowercase();
            assert!(lower.contains("%2f") || lower.contains("%5c"), "{path:?}");
        }
        Err(PathError::BadEscape) => assert!(path.contains('%')),
    }
});
