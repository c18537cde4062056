//! Did users get in in the order they came? Two measures over (arrival, admission) pairs: the number of
//! inversions (pairs where the one who came first got in strictly later), which a FIFO room should keep near
//! zero, and Kendall's tau-b, which scales that to -1..1 and so compares runs of different sizes.
//!
//! Both are computed in O(n log n) (Knight's algorithm), so a run with a million admitted users is scored in
//! well under a second.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fairness {
    /// Users with both an arrival and an admission.
    pub users: u64,
    /// Pairs of them: n (n - 1) / 2.
    pub pairs: u64,
    /// Pairs where one arrived strictly earlier and was admitted strictly later.
    pub inversions: u64,
    /// Kendall's tau-b between arrival and admission order: 1 is perfect order, 0 no relation, -1 reversed.
    /// `None` with fewer than two users, or when every arrival (or admission) is tied.
    pub kendall_tau: Option<f64>,
}

/// Scores `(arrival, admission)` pairs, in any order. Ties count neither as inversions nor as agreements.
pub fn fairness(pairs: &[(f64, f64)]) -> Fairness {
    let n = pairs.len() as u64;
    let total = n * n.saturating_sub(1) / 2;
    let mut sorted: Vec<(f64, f64)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let tied_x = tied_pairs(sorted.iter().map(|p| p.0));
    let tied_xy = tied_pairs_by(&sorted, |a, b| a.0 == b.0 && a.1 == b.1);
    let mut ys: Vec<f64> = sorted.iter().map(|p| p.1).collect();
    let mut buffer = vec![0.0; ys.len()];
    // Sorted by (x, y), every strict y-inversion is an x-before, y-after pair: exactly the inversions.
    let inversions = merge_count(&mut ys, &mut buffer);
    let tied_y = tied_pairs(ys.iter().copied());
    let denominator = ((total - tied_x) as f64 * (total - tied_y) as f64).sqrt();
    let kendall_tau = (denominator > 0.0).then(|| {
        let concordant_minus_discordant =
            total as f64 - tied_x as f64 - tied_y as f64 + tied_xy as f64 - 2.0 * inversions as f64;
        concordant_minus_discordant / denominator
    });
    Fairness { users: n, pairs: total, inversions, kendall_tau }
}

/// Pairs of equal neighbours in a sorted sequence.
fn tied_pairs(sorted: impl Iterator<Item = f64>) -> u64 {
    let mut total = 0u64;
    let mut run = 0u64;
    let mut last = None;
    for v in sorted {
        if last == Some(v) {
            run += 1;
        } else {
            total += run * run.saturating_sub(1) / 2;
            run = 1;
        }
        last = Some(v);
    }
    total + run * run.saturating_sub(1) / 2
}

fn tied_pairs_by<T>(sorted: &[T], same: impl Fn(&T, &T) -> bool) -> u64 {
    let mut total = 0u64;
    let mut run = 1u64;
    for w in sorted.windows(2) {
        if same(&w[0], &w[1]) {
            run += 1;
        } else {
            total += run * (run - 1) / 2;
            run = 1;
        }
    }
    if sorted.is_empty() { 0 } else { total + run * (run - 1) / 2 }
}

/// Merge sort that counts the pairs it finds strictly out of order.
fn merge_count(v: &mut [f64], buffer: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = {
        let (left, right) = v.split_at_mut(mid);
        let (bl, br) = buffer.split_at_mut(mid);
        merge_count(left, bl) + merge_count(right, br)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            // Everything left in the left half is above v[j].
            count += (mid - i) as u64;
            buffer[k] = v[j];
            j += 1;
        } else {
            buffer[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buffer[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buffer[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buffer[..n]);
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, pair by pair.
    fn naive(pairs: &[(f64, f64)]) -> (u64, Option<f64>) {
        let (mut conc, mut disc, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        let mut inversions = 0;
        for i in 0..pairs.len() {
            for j in i + 1..pairs.len() {
                let dx = pairs[i].0.partial_cmp(&pairs[j].0).unwrap();
                let dy = pairs[i].1.partial_cmp(&pairs[j].1).unwrap();
                use std::cmp::Ordering::Equal;
                match (dx, dy) {
                    (Equal, Equal) => {}
                    (Equal, _) => tx += 1,
                    (_, Equal) => ty += 1,
                    (a, b) if a == b => conc += 1,
                    _ => {
                        disc += 1;
                        inversions += 1;
                    }
                }
            }
        }
        let d = (((conc + disc + tx) * (conc + disc + ty)) as f64).sqrt();
        (inversions, (d > 0.0).then(|| (conc - disc) as f64 / d))
    }

    #[test]
    fn perfect_order_reversed_order_and_one_swap() {
        let ordered: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64 * 2.0)).collect();
        let f = fairness(&ordered);
        assert_eq!((f.users, f.pairs, f.inversions, f.kendall_tau), (10, 45, 0, Some(1.0)));
        let reversed: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, -(i as f64))).collect();
        let f = fairness(&reversed);
        assert_eq!((f.inversions, f.kendall_tau), (45, Some(-1.0)));
        // Swapping two neighbours is one inversion: tau = (45 - 2) / 45.
        let mut swapped = ordered.clone();
        swapped.swap(3, 4);
        swapped[3].0 = 3.0;
        swapped[4].0 = 4.0;
        let f = fairness(&swapped);
        assert_eq!(f.inversions, 1);
        assert!((f.kendall_tau.unwrap() - 43.0 / 45.0).abs() < 1e-12);
    }

    #[test]
    fn ties_are_neither_order_nor_disorder() {
        // Everyone arrived in the same instant (a burst): no pair is inverted and tau is undefined.
        let burst = [(0.0, 3.0), (0.0, 1.0), (0.0, 2.0)];
        let f = fairness(&burst);
        assert_eq!((f.inversions, f.kendall_tau), (0, None));
        assert_eq!(fairness(&[]).pairs, 0);
        assert_eq!(fairness(&[(1.0, 1.0)]).kendall_tau, None);
    }

    proptest! {
        #[test]
        fn matches_the_pairwise_definition(v in prop::collection::vec((0u8..20, 0u8..20), 0..80)) {
            let pairs: Vec<(f64, f64)> = v.iter().map(|&(a, b)| (f64::from(a), f64::from(b))).collect();
            let f = fairness(&pairs);
            let (inversions, tau) = naive(&pairs);
            prop_assert_eq!(f.inversions, inversions);
            match (f.kendall_tau, tau) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-9, "{a} vs {b}"),
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }
}
