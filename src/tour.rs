//! Guided lectures: an ordered list of steps, each with a title, a paragraph, a configuration of
//! the page, the plots to show and what to press or watch. The built-in tour tells the μPC
//! paper's story; a lecturer can load their own from a JSON file of the same schema (checked,
//! every bad entry named) and save the one in use.

use crate::page::PageConfig;
use crate::plot_id::PlotId;
use serde_json::{json, Map, Value};

/// What a step starts besides training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRun {
    /// Nothing more.
    Nothing,
    /// One iteration, its inference shown step by step ("step inference").
    StepInference,
    /// The κ-against-depth sweep.
    KappaSweep,
    /// The width-over-depth alignment sweep.
    AlignmentSweep,
    /// The learning-rate grid.
    LrGrid,
}

impl StepRun {
    /// Every kind, with its name in a tour file.
    pub const ALL: [(StepRun, &'static str); 5] = [
        (StepRun::Nothing, "nothing"),
        (StepRun::StepInference, "step-inference"),
        (StepRun::KappaSweep, "kappa-sweep"),
        (StepRun::AlignmentSweep, "alignment-sweep"),
        (StepRun::LrGrid, "lr-grid"),
    ];

    /// Its name in a tour file.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|k| k.0 == self).map_or("nothing", |k| k.1)
    }
}

/// One step of a tour.
#[derive(Clone, Debug, PartialEq)]
pub struct TourStep {
    /// Heads the screen.
    pub title: String,
    /// What the step shows and why.
    pub text: String,
    /// The page's settings, as a query string (`preset=explode&autoplay=1`).
    pub config: String,
    /// The plots to show (empty: the configuration's).
    pub plots: Vec<PlotId>,
    /// What to press or watch.
    pub action: String,
    /// What the step starts besides training.
    pub run: StepRun,
}

/// A guided lecture.
#[derive(Clone, Debug, PartialEq)]
pub struct Tour {
    /// Names it in links (`?tour=ID&step=K`): letters, digits and `-`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The steps, in order (at least one).
    pub steps: Vec<TourStep>,
}

/// The id of the built-in tour.
pub const BUILTIN: &str = "mupc-story";

/// Query keys a step's configuration may not set: the tour itself sets them.
const TOUR_KEYS: [&str; 3] = ["tour", "step", "present"];

impl Tour {
    /// The built-in tour by id (`None`: no such tour).
    pub fn builtin(id: &str) -> Option<Tour> {
        (id == BUILTIN).then(story)
    }

    /// Step `k` (from 1) as the page's settings: the step's configuration and plots, in
    /// presentation mode when `present`; also what in the configuration was wrong.
    pub fn page_config(&self, k: usize, present: bool) -> (PageConfig, Vec<String>) {
        let step = &self.steps[k.clamp(1, self.steps.len()) - 1];
        let (mut c, problems) = PageConfig::from_query(&step.config);
        if !step.plots.is_empty() {
            c.plots = step.plots.clone();
        }
        c.present = present;
        c.tour = Some((self.id.clone(), k.clamp(1, self.steps.len())));
        (c, problems)
    }

    /// The tour as a JSON document (the schema [`Tour::from_json`] reads).
    pub fn to_json(&self) -> String {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                json!({
                    "title": s.title, "text": s.text, "config": s.config,
                    "plots": s.plots.iter().map(|p| p.id()).collect::<Vec<_>>(),
                    "action": s.action, "run": s.run.name(),
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({"id": self.id, "title": self.title, "steps": steps})).unwrap_or_default()
    }

    /// Reads a tour file; every bad entry is named (`steps[2].plots[0]: …`) and nothing is
    /// half-loaded.
    pub fn from_json(text: &str) -> Result<Tour, Vec<String>> {
        let v: Value = serde_json::from_str(text).map_err(|e| vec![format!("not JSON: {e}")])?;
        let mut bad = Vec::new();
        let Some(top) = v.as_object() else {
            return Err(vec!["a tour is a JSON object with id, title and steps".into()]);
        };
        unknown_keys(top, &["id", "title", "steps"], "the tour", &mut bad);
        let id = string(top, "id", "the tour", &mut bad).unwrap_or_default();
        if !id.is_empty() && !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bad.push(format!("id: '{id}' may only hold letters, digits and '-' (it goes into links)"));
        }
        let title = string(top, "title", "the tour", &mut bad).unwrap_or_default();
        let mut steps = Vec::new();
        match top.get("steps").and_then(Value::as_array) {
            None => bad.push("steps: missing; a tour has a list of steps".into()),
            Some(list) if list.is_empty() => bad.push("steps: empty; a tour has at least one step".into()),
            Some(list) => {
                for (i, s) in list.iter().enumerate() {
                    if let Some(step) = read_step(s, &format!("steps[{i}]"), &mut bad) {
                        steps.push(step);
                    }
                }
            }
        }
        if bad.is_empty() {
            Ok(Tour { id, title, steps })
        } else {
            Err(bad)
        }
    }
}

fn unknown_keys(o: &Map<String, Value>, allowed: &[&str], at: &str, bad: &mut Vec<String>) {
    for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
        bad.push(format!("{at}: unknown field '{k}'; the fields are {}", allowed.join(", ")));
    }
}

fn string(o: &Map<String, Value>, key: &str, at: &str, bad: &mut Vec<String>) -> Option<String> {
    match o.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            bad.push(format!("{at}.{key}: empty"));
            None
        }
        Some(other) => {
            bad.push(format!("{at}.{key}: a text, not {other}"));
            None
        }
        None => {
            bad.push(format!("{at}.{key}: missing"));
            None
        }
    }
}

fn read_step(v: &Value, at: &str, bad: &mut Vec<String>) -> Option<TourStep> {
    let Some(o) = v.as_object() else {
        bad.push(format!("{at}: a step is an object with title, text, config, plots, action and run"));
        return None;
    };
    let before = bad.len();
    unknown_keys(o, &["title", "text", "config", "plots", "action", "run"], at, bad);
    let title = string(o, "title", at, bad);
    let text = string(o, "text", at, bad);
    let action = string(o, "action", at, bad);
    let config = match o.get("config") {
        Some(Value::String(q)) => {
            let (_, problems) = PageConfig::from_query(q);
            for p in problems {
                bad.push(format!("{at}.config: {p}"));
            }
            for key in q.trim_start_matches('?').split('&').filter_map(|p| p.split('=').next()) {
                if TOUR_KEYS.contains(&key) {
                    bad.push(format!("{at}.config: '{key}' is set by the tour itself, not by a step"));
                }
            }
            Some(q.clone())
        }
        Some(other) => {
            bad.push(format!("{at}.config: a query string such as \"preset=explode&autoplay=1\", not {other}"));
            None
        }
        None => Some(String::new()),
    };
    let mut plots = Vec::new();
    match o.get("plots") {
        None => {}
        Some(Value::Array(list)) => {
            for (j, p) in list.iter().enumerate() {
                match p.as_str().map(str::parse::<PlotId>) {
                    Some(Ok(id)) => plots.push(id),
                    Some(Err(e)) => bad.push(format!("{at}.plots[{j}]: {e}")),
                    None => bad.push(format!("{at}.plots[{j}]: a plot's id as text, not {p}")),
                }
            }
        }
        Some(other) => bad.push(format!("{at}.plots: a list of plot ids, not {other}")),
    }
    let run = match o.get("run") {
        None => StepRun::Nothing,
        Some(Value::String(r)) => match StepRun::ALL.iter().find(|k| k.1 == r) {
            Some(k) => k.0,
            None => {
                let names: Vec<&str> = StepRun::ALL.iter().map(|k| k.1).collect();
                bad.push(format!("{at}.run: unknown '{r}'; it is one of {}", names.join(", ")));
                StepRun::Nothing
            }
        },
        Some(other) => {
            bad.push(format!("{at}.run: a text, not {other}"));
            StepRun::Nothing
        }
    };
    if bad.len() > before {
        return None;
    }
    Some(TourStep { title: title?, text: text?, config: config?, plots, action: action?, run })
}

fn step(title: &str, text: &str, config: &str, plots: &[PlotId], action: &str, run: StepRun) -> TourStep {
    TourStep {
        title: title.into(),
        text: text.into(),
        config: config.into(),
        plots: plots.to_vec(),
        action: action.into(),
        run,
    }
}

/// The μPC paper's story in eight steps.
fn story() -> Tour {
    use PlotId::*;
    let explode = crate::presets::Preset::Explode.config(60_000).depth;
    Tour {
        id: BUILTIN.into(),
        title: "Predictive coding at depth: the μPC story".into(),
        steps: vec![
            step(
                "PC and backprop alike at 8 layers",
                "A residual network with 8 hidden layers trained three ways on the same batches from the same seed: predictive coding under μPC, standard predictive coding, and backprop under Depth-μP. At this depth predictive coding learns about as well as backprop.",
                "preset=pc-vs-bp&autoplay=1",
                &[Accuracy, Loss],
                "Watch the test accuracy: μPC and backprop climb together; standard PC trails a little.",
                StepRun::Nothing,
            ),
            step(
                &format!("Standard PC's forward pass explodes at {explode} layers"),
                "With standard initialisation each residual block adds variance, so the activities grow layer after layer; at this depth standard PC's forward pass is orders of magnitude off scale, while μPC's stays at 1.",
                "preset=explode&autoplay=1",
                &[ActivationRms, Loss],
                "Read the RMS of z_l by layer (log scale): standard PC rises with depth, μPC is flat.",
                StepRun::Nothing,
            ),
            step(
                "The switch to μPC",
                "μPC (Depth-μP for predictive coding) scales each residual branch by 1/√(N·L) and the input and output layers by width. The same network, the same seed — only the parameterisation changes.",
                &format!("depth={explode}&width=128&rules=sp&autoplay=1&eval_every=10"),
                &[ActivationRms, Accuracy],
                "Press the μPC switch (or P): the run restarts under μPC, the standard PC curves stay faded for comparison.",
                StepRun::Nothing,
            ),
            step(
                "One iteration's inference: the wavefront",
                "Inference starts from the feedforward pass, where every hidden error is exactly zero and only the output layer has energy. Each inference step moves the error down one layer — a wavefront — and only layers it has reached get a weight gradient.",
                "depth=8&width=128&rules=mupc&T=8",
                &[InferenceView, EnergyHeatmap],
                "Press “step inference” (Shift+→) again and again: one more layer lights up per step.",
                StepRun::StepInference,
            ),
            step(
                "PC's gradient approaches backprop's",
                "Each 10 iterations PC's weight gradient is compared with backprop's at the same weights and batch, layer by layer and step by step. As inference runs, each layer's gradient turns toward backprop's direction: the classic result that predictive coding approximates backprop.",
                "depth=8&width=128&rules=sp,mupc,bp_mup&device=cpu&autoplay=1&eval_every=20",
                &[AlignmentSteps, Alignment],
                "Read the layer × step view left to right: a layer's row appears when the error reaches it, and its cosine rises toward 1 as inference goes on. Hover a cell for the cosine and the norm ratio.",
                StepRun::Nothing,
            ),
            step(
                "When width outgrows depth, PC computes backprop",
                "At equilibrium, under μPC, PC's gradients and energy converge to backprop's gradients and loss as the width grows relative to the depth (Innocenti, Achour & Bogacz 2026); standard PC does not get there.",
                "depth=8&width=128&rules=sp,mupc&device=cpu",
                &[AlignmentSweep],
                "The sweep runs linear networks to equilibrium: watch μPC's cosine and F*/ℓ̃ rise toward 1 as N/H grows.",
                StepRun::AlignmentSweep,
            ),
            step(
                "Conditioning grows with depth, even under μPC",
                "How hard inference is depends on the condition number κ of the energy's Hessian over the activities. It grows with depth for residual networks, and μPC does not prevent it: μPC fixes the forward pass, not the inference landscape.",
                "preset=conditioning",
                &[KappaSweep, KappaTraining],
                "The sweep computes κ at initialisation for depths 1 … 32: all three lines rise.",
                StepRun::KappaSweep,
            ),
            step(
                "Learning rates that transfer",
                "Under μPC the learning rates tuned on a shallow network work unchanged on a deep one: the region of good (η_w, η_z) stays in place as depth grows.",
                "preset=lr-transfer",
                &[LrGrid, Accuracy],
                "The grid trains small networks at every (η_w, η_z) at two depths: the dark region stays where it is.",
                StepRun::LrGrid,
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_tour_round_trips_through_its_json_and_every_step_is_valid() {
        let t = Tour::builtin(BUILTIN).expect("built in");
        assert!(t.steps.len() >= 7);
        let back = Tour::from_json(&t.to_json()).expect("its own JSON reads back");
        assert_eq!(back, t);
        for k in 1..=t.steps.len() {
            let (c, problems) = t.page_config(k, true);
            assert!(problems.is_empty(), "step {k}: {problems:?}");
            assert_eq!(c.tour, Some((BUILTIN.to_string(), k)));
            assert!(c.present);
        }
        assert_eq!(t.page_config(99, false).0.tour, Some((BUILTIN.to_string(), t.steps.len())), "clamped");
        assert!(Tour::builtin("nope").is_none());
    }

    #[test]
    fn a_malformed_tour_file_names_every_bad_field() {
        let text = r#"{
            "id": "my tour", "titel": "typo",
            "steps": [
                {"title": "ok", "text": "t", "config": "depth=8", "plots": ["accuracy"], "action": "a"},
                {"title": "", "text": "t", "config": "depth=nine&present=1", "plots": ["pie", 3], "action": "a", "run": "dance"},
                "not a step"
            ]
        }"#;
        let errs = Tour::from_json(text).unwrap_err();
        let all = errs.join("\n");
        for want in [
            "id: 'my tour' may only hold",
            "the tour: unknown field 'titel'",
            "the tour.title: missing",
            "steps[1].title: empty",
            "steps[1].config: depth=nine is not allowed",
            "steps[1].config: 'present' is set by the tour itself",
            "steps[1].plots[0]: unknown plot 'pie'",
            "steps[1].plots[1]: a plot's id as text",
            "steps[1].run: unknown 'dance'",
            "steps[2]: a step is an object",
        ] {
            assert!(all.contains(want), "missing «{want}» in:\n{all}");
        }
        assert!(!all.contains("steps[0]"), "the good step is not blamed:\n{all}");
        assert_eq!(Tour::from_json("[1").unwrap_err().len(), 1);
        assert!(
            Tour::from_json(r#"{"id": "a", "title": "b", "steps": []}"#).unwrap_err()[0].contains("at least one step")
        );
    }
}
