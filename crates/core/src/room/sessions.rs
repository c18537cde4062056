//! Admitted sessions, for the active-user cap. A pass is verified without this table; the table only counts
//! who holds one, so a freed session can admit the next client.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Sessions {
    /// Session number → expiry in Unix seconds.
    expiry: HashMap<u64, u32>,
    /// Sessions ended before their pass expired (the client left), until that expiry: their passes are
    /// still validly signed, so renewing one would bring a holder back past the cap.
    ended: HashMap<u64, u32>,
    next: u64,
}

impl Sessions {
    /// Numbers start at a random offset so that passes issued before a restart, which stay valid, do not
    /// collide with sessions opened after it.
    pub fn starting_at(first: u64) -> Self {
        Self { expiry: HashMap::new(), ended: HashMap::new(), next: first }
    }

    pub fn open(&mut self, expires: u32) -> u64 {
        let id = self.next;
        self.next += 1;
        self.expiry.insert(id, expires);
        id
    }

    /// Records a renewed expiry; false for a session that was ended, which stays ended. A session this table
    /// does not know (issued before a restart, or by another node) is counted from now on: its pass is
    /// valid, so its holder is active.
    pub fn renew(&mut self, id: u64, expires: u32) -> bool {
        if self.ended.contains_key(&id) {
            return false;
        }
        self.expiry.insert(id, expires);
        self.next = self.next.max(id.saturating_add(1));
        true
    }

    /// Ends a session whose pass is valid until `pass_expires`; true if it was counted.
    pub fn end(&mut self, id: u64, pass_expires: u32) -> bool {
        let counted = self.expiry.remove(&id);
        let until = counted.unwrap_or(0).max(pass_expires);
        self.ended.insert(id, until);
        counted.is_some()
    }

    pub fn is_ended(&self, id: u64) -> bool {
        self.ended.contains_key(&id)
    }

    /// Forgets sessions whose pass has expired, and ended ones once no pass of theirs can still be valid;
    /// returns how many counted sessions expired.
    pub fn expire(&mut self, now: u32) -> usize {
        let before = self.expiry.len();
        self.expiry.retain(|_, &mut expires| expires > now);
        self.ended.retain(|_, &mut until| until > now);
        before - self.expiry.len()
    }

    pub fn active(&self) -> u64 {
        self.expiry.len() as u64
    }
}
