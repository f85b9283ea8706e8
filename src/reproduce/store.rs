//! Finished runs as JSON lines: one line per run, appended and flushed to disk when the run ends,
//! so a process killed at any moment loses only the runs it had not finished. Reading skips a
//! last line that was cut off mid-write; a damaged line elsewhere is an error that names it.

use super::RunSpec;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where a run stopped early.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The iteration.
    pub iteration: usize,
    /// The first layer whose values became non-finite, when known.
    pub layer: Option<usize>,
    /// What happened, in words.
    pub site: String,
}

/// One finished run: its configuration and what it measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The configuration.
    pub spec: RunSpec,
    /// `(iteration, test accuracy %)` of every evaluation.
    pub evals: Vec<(usize, f64)>,
    /// The lowest finite training loss of any iteration (`None` if none was finite).
    pub min_loss: Option<f64>,
    /// The training loss of the last iteration trained.
    pub final_loss: Option<f64>,
    /// Iterations trained.
    pub trained: usize,
    /// Set when the run diverged.
    pub diverged: Option<Divergence>,
    /// Set when the backend failed.
    pub failed: Option<String>,
    /// Wall-clock seconds (not part of the result).
    pub seconds: f64,
    /// CPU seconds of the process while this run ran, shared with runs beside it (not part of
    /// the result).
    #[serde(default)]
    pub cpu_seconds: f64,
}

impl RunRecord {
    /// Whether two records hold the same result, bit for bit (timings aside).
    pub fn same_result(&self, other: &RunRecord) -> bool {
        let strip = |r: &RunRecord| RunRecord { seconds: 0.0, cpu_seconds: 0.0, ..r.clone() };
        // Through the JSON text, so NaN compares as the same text rather than unequal.
        serde_json::to_string(&strip(self)).ok() == serde_json::to_string(&strip(other)).ok()
    }

    /// The last evaluation's accuracy; a diverged run counts at chance (10 %), as the paper draws it.
    pub fn final_accuracy(&self) -> Option<f64> {
        if self.diverged.is_some() {
            return Some(10.0);
        }
        self.evals.last().map(|e| e.1)
    }
}

/// The finished runs in `path` (none when the file does not exist). A last line without its
/// newline that does not parse was cut off by a kill and is ignored; any other line that does not
/// parse is an error naming the file and line.
pub fn read(path: &Path) -> Result<Vec<RunRecord>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => return Err(format!("{} line {}: not a finished run ({e})", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Every `runs*.jsonl` in `dir`, sorted by name.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("runs") && n.ends_with(".jsonl"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The runs finished in any file of `dir` (a missing folder has none).
pub fn read_dir(dir: &Path) -> Result<Vec<RunRecord>, String> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for f in files(dir)? {
        out.extend(read(&f)?);
    }
    Ok(out)
}

/// Appends `record` to `path` as one line and flushes it to disk. A last line that a kill cut off
/// (no final newline) is dropped first, so the file stays whole lines.
pub fn append(path: &Path, record: &RunRecord) -> Result<(), String> {
    let line = serde_json::to_string(record).map_err(|e| format!("cannot write a run: {e}"))?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path).map_err(io)?;
    // Only the last byte tells whether a kill cut a line; the whole file is read only then.
    let mut last = [b'\n'];
    if f.metadata().map_err(io)?.len() > 0 {
        f.seek(SeekFrom::End(-1)).and_then(|_| f.read_exact(&mut last)).map_err(io)?;
    }
    if last[0] != b'\n' {
        let bytes = std::fs::read(path).map_err(io)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        f.set_len(whole as u64).map_err(io)?;
    }
    f.write_all(format!("{line}\n").as_bytes()).and_then(|_| f.sync_data()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::{plan, Experiment, Options};

    fn record(i: usize) -> RunRecord {
        let spec = plan(&Options::paper(Experiment::Fig1, 60_000)).remove(i);
        RunRecord {
            spec,
            evals: vec![(100, 50.0 + i as f64)],
            min_loss: Some(0.1),
            final_loss: Some(f64::NAN),
            trained: 100,
            diverged: None,
            failed: None,
            seconds: 1.0,
            cpu_seconds: 2.0,
        }
    }

    #[test]
    fn a_cut_off_last_line_is_ignored_and_the_next_append_replaces_it() {
        let dir = std::env::temp_dir().join(format!("pclab-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("runs.jsonl");
        append(&path, &record(0)).expect("append");
        append(&path, &record(1)).expect("append");
        // A kill mid-write: half a line, no newline.
        let full = serde_json::to_string(&record(2)).expect("json");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&full.as_bytes()[..full.len() / 2]).expect("write");
        drop(f);
        let got = read(&path).expect("read");
        assert_eq!(got.len(), 2);
        assert!(got[0].same_result(&record(0)) && got[1].same_result(&record(1)), "NaN survives as null");
        append(&path, &record(2)).expect("append after the cut");
        let got = read(&path).expect("read");
        assert_eq!(got.iter().map(|r| r.spec.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(std::fs::read_to_string(&path).expect("text").lines().count(), 3, "no cut-off line is left");
        // A damaged line in the middle is an error naming it.
        std::fs::write(&path, format!("{full}\nnot json\n{full}\n")).expect("write");
        assert!(read(&path).unwrap_err().contains("line 2"));
        assert_eq!(read_dir(&dir.join("missing")).expect("none"), Vec::new());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
