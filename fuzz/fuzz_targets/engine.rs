//! The reservation engine driven by fuzzer-chosen inventories and commands.
//!
//! After every step the engine's own invariants hold, a rejected command (or an answer with no events)
//! changes nothing, and at the end the events it produced, applied to a fresh engine, give the same state.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use spillway_core::reserve::{ClaimRequest, Engine, Event, InventorySpec, Stock};

const USERS: [&str; 4] = ["alice", "bob", "carol", ""];
const KEYS: [&str; 4] = ["k1", "k2", "k3", ""];
const MAX_STEPS: usize = 256;

/// A u32 with its edges likely.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Q32 {
    Small(u8),
    Max,
    NearMax(u8),
    Any(u32),
}

impl Q32 {
    fn get(self) -> u32 {
        match self {
            Self::Small(n) => u32::from(n % 8),
            Self::Max => u32::MAX,
            Self::NearMax(n) => u32::MAX - u32::from(n % 4),
            Self::Any(n) => n,
        }
    }
}

/// A u64 with its edges likely.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Q64 {
    Small(u8),
    Max,
    NearMax(u8),
    U32Max,
    Any(u64),
}

impl Q64 {
    fn get(self) -> u64 {
        match self {
            Self::Small(n) => u64::from(n % 16),
            Self::Max => u64::MAX,
            Self::NearMax(n) => u64::MAX - u64::from(n % 4),
            Self::U32Max => u64::from(u32::MAX),
            Self::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum StockIn {
    Counted(Q64),
    /// This many units, `U0`, `U1`…; a repeated name is let through to see that validation refuses it.
    Units { count: u8, repeat: bool },
}

#[derive(Arbitrary, Debug)]
struct InventoryIn {
    stock: StockIn,
    per_user_limit: Option<Q32>,
    hold_ttl_ms: Option<Q64>,
    waitlist: bool,
    opens_at: Option<u16>,
    closes_at: Option<u16>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ClaimRef {
    /// One of the claims made so far (by order).
    Made(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum UnitRef {
    /// A unit of the inventory claimed from, by position.
    Own(u8),
    /// A unit of another inventory, or none at all.
    Foreign(u8),
}

#[derive(Arbitrary, Debug)]
enum Command {
    Claim {
        /// 0..=2: an inventory made at the start; 3: one that does not exist.
        inventory: u8,
        user: u8,
        quantity: Q32,
        units: Vec<UnitRef>,
        hold: Option<bool>,
        key: u8,
    },
    Confirm(ClaimRef),
    Cancel(ClaimRef),
    Expire,
    /// Moves the clock forward by this many ms (at most 49 days a step: the clock is wall time).
    Advance(Q32),
    /// Creates an inventory again: must be refused.
    Recreate(u8),
    /// Forgets finished claims older than this retention (ms).
    Compact(Q32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    inventories: Vec<InventoryIn>,
    start: u32,
    commands: Vec<Command>,
}

fn spec(i: usize, inv: &InventoryIn) -> InventorySpec {
    let stock = match inv.stock {
        StockIn::Counted(n) => Stock::Counted(n.get()),
        StockIn::Units { count, repeat } => {
            let mut units: Vec<String> = (0..count % 12).map(|u| format!("U{u}")).collect();
            if repeat && !units.is_empty() {
                units.push("U0".into());
            }
            Stock::Units(units)
        }
    };
    InventorySpec {
        id: format!("inv{i}"),
        stock,
        per_user_limit: inv.per_user_limit.map(Q32::get),
        hold_ttl_ms: inv.hold_ttl_ms.map(Q64::get),
        waitlist: inv.waitlist,
        opens_at: inv.opens_at.map(u64::from),
        closes_at: inv.closes_at.map(u64::from),
        attributes: Default::default(),
    }
}

fn check(engine: &Engine, step: usize, what: &dyn std::fmt::Debug) {
    if let Err(broken) = engine.check_invariants() {
        panic!("invariant broken after step {step} ({what:?}): {broken}");
    }
}

fuzz_target!(|input: Input| {
    let mut engine = Engine::default();
    let mut log: Vec<Event> = Vec::new();
    let mut specs: Vec<Option<InventorySpec>> = Vec::new();
    for (i, inv) in input.inventories.iter().take(3).enumerate() {
        let spec = spec(i, inv);
        let before = engine.state_hash();
        match engine.create_inventory(spec.clone()) {
            Ok(events) => {
                log.extend(events);
                specs.push(Some(spec));
            }
            Err(_) => {
                assert_eq!(engine.state_hash(), before, "a refused inventory changed the state");
                specs.push(None);
            }
        }
        check(&engine, 0, &specs.last());
    }
    if specs.iter().all(Option::is_none) {
        return;
    }

    let mut now = u64::from(input.start);
    let mut made: Vec<u64> = Vec::new();
    for (step, command) in input.commands.iter().take(MAX_STEPS).enumerate() {
        let step = step + 1;
        let before = engine.state_hash();
        let resolve = |r: ClaimRef| match r {
            ClaimRef::Made(i) if !made.is_empty() => made[usize::from(i) % made.len()],
            ClaimRef::Made(i) => u64::from(i),
            ClaimRef::Raw(id) => id,
        };
        let outcome: Result<Vec<Event>, String> = match command {
            Command::Claim { inventory, user, quantity, units, hold, key } => {
                let index = usize::from(*inventory % 4);
                let own: Vec<String> = match specs.get(index).and_then(Option::as_ref).map(|s| &s.stock) {
                    Some(Stock::Units(names)) => names.clone(),
                    _ => Vec::new(),
                };
                let units = units
                    .iter()
                    .take(16)
                    .map(|u| match *u {
                        UnitRef::Own(n) if !own.is_empty() => own[usize::from(n) % own.len()].clone(),
                        UnitRef::Own(n) | UnitRef::Foreign(n) => format!("U{}", n % 16),
                    })
                    .collect();
                let request = ClaimRequest {
                    inventory: if index < 3 { format!("inv{index}") } else { "nope".into() },
                    user: USERS[usize::from(*user) % USERS.len()].into(),
                    quantity: quantity.get(),
                    units,
                    hold: *hold,
                    idempotency_key: KEYS[usize::from(*key) % KEYS.len()].into(),
                };
                match engine.claim(&request, now) {
                    Ok((reply, events)) => {
                        if reply.replayed {
                            assert!(events.is_empty(), "a replayed claim produced events");
                        } else {
                            made.push(reply.claim);
                        }
                        let claim = engine.get(reply.claim).expect("the claim answered is recorded");
                        assert_eq!(*claim.user, *request.user, "claim recorded for another user");
                        Ok(events)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Command::Confirm(r) => engine.confirm(resolve(*r), now).map_err(|e| e.to_string()),
            Command::Cancel(r) => engine.cancel(resolve(*r), now).map_err(|e| e.to_string()),
            Command::Expire => Ok(engine.expire(now)),
            Command::Compact(retention) => Ok(engine.compact(now, u64::from(retention.get()))),
            Command::Advance(by) => {
                now += u64::from(by.get());
                Ok(Vec::new())
            }
            Command::Recreate(i) => {
                let Some(Some(spec)) = specs.get(usize::from(*i) % specs.len()) else { continue };
                match engine.create_inventory(spec.clone()) {
                    Ok(_) => panic!("inventory {:?} created twice", spec.id),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match outcome {
            Ok(events) if !events.is_empty() => log.extend(events),
            Ok(_) => assert_eq!(engine.state_hash(), before, "step {step} ({command:?}) produced no event but changed the state"),
            Err(e) => assert_eq!(engine.state_hash(), before, "step {step} ({command:?}) was refused ({e}) but changed the state"),
        }
        check(&engine, step, command);
    }

    let mut replayed = Engine::default();
    for event in &log {
        replayed.apply(event);
    }
    if let Err(broken) = replayed.check_invariants() {
        panic!("invariant broken in the replayed engine: {broken}");
    }
    assert_eq!(replayed.state_hash(), engine.state_hash(), "the log does not replay to the same state");
    assert_eq!(replayed.kept(), engine.kept(), "the log does not forget what the engine forgot");
});
