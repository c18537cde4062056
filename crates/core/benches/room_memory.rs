//! Bytes held per waiting client with 1,000,000 clients in one room. Target: at most 128.
//!
//!     cargo bench -p spillway-core --bench room_memory
//!
//! Reports the growth of resident memory while the clients join (everything the room keeps, allocator
//! overhead included) next to the room's own account of the bytes it holds, then times joins and status
//! polls in process.

use std::time::Instant;

use spillway_core::room::{Room, Settings, TicketRef};

/// Resident memory of this process, from /proc (Linux).
fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

const CLIENTS: u64 = 1_000_000;

#[allow(clippy::print_stdout)]
fn main() {
    let now = 1_800_000_000_000;
    let settings = Settings { new_users_per_minute: 6_000, queue_grace: 3_600, ..Settings::default() };
    let before = rss_bytes();
    let mut room = Room::new(settings, now, 1);
    let started = Instant::now();
    for _ in 0..CLIENTS {
        room.visit(now, None);
    }
    let join_time = started.elapsed();
    let rss = rss_bytes() - before;
    let held = room.snapshot(now).bytes_held;
    println!("waiting clients: {}", room.waiting());
    println!(
        "resident memory growth: {rss} bytes = {:.1} bytes per waiting client (target <= 128)",
        rss as f64 / CLIENTS as f64
    );
    println!("room's own account: {held} bytes = {:.1} per client", held as f64 / CLIENTS as f64);
    println!("joins: {:.0} per second in process", CLIENTS as f64 / join_time.as_secs_f64());

    let generation = room.generation();
    let polls = 1_000_000u64;
    let started = Instant::now();
    for i in 0..polls {
        let seq = (i * 7919) % CLIENTS;
        room.visit(now + 10, Some(TicketRef { generation, seq }));
    }
    let poll_time = started.elapsed();
    println!(
        "status polls: {:.0} per second in process (positions anywhere in a 1,000,000 line)",
        polls as f64 / poll_time.as_secs_f64()
    );
}
