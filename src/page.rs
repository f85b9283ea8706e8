//! The page's configuration and its query string: a link restores the exact setup
//! (`?depth=16&width=128&rules=sp,mupc,bp_mup&seed=3&autoplay=1`), and a classroom link also
//! names its preset, the controls it hides and whether it opens in presentation mode
//! (`?preset=explode&…&hide=width,rules&present=1&plots=activation-rms,loss`). Every value is checked; an
//! invalid one is named in a message, with what is allowed, and replaced by its default — nothing
//! here can fail. No DOM: the page hands in `location.search` and writes back [`PageConfig::to_query`].

use crate::config::{default_eta_z, default_lr, BackendKind, Rule, RuleSettings, RunConfig};
use crate::pcn::network::Param;
use crate::pcn::Activation;
use crate::plot_id::PlotId;
use crate::presets::Preset;

/// Deepest network the page offers.
pub const PAGE_MAX_DEPTH: usize = 256;
/// Width range the page offers.
pub const PAGE_WIDTHS: (usize, usize) = (16, 1024);
/// Largest batch the page offers.
pub const PAGE_MAX_BATCH: usize = 1024;
/// Largest `T` the page offers.
pub const PAGE_MAX_STEPS: usize = 1024;
/// The page trains until paused; this is the session's iteration budget.
pub const PAGE_ITERATIONS: usize = 100_000_000;
/// The page's PC runs compare their gradients with backprop's every this many iterations (CPU
/// and worker runs; the alignment plots).
pub const PAGE_ALIGN_EVERY: usize = 10;

/// Everything the page's controls set.
#[derive(Clone, Debug, PartialEq)]
pub struct PageConfig {
    /// `H`.
    pub depth: usize,
    /// `N`.
    pub width: usize,
    /// φ.
    pub act: Activation,
    /// Identity skips.
    pub skips: bool,
    /// The rules that run, in display order.
    pub rules: Vec<Rule>,
    /// η_w of standard PC.
    pub lr_sp: f64,
    /// η_w of μPC.
    pub lr_mupc: f64,
    /// η_w of both backprop baselines.
    pub lr_bp: f64,
    /// η_z of standard PC; `None`: its default, 0.1.
    pub eta_z_sp: Option<f64>,
    /// η_z of μPC; `None`: its default, 0.5.
    pub eta_z_mupc: Option<f64>,
    /// `T`; `None` follows the depth.
    pub steps: Option<usize>,
    /// `B`.
    pub batch: usize,
    /// Seed of the weights and of the batch order.
    pub seed: u64,
    /// Test accuracy every this many iterations.
    pub eval_every: usize,
    /// Start training as soon as the page is ready.
    pub autoplay: bool,
    /// Where the networks train: the GPU, the CPU workers, or `auto` (the GPU, unless its only
    /// adapter is a software one and the CPU workers time faster).
    pub device: DeviceChoice,
    /// CPU workers of the pool (`None`: as many as the machine has cores, less one for the page).
    pub workers: Option<usize>,
    /// The preset this setup started from (its explanation is shown).
    pub preset: Option<Preset>,
    /// Controls hidden by a classroom link ([`HIDEABLE`]).
    pub hide: Vec<String>,
    /// Open in presentation mode.
    pub present: bool,
    /// The plots presentation mode shows; empty: the preset's, or all.
    pub plots: Vec<PlotId>,
    /// A guided lecture in progress: its id and the step shown (from 1).
    pub tour: Option<(String, usize)>,
}

/// What `hide=` can hide: each setting's control, the groups, and the buttons, by test id.
pub const HIDEABLE: [&str; 23] = [
    "depth",
    "width",
    "act",
    "skips",
    "rules",
    "lr_sp",
    "lr_mupc",
    "lr_bp",
    "eta_z",
    "T",
    "batch",
    "seed",
    "eval_every",
    "preset",
    "controls",
    "play",
    "step",
    "step-inference",
    "reset",
    "param-toggle",
    "speed",
    "conditioning",
    "lr-grid",
];

/// The `device` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The GPU when it is a real one; with only a software adapter, whichever of it and the CPU
    /// workers times faster on the networks in force.
    #[default]
    Auto,
    /// The GPU (WebGPU), even a software adapter.
    Gpu,
    /// The CPU workers, even when WebGPU is there.
    Cpu,
}

impl DeviceChoice {
    /// Its value in the address bar and the control.
    pub fn key(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
        }
    }
}

impl Default for PageConfig {
    fn default() -> Self {
        PageConfig {
            depth: 8,
            width: 128,
            act: Activation::Relu,
            skips: true,
            rules: vec![Rule::Pc(Param::Sp), Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)],
            lr_sp: default_lr(Rule::Pc(Param::Sp)),
            lr_mupc: default_lr(Rule::Pc(Param::Mupc)),
            lr_bp: default_lr(Rule::Bp(Param::Mupc)),
            eta_z_sp: None,
            eta_z_mupc: None,
            steps: None,
            batch: 64,
            seed: 0,
            // Early feedback: a curve after a few seconds even on a software adapter.
            eval_every: 50,
            autoplay: false,
            device: DeviceChoice::Auto,
            workers: None,
            preset: None,
            hide: Vec::new(),
            present: false,
            plots: Vec::new(),
            tour: None,
        }
    }
}

/// The most CPU workers a pool may have.
pub const MAX_WORKERS: usize = 16;

/// The pool's size for `cores` logical cores when the page does not fix it: one core is left for
/// the page's thread (so that it keeps drawing while the workers train), at most 8 workers.
pub fn auto_workers(cores: usize) -> usize {
    cores.saturating_sub(1).clamp(1, 8)
}

/// The query keys the page reads, in the order it writes them.
pub const KEYS: [&str; 24] = [
    "preset",
    "depth",
    "width",
    "act",
    "skips",
    "rules",
    "lr_sp",
    "lr_mupc",
    "lr_bp",
    "eta_z",
    "eta_z_sp",
    "eta_z_mupc",
    "T",
    "batch",
    "seed",
    "eval_every",
    "device",
    "workers",
    "autoplay",
    "hide",
    "present",
    "plots",
    "tour",
    "step",
];

impl PageConfig {
    /// η_w of a rule.
    pub fn lr(&self, rule: Rule) -> f64 {
        match rule {
            Rule::Pc(Param::Sp) => self.lr_sp,
            Rule::Pc(Param::Mupc) => self.lr_mupc,
            Rule::Bp(_) => self.lr_bp,
        }
    }

    /// η_z of a rule.
    pub fn eta_z_of(&self, rule: Rule) -> f64 {
        let set = match rule {
            Rule::Pc(Param::Sp) => self.eta_z_sp,
            _ => self.eta_z_mupc,
        };
        set.unwrap_or_else(|| default_eta_z(rule))
    }

    /// The shared η_z when both PC rules have the same one set.
    pub fn eta_z(&self) -> Option<f64> {
        self.eta_z_sp.filter(|v| Some(*v) == self.eta_z_mupc)
    }

    /// A preset's setup, with its own evaluation interval (early enough that a room sees
    /// accuracy within the first minute; see [`Preset::config`]).
    pub fn from_preset(p: Preset) -> PageConfig {
        let rc = p.config(60_000);
        let d = PageConfig::default();
        let rate = |rule: Rule| rc.rules.iter().find(|r| r.rule == rule).map(|r| (r.lr, r.eta_z));
        let bp = rate(Rule::Bp(Param::Mupc)).or(rate(Rule::Bp(Param::Sp)));
        PageConfig {
            depth: rc.depth,
            width: rc.width,
            act: rc.act,
            skips: rc.skips,
            rules: rc.rules.iter().map(|r| r.rule).collect(),
            lr_sp: rate(Rule::Pc(Param::Sp)).map_or(d.lr_sp, |r| r.0),
            lr_mupc: rate(Rule::Pc(Param::Mupc)).map_or(d.lr_mupc, |r| r.0),
            lr_bp: bp.map_or(d.lr_bp, |r| r.0),
            eta_z_sp: rate(Rule::Pc(Param::Sp)).map(|r| r.1),
            eta_z_mupc: rate(Rule::Pc(Param::Mupc)).map(|r| r.1),
            steps: rc.steps,
            batch: rc.batch,
            seed: rc.seed,
            eval_every: rc.eval_every,
            preset: Some(p),
            ..d
        }
    }

    /// The plots presentation mode shows, in order: those chosen (the first leads), else the
    /// preset's, else all.
    pub fn shown_plots(&self) -> Vec<PlotId> {
        if !self.plots.is_empty() {
            return self.plots.clone();
        }
        match self.preset {
            Some(p) => p.plots().to_vec(),
            None => PlotId::ALL.to_vec(),
        }
    }

    /// Whether a classroom link hides control `id` (a group hides its members).
    pub fn hides(&self, id: &str) -> bool {
        self.hide
            .iter()
            .any(|h| h == id || (h == "controls" && !["play", "step", "step-inference", "reset"].contains(&id)))
    }

    /// `T` (the depth unless set).
    pub fn inference_steps(&self) -> usize {
        self.steps.unwrap_or(self.depth)
    }

    /// The session configuration: every chosen rule with its rates, on `backend`, training until
    /// paused.
    pub fn run_config(&self, backend: BackendKind) -> RunConfig {
        RunConfig {
            width: self.width,
            depth: self.depth,
            act: self.act,
            skips: self.skips,
            rules: self
                .rules
                .iter()
                .map(|&rule| RuleSettings { rule, lr: self.lr(rule), eta_z: self.eta_z_of(rule) })
                .collect(),
            steps: self.steps,
            batch: self.batch,
            iterations: PAGE_ITERATIONS,
            eval_every: self.eval_every,
            seed: self.seed,
            backend,
            metrics_every: 1,
            align_every: PAGE_ALIGN_EVERY,
        }
    }

    /// True when going from `self` to `next` needs new networks (anything but the rates, `T`
    /// and the evaluation interval).
    pub fn needs_reset(&self, next: &PageConfig) -> bool {
        let structural =
            |c: &PageConfig| (c.depth, c.width, c.act, c.skips, c.rules.clone(), c.batch, c.seed, c.device, c.workers);
        structural(self) != structural(next)
    }

    /// The standard PC ⇄ μPC switch: every rule under the other parameterisation (standard PC ⇄
    /// μPC, BP standard ⇄ BP Depth-μP), keeping the order and dropping a rule already listed.
    pub fn flip_param(&mut self) {
        let flip = |p: Param| match p {
            Param::Sp => Param::Mupc,
            Param::Mupc => Param::Sp,
        };
        let mut next: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let f = match *r {
                Rule::Pc(p) => Rule::Pc(flip(p)),
                Rule::Bp(p) => Rule::Bp(flip(p)),
            };
            if !next.contains(&f) {
                next.push(f);
            }
        }
        self.rules = next;
    }

    /// The parameterisation every rule uses, or `None` when they differ (standard PC beside μPC).
    pub fn param(&self) -> Option<Param> {
        let param = |r: &Rule| match *r {
            Rule::Pc(p) | Rule::Bp(p) => p,
        };
        let first = param(self.rules.first()?);
        self.rules.iter().all(|r| param(r) == first).then_some(first)
    }

    /// Every rule under parameterisation `p`, keeping the order and dropping a rule already listed.
    pub fn set_param(&mut self, p: Param) {
        let mut next: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let f = match *r {
                Rule::Pc(_) => Rule::Pc(p),
                Rule::Bp(_) => Rule::Bp(p),
            };
            if !next.contains(&f) {
                next.push(f);
            }
        }
        self.rules = next;
    }

    /// Reads a query string (`?a=1&b=2`, the `?` optional). Unknown keys and invalid values are
    /// named in the returned messages and replaced by defaults.
    pub fn from_query(query: &str) -> (PageConfig, Vec<String>) {
        Self::from_query_with(query, &crate::tour::Tour::builtin)
    }

    /// [`PageConfig::from_query`], finding `tour=ID` with `lookup` (the page also knows the tours
    /// loaded from files): the tour's step (`step=K`, from 1) is the base the other keys adjust.
    pub fn from_query_with(
        query: &str,
        lookup: &dyn Fn(&str) -> Option<crate::tour::Tour>,
    ) -> (PageConfig, Vec<String>) {
        let mut c = PageConfig::default();
        let mut problems = Vec::new();
        let pairs: Vec<(String, String)> = query
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(raw).trim().to_string())
            })
            .collect();
        let value_of = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        match (value_of("tour"), value_of("step")) {
            (Some(id), step) => match lookup(id) {
                Some(tour) => {
                    let n = tour.steps.len();
                    let k = match step {
                        None => 1,
                        Some(v) => whole(v, 1, n).unwrap_or_else(|| {
                            problems.push(format!("step={} is not a step of this tour: it has steps 1 … {n}; using step 1", clip(v)));
                            1
                        }),
                    };
                    let (base, bad) = tour.page_config(k, false);
                    c = base;
                    problems.extend(bad.into_iter().map(|b| format!("tour {id}, step {k}: {b}")));
                }
                None => problems.push(format!(
                    "tour={} is not a tour here: the built-in tour is {} (a tour loaded from a file is kept in this browser)",
                    clip(id),
                    crate::tour::BUILTIN
                )),
            },
            (None, Some(_)) => problems.push("step= needs a tour= (for example ?tour=mupc-story&step=3)".into()),
            (None, None) => {}
        }
        let rest = pairs.iter().filter(|(k, _)| k != "tour" && k != "step");
        // The preset first, wherever it stands: the other keys adjust it.
        for (key, value) in rest.clone().filter(|(k, _)| k == "preset").chain(rest.filter(|(k, _)| k != "preset")) {
            if let Err(why) = c.set(key, value) {
                problems.push(why);
            }
        }
        (c, problems)
    }

    /// Sets one query key from its text; on error the field keeps its value and the message says
    /// what is allowed.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let d = PageConfig::default();
        let shown = clip(v);
        let bad = |allowed: &str, default: String| format!("{key}={shown} is not allowed: {allowed}; using {default}");
        match key {
            "depth" => {
                self.depth = whole(v, 1, PAGE_MAX_DEPTH).ok_or_else(|| {
                    bad(&format!("the depth H is a whole number from 1 to {PAGE_MAX_DEPTH}"), d.depth.to_string())
                })?
            }
            "width" => {
                let (lo, hi) = PAGE_WIDTHS;
                self.width = whole(v, lo, hi).ok_or_else(|| {
                    bad(&format!("the width N is a whole number from {lo} to {hi}"), d.width.to_string())
                })?
            }
            "act" => {
                self.act = v.parse().map_err(|_| {
                    let names: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
                    bad(&format!("the activation is one of {}", names.join(", ")), d.act.name().to_string())
                })?
            }
            "skips" => {
                self.skips = flag(v).ok_or_else(|| bad("skips is 1 or 0", "1".into()))?;
            }
            "rules" => {
                let mut rules = Vec::new();
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let rule: Rule = name.parse().map_err(|_| {
                        bad("rules is a comma list of sp, mupc, bp_mup, bp_sp", "sp,mupc,bp_mup".into())
                    })?;
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
                if rules.is_empty() {
                    return Err(bad("at least one rule of sp, mupc, bp_mup, bp_sp", "sp,mupc,bp_mup".into()));
                }
                self.rules = rules;
            }
            "lr_sp" | "lr_mupc" | "lr_bp" => {
                let lr = rate(v).ok_or_else(|| {
                    bad("a learning rate is a positive number such as 0.01 or 1e-3", format!("{}", d.get_lr(key)))
                })?;
                match key {
                    "lr_sp" => self.lr_sp = lr,
                    "lr_mupc" => self.lr_mupc = lr,
                    _ => self.lr_bp = lr,
                }
            }
            "preset" => {
                let p: Preset =
                    v.parse().map_err(|_| bad(&format!("the presets are {}", crate::presets::ids()), "none".into()))?;
                // A tour's step may start from a preset: the tour goes on.
                let tour = self.tour.take();
                *self = PageConfig { tour, ..PageConfig::from_preset(p) };
            }
            "eta_z" | "eta_z_sp" | "eta_z_mupc" => {
                let e = rate(v).ok_or_else(|| {
                    bad("η_z is a positive number such as 0.1", "each rule's default (standard PC 0.1, μPC 0.5)".into())
                })?;
                if key != "eta_z_mupc" {
                    self.eta_z_sp = Some(e);
                }
                if key != "eta_z_sp" {
                    self.eta_z_mupc = Some(e);
                }
            }
            "hide" => {
                let mut hide = Vec::new();
                for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !HIDEABLE.contains(&id) {
                        return Err(bad(
                            &format!("hide is a comma list of {}", HIDEABLE.join(", ")),
                            "nothing hidden".into(),
                        ));
                    }
                    if !hide.iter().any(|h| h == id) {
                        hide.push(id.to_string());
                    }
                }
                self.hide = hide;
            }
            "present" => {
                self.present = flag(v).ok_or_else(|| bad("present is 1 or 0", "0".into()))?;
            }
            "plots" => {
                let mut plots = Vec::new();
                for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let Ok(id) = id.parse::<PlotId>() else {
                        return Err(bad(&format!("plots is a comma list of {}", PlotId::list()), "all".into()));
                    };
                    if !plots.contains(&id) {
                        plots.push(id);
                    }
                }
                self.plots = plots;
            }
            "T" => {
                self.steps =
                    Some(whole(v, 1, PAGE_MAX_STEPS).ok_or_else(|| {
                        bad(&format!("T is a whole number from 1 to {PAGE_MAX_STEPS}"), "T = H".into())
                    })?)
            }
            "batch" => {
                self.batch = whole(v, 1, PAGE_MAX_BATCH).ok_or_else(|| {
                    bad(&format!("the batch size is a whole number from 1 to {PAGE_MAX_BATCH}"), d.batch.to_string())
                })?
            }
            "seed" => {
                self.seed = v.parse().map_err(|_| bad("the seed is a whole number ≥ 0", d.seed.to_string()))?;
            }
            "eval_every" => {
                self.eval_every = whole(v, 1, 100_000).ok_or_else(|| {
                    bad("the evaluation interval is a whole number from 1 to 100000", d.eval_every.to_string())
                })?
            }
            "autoplay" => {
                self.autoplay = flag(v).ok_or_else(|| bad("autoplay is 1 or 0", "0".into()))?;
            }
            "device" => {
                self.device = match v {
                    "auto" => DeviceChoice::Auto,
                    "gpu" => DeviceChoice::Gpu,
                    "cpu" => DeviceChoice::Cpu,
                    _ => return Err(bad("the device is auto, gpu or cpu", "auto".into())),
                }
            }
            "workers" => {
                self.workers = match v {
                    "auto" => None,
                    _ => Some(whole(v, 1, MAX_WORKERS).ok_or_else(|| {
                        bad(&format!("workers is auto or a whole number from 1 to {MAX_WORKERS}"), "auto".into())
                    })?),
                }
            }
            _ => return Err(format!("unknown setting '{}' ignored; the page reads {}", clip(key), KEYS.join(", "))),
        }
        Ok(())
    }

    fn get_lr(&self, key: &str) -> f64 {
        match key {
            "lr_sp" => self.lr_sp,
            "lr_mupc" => self.lr_mupc,
            _ => self.lr_bp,
        }
    }

    /// The query string (`?…`) that restores this configuration; values equal to the defaults are
    /// written too, so a shared link survives a change of defaults.
    pub fn to_query(&self) -> String {
        let rules: Vec<&str> = self.rules.iter().map(|r| r.name()).collect();
        let mut parts: Vec<String> = self.preset.map(|p| format!("preset={}", p.id())).into_iter().collect();
        parts.extend([
            format!("depth={}", self.depth),
            format!("width={}", self.width),
            format!("act={}", self.act.name()),
            format!("skips={}", self.skips as u8),
            format!("rules={}", rules.join(",")),
            format!("lr_sp={}", self.lr_sp),
            format!("lr_mupc={}", self.lr_mupc),
            format!("lr_bp={}", self.lr_bp),
        ]);
        match (self.eta_z(), self.eta_z_sp, self.eta_z_mupc) {
            (Some(e), ..) => parts.push(format!("eta_z={e}")),
            (None, sp, mupc) => {
                parts.extend(sp.map(|e| format!("eta_z_sp={e}")));
                parts.extend(mupc.map(|e| format!("eta_z_mupc={e}")));
            }
        }
        if let Some(t) = self.steps {
            parts.push(format!("T={t}"));
        }
        parts.push(format!("batch={}", self.batch));
        parts.push(format!("seed={}", self.seed));
        parts.push(format!("eval_every={}", self.eval_every));
        if self.device != DeviceChoice::Auto {
            parts.push(format!("device={}", self.device.key()));
        }
        if let Some(w) = self.workers {
            parts.push(format!("workers={w}"));
        }
        if self.autoplay {
            parts.push("autoplay=1".into());
        }
        if !self.hide.is_empty() {
            parts.push(format!("hide={}", self.hide.join(",")));
        }
        if self.present {
            parts.push("present=1".into());
        }
        if !self.plots.is_empty() {
            parts.push(format!("plots={}", self.plots.iter().map(|p| p.id()).collect::<Vec<_>>().join(",")));
        }
        if let Some((id, k)) = &self.tour {
            parts.push(format!("tour={id}&step={k}"));
        }
        format!("?{}", parts.join("&"))
    }
}

/// A value as quoted in a message: at most 40 characters.
fn clip(v: &str) -> String {
    if v.chars().count() <= 40 {
        v.to_string()
    } else {
        format!("{}…", v.chars().take(40).collect::<String>())
    }
}

fn whole(v: &str, lo: usize, hi: usize) -> Option<usize> {
    v.parse::<usize>().ok().filter(|n| (lo..=hi).contains(n))
}

fn rate(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0 && *r <= 1e3)
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" | "" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `%2C` → `,` and `+` → space; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_query_is_read_exactly() {
        let (c, problems) = PageConfig::from_query("?depth=4&width=32&rules=sp,mupc,bp_mup&autoplay=1");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((c.depth, c.width, c.autoplay), (4, 32, true));
        assert_eq!(c.rules, vec![Rule::Pc(Param::Sp), Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)]);
        assert_eq!(c.inference_steps(), 4, "T follows the depth until set");
    }

    #[test]
    fn bad_values_are_named_and_replaced_by_defaults() {
        let (c, problems) = PageConfig::from_query("?depth=-3&width=abc&seed=7");
        assert_eq!((c.depth, c.width, c.seed), (8, 128, 7));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("depth=-3 is not allowed") && problems[0].contains("1 to 256"), "{problems:?}");
        assert!(problems[1].starts_with("width=abc is not allowed") && problems[1].contains("16 to 1024"));
        let (_, p) = PageConfig::from_query("rules=sp,nope&lr_sp=-1&eta_z=inf&T=0&act=softmax&zoom=2&skips=maybe");
        assert_eq!(p.len(), 7, "{p:?}");
        assert!(p[5].contains("unknown setting 'zoom'"), "{p:?}");
        let long = "9".repeat(5000);
        let (_, p) = PageConfig::from_query(&format!("depth={long}&{long}=1"));
        assert!(p.iter().all(|m| m.len() < 400) && p[0].starts_with("depth=9999") && p[0].contains('…'), "{p:?}");
    }

    #[test]
    fn every_setting_round_trips_through_the_query() {
        let c = PageConfig {
            depth: 32,
            width: 256,
            act: Activation::Tanh,
            skips: false,
            rules: vec![Rule::Bp(Param::Sp), Rule::Pc(Param::Mupc)],
            lr_sp: 0.003,
            lr_mupc: 0.25,
            lr_bp: 1e-4,
            eta_z_sp: Some(0.05),
            eta_z_mupc: Some(0.7),
            steps: Some(20),
            batch: 32,
            seed: 12345678901,
            eval_every: 50,
            autoplay: true,
            device: DeviceChoice::Cpu,
            workers: Some(3),
            preset: Some(Preset::Explode),
            hide: vec!["width".into(), "controls".into()],
            present: true,
            plots: vec![PlotId::Loss, PlotId::KappaSweep],
            tour: Some((crate::tour::BUILTIN.into(), 2)),
        };
        let (back, problems) = PageConfig::from_query(&c.to_query());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back, c);
        let (d, _) = PageConfig::from_query(&PageConfig::default().to_query());
        assert_eq!(d, PageConfig::default());
        assert_eq!(PageConfig::from_query("rules=sp%2Cmupc").0.rules.len(), 2, "an encoded comma is a comma");
        assert_eq!(PageConfig::from_query("workers=auto").0.workers, None);
        let (w, problems) = PageConfig::from_query("workers=99");
        assert!(w.workers.is_none() && problems[0].contains("from 1 to 16"), "{problems:?}");
        assert_eq!((auto_workers(1), auto_workers(2), auto_workers(4), auto_workers(64)), (1, 1, 3, 8));
    }

    #[test]
    fn the_device_is_auto_unless_forced_and_a_bad_one_names_the_choices() {
        assert_eq!(PageConfig::default().device, DeviceChoice::Auto);
        assert!(!PageConfig::default().to_query().contains("device="), "auto is the default, not written");
        for d in [DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu] {
            let (c, problems) = PageConfig::from_query(&format!("?device={}", d.key()));
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(c.device, d);
            assert_eq!(PageConfig::from_query(&c.to_query()).0.device, d);
        }
        let (c, problems) = PageConfig::from_query("?device=tpu&depth=5");
        assert_eq!((c.device, c.depth), (DeviceChoice::Auto, 5), "the default, the rest kept");
        assert!(problems.len() == 1 && problems[0].contains("auto, gpu or cpu"), "{problems:?}");
        let forced = PageConfig { device: DeviceChoice::Gpu, ..Default::default() };
        assert!(PageConfig::default().needs_reset(&forced), "another device builds the networks again");
    }

    #[test]
    fn the_switch_flips_every_rule_and_drops_duplicates() {
        let mut c = PageConfig { rules: vec![Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)], ..Default::default() };
        c.flip_param();
        assert_eq!(c.rules, vec![Rule::Pc(Param::Sp), Rule::Bp(Param::Sp)]);
        let mut both = PageConfig::default();
        both.flip_param();
        assert_eq!(both.rules, vec![Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Sp)]);
    }

    #[test]
    fn rates_and_steps_change_live_but_the_network_shape_resets() {
        let a = PageConfig::default();
        let rates = PageConfig { lr_mupc: 0.2, eta_z_mupc: Some(0.3), steps: Some(3), eval_every: 7, ..a.clone() };
        assert!(!a.needs_reset(&rates));
        assert!(a.needs_reset(&PageConfig { depth: 9, ..a.clone() }));
        assert!(a.needs_reset(&PageConfig { seed: 1, ..a.clone() }));
        let rc = rates.run_config(BackendKind::Gpu);
        assert_eq!(rc.validate(60_000), Ok(()));
        assert_eq!((rc.rules[1].lr, rc.rules[1].eta_z, rc.inference_steps()), (0.2, 0.3, 3));
        assert_eq!(a.run_config(BackendKind::Cpu).rules[0].eta_z, 0.1, "standard PC's default η_z");
    }

    #[test]
    fn a_classroom_link_restores_its_preset_with_overrides_hidden_controls_and_presentation() {
        let (c, problems) = PageConfig::from_query("?seed=5&preset=fig1-relu-h32&hide=width,rules&present=1");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((c.preset, c.depth, c.width, c.seed), (Some(Preset::Fig1Relu(32)), 32, 512, 5), "the preset first");
        assert_eq!((c.eta_z_of(Rule::Pc(Param::Sp)), c.eta_z_of(Rule::Pc(Param::Mupc)), c.lr_sp), (0.01, 0.5, 0.01));
        assert!(c.present && c.hides("width") && c.hides("rules") && !c.hides("depth"));
        assert_eq!(c.shown_plots(), vec![PlotId::Accuracy, PlotId::Loss, PlotId::ActivationRms], "the preset's plots");
        let (back, p) = PageConfig::from_query(&c.to_query());
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(back, c);
        let all = PageConfig { hide: vec!["controls".into()], ..Default::default() };
        assert!(all.hides("depth") && all.hides("seed") && !all.hides("play"));
        let (_, p) = PageConfig::from_query("preset=fig2&hide=nothing&plots=pie&present=2");
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("the presets are") && p[0].contains("lr-transfer"), "{p:?}");
        assert!(p[1].contains("hide is a comma list of") && p[2].contains("plots is a comma list of"));
        // Every plot can be chosen, the learning-rate grid included, in the order given, and
        // comes back from a link.
        let (c, p) = PageConfig::from_query("plots=lr-grid,accuracy&present=1");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.shown_plots(), vec![PlotId::LrGrid, PlotId::Accuracy]);
        assert_eq!(PageConfig::from_query(&c.to_query()).0, c);
        for preset in Preset::all() {
            let (c, p) = PageConfig::from_query(&format!("preset={preset}&present=1"));
            assert!(p.is_empty() && c.shown_plots() == preset.plots(), "{preset}: {p:?}");
        }
        for preset in Preset::all() {
            let c = PageConfig::from_preset(preset);
            assert_eq!(c.run_config(BackendKind::Gpu).validate(60_000), Ok(()), "{preset}");
            assert_eq!(PageConfig::from_query(&format!("preset={preset}")).0, c);
        }
    }

    #[test]
    fn a_tour_link_opens_its_step_and_other_keys_adjust_it() {
        use crate::tour::{Tour, BUILTIN};
        let tour = Tour::builtin(BUILTIN).expect("built in");
        let (c, p) = PageConfig::from_query(&format!("?tour={BUILTIN}&step=3&present=1"));
        assert!(p.is_empty(), "{p:?}");
        let (want, _) = tour.page_config(3, true);
        assert_eq!(c, want, "step 3's configuration, in presentation mode");
        assert_eq!(c.shown_plots(), tour.steps[2].plots);
        // A link made from it restores it, and an edit made after it survives.
        assert_eq!(PageConfig::from_query(&c.to_query()).0, c);
        let edited = PageConfig { depth: 12, ..c.clone() };
        assert_eq!(PageConfig::from_query(&edited.to_query()).0, edited);
        // A step that starts from a preset keeps the tour.
        let (c7, _) = PageConfig::from_query(&format!("tour={BUILTIN}&step=7"));
        assert_eq!((c7.preset, c7.tour.clone()), (Some(Preset::Conditioning), Some((BUILTIN.to_string(), 7))));
        assert_eq!(PageConfig::from_query(&c7.to_query()).0, c7);
        let (_, p) = PageConfig::from_query(&format!("tour={BUILTIN}&step=99"));
        assert!(p.len() == 1 && p[0].contains("steps 1 … 8"), "{p:?}");
        let (c, p) = PageConfig::from_query("tour=nope&step=2&depth=5");
        assert!(p.len() == 1 && p[0].contains("tour=nope is not a tour") && c.depth == 5 && c.tour.is_none(), "{p:?}");
        assert!(PageConfig::from_query("step=2").1[0].contains("needs a tour"));
    }
}
