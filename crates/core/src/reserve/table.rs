//! Claims by id. The engine numbers claims 0, 1, 2…, so they live in a vector indexed by id: a lookup is one
//! memory access and growth moves no hashed entries. An id out of that sequence (only a log written by
//! something else could hold one) goes to a map beside it, so any log still replays.

use super::claimants::FastMap;

#[derive(Debug)]
pub(super) struct Table<T> {
    /// Ids `0..dense.len()`. No id below `dense.len()` is ever in `sparse`.
    dense: Vec<T>,
    sparse: FastMap<u64, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { dense: Vec::new(), sparse: FastMap::default() }
    }
}

impl<T> Table<T> {
    pub fn get(&self, id: u64) -> Option<&T> {
        match usize::try_from(id) {
            Ok(i) if i < self.dense.len() => Some(&self.dense[i]),
            _ => self.sparse.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        match usize::try_from(id) {
            Ok(i) if i < self.dense.len() => Some(&mut self.dense[i]),
            _ => self.sparse.get_mut(&id),
        }
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, id: u64, value: T) {
        match usize::try_from(id) {
            Ok(i) if i < self.dense.len() => self.dense[i] = value,
            Ok(i) if i == self.dense.len() => {
                self.sparse.remove(&id);
                self.dense.push(value);
                // Ids that arrived early join the sequence once it reaches them.
                while !self.sparse.is_empty() {
                    match self.sparse.remove(&(self.dense.len() as u64)) {
                        Some(next) => self.dense.push(next),
                        None => break,
                    }
                }
            }
            _ => {
                self.sparse.insert(id, value);
            }
        }
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> + Clone {
        self.dense.iter().chain(self.sparse.values())
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn ids_in_any_order_are_all_found() {
        let mut t = Table::default();
        for id in [3u64, 0, 1, u64::MAX, 2, 5, 1] {
            t.insert(id, id.wrapping_mul(10));
        }
        for id in [0u64, 1, 2, 3, 5, u64::MAX] {
            assert_eq!(t.get(id), Some(&id.wrapping_mul(10)));
        }
        assert_eq!(t.get(4), None);
        assert_eq!(t.dense.len(), 4, "3 joined the sequence once 2 arrived");
        *t.get_mut(5).expect("present") = 7;
        let mut all: Vec<u64> = t.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, [0, 7, 10, 20, 30, u64::MAX.wrapping_mul(10)]);
    }
}
