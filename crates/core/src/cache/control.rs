//! What a response's `Cache-Control` lets a shared cache do with it (RFC 9111, the parts a gateway cache
//! needs), and where a stored response stands at a given age.

/// The directives that matter to a shared cache. Unknown directives are ignored, as the RFC says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub private: bool,
    /// `no-cache`: may be stored, but must be revalidated before every use; treated as not storable here.
    pub no_cache: bool,
    pub max_age: Option<u64>,
    /// Wins over `max-age` for shared caches.
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// Parses one or more `Cache-Control` header values. Lenient: a malformed directive is skipped.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut d = Self::default();
        for value in values {
            for part in value.split(',') {
                let (name, arg) = match part.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (part.trim(), None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "private" => d.private = true,
                    "no-cache" => d.no_cache = true,
                    "max-age" => d.max_age = secs().or(d.max_age),
                    "s-maxage" => d.s_maxage = secs().or(d.s_maxage),
                    "stale-while-revalidate" => d.stale_while_revalidate = secs(),
                    "stale-if-error" => d.stale_if_error = secs(),
                    _ => {}
                }
            }
        }
        d
    }

    /// Whether a shared cache may store it at all.
    pub fn storable(&self) -> bool {
        !(self.no_store || self.private || self.no_cache)
    }

    /// Seconds the response is fresh, by its own word; `None` if it says nothing (the route's TTL applies).
    pub fn ttl(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }
}

/// How long a stored response may be used, in milliseconds from when it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh_ms: u64,
    /// After freshness: served while one request revalidates.
    pub stale_while_revalidate_ms: u64,
    /// After freshness: served when the origin fails or its breaker is open.
    pub stale_if_error_ms: u64,
}

/// Where a stored response stands at some age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Fresh,
    /// Serve it, and have one request fetch a replacement.
    StaleRevalidate,
    /// Only for an origin that fails.
    StaleIfError,
    Expired,
}

impl Lifetime {
    /// The figures come from an origin's headers, so the sums saturate: `max-age` near `u64::MAX` is "for
    /// ever", not a wrap to "expired".
    pub fn standing(&self, age_ms: u64) -> Standing {
        if age_ms < self.fresh_ms {
            Standing::Fresh
        } else if age_ms < self.fresh_ms.saturating_add(self.stale_while_revalidate_ms) {
            Standing::StaleRevalidate
        } else if age_ms < self.fresh_ms.saturating_add(self.stale_if_error_ms) {
            Standing::StaleIfError
        } else {
            Standing::Expired
        }
    }

    /// Whether a failing origin may be covered by this response at this age.
    pub fn usable_on_error(&self, age_ms: u64) -> bool {
        age_ms < self.fresh_ms.saturating_add(self.stale_if_error_ms.max(self.stale_while_revalidate_ms))
    }
}

/// A TTL spread by up to `jitter` (0 to 1) of itself, so entries stored together do not all expire in the
/// same second and send their misses to the origin at once. `unit` is a uniform draw from [0, 1).
pub fn jittered_ms(ttl_ms: u64, jitter: f64, unit: f64) -> u64 {
    let spread = ttl_ms as f64 * jitter.clamp(0.0, 1.0);
    (ttl_ms as f64 - spread * unit.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_like_a_shared_cache_reads_them() {
        let d = Directives::parse([
            "public, max-age=60, s-maxage=\"300\"",
            "stale-while-revalidate=30, Stale-If-Error=600",
        ]);
        assert_eq!(d.ttl(), Some(300), "s-maxage wins for a shared cache");
        assert_eq!((d.stale_while_revalidate, d.stale_if_error), (Some(30), Some(600)));
        assert!(d.storable());
        assert!(!Directives::parse(["private, max-age=60"]).storable());
        assert!(!Directives::parse(["no-store"]).storable());
        assert_eq!(Directives::parse(["max-age=soon"]).ttl(), None, "a malformed value is ignored");
    }

    #[test]
    fn standing_moves_through_fresh_stale_and_expired() {
        let l = Lifetime { fresh_ms: 1_000, stale_while_revalidate_ms: 500, stale_if_error_ms: 5_000 };
        assert_eq!(l.standing(999), Standing::Fresh);
        assert_eq!(l.standing(1_000), Standing::StaleRevalidate);
        assert_eq!(l.standing(1_500), Standing::StaleIfError);
        assert_eq!(l.standing(6_000), Standing::Expired);
        assert!(l.usable_on_error(5_999) && !l.usable_on_error(6_000));
    }

    #[test]
    fn jitter_only_shortens_and_stays_in_range() {
        assert_eq!(jittered_ms(10_000, 0.1, 0.0), 10_000);
        assert_eq!(jittered_ms(10_000, 0.1, 0.5), 9_500);
        assert!(jittered_ms(10_000, 0.1, 0.999) >= 9_000);
    }

    #[test]
    fn lifetimes_at_the_edge_of_the_type_saturate_instead_of_wrapping() {
        let d = Directives::parse(["max-age=18446744073709551615, stale-while-revalidate=18446744073709551615"]);
        assert_eq!(d.ttl(), Some(u64::MAX));
        let forever = Lifetime { fresh_ms: u64::MAX - 5, stale_while_revalidate_ms: u64::MAX, stale_if_error_ms: 10 };
        assert_eq!(forever.standing(u64::MAX - 6), Standing::Fresh);
        assert_eq!(forever.standing(u64::MAX - 1), Standing::StaleRevalidate);
        assert!(forever.usable_on_error(u64::MAX - 1));
    }
}
