//! Admitted sessions, for the active-user cap. A pass is verified without this table; the table only counts
//! who holds one, so a freed session can admit the next client.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Sessions {
    /// Session number → expiry in Unix seconds.
    expiry: HashMap<u64, u32>,
    next: u64,
}

impl Sessions {
    /// Numbers start at a random offset so that passes issued before a restart, which stay valid, do not
    /// collide with sessions opened after it.
    pub fn starting_at(first: u64) -> Self {
        Self { expiry: HashMap::new(), next: first }
    }

    pub fn open(&mut self, expires: u32) -> u64 {
        let id = self.next;
        self.next += 1;
        self.expiry.insert(id, expires);
        id
    }

    /// Records a renewed expiry. A session this table does not know (issued before a restart, or by another
    /// node) is counted from now on: its pass is valid, so its holder is active.
    pub fn renew(&mut self, id: u64, expires: u32) {
        self.expiry.insert(id, expires);
        self.next = self.next.max(id + 1);
    }

    pub fn end(&mut self, id: u64) -> bool {
        self.expiry.remove(&id).is_some()
    }

    /// Forgets sessions whose pass has expired; returns how many.
    pub fn expire(&mut self, now: u32) -> usize {
        let before = self.expiry.len();
        self.expiry.retain(|_, &mut expires| expires > now);
        before - self.expiry.len()
    }

    pub fn active(&self) -> u64 {
        self.expiry.len() as u64
    }
}
