//! What a test evaluation measures: accuracy, the confusion matrix of true digit against guess,
//! and the guesses for a fixed sample of test images (the page's strip of digits).

use crate::pcn::network::seeded_rng;
use crate::pcn::Mat;
use serde::{Deserialize, Serialize};

/// Test images in the strip of digits.
pub const DIGIT_SAMPLE: usize = 24;
/// … drawn from the first this many test images (so a GPU reads back the outputs of one chunk).
pub const DIGIT_POOL: usize = 200;

/// The strip's test images: [`DIGIT_SAMPLE`] indices drawn once from the first [`DIGIT_POOL`]
/// (at most `len`), in increasing order, the same on every machine.
pub fn digit_sample(len: usize) -> Vec<usize> {
    let pool = DIGIT_POOL.min(len);
    let mut rng = seeded_rng(2017, 7);
    let mut idx = rand::seq::index::sample(&mut rng, pool, DIGIT_SAMPLE.min(pool)).into_vec();
    idx.sort_unstable();
    idx
}

/// The output a row's prediction is: the first strictly greatest value (`None` when no value
/// beats −∞, a row of NaNs for instance).
pub fn guess(row: &[f32]) -> Option<usize> {
    let (best, _) =
        row.iter().enumerate().fold((None, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (Some(j), v) } else { b });
    best
}

/// One test evaluation of one network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Percent of test images whose guess is their label.
    pub accuracy: f64,
    /// `confusion[label][guess]`: how many images of each digit were guessed as each digit.
    pub confusion: Vec<Vec<u32>>,
    /// Images without a guess (non-finite outputs), by label.
    pub no_guess: Vec<u32>,
    /// The guess for each image of [`digit_sample`] (`None`: no guess).
    pub guesses: Vec<Option<u8>>,
}

impl Evaluation {
    /// From counts in the GPU's layout, `counts[label · (classes + 1) + guess]` with guess
    /// `classes` meaning none, and the sample's guesses.
    pub fn from_counts(counts: &[u32], classes: usize, guesses: Vec<Option<u8>>) -> Self {
        let row = |l: usize| &counts[l * (classes + 1)..(l + 1) * (classes + 1)];
        let confusion: Vec<Vec<u32>> = (0..classes).map(|l| row(l)[..classes].to_vec()).collect();
        let no_guess = (0..classes).map(|l| row(l)[classes]).collect();
        let mut e = Evaluation { accuracy: 0.0, confusion, no_guess, guesses };
        e.accuracy = 100.0 * e.correct() as f64 / e.images().max(1) as f64;
        e
    }

    /// Of the outputs `y_hat` of the test images with these labels.
    pub fn of(y_hat: &Mat<f32>, labels: &[u8]) -> Self {
        let classes = y_hat.cols;
        let mut counts = vec![0u32; classes * (classes + 1)];
        for (i, &label) in labels.iter().enumerate().take(y_hat.rows) {
            let g = guess(y_hat.row(i)).unwrap_or(classes);
            if (label as usize) < classes {
                counts[label as usize * (classes + 1) + g] += 1;
            }
        }
        let guesses = digit_sample(labels.len().min(y_hat.rows))
            .into_iter()
            .map(|i| guess(y_hat.row(i)).map(|g| g as u8))
            .collect();
        Self::from_counts(&counts, classes, guesses)
    }

    /// Images guessed right (the diagonal).
    pub fn correct(&self) -> u64 {
        self.confusion.iter().enumerate().map(|(l, r)| r.get(l).copied().unwrap_or(0) as u64).sum()
    }

    /// Images evaluated: the matrix and those without a guess.
    pub fn images(&self) -> u64 {
        self.confusion.iter().flatten().chain(&self.no_guess).map(|&c| c as u64).sum()
    }

    /// The most frequent wrong guess: `(label, guess, count)`.
    pub fn worst_confusion(&self) -> Option<(usize, usize, u32)> {
        let mut worst = None;
        for (l, row) in self.confusion.iter().enumerate() {
            for (g, &c) in row.iter().enumerate() {
                if l != g && c > 0 && worst.is_none_or(|(_, _, w)| c > w) {
                    worst = Some((l, g, c));
                }
            }
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confusion_matrix_sums_to_the_images_and_its_diagonal_is_the_accuracy() {
        // Three classes, five images: two right, two wrong, one row of NaNs.
        let y_hat = Mat {
            rows: 5,
            cols: 3,
            data: vec![
                0.9,
                0.1,
                0.0, // guess 0, label 0
                0.2,
                0.7,
                0.1, // guess 1, label 2
                0.1,
                0.1,
                0.8, // guess 2, label 2
                f32::NAN,
                f32::NAN,
                f32::NAN, // no guess, label 1
                0.5,
                0.5,
                0.1, // a tie goes to the first: guess 0, label 1
            ],
        };
        let e = Evaluation::of(&y_hat, &[0, 2, 2, 1, 1]);
        assert_eq!(e.confusion, vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 1, 1]]);
        assert_eq!(e.no_guess, vec![0, 1, 0]);
        assert_eq!((e.correct(), e.images()), (2, 5));
        assert_eq!(e.accuracy, 40.0);
        assert_eq!(e.accuracy, super::super::accuracy(&y_hat, &[0, 2, 2, 1, 1]), "the same as accuracy()");
        assert_eq!(e.worst_confusion(), Some((1, 0, 1)));
        assert_eq!(e.guesses.len(), 5, "a pool smaller than the sample: all of it");
        assert_eq!(e.guesses[3], None);
        // A planted defect: a matrix that lost an image no longer sums to the images.
        let mut bad = e.clone();
        bad.confusion[2][2] = 0;
        assert_ne!(bad.images(), 5);
    }

    #[test]
    fn the_digit_sample_is_fixed_sorted_and_within_the_pool() {
        let s = digit_sample(10_000);
        assert_eq!(s.len(), DIGIT_SAMPLE);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[DIGIT_SAMPLE - 1] < DIGIT_POOL, "{s:?}");
        assert_eq!(s, digit_sample(10_000));
    }
}
