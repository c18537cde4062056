//! The room on a manual clock: rates over simulated hours, the cap, the order, abandonment, the schedule.

use proptest::prelude::*;

use super::*;

const T0: u64 = 1_800_000_000_000; // Unix ms, 2027-01-15

fn settings(per_minute: u32) -> Settings {
    Settings { new_users_per_minute: per_minute, queue_grace: 30, seed: Some(7), ..Settings::default() }
}

/// A room and the tickets its clients hold.
struct Sim {
    room: Room,
    now: u64,
}

impl Sim {
    fn new(settings: Settings) -> Self {
        Self { room: Room::new(settings, T0, 99), now: T0 }
    }

    fn at(&mut self, ms: u64) {
        assert!(T0 + ms >= self.now);
        self.now = T0 + ms;
        self.room.advance(self.now);
    }

    fn ticket(&self, seq: u64) -> TicketRef {
        TicketRef { generation: self.room.generation(), seq }
    }

    /// A new client; returns its ticket number, or None if it was let in or turned away.
    fn join(&mut self) -> Option<u64> {
        match self.room.visit(self.now, None).outcome {
            Outcome::Hold { ticket, .. } => ticket,
            _ => None,
        }
    }

    fn poll(&mut self, seq: u64) -> Visit {
        let ticket = self.ticket(seq);
        self.room.visit(self.now, Some(ticket))
    }

    fn status(&mut self, seq: u64) -> Status {
        match self.poll(seq).outcome {
            Outcome::Hold { status, .. } => status,
            other => panic!("expected to be held, got {other:?}"),
        }
    }
}

fn admitted(v: &Visit) -> bool {
    matches!(v.outcome, Outcome::Admit { .. })
}

#[test]
fn admission_rate_holds_over_simulated_hours() {
    // 300/min for two hours against a line that never empties; ticking at an uneven 70 ms.
    let mut sim = Sim::new(Settings { queue_grace: 86_400, ..settings(300) });
    for _ in 0..40_000 {
        sim.join();
    }
    let mut minute_start = sim.room.counters.released;
    let mut t = 0;
    for minute in 1..=120u64 {
        while t < minute * 60_000 {
            t += 70;
            sim.at(t.min(minute * 60_000));
        }
        let in_minute = sim.room.counters.released - minute_start;
        minute_start = sim.room.counters.released;
        assert!((297..=303).contains(&in_minute), "minute {minute}: {in_minute} admitted, want 300 ± 1%");
    }
    assert_eq!(sim.room.counters.released, 36_000);
}

#[test]
fn release_is_smooth_not_a_burst_per_minute() {
    let mut sim = Sim::new(Settings { queue_grace: 86_400, ..settings(600) });
    for _ in 0..1_000 {
        sim.join();
    }
    for second in 1..=30 {
        let before = sim.room.counters.released;
        sim.at(second * 1000);
        assert_eq!(sim.room.counters.released - before, 10, "second {second}");
    }
}

#[test]
fn a_freed_session_admits_the_next_client() {
    let mut sim = Sim::new(Settings { total_active_users: Some(2), ..settings(6000) });
    let seqs: Vec<u64> = (0..5).filter_map(|_| sim.join()).collect();
    sim.at(1_000);
    let sessions: Vec<u64> = seqs
        .iter()
        .filter_map(|&s| match sim.poll(s).outcome {
            Outcome::Admit { session, .. } => Some(session),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 2, "the cap is 2");
    assert_eq!(sim.status(seqs[2]).position, Some(1));
    assert!(sim.room.end_session(sim.now, sessions[0], 0));
    assert!(admitted(&sim.poll(seqs[2])));
    assert_eq!(sim.status(seqs[3]).position, Some(1));
}

#[test]
fn sessions_expire_and_free_the_cap() {
    let mut sim = Sim::new(Settings { total_active_users: Some(1), session_duration: 60, ..settings(6000) });
    let a = sim.join().expect("queued");
    let b = sim.join().expect("queued");
    sim.at(1_000);
    assert!(admitted(&sim.poll(a)));
    for s in 2..61 {
        sim.at(s * 1000);
        assert_eq!(sim.status(b).state, State::Waiting);
    }
    sim.at(62_000);
    assert!(admitted(&sim.poll(b)), "a's session expired at 61 s");
}

#[test]
fn renewal_only_after_half_the_life() {
    let mut sim = Sim::new(Settings { session_duration: 100, ..settings(6000) });
    let a = sim.join().expect("queued");
    sim.at(1_000);
    let Outcome::Admit { session, expires } = sim.poll(a).outcome else { panic!("not admitted") };
    assert_eq!(sim.room.renew(sim.now + 10_000, session, expires), Renewal::NotDue);
    let Renewal::Renewed(renewed) = sim.room.renew(sim.now + 60_000, session, expires) else { panic!("renewed") };
    assert_eq!(u64::from(renewed), (sim.now + 60_000) / 1000 + 100);
    sim.room.settings.session_renewal = false;
    assert_eq!(sim.room.renew(sim.now + 90_000, session, expires), Renewal::NotDue);
}

#[test]
fn an_ended_session_is_never_renewed_while_its_pass_could_still_be_valid() {
    let mut sim = Sim::new(Settings { session_duration: 100, ..settings(6000) });
    let a = sim.join().expect("queued");
    sim.at(1_000);
    let Outcome::Admit { session, expires } = sim.poll(a).outcome else { panic!("not admitted") };
    assert!(sim.room.end_session(sim.now, session, expires));
    assert_eq!(sim.room.renew(sim.now + 60_000, session, expires), Renewal::Ended);
    assert_eq!(sim.room.renew(sim.now + 1_000, session, expires), Renewal::Ended, "not even before it is due");
    // Once no pass of it can be valid, the record is dropped (the pass itself has expired by then).
    sim.at(u64::from(expires) * 1000 + 1_000);
    assert!(!sim.room.sessions.is_ended(session));
}

#[test]
fn abandoned_places_are_reclaimed_and_never_stall_the_line() {
    let mut sim = Sim::new(Settings { queue_grace: 30, ..settings(60) });
    sim.room.pause(sim.now);
    let gone = sim.join().expect("queued");
    let stays = sim.join().expect("queued");
    assert_eq!(sim.status(stays).position, Some(2));
    for s in (5..=40).step_by(5) {
        sim.at(s * 1000);
        sim.poll(stays);
    }
    assert_eq!(sim.status(stays).position, Some(1), "the silent client lost its place");
    assert_eq!(sim.room.counters.abandoned, 1);
    assert_eq!(sim.poll(gone).refused, Some(Refusal::Replayed), "its old ticket no longer holds a place");
    sim.room.resume(sim.now);
    sim.at(42_000);
    assert!(admitted(&sim.poll(stays)));
}

#[test]
fn a_no_show_is_refunded() {
    let mut sim = Sim::new(Settings { queue_grace: 10, total_active_users: Some(1), ..settings(60) });
    let first = sim.join().expect("queued");
    let second = sim.join().expect("queued");
    sim.at(1_000);
    // `first` was released; it holds the only slot of the cap until its claim window closes.
    let _ = first;
    for s in (2..=10).step_by(2) {
        sim.at(s * 1000);
        assert!(!admitted(&sim.poll(second)));
    }
    sim.at(12_000);
    assert_eq!(sim.room.counters.no_shows, 1);
    assert!(admitted(&sim.poll(second)), "the refunded admission goes to the next client");
}

#[test]
fn a_client_that_leaves_frees_its_place() {
    let mut sim = Sim::new(settings(60));
    sim.room.pause(sim.now);
    let a = sim.join().expect("queued");
    let b = sim.join().expect("queued");
    assert!(sim.room.leave(sim.now, sim.ticket(a)));
    assert!(!sim.room.leave(sim.now, sim.ticket(a)), "leaving twice does nothing");
    assert_eq!(sim.status(b).position, Some(1));
    assert_eq!(sim.room.counters.left, 1);
}

#[test]
fn the_wait_estimate_never_rises_for_a_steady_line() {
    let mut sim = Sim::new(Settings { queue_grace: 86_400, ..settings(120) });
    let seqs: Vec<u64> = (0..400).filter_map(|_| sim.join()).collect();
    let last = *seqs.last().expect("some");
    let mut previous = u64::MAX;
    for s in 1..150 {
        sim.at(s * 1000);
        let eta = sim.status(last).eta_seconds.expect("fifo has an eta");
        assert!(eta <= previous, "at {s}s the estimate rose from {previous} to {eta}");
        previous = eta;
    }
    assert!(previous < 200 - 140 + 5, "the estimate tracked the line: {previous}");
}

#[test]
fn the_estimate_rises_when_the_rate_really_falls() {
    let mut sim = Sim::new(Settings { queue_grace: 86_400, total_active_users: Some(1_000_000), ..settings(600) });
    let seqs: Vec<u64> = (0..5_000).filter_map(|_| sim.join()).collect();
    let last = *seqs.last().expect("some");
    sim.at(20_000);
    let before = sim.status(last).eta_seconds.expect("eta");
    // The cap starts to bind: admissions drop to nothing while it stays full.
    let cap = sim.room.sessions.active() + sim.room.unclaimed;
    let mut s = sim.room.settings.clone();
    s.total_active_users = Some(u32::try_from(cap).expect("small"));
    sim.room.settings = s;
    for second in 21..=60 {
        sim.at(second * 1000);
    }
    let after = sim.status(last).eta_seconds.expect("eta");
    assert!(after > before, "rate fell to zero but the estimate went {before} -> {after}");
}

#[test]
fn threshold_activation_lets_traffic_through_below_the_rate() {
    let mut sim = Sim::new(Settings { activation: Activation::Threshold, ..settings(600) });
    sim.at(1_000); // one second of credit: 10 admissions
    let mut through = 0;
    for _ in 0..10 {
        if admitted(&sim.room.visit(sim.now, None)) {
            through += 1;
        }
    }
    assert_eq!(through, 10);
    assert!(sim.join().is_some(), "the eleventh in the same second queues");
    sim.at(1_050);
    assert!(sim.join().is_some(), "with someone waiting, newcomers queue behind them");
}

#[test]
fn always_activation_queues_everyone_first() {
    let mut sim = Sim::new(settings(6000));
    sim.at(5_000);
    let a = sim.join().expect("queued even with credit to spare");
    sim.at(5_001);
    assert!(admitted(&sim.poll(a)));
}

#[test]
fn passthrough_and_reject() {
    let mut sim = Sim::new(Settings { queueing: Queueing::Passthrough, ..settings(1) });
    assert_eq!(sim.room.visit(sim.now, None).outcome, Outcome::PassThrough);
    let mut sim = Sim::new(Settings { queueing: Queueing::Reject, ..settings(1) });
    assert!(matches!(
        sim.room.visit(sim.now, None).outcome,
        Outcome::Hold { ticket: None, status: Status { state: State::Closed, .. } }
    ));
}

#[test]
fn a_full_room_turns_newcomers_away() {
    let mut sim = Sim::new(Settings { max_waiting: Some(2), ..settings(1) });
    assert!(sim.join().is_some());
    assert!(sim.join().is_some());
    match sim.room.visit(sim.now, None).outcome {
        Outcome::Hold { ticket: None, status } => assert_eq!(status.state, State::Full),
        other => panic!("{other:?}"),
    }
}

#[test]
fn schedule_closed_then_prequeue_then_lottery_then_fifo() {
    let open = T0 / 1000 + 600;
    let s = Settings {
        opens_at: Some(open),
        prequeue_from: Some(open - 300),
        closes_at: Some(open + 3600),
        queue_grace: 86_400,
        seed: Some(2026),
        ..settings(60)
    };
    let mut sim = Sim::new(s.clone());
    match sim.room.visit(sim.now, None).outcome {
        Outcome::Hold { ticket: None, status } => {
            assert_eq!(status.state, State::Closed);
            assert_eq!(status.opens_in, Some(600));
        }
        other => panic!("{other:?}"),
    }
    sim.at(400_000);
    let early: Vec<u64> = (0..50).filter_map(|_| sim.join()).collect();
    assert_eq!(early.len(), 50);
    let st = sim.status(early[0]);
    assert_eq!((st.state, st.position, st.eta_seconds), (State::Waiting, None, Some(200)));
    sim.at(600_000);
    let late = sim.join().expect("queued");
    let lottery = sim.room.lottery.expect("drawn at opening");
    assert_eq!((lottery.seed, lottery.entrants), (2026, 50));
    // Every early arrival is ahead of the late one, in the order the seed dictates.
    let places = lottery_draw(2026, 50);
    for (arrival, &seq) in early.iter().enumerate() {
        assert_eq!(sim.status(seq).position, Some(u64::from(places[arrival]) + 1), "arrival {arrival}");
    }
    assert_eq!(sim.status(late).position, Some(51));
    sim.room.pause(sim.now);
    sim.at(open * 1000 - T0 + 3600 * 1000);
    assert_eq!(sim.status(late).state, State::Closed);
}

#[test]
fn the_same_seed_draws_the_same_order() {
    let run = || {
        let open = T0 / 1000 + 10;
        let mut sim = Sim::new(Settings { opens_at: Some(open), prequeue_from: Some(T0 / 1000), ..settings(6000) });
        let early: Vec<u64> = (0..200).filter_map(|_| sim.join()).collect();
        sim.room.pause(sim.now);
        sim.at(11_000);
        early.iter().map(|&s| sim.status(s).position).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn reset_refuses_old_tickets_as_stale() {
    let mut sim = Sim::new(settings(60));
    let a = sim.join().expect("queued");
    sim.room.reset(sim.now, 5);
    assert_eq!(sim.room.visit(sim.now, Some(TicketRef { generation: 1, seq: a })).refused, Some(Refusal::Stale));
    assert_eq!(sim.room.waiting(), 1, "the stale ticket's holder got a new place");
}

#[test]
fn waiting_memory_is_compact() {
    let mut sim = Sim::new(settings(60));
    for _ in 0..100_000 {
        sim.join();
    }
    let per_client = sim.room.snapshot(sim.now).bytes_held as f64 / 100_000.0;
    assert!(per_client <= 16.0, "{per_client} bytes per waiting client");
}

#[derive(Debug, Clone)]
enum Op {
    Join,
    Poll(usize),
    End(usize),
    Leave(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Join),
        4 => any::<usize>().prop_map(Op::Poll),
        1 => any::<usize>().prop_map(Op::End),
        1 => any::<usize>().prop_map(Op::Leave),
        3 => (1u64..20_000).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever clients do, the cap holds, and in FIFO mode nobody is released before someone who joined
    /// earlier and is still waiting: zero inversions.
    #[test]
    fn cap_never_exceeded_and_fifo_never_inverted(
        ops in proptest::collection::vec(op(), 1..400),
        cap in 1u32..8,
        per_minute in 1u32..600,
        threshold in any::<bool>(),
    ) {
        let activation = if threshold { Activation::Threshold } else { Activation::Always };
        let mut sim = Sim::new(Settings {
            total_active_users: Some(cap),
            queue_grace: 20,
            session_duration: 30,
            activation,
            ..settings(per_minute)
        });
        let mut tickets: Vec<u64> = Vec::new();
        let mut sessions: Vec<u64> = Vec::new();
        let mut t = 0;
        for op in ops {
            match op {
                Op::Join => match sim.room.visit(sim.now, None).outcome {
                    Outcome::Hold { ticket: Some(seq), .. } => tickets.push(seq),
                    Outcome::Admit { session, .. } => sessions.push(session),
                    _ => {}
                },
                Op::Poll(i) if !tickets.is_empty() => {
                    let seq = tickets[i % tickets.len()];
                    if let Outcome::Admit { session, .. } = sim.poll(seq).outcome {
                        sessions.push(session);
                    }
                }
                Op::End(i) if !sessions.is_empty() => {
                    let s = sessions.swap_remove(i % sessions.len());
                    sim.room.end_session(sim.now, s, 0);
                }
                Op::Leave(i) if !tickets.is_empty() => {
                    let seq = tickets[i % tickets.len()];
                    sim.room.leave(sim.now, sim.ticket(seq));
                }
                Op::Wait(ms) => {
                    t += ms;
                    sim.at(t);
                }
                _ => {}
            }
            let room = &sim.room;
            prop_assert!(room.sessions.active() + room.unclaimed <= u64::from(cap),
                "active {} + unclaimed {} > cap {cap}", room.sessions.active(), room.unclaimed);
            let last_released = room.released.iter().map(|&(rank, _)| rank).max();
            if let (Some(released), Some(first_waiting)) = (last_released, room.queue.first_waiting(0)) {
                prop_assert!(first_waiting > released, "rank {first_waiting} still waits behind released {released}");
            }
        }
    }

    /// Ticking at arbitrary moments does not change how many are admitted over a span: the rate is exact to
    /// within one admission of credit.
    #[test]
    fn rate_is_exact_whatever_the_tick_pattern(
        steps in proptest::collection::vec(1u64..3_000, 10..100),
        per_minute in 1u32..1_000,
    ) {
        let mut sim = Sim::new(Settings { queue_grace: 86_400, ..settings(per_minute) });
        for _ in 0..5_000 {
            sim.join();
        }
        let mut t = 0;
        for step in steps {
            t += step;
            sim.at(t);
        }
        let expected = (t as f64 / 60_000.0 * f64::from(per_minute)).floor() as u64;
        let released = sim.room.counters.released;
        prop_assert!(released == expected || released + 1 == expected,
            "after {t} ms at {per_minute}/min: released {released}, expected {expected}");
    }
}

#[test]
fn random_queueing_is_reproducible_from_the_seed_and_admits_everyone() {
    let run = |seed| {
        let mut sim = Sim::new(Settings { queueing: Queueing::Random, seed: Some(seed), ..settings(600) });
        let seqs: Vec<u64> = (0..100).filter_map(|_| sim.join()).collect();
        let mut order = Vec::new();
        for s in 1..=10u64 {
            sim.at(s * 1000);
            for (i, &seq) in seqs.iter().enumerate() {
                if !order.contains(&i) && admitted(&sim.poll(seq)) {
                    order.push(i);
                }
            }
        }
        (order, sim.status_of_random())
    };
    let (a, status) = run(11);
    assert_eq!(a.len(), 100, "all admitted after 10 s at 10/s");
    assert_eq!(a, run(11).0, "same seed, same order");
    assert_ne!(a, run(12).0, "another seed, another order");
    assert_ne!(a, (0..100).collect::<Vec<_>>(), "not arrival order");
    assert_eq!((status.position, status.eta_seconds), (None, None), "no position where order is random");
}

impl Sim {
    /// A fresh client's status in a random-queueing room.
    fn status_of_random(&mut self) -> Status {
        self.room.pause(self.now);
        let seq = self.join().expect("queued");
        self.status(seq)
    }
}

#[test]
fn every_way_a_session_ends_is_counted() {
    let mut sim = Sim::new(Settings { session_duration: 100, ..settings(6000) });
    let (a, b) = (sim.join().expect("queued"), sim.join().expect("queued"));
    sim.at(1_000);
    let Outcome::Admit { session, expires } = sim.poll(a).outcome else { panic!("a not admitted") };
    assert!(admitted(&sim.poll(b)));
    assert!(sim.room.end_session(sim.now, session, expires), "a leaves with its pass");
    assert!(!sim.room.end_session(sim.now, session, expires), "ending it twice counts once");
    let counters = sim.room.snapshot(sim.now).counters;
    assert_eq!((counters.ended, counters.expired), (1, 0));
    // b's pass runs out: its session expires, and only it (a's was ended, not expired).
    sim.at(u64::from(expires) * 1000 + 1_000);
    let counters = sim.room.snapshot(sim.now).counters;
    assert_eq!((counters.ended, counters.expired), (1, 1));
    assert_eq!(counters.entered, counters.ended + counters.expired, "every session that began has ended once");
}
