//! Bounded series for long runs: when full, every other point is dropped and the stride doubles,
//! so a series keeps at most `cap` evenly spaced points of any length of training.

use serde::{Deserialize, Serialize};

/// `(iteration, value)` points, decimated to stay within a capacity. A value is a number by
/// default, or a whole per-layer profile (`Series<Vec<f64>>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series<V = f64> {
    cap: usize,
    stride: usize,
    offered: usize,
    points: Vec<(usize, V)>,
}

impl<V: Clone> Series<V> {
    /// An empty series keeping at most `cap` (≥ 2) points.
    pub fn new(cap: usize) -> Self {
        Series { cap: cap.max(2), stride: 1, offered: 0, points: Vec::new() }
    }

    /// Offers a point; it is kept when it falls on the current stride.
    pub fn push(&mut self, iteration: usize, value: V) {
        if self.offered % self.stride == 0 {
            self.points.push((iteration, value));
            if self.points.len() > self.cap {
                let kept: Vec<_> = self.points.iter().step_by(2).cloned().collect();
                self.points = kept;
                self.stride *= 2;
            }
        }
        self.offered += 1;
    }

    /// The kept points, oldest first.
    pub fn points(&self) -> &[(usize, V)] {
        &self.points
    }

    /// Bytes allocated for the points themselves (the vector's capacity, not its length);
    /// values that own heap memory add theirs on top (see the history bound test).
    pub fn allocated_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<(usize, V)>()
    }

    /// The most recent kept point.
    pub fn last(&self) -> Option<&(usize, V)> {
        self.points.last()
    }

    /// Forgets the points after `iteration` (a run resumed from a checkpoint); later points
    /// continue at the current stride.
    pub fn truncate_after(&mut self, iteration: usize) {
        self.points.retain(|p| p.0 <= iteration);
        self.offered = self.points.len() * self.stride;
    }

    /// Forgets every point.
    pub fn clear(&mut self) {
        *self = Series::new(self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_stays_bounded_and_evenly_spaced() {
        let mut s = Series::new(8);
        for i in 0..1000 {
            s.push(i, i as f64);
        }
        assert!(s.points().len() <= 8);
        let gaps: Vec<usize> = s.points().windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.iter().all(|&g| g == gaps[0]), "{gaps:?}");
        assert_eq!(s.points()[0], (0, 0.0));
    }

    #[test]
    fn profile_series_decimate_like_numbers() {
        let mut s: Series<Vec<f64>> = Series::new(4);
        for i in 1..=9 {
            s.push(i, vec![i as f64; 3]);
        }
        let its: Vec<usize> = s.points().iter().map(|p| p.0).collect();
        assert_eq!(its, vec![1, 5, 9]);
        assert_eq!(s.last().map(|p| p.1.clone()), Some(vec![9.0; 3]));
    }
}
