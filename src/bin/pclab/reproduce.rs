//! `pclab reproduce` and `pclab report`: the paper's experiments as sharded, resumable run lists
//! (the work is in `pclab::reproduce`; this is the command line).

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pclab::config::BackendKind;
use pclab::reproduce::exec::{run_shard, Note};
use pclab::reproduce::{plan, report, Experiment, Options, Shard};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct ReproduceArgs {
    /// fig1 (accuracy against depth: standard PC, μPC, BP Depth-μP), lr-depth (the 4 × 11
    /// (η_w, η_z) grid at several depths) or lr-width (the grid at one depth across widths)
    experiment: String,
    /// Width N of fig1 and lr-depth [default: 512, the paper's]
    #[arg(long)]
    width: Option<usize>,
    /// Depths H, comma-separated (lr-width: its one depth) [default: 8,16,32,64,128; lr-width 8]
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// Widths N of lr-width, comma-separated [default: 64,128,256,512,1024]
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Seeds, comma-separated [default: fig1 0,1,2; the grids 0]
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Training iterations of every run [default: fig1 one epoch (937); the grids 100]
    #[arg(long, conflicts_with = "epochs")]
    iters: Option<usize>,
    /// Training epochs of every run (937 iterations each at B = 64)
    #[arg(long)]
    epochs: Option<usize>,
    /// Test accuracy every this many iterations (and after the last)
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Activation: linear, tanh, relu, leaky_relu, gelu, silu [default: fig1 relu; the grids tanh]
    #[arg(long)]
    act: Option<String>,
    /// cpu or gpu
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Folder of the finished runs (created; a rerun skips what it holds)
    #[arg(long)]
    out: PathBuf,
    /// Runs side by side in this process (when one run is smaller than the machine)
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// This process's part of the run list: K/N (every N-th run from K, K from 0) or auto
    /// (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shards)
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// With --shard auto in a Kubernetes Indexed Job: the job's completions
    #[arg(long)]
    shards: Option<usize>,
    /// Print the run list (one JSON line per run, with its shard's mark) and exit
    #[arg(long)]
    list: bool,
    /// Folder with the four MNIST .gz files [default: the copy built into pclab]
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Folders of finished runs (the shards of one experiment; any number)
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where report.md and the figures go [default: the first folder]
    #[arg(long)]
    out: Option<PathBuf>,
}

fn options(a: &ReproduceArgs, train_len: usize) -> Result<Options, String> {
    let experiment: Experiment = a.experiment.parse()?;
    let mut o = Options::paper(experiment, train_len);
    if let Some(w) = a.width {
        o.width = w;
    }
    if let Some(d) = &a.depths {
        if experiment == Experiment::LrWidth {
            match d.as_slice() {
                [h] => o.width_depth = *h,
                _ => return Err("lr-width runs at one depth: give --depths H with a single value".into()),
            }
        } else {
            o.depths = d.clone();
        }
    }
    if let Some(w) = &a.widths {
        o.widths = w.clone();
    }
    if let Some(s) = &a.seeds {
        o.seeds = s.clone();
    }
    if let Some(i) = a.iters {
        o.iterations = i;
    }
    if let Some(e) = a.epochs {
        o.iterations = e * (train_len / o.batch);
    }
    if let Some(act) = &a.act {
        o.act = act.parse()?;
    }
    o.eval_every = a.eval_every;
    o.backend = match a.backend.as_str() {
        "cpu" => BackendKind::Cpu,
        "gpu" => BackendKind::Gpu,
        other => return Err(format!("--backend is cpu or gpu, got '{other}'")),
    };
    if o.depths.is_empty() || o.seeds.is_empty() || o.widths.is_empty() || o.iterations == 0 || o.eval_every == 0 {
        return Err(
            "--depths, --widths and --seeds need at least one value; --iters and --eval-every at least 1".into()
        );
    }
    Ok(o)
}

pub fn reproduce(a: ReproduceArgs) -> Result<(), String> {
    let data = Arc::new(super::load_data(&a.data)?);
    let o = options(&a, data.train.len())?;
    let shard = Shard::parse(&a.shard, a.shards, |k| std::env::var(k).ok())?;
    let runs = plan(&o);
    for r in &runs {
        r.config(o.backend)?.validate(data.train.len()).map_err(|e| format!("run {}: {e}", r.key()))?;
    }
    if a.list {
        for r in &runs {
            let mut v = serde_json::to_value(r).map_err(|e| e.to_string())?;
            v["key"] = r.key().into();
            v["this_shard"] = shard.owns(r.index).into();
            println!("{v}");
        }
        return Ok(());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let command = std::iter::once("pclab".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    let command_file = a.out.join("command.txt");
    if !command_file.exists() {
        std::fs::write(&command_file, format!("{command}\n"))
            .map_err(|e| format!("{}: {e}", command_file.display()))?;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs · eta {eta} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let note = |n: Note<'_>| match n {
        Note::Plan { owned, done } => {
            bar.set_length((owned - done) as u64);
            super::say(&bar, format!("{} shard {shard}: {owned} runs, {done} finished before", o.experiment));
        }
        Note::Started(s) => bar.set_message(format!(
            "{} N={} H={} η_w={} η_z={} seed {}",
            s.rule, s.width, s.depth, s.lr, s.eta_z, s.seed
        )),
        Note::Finished(r) => {
            bar.inc(1);
            let acc = r.evals.last().map_or("–".into(), |e| format!("{:.2} %", e.1));
            let end = match (&r.diverged, &r.failed) {
                (Some(d), _) => format!("diverged at {} ({})", d.iteration, d.site),
                (_, Some(f)) => format!("failed: {f}"),
                _ => format!("accuracy {acc}, min loss {:.4}", r.min_loss.unwrap_or(f64::NAN)),
            };
            super::say(
                &bar,
                format!(
                    "run {:>4} {} N={} H={} η_w={} η_z={} seed {}: {end} ({:.1} s)",
                    r.spec.index,
                    r.spec.rule,
                    r.spec.width,
                    r.spec.depth,
                    r.spec.lr,
                    r.spec.eta_z,
                    r.spec.seed,
                    r.seconds
                ),
            );
        }
    };
    let s = run_shard(&runs, shard, &a.out, a.jobs, data, o.backend, &note)?;
    bar.finish_and_clear();
    println!(
        "{} shard {shard}: ran {} of {} runs ({} finished before) in {:.1} s wall, {:.1} s CPU; results in {}",
        o.experiment,
        s.ran,
        s.owned,
        s.skipped,
        s.seconds,
        s.cpu_seconds,
        a.out.join(shard.file_name()).display()
    );
    Ok(())
}

pub fn report(a: ReportArgs) -> Result<(), String> {
    let merged = report::merge(&a.dirs)?;
    let out = a.out.clone().unwrap_or_else(|| a.dirs[0].clone());
    let command = a
        .dirs
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("command.txt")).ok())
        .map_or_else(|| format!("pclab reproduce {}", merged.experiment), |c| c.trim().to_string());
    let files = report::write(&merged, &out, &command)?;
    println!(
        "{} runs of {} merged; wrote {} files in {}",
        merged.runs.len(),
        merged.experiment,
        files.len(),
        out.display()
    );
    Ok(())
}
