//! What a session's recorded metrics look like outside pclab: a run-state JSON file
//! (configuration, seed, pclab's version, the backend, and every run's history — the page loads it
//! back to view it) and a CSV of the same metrics, one row per recorded iteration, with the
//! configuration and version in `#` header lines. Shared by the page's export buttons and the CLI.

use crate::session::{RunStatus, Session};
use serde::{Deserialize, Serialize};

/// The `kind` of a run-state file.
pub const KIND: &str = "pclab-run";

/// One rule's recorded history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Rule name (`mupc`, `sp`, `bp_mup`, `bp_sp`).
    pub rule: String,
    /// η_w.
    pub lr: f64,
    /// η_z (PC).
    pub eta_z: f64,
    /// `running`, `diverged at N` or `failed at N: why`.
    pub status: String,
    /// Training loss `(iteration, value)`.
    pub loss: Vec<(usize, f64)>,
    /// Test accuracy in percent `(iteration, value)`.
    pub accuracy: Vec<(usize, f64)>,
    /// PC: total energy after inference `(iteration, F)`.
    pub energy: Vec<(usize, f64)>,
    /// κ of the inference Hessian `(iteration, κ, λ_min, λ_max)`, where computed.
    #[serde(default)]
    pub kappa: Vec<(usize, f64, f64, f64)>,
}

/// A saved session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Always [`KIND`].
    pub kind: String,
    /// pclab's version that wrote it.
    pub pclab: String,
    /// The configuration as the page's query string (it includes the seed and the preset).
    pub config: String,
    /// The backend and adapter that ran it.
    pub backend: String,
    /// Iterations done.
    pub iteration: usize,
    /// Every rule's history.
    pub runs: Vec<RunRecord>,
}

fn status_text(s: &RunStatus) -> String {
    match s {
        RunStatus::Running => "running".into(),
        RunStatus::Diverged { iteration, site, .. } => format!("diverged at {iteration}: {site}"),
        RunStatus::Failed { iteration, message } => format!("failed at {iteration}: {message}"),
    }
}

impl RunState {
    /// The state of `session`, described by the query string `config` and the `backend` text.
    pub fn of_session(session: &Session, config: &str, backend: &str) -> Self {
        let runs = session
            .runs
            .iter()
            .map(|run| RunRecord {
                rule: run.name().to_string(),
                lr: run.settings.lr,
                eta_z: run.settings.eta_z,
                status: status_text(&run.status),
                loss: run.loss.points().to_vec(),
                accuracy: run.accuracy.points().to_vec(),
                energy: run.energies.points().iter().map(|(i, e)| (*i, e.iter().sum())).collect(),
                kappa: Vec::new(),
            })
            .collect();
        RunState {
            kind: KIND.into(),
            pclab: crate::VERSION.into(),
            config: config.into(),
            backend: backend.into(),
            iteration: session.iteration(),
            runs,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a file written by [`RunState::to_json`]; the message says what is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(format!("not a pclab run file: its \"kind\" is not \"{KIND}\""));
        }
        serde_json::from_value(v).map_err(|e| format!("a pclab run file with a missing or malformed field: {e}"))
    }

    /// The metrics as CSV: `#` lines with the version, configuration and backend, then a header
    /// `iteration,loss_<rule>,accuracy_<rule>,energy_<rule>,…` and one row per recorded
    /// iteration (empty where a rule has no value at that iteration).
    pub fn to_csv(&self) -> String {
        let mut iterations: Vec<usize> = self
            .runs
            .iter()
            .flat_map(|r| {
                r.loss.iter().map(|p| p.0).chain(r.accuracy.iter().map(|p| p.0)).chain(r.energy.iter().map(|p| p.0))
            })
            .collect();
        iterations.sort_unstable();
        iterations.dedup();
        let mut out = format!(
            "# pclab {}\n# config {}\n# backend {}\n# iterations {}\n",
            self.pclab, self.config, self.backend, self.iteration
        );
        let mut header = vec!["iteration".to_string()];
        for r in &self.runs {
            header.extend(["loss", "accuracy", "energy"].map(|m| format!("{m}_{}", r.rule)));
        }
        out.push_str(&header.join(","));
        out.push('\n');
        let at = |s: &[(usize, f64)], i: usize| {
            s.binary_search_by_key(&i, |p| p.0).map(|k| format!("{}", s[k].1)).unwrap_or_default()
        };
        for i in iterations {
            let mut row = vec![i.to_string()];
            for r in &self.runs {
                row.extend([at(&r.loss, i), at(&r.accuracy, i), at(&r.energy, i)]);
            }
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }
}
