//! MNIST as shipped in `www/data/mnist/`: checksums, contents, and a real training run.

use pclab::config::{Rule, RuleSettings, RunConfig};
use pclab::data::{Mnist, FILES, MEAN, STD};
use pclab::pcn::Param;
use pclab::session::{Event, Session};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist")
}

#[test]
fn shipped_files_match_their_sha256_sums() {
    let sums = std::fs::read_to_string(dir().join("SHA256SUMS")).expect("www/data/mnist/SHA256SUMS");
    let mut checked = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (want, name) = line.split_once(char::is_whitespace).expect("'<sum>  <file>' lines");
        let name = name.trim().trim_start_matches('*');
        let bytes = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want, "{name}: checksum");
        checked += 1;
    }
    assert_eq!(checked, FILES.len(), "every MNIST file has a checksum");
}

#[test]
fn shipped_files_parse_with_the_documented_statistics() {
    let m = Mnist::load_dir(&dir()).expect("MNIST loads");
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    let mut counts = [0usize; 10];
    m.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let n = m.train.pixels.len() as f64;
    let mean = m.train.pixels.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / n;
    let var = m.train.pixels.iter().map(|&p| (p as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - MEAN).abs() < 1e-4 && (var.sqrt() - STD).abs() < 1e-4, "mean {mean} std {}", var.sqrt());
    // Normalised batches have mean ≈ 0 and std ≈ 1 over many images.
    let (x, y) = m.train.range::<f64>(0, 1000);
    let xm = x.data.iter().sum::<f64>() / x.data.len() as f64;
    assert!(xm.abs() < 0.05, "normalised mean {xm}");
    assert!(y.data.chunks(10).all(|r| r.iter().sum::<f64>() == 1.0), "one-hot targets");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let e = Mnist::load_dir(Path::new("/nonexistent/mnist")).unwrap_err();
    assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
}

/// The paper's small μPC setting (docs/maths.md §9): a float32 JAX implementation of the same maths reaches
/// 91.3 % and 90.9 % on two seeds.
#[test]
fn mupc_h8_reaches_89_percent_in_300_iterations() {
    let data = Arc::new(Mnist::load_dir(&dir()).expect("MNIST loads"));
    let config = RunConfig {
        width: 128,
        depth: 8,
        rules: vec![RuleSettings { rule: Rule::Pc(Param::Mupc), lr: 0.1, eta_z: 0.5 }],
        steps: Some(8),
        batch: 64,
        iterations: 300,
        eval_every: 100,
        seed: 0,
        ..RunConfig::default()
    };
    let mut session = Session::new(config, data).expect("valid config");
    let mut evals = Vec::new();
    while !session.is_finished() {
        for ev in session.step() {
            match ev {
                Event::Eval(e) => evals.push(e.test_accuracy),
                Event::Diverged { iteration, .. } => panic!("diverged at {iteration}"),
                Event::Failed { message, .. } => panic!("{message}"),
                Event::Iteration(_) | Event::Alignment(_) => {}
            }
        }
    }
    println!("μPC H=8 N=128 test accuracy at 100/200/300: {evals:?}");
    assert_eq!(evals.len(), 3);
    assert!(evals[2] >= 89.0, "test accuracy {evals:?}");
}
