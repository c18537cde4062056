//! The one form of a request path that routing, rooms, limits and the origin all see.
//!
//! A room in front of `/sale` is only as good as the gateway's idea of which requests are for `/sale`. If
//! routing read the path as sent, `/%73ale/`, `//sale/`, `/x/../sale/` or `/./sale/` would each miss the room,
//! and an origin that decodes and resolves them (most do) would serve the sale page to whoever asked that way.
//! So every path is normalised once, before routing, and the normalised form is what goes upstream:
//!
//! 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and other escapes written
//!    with upper-case hex (RFC 3986 §6.2.2.1-2), so one resource has one spelling;
//! 2. runs of slashes become one (envoy's `merge_slashes`);
//! 3. `.` and `..` segments are resolved (RFC 3986 §5.2.4), never above the root.
//!
//! Some paths have no safe single meaning and are refused instead: an encoded `/` (`%2F`) or `\` (`%5C`),
//! which origins disagree about decoding; a raw `\`, which some origins treat as `/`; NUL, raw or encoded;
//! an escape that is not two hex digits; and anything that does not start with `/`.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path has an encoded '/' or '\\' (%2F, %5C), which origins read differently")]
    EncodedSeparator,
    #[error("the path has a backslash, which some origins read as '/'")]
    Backslash,
    #[error("the path has a NUL byte")]
    Nul,
    #[error("the path has a '%' that is not followed by two hex digits")]
    BadEscape,
}

/// The normalised path, borrowed when it was already normal (the common case costs one scan).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut needs_work = false;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let decoded = escape_at(bytes, i)?;
                match decoded {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    _ => needs_work = true,
                }
            }
            b'/' if prev == b'/' => needs_work = true,
            b'.' if prev == b'/' => needs_work = true,
            _ => {}
        }
        prev = b;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(resolve(&decode_unreserved(bytes)?)))
}

/// The byte a `%XX` at `i` stands for.
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16)).ok_or(PathError::BadEscape);
    Ok((hex(bytes.get(i + 1))? * 16 + hex(bytes.get(i + 2))?) as u8)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Step 1: unreserved escapes decoded, the rest in upper-case hex. Only ASCII is produced from escapes, so
/// the result is as valid UTF-8 as the input.
fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let b = escape_at(bytes, i)?;
            if unreserved(b) {
                out.push(b as char);
            } else {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
            i += 3;
        } else {
            // Not an escape: copy the whole run up to the next '%' (it may hold multi-byte characters).
            let end = bytes[i..].iter().position(|&b| b == b'%').map_or(bytes.len(), |n| i + n);
            out.push_str(&String::from_utf8_lossy(&bytes[i..end]));
            i = end;
        }
    }
    Ok(out)
}

/// Steps 2 and 3: empty and `.` segments dropped, `..` removes the segment before it (none above the root).
/// A trailing slash, `.` or `..` leaves the result ending in `/`, as a browser resolving it would.
fn resolve(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in path.split('/').skip(1) {
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_spelling_of_the_sale_reaches_the_sale() {
        for path in
            ["/sale/", "/%73ale/", "/%73%61%6C%65/", "//sale/", "/x/../sale/", "/./sale/", "/sale/./", "/sale//"]
        {
            assert_eq!(normalize(path).as_deref(), Ok("/sale/"), "{path}");
        }
        assert_eq!(normalize("/sale").as_deref(), Ok("/sale"));
        assert_eq!(normalize("/../../sale").as_deref(), Ok("/sale"), "never above the root");
        assert_eq!(normalize("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(normalize("/%2e%2e/sale").as_deref(), Ok("/sale"), "decoded dots are dots");
        assert_eq!(normalize("/").as_deref(), Ok("/"));
        assert_eq!(normalize("/..").as_deref(), Ok("/"));
    }

    #[test]
    fn other_escapes_are_kept_in_one_spelling() {
        assert_eq!(normalize("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(normalize("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(normalize("/%3fq").as_deref(), Ok("/%3Fq"), "an encoded '?' stays a character of the path");
        assert_eq!(normalize("/카페").as_deref(), Ok("/카페"));
        assert!(matches!(normalize("/already/normal"), Ok(Cow::Borrowed(_))), "nothing copied");
    }

    #[test]
    fn paths_without_one_safe_meaning_are_refused() {
        assert_eq!(normalize("/%2Fsale/"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/%2fsale/"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/%5Csale/"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/\\sale/"), Err(PathError::Backslash));
        assert_eq!(normalize("/sale%00"), Err(PathError::Nul));
        assert_eq!(normalize("/sale\0"), Err(PathError::Nul));
        assert_eq!(normalize("/sale%"), Err(PathError::BadEscape));
        assert_eq!(normalize("/sale%4"), Err(PathError::BadEscape));
        assert_eq!(normalize("/sale%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("sale"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
    }

    proptest! {
        /// Whatever the input: normalising twice changes nothing, and a normal path has no empty, `.` or `..`
        /// segment and no escape of an unreserved character.
        #[test]
        fn normal_form_is_a_fixed_point(path in "/[a-zA-Z0-9%./_~ -]{0,40}") {
            if let Ok(once) = normalize(&path) {
                let twice = normalize(&once).expect("a normal path is accepted");
                prop_assert_eq!(&*twice, &*once);
                prop_assert!(once.starts_with('/'));
                prop_assert!(!once.contains("//"), "{}", once);
                let body = once.trim_end_matches('/');
                prop_assert!(body.split('/').skip(1).all(|s| s != "." && s != ".."), "{}", once);
                let bytes = once.as_bytes();
                for i in bytes.iter().enumerate().filter(|(_, b)| **b == b'%').map(|(i, _)| i) {
                    prop_assert!(!unreserved(escape_at(bytes, i).expect("valid escape")), "{}", once);
                }
            }
        }
    }
}
