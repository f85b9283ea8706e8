//! `pclab`: train and benchmark deep residual predictive coding networks on MNIST from the terminal.
//!
//! The same session code as the browser app, on the CPU (all cores) or — where built — the GPU.

use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use pclab::data::Mnist;
use pclab::session::Backend;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pclab",
    version,
    about = "Deep residual predictive coding networks (standard PC, μPC, backprop) on MNIST"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one or more rules in lockstep on MNIST and report test accuracy.
    Train(train::TrainArgs),
    /// Time whole training iterations (median over repetitions after a warm-up).
    Bench(bench::BenchArgs),
    /// κ, λ_min and λ_max of the inference landscape's Hessian, at initialisation or after training.
    Hessian(hessian::HessianArgs),
    /// κ at initialisation across widths, depths, seeds and parameterisations (float64).
    SweepKappa(hessian::SweepArgs),
    /// PC's weight gradients against backprop's at equilibrium, across widths and depths (float64).
    SweepAlignment(alignment::SweepAlignmentArgs),
    /// Learning-rate transfer: the minimum training loss over a grid of (η_w, η_z), at several depths or widths.
    SweepLr(sweep_lr::SweepLrArgs),
    /// The paper's experiments (fig1, lr-depth, lr-width): a resumable run list, sharded for job arrays.
    Reproduce(reproduce::ReproduceArgs),
    /// Merge the finished runs of `reproduce` (any number of shard folders) into report.md and figures.
    Report(reproduce::ReportArgs),
}

#[path = "pclab/alignment.rs"]
mod alignment;
#[path = "pclab/bench.rs"]
mod bench;
#[path = "pclab/hessian.rs"]
mod hessian;
#[path = "pclab/net.rs"]
mod net;
#[path = "pclab/reproduce.rs"]
mod reproduce;
#[path = "pclab/sweep_lr.rs"]
mod sweep_lr;
#[path = "pclab/train.rs"]
mod train;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::train(a),
        Command::Bench(a) => bench::bench(a),
        Command::Hessian(a) => hessian::hessian(a),
        Command::SweepKappa(a) => hessian::sweep_kappa(a),
        Command::SweepLr(a) => sweep_lr::sweep_lr(a),
        Command::SweepAlignment(a) => alignment::sweep_alignment(a),
        Command::Reproduce(a) => reproduce::reproduce(a),
        Command::Report(a) => reproduce::report(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

const EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../www/data/mnist/train-images-idx3-ubyte.gz"),
    include_bytes!("../../www/data/mnist/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../www/data/mnist/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../www/data/mnist/t10k-labels-idx1-ubyte.gz"),
];

pub(crate) fn load_data(dir: &Option<PathBuf>) -> Result<Mnist, String> {
    match dir {
        Some(d) => Mnist::load_dir(d),
        None => Mnist::from_gz(EMBEDDED),
    }
    .map_err(|e| e.to_string())
}

/// A line above the progress bar, or plainly when there is no terminal to draw one on.
pub(crate) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Says on stderr when a GPU run is on a software adapter (lavapipe, SwiftShader, WARP).
pub(crate) fn warn_if_software(backend: &Backend) {
    if let Some(m) = backend.gpu() {
        if m.context().is_software() {
            eprintln!(
                "warning: {} is a software adapter (a CPU): GPU timings here say nothing about a GPU",
                m.context().describe()
            );
        }
    }
}
