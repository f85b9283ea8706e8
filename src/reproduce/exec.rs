//! Running a shard of a run list: the runs it owns that no file in the output folder has
//! finished yet, `jobs` at a time, each appended to the shard's file as it ends.

use super::store::{self, Divergence, RunRecord};
use super::{RunSpec, Shard};
use crate::config::BackendKind;
use crate::data::Mnist;
use crate::session::{Event, Session};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What [`run_shard`] reports as it goes.
#[derive(Debug)]
pub enum Note<'a> {
    /// The shard's runs: how many, and how many a file already holds.
    Plan {
        /// Runs this shard owns.
        owned: usize,
        /// Of those, finished before.
        done: usize,
    },
    /// A run started.
    Started(&'a RunSpec),
    /// A run finished and was written.
    Finished(&'a RunRecord),
}

/// What a shard did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Runs this shard owns.
    pub owned: usize,
    /// Finished by an earlier process (skipped).
    pub skipped: usize,
    /// Run now.
    pub ran: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds of this process (user + system), where the system says.
    pub cpu_seconds: f64,
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`; 0 where there is
/// no such file.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|p| p.1) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name and state.
    (tick(11) + tick(12)) / 100.0
}

/// Trains one run to its end and records what it measured.
pub fn run_one(spec: &RunSpec, data: Arc<Mnist>, backend: BackendKind) -> Result<RunRecord, String> {
    let config = spec.config(backend)?;
    config.validate(data.train.len()).map_err(|e| format!("run {}: {e}", spec.key()))?;
    let (t0, cpu0) = (Instant::now(), process_cpu_seconds());
    let mut session = Session::new(config, data).map_err(|e| format!("run {}: {e}", spec.key()))?;
    let mut record = RunRecord {
        spec: spec.clone(),
        evals: Vec::new(),
        min_loss: None,
        final_loss: None,
        trained: 0,
        diverged: None,
        failed: None,
        seconds: 0.0,
        cpu_seconds: 0.0,
    };
    let loss = |record: &mut RunRecord, iteration: usize, l: f64| {
        record.trained = record.trained.max(iteration);
        record.final_loss = Some(l);
        if l.is_finite() && record.min_loss.is_none_or(|m| l < m) {
            record.min_loss = Some(l);
        }
    };
    while !session.is_finished() {
        for event in session.step() {
            match event {
                Event::Iteration(i) => loss(&mut record, i.iteration, i.report.loss),
                Event::Eval(e) => record.evals.push((e.iteration, e.test_accuracy)),
                Event::Diverged { iteration, layer, site, .. } => {
                    record.diverged = Some(Divergence { iteration, layer, site })
                }
                Event::Failed { message, .. } => record.failed = Some(message),
                Event::Alignment(_) => {}
            }
        }
    }
    // A GPU run is pipelined: the last iterations' reports come back now.
    for run in session.runs.iter_mut() {
        let rest = pollster::block_on(run.backend.flush()).map_err(|e| format!("run {}: {e}", spec.key()))?;
        for (iteration, report) in rest {
            loss(&mut record, iteration, report.loss);
        }
    }
    record.seconds = t0.elapsed().as_secs_f64();
    record.cpu_seconds = process_cpu_seconds() - cpu0;
    Ok(record)
}

/// Runs the runs of `runs` that `shard` owns and that no `runs*.jsonl` in `out` holds yet, `jobs`
/// side by side, appending each to `out/<shard's file>` as it finishes. A run whose backend fails
/// is recorded as failed; an error here (a file that cannot be written, a configuration that
/// cannot be built) stops the shard after the runs in progress, keeping what finished.
pub fn run_shard(
    runs: &[RunSpec],
    shard: Shard,
    out: &Path,
    jobs: usize,
    data: Arc<Mnist>,
    backend: BackendKind,
    note: &(dyn Fn(Note<'_>) + Sync),
) -> Result<Summary, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let done: std::collections::HashSet<String> = store::read_dir(out)?.iter().map(|r| r.spec.key()).collect();
    let owned: Vec<&RunSpec> = runs.iter().filter(|r| shard.owns(r.index)).collect();
    let todo: Vec<&RunSpec> = owned.iter().copied().filter(|r| !done.contains(&r.key())).collect();
    note(Note::Plan { owned: owned.len(), done: owned.len() - todo.len() });
    let file = out.join(shard.file_name());
    let (t0, cpu0) = (Instant::now(), process_cpu_seconds());
    let next = AtomicUsize::new(0);
    let writer = Mutex::new(());
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let ran = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let Some(spec) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                note(Note::Started(spec));
                let result = run_one(spec, data.clone(), backend).and_then(|record| {
                    let _guard = writer.lock().map_err(|_| "a writer panicked".to_string())?;
                    store::append(&file, &record)?;
                    note(Note::Finished(&record));
                    Ok(())
                });
                match result {
                    Ok(()) => {
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(Summary {
        owned: owned.len(),
        skipped: owned.len() - todo.len(),
        ran: ran.into_inner(),
        seconds: t0.elapsed().as_secs_f64(),
        cpu_seconds: process_cpu_seconds() - cpu0,
    })
}
