//! The process's resident memory, for shedding on a memory trigger. Read from the kernel by the ticker
//! (ten times a second), so the request path only loads an atomic.

use std::sync::atomic::{AtomicU64, Ordering};

static RESIDENT: AtomicU64 = AtomicU64::new(0);

/// Bytes resident as of the last refresh; 0 where the kernel does not say (not Linux).
pub fn resident_bytes() -> u64 {
    RESIDENT.load(Ordering::Relaxed)
}

pub fn refresh() {
    let kb = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    if let Some(kb) = kb {
        RESIDENT.store(kb * 1024, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_something_on_linux() {
        super::refresh();
        if cfg!(target_os = "linux") {
            assert!(super::resident_bytes() > 1024 * 1024, "a test process holds more than a megabyte");
        }
    }
}
