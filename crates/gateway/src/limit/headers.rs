//! The IETF draft `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers), as
//! structured-field lists: `RateLimit-Policy: "burst";q=20;w=1, "daily";q=1000;w=86400` names every band
//! and its quota; `RateLimit: "burst";r=5;t=1` gives the remaining quota and the seconds to reset of the band
//! closest to refusing.

use std::fmt::Write;

use http::HeaderValue;
use spillway_core::limit::{Algorithm, Decision, NANOS_PER_SEC};

/// The policy field for a limit's bands: fixed per config, rendered once.
pub fn policy(bands: &[(String, Algorithm)]) -> HeaderValue {
    let mut out = String::new();
    for (i, (name, algorithm)) in bands.iter().enumerate() {
        let quota = algorithm.quota();
        let window = quota.period_ns.div_ceil(NANOS_PER_SEC).max(1);
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{name}\";q={};w={window}", quota.limit);
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The state field for the band that decided.
pub fn state(name: &str, decision: &Decision) -> HeaderValue {
    let reset = decision.reset_ns.div_ceil(NANOS_PER_SEC);
    let value = format!("\"{name}\";r={};t={reset}", decision.remaining);
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_core::limit::Quota;

    #[test]
    fn fields_render_as_the_draft_writes_them() {
        let bands = [
            ("burst".to_string(), Algorithm::Gcra { quota: Quota::per_second(10), burst: 20 }),
            (
                "daily".to_string(),
                Algorithm::FixedWindow { quota: Quota { limit: 1000, period_ns: 86_400 * NANOS_PER_SEC } },
            ),
        ];
        assert_eq!(policy(&bands), "\"burst\";q=20;w=2, \"daily\";q=1000;w=86400");
        let d = Decision::allow(5, 1_500_000_000);
        assert_eq!(state("burst", &d), "\"burst\";r=5;t=2");
    }
}
