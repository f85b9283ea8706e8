//! MNIST (docs/maths.md §7): gzip IDX parsing with typed errors, normalisation, seeded epoch shuffles and
//! drop-last batches, and the test set.
//!
//! Pixels are kept as bytes and normalised per batch — `(p/255 − 0.1307)/0.3081`, flattened to 784 —
//! so the whole training set costs 47 MB rather than 188 MB of floats (it also lives in the browser).

pub mod evaluation;

use crate::pcn::network::seeded_rng;
use crate::pcn::{Mat, Real};
pub use evaluation::{digit_sample, guess, Evaluation};
use flate2::read::GzDecoder;
use rand::seq::SliceRandom;
use std::io::Read;
use thiserror::Error;

/// MNIST's mean pixel (after /255).
pub const MEAN: f64 = 0.1307;
/// MNIST's pixel standard deviation (after /255).
pub const STD: f64 = 0.3081;
/// Pixels per image.
pub const PIXELS: usize = 784;
/// Classes.
pub const CLASSES: usize = 10;

/// The four files, as named in `www/data/mnist/`.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// What is wrong with a data file.
#[derive(Debug, Error, PartialEq)]
pub enum DataProblem {
    /// Not a gzip stream, or a corrupt one.
    #[error("not a valid gzip file ({0})")]
    NotGzip(String),
    /// The IDX magic number is not the expected one.
    #[error("wrong IDX magic number {found:#010x}, expected {expected:#010x}")]
    WrongMagic {
        /// Found.
        found: u32,
        /// Expected.
        expected: u32,
    },
    /// Fewer bytes than the header promises.
    #[error("truncated: the header promises {expected} bytes of data, the file has {found}")]
    Truncated {
        /// Promised.
        expected: usize,
        /// Present.
        found: usize,
    },
    /// Images that are not 28×28.
    #[error("images are {rows}x{cols}, expected 28x28")]
    WrongShape {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A label outside 0…9.
    #[error("label {label} at index {index} is not a digit 0-9")]
    BadLabel {
        /// Position.
        index: usize,
        /// Value.
        label: u8,
    },
    /// Image and label files of different lengths.
    #[error("{images} images but {labels} labels")]
    CountMismatch {
        /// Images.
        images: usize,
        /// Labels.
        labels: usize,
    },
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(String),
}

/// A data file and what is wrong with it.
#[derive(Debug, Error, PartialEq)]
#[error("MNIST file {file}: {problem}")]
pub struct DataError {
    /// The file's name.
    pub file: String,
    /// The problem.
    pub problem: DataProblem,
}

fn err(file: &str, problem: DataProblem) -> DataError {
    DataError { file: file.to_string(), problem }
}

/// Decompresses one gzip file (`file` names it in errors).
pub fn gunzip(file: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut g = Gunzip::new(file, bytes)?;
    while !g.step(usize::MAX / 2)? {}
    Ok(g.finish())
}

/// A gzip file decompressed a slice at a time: the page does one slice per task, so that
/// decompressing MNIST never holds its thread for long.
pub struct Gunzip<'a> {
    file: String,
    decoder: GzDecoder<&'a [u8]>,
    out: Vec<u8>,
}

impl<'a> Gunzip<'a> {
    /// Starts on `bytes` (`file` names it in errors); an error unless they begin like gzip.
    pub fn new(file: &str, bytes: &'a [u8]) -> Result<Self, DataError> {
        if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
            return Err(err(file, DataProblem::NotGzip("missing the gzip signature 1f 8b".into())));
        }
        // The trailer's last four bytes are the size (mod 2³²) decompressed: reserve it once
        // rather than grow (and copy) the output as it comes.
        let size = bytes
            .len()
            .checked_sub(4)
            .map_or(0, |at| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize);
        let out = Vec::with_capacity(size.min(1 << 30));
        Ok(Gunzip { file: file.into(), decoder: GzDecoder::new(bytes), out })
    }

    /// Decompresses up to `max` more bytes; `Ok(true)` once the whole file is out.
    pub fn step(&mut self, max: usize) -> Result<bool, DataError> {
        let goal = self.out.len().saturating_add(max);
        let mut buf = [0u8; 64 * 1024];
        while self.out.len() < goal {
            let want = buf.len().min(goal - self.out.len());
            match self.decoder.read(&mut buf[..want]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(err(&self.file, DataProblem::NotGzip(e.to_string()))),
            }
        }
        Ok(false)
    }

    /// The bytes decompressed so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Nothing decompressed yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The decompressed bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Parses an IDX file (after decompression): checks the magic, returns `(dims, payload)`.
fn parse_idx<'a>(file: &str, raw: &'a [u8], magic: u32, ndims: usize) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let header = 4 + 4 * ndims;
    if raw.len() < 4 {
        return Err(err(file, DataProblem::Truncated { expected: header, found: raw.len() }));
    }
    let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    let found = be(0);
    if found != magic {
        return Err(err(file, DataProblem::WrongMagic { found, expected: magic }));
    }
    if raw.len() < header {
        return Err(err(file, DataProblem::Truncated { expected: header, found: raw.len() }));
    }
    let dims: Vec<usize> = (0..ndims).map(|d| be(4 + 4 * d) as usize).collect();
    let size: usize = dims.iter().product();
    let payload = &raw[header..];
    if payload.len() < size {
        return Err(err(file, DataProblem::Truncated { expected: size, found: payload.len() }));
    }
    Ok((dims, &payload[..size]))
}

/// One split of MNIST: images as bytes, labels as digits.
#[derive(Clone, Debug)]
pub struct Split {
    /// `len × 784` pixel bytes.
    pub pixels: Vec<u8>,
    /// `len` labels in 0…9.
    pub labels: Vec<u8>,
}

impl Split {
    /// Parses a pair of gzip IDX files (`names` are used in errors).
    pub fn from_gz(names: (&str, &str), images_gz: &[u8], labels_gz: &[u8]) -> Result<Self, DataError> {
        Self::from_idx(names, gunzip(names.0, images_gz)?, gunzip(names.1, labels_gz)?)
    }

    /// Parses a pair of IDX files already decompressed, keeping their buffers: the header is cut
    /// off in place, so the 47 MB of training pixels are never copied into a second allocation
    /// (in the page that copy, with the memory growth it needs, was one long task).
    pub fn from_idx(names: (&str, &str), mut raw: Vec<u8>, mut raw_labels: Vec<u8>) -> Result<Self, DataError> {
        let (dims, size) = {
            let (dims, pixels) = parse_idx(names.0, &raw, 0x0000_0803, 3)?;
            (dims, pixels.len())
        };
        if dims[1] != 28 || dims[2] != 28 {
            return Err(err(names.0, DataProblem::WrongShape { rows: dims[1], cols: dims[2] }));
        }
        let (ldims, count) = {
            let (ldims, labels) = parse_idx(names.1, &raw_labels, 0x0000_0801, 1)?;
            (ldims, labels.len())
        };
        if ldims[0] != dims[0] {
            return Err(err(names.1, DataProblem::CountMismatch { images: dims[0], labels: ldims[0] }));
        }
        let strip = |v: &mut Vec<u8>, header: usize, len: usize| {
            v.truncate(header + len);
            v.drain(..header);
        };
        strip(&mut raw, 16, size);
        strip(&mut raw_labels, 8, count);
        if let Some((index, &label)) = raw_labels.iter().enumerate().find(|(_, &l)| l as usize >= CLASSES) {
            return Err(err(names.1, DataProblem::BadLabel { index, label }));
        }
        Ok(Split { pixels: raw, labels: raw_labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Normalised inputs `(k, 784)` and one-hot targets `(k, 10)` for the given image indices.
    pub fn batch<T: Real>(&self, indices: &[usize]) -> (Mat<T>, Mat<T>) {
        let mut x = Mat::zeros(indices.len(), PIXELS);
        let mut y = Mat::zeros(indices.len(), CLASSES);
        let lut: Vec<T> = (0..256).map(|p| T::of((p as f64 / 255.0 - MEAN) / STD)).collect();
        for (r, &i) in indices.iter().enumerate() {
            let src = &self.pixels[i * PIXELS..(i + 1) * PIXELS];
            for (d, &p) in x.data[r * PIXELS..(r + 1) * PIXELS].iter_mut().zip(src) {
                *d = lut[p as usize];
            }
            y.data[r * CLASSES + self.labels[i] as usize] = T::one();
        }
        (x, y)
    }

    /// Inputs and targets of images `start .. start+k`.
    pub fn range<T: Real>(&self, start: usize, k: usize) -> (Mat<T>, Mat<T>) {
        let idx: Vec<usize> = (start..(start + k).min(self.len())).collect();
        self.batch(&idx)
    }
}

/// MNIST's training and test splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60 000 training images.
    pub train: Split,
    /// 10 000 test images.
    pub test: Split,
}

impl Mnist {
    /// Parses the four gzip files, given in the order of [`FILES`].
    pub fn from_gz(files: [&[u8]; 4]) -> Result<Self, DataError> {
        Ok(Mnist {
            train: Split::from_gz((FILES[0], FILES[1]), files[0], files[1])?,
            test: Split::from_gz((FILES[2], FILES[3]), files[2], files[3])?,
        })
    }

    /// Reads the four files from a directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, DataError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| err(&path.display().to_string(), DataProblem::Io(e.to_string())))
        };
        let bytes = [read(FILES[0])?, read(FILES[1])?, read(FILES[2])?, read(FILES[3])?];
        Self::from_gz([&bytes[0], &bytes[1], &bytes[2], &bytes[3]])
    }

    /// All test images, normalised, one per row.
    pub fn test_inputs(&self) -> Mat<f32> {
        self.test.range::<f32>(0, self.test.len()).0
    }
}

/// Test accuracy (docs/maths.md §7): percent of rows of `y_hat` whose largest output is the label
/// (a NaN row counts as wrong).
pub fn accuracy(y_hat: &Mat<f32>, labels: &[u8]) -> f64 {
    let correct = labels.iter().enumerate().filter(|&(i, &label)| guess(y_hat.row(i)) == Some(label as usize)).count();
    100.0 * correct as f64 / labels.len().max(1) as f64
}

/// Seeded epoch shuffles, cut into drop-last batches of `B`.
#[derive(Clone, Debug)]
pub struct Batcher {
    seed: u64,
    batch: usize,
    len: usize,
    epoch: usize,
    pos: usize,
    order: Vec<usize>,
}

impl Batcher {
    /// Batches of `batch` images from a split of `len` images, the order seeded by `seed`.
    pub fn new(len: usize, batch: usize, seed: u64) -> Self {
        let mut b = Batcher { seed, batch, len, epoch: 0, pos: 0, order: Vec::new() };
        b.shuffle();
        b
    }

    fn shuffle(&mut self) {
        self.order = (0..self.len).collect();
        // Stream 1 + epoch: distinct from the weight-init stream and from every other epoch.
        self.order.shuffle(&mut seeded_rng(self.seed, 1 + self.epoch as u64));
    }

    /// Batches per epoch (the last partial batch is dropped).
    pub fn per_epoch(&self) -> usize {
        self.len / self.batch.max(1)
    }

    /// The epoch the next batch comes from (from 0).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Indices of the next batch.
    pub fn next_indices(&mut self) -> &[usize] {
        if self.pos + self.batch > self.len {
            self.epoch += 1;
            self.pos = 0;
            self.shuffle();
        }
        let s = &self.order[self.pos..self.pos + self.batch];
        self.pos += self.batch;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(payload);
        v
    }

    fn parse(images: Vec<u8>, labels: Vec<u8>) -> Result<Split, DataError> {
        Split::from_gz(("img.gz", "lab.gz"), &images, &labels)
    }

    #[test]
    fn gzip_decompressed_in_slices_equals_it_decompressed_at_once() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
        let z = gz(&payload);
        let mut g = Gunzip::new("a.gz", &z).unwrap();
        let mut steps = 0;
        while !g.step(10_000).unwrap() {
            steps += 1;
            assert!(g.len() <= 10_000 * steps, "a step gave more than asked");
        }
        assert!(steps >= 19, "{steps} steps");
        assert_eq!(g.finish(), payload);
        assert_eq!(gunzip("a.gz", &z).unwrap(), payload);
        // A cut-off file is an error, not a short result.
        let mut cut = Gunzip::new("a.gz", &z[..z.len() / 2]).unwrap();
        let e = loop {
            match cut.step(10_000) {
                Ok(false) => continue,
                Ok(true) => panic!("half a gzip file decompressed without an error"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(e.contains("a.gz"), "{e}");
    }

    #[test]
    fn parses_a_small_valid_pair() {
        let s = parse(gz(&idx(2051, &[2, 28, 28], &[7; 2 * 784])), gz(&idx(2049, &[2], &[3, 9]))).unwrap();
        assert_eq!(s.len(), 2);
        let (x, y) = s.batch::<f32>(&[1]);
        assert!((x.data[0] as f64 - (7.0 / 255.0 - MEAN) / STD).abs() < 1e-6);
        assert_eq!(y.data, [0., 0., 0., 0., 0., 0., 0., 0., 0., 1.]);
    }

    #[test]
    fn broken_files_give_typed_errors_naming_the_file() {
        let labels = gz(&idx(2049, &[2], &[3, 9]));
        let e = parse(idx(2051, &[2, 28, 28], &[0; 1568]), labels.clone()).unwrap_err();
        assert_eq!(e.file, "img.gz");
        assert!(matches!(e.problem, DataProblem::NotGzip(_)), "{e}");

        let e = parse(gz(&idx(2049, &[2, 28, 28], &[0; 1568])), labels.clone()).unwrap_err();
        assert_eq!(e.problem, DataProblem::WrongMagic { found: 2049, expected: 2051 });
        assert!(e.to_string().contains("img.gz") && e.to_string().contains("magic"), "{e}");

        let e = parse(gz(&idx(2051, &[2, 28, 28], &[0; 1000])), labels.clone()).unwrap_err();
        assert_eq!(e.problem, DataProblem::Truncated { expected: 1568, found: 1000 });

        let e = parse(gz(&idx(2051, &[2, 28, 28], &[0; 1568])), gz(&idx(2049, &[2], &[3, 12]))).unwrap_err();
        assert_eq!((e.file.as_str(), e.problem), ("lab.gz", DataProblem::BadLabel { index: 1, label: 12 }));

        let e = parse(gz(&idx(2051, &[2, 28, 28], &[0; 1568])), gz(&idx(2049, &[3], &[1, 2, 3]))).unwrap_err();
        assert_eq!(e.problem, DataProblem::CountMismatch { images: 2, labels: 3 });

        // A gzip stream cut short.
        let full = gz(&idx(2051, &[2, 28, 28], &[5; 1568]));
        let e = parse(full[..full.len() / 2].to_vec(), labels).unwrap_err();
        assert!(matches!(e.problem, DataProblem::NotGzip(_)), "{e}");
    }

    #[test]
    fn batcher_is_seeded_shuffles_each_epoch_and_drops_the_last_partial_batch() {
        let mut a = Batcher::new(10, 3, 5);
        let mut b = Batcher::new(10, 3, 5);
        let epoch0: Vec<Vec<usize>> = (0..3).map(|_| a.next_indices().to_vec()).collect();
        for e in &epoch0 {
            assert_eq!(e, b.next_indices());
        }
        let mut seen: Vec<usize> = epoch0.concat();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "one epoch: 3 batches of distinct images");
        assert_eq!(a.epoch(), 0);
        let next = a.next_indices().to_vec();
        assert_eq!(a.epoch(), 1);
        assert_ne!(epoch0[0], next, "a new epoch reshuffles");
        assert_ne!(Batcher::new(10, 3, 6).next_indices(), &epoch0[0][..]);
    }
}
