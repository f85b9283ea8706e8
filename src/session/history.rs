//! Bounded series for long runs: when full, every other point is dropped and the stride doubles,
//! so a series keeps at most `cap` evenly spaced points of any length of training.

use serde::{Deserialize, Serialize};

/// `(iteration, value)` points, decimated to stay within a capacity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    cap: usize,
    stride: usize,
    offered: usize,
    points: Vec<(usize, f64)>,
}

impl Series {
    /// An empty series keeping at most `cap` (≥ 2) points.
    pub fn new(cap: usize) -> Self {
        Series { cap: cap.max(2), stride: 1, offered: 0, points: Vec::new() }
    }

    /// Offers a point; it is kept when it falls on the current stride.
    pub fn push(&mut self, iteration: usize, value: f64) {
        if self.offered % self.stride == 0 {
            self.points.push((iteration, value));
            if self.points.len() > self.cap {
                let kept: Vec<_> = self.points.iter().copied().step_by(2).collect();
                self.points = kept;
                self.stride *= 2;
            }
        }
        self.offered += 1;
    }

    /// The kept points, oldest first.
    pub fn points(&self) -> &[(usize, f64)] {
        &self.points
    }

    /// The most recent kept point.
    pub fn last(&self) -> Option<(usize, f64)> {
        self.points.last().copied()
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
}
