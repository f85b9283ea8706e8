//! Several runs in lockstep: one seed fixes every rule's initial weights and the batch order, and
//! every rule sees the same batch at the same iteration, so differences between curves are the
//! rules'. Test accuracy is the feedforward pass on all 10 000 test images.

use super::backend::{Backend, BackendError, Device};
use super::metrics::{AlignmentSample, EvalSample, Event, IterationSample};
use super::run::{AlignmentPoint, Run, RunStatus};
use crate::config::{ConfigError, RuleSettings, RunConfig};
use crate::data::{Batcher, Mnist};
use crate::gpu::{Checkpoint, GpuError};
use crate::pcn::train::IterationReport;
use crate::pcn::Mat;
use std::sync::Arc;
use thiserror::Error;
use web_time::Instant;

/// Why a session could not start.
#[derive(Debug, Error, PartialEq)]
pub enum SessionError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend is unavailable.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Runs of several rules over one MNIST stream.
#[derive(Debug)]
pub struct Session {
    /// The configuration every run shares.
    pub config: RunConfig,
    /// One run per rule, in the configuration's order.
    pub runs: Vec<Run>,
    data: Arc<Mnist>,
    batcher: Batcher,
    iteration: usize,
    test_x: Option<Arc<Mat<f32>>>,
    /// The first sample `(x, y)` of the latest batch (where κ is measured during training).
    pub last_sample: Option<(Mat<f32>, Mat<f32>)>,
    /// The GPU runs' state at the latest evaluation, by run (what [`Session::recover`] resumes).
    checkpoint: Option<(usize, Vec<Option<Checkpoint>>)>,
}

impl Session {
    /// Validates the configuration and initialises every run from the seed (native: the GPU is
    /// the process's shared device).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(config: RunConfig, data: Arc<Mnist>) -> Result<Self, SessionError> {
        config.validate(data.train.len())?;
        let runs = config.rules.iter().map(|rs| Backend::new(&config, rs)).collect::<Result<Vec<_>, _>>()?;
        Self::with_backends(config, data, runs)
    }

    /// Validates the configuration and initialises every run from the seed, on `device` (the
    /// page's asynchronously created GPU device, or its CPU worker).
    pub async fn create(config: RunConfig, data: Arc<Mnist>, device: Device) -> Result<Self, SessionError> {
        config.validate(data.train.len())?;
        let mut runs = Vec::with_capacity(config.rules.len());
        for rs in &config.rules {
            runs.push(Backend::create(&config, rs, &device).await?);
        }
        Self::with_backends(config, data, runs)
    }

    /// A session over backends already built, one per rule of `config`, in its order.
    fn with_backends(config: RunConfig, data: Arc<Mnist>, backends: Vec<Backend>) -> Result<Self, SessionError> {
        let runs = config.rules.iter().zip(backends).map(|(rs, b)| Run::new(*rs, b)).collect();
        let batcher = Batcher::new(data.train.len(), config.batch, config.seed);
        Ok(Session { config, runs, data, batcher, iteration: 0, test_x: None, last_sample: None, checkpoint: None })
    }

    /// Evaluates on these test inputs (from [`Mnist::test_inputs`] of the same data) instead of
    /// normalising the test images at the first evaluation — so a page can do that work once,
    /// while loading, for every session it builds.
    pub fn with_test_inputs(mut self, x: Arc<Mat<f32>>) -> Self {
        self.test_x = Some(x);
        self
    }

    /// The first sample of the first batch this session trains on (κ at initialisation).
    pub fn first_sample(&self) -> (Mat<f32>, Mat<f32>) {
        let first = Batcher::new(self.data.train.len(), self.config.batch, self.config.seed).next_indices()[0];
        self.data.train.batch::<f32>(&[first])
    }

    /// The MNIST data this session trains on.
    pub fn data(&self) -> &Arc<Mnist> {
        &self.data
    }

    /// Changes η_w, η_z and `T` of the live runs from the next iteration on, keeping their weights
    /// and optimiser state; `rules` gives the new rates by rule, `steps` the new `T`.
    pub fn set_rates(&mut self, rules: &[RuleSettings], steps: Option<usize>) -> Result<(), SessionError> {
        let mut next = self.config.clone();
        next.steps = steps;
        for rs in next.rules.iter_mut() {
            if let Some(new) = rules.iter().find(|n| n.rule == rs.rule) {
                (rs.lr, rs.eta_z) = (new.lr, new.eta_z);
            }
        }
        next.validate(self.data.train.len())?;
        for run in self.runs.iter_mut() {
            if let Some(rs) = next.rules.iter().find(|r| r.rule == run.settings.rule) {
                run.backend.set_rates(rs.lr, next.learning(rs))?;
                run.settings = *rs;
            }
        }
        self.config = next;
        Ok(())
    }

    /// Iterations completed.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// Epoch of the next batch (from 0).
    pub fn epoch(&self) -> usize {
        self.batcher.epoch()
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batcher.per_epoch()
    }

    /// True when the configured iterations are done or every run diverged.
    pub fn is_finished(&self) -> bool {
        self.iteration >= self.config.iterations || self.runs.iter().all(|r| !r.is_running())
    }

    /// One training iteration of every live run on the next batch, plus an evaluation when one is
    /// due (every `eval_every` iterations and after the last). Blocks until done (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self) -> Vec<Event> {
        let (mut events, eval_due) = self.train();
        if eval_due {
            events.extend(pollster::block_on(self.evaluate()));
        }
        events
    }

    /// One training iteration of every live run on the next batch, without waiting for a GPU:
    /// the events of the reports that are ready, and whether an evaluation is due now (every
    /// `eval_every` iterations and after the last) — then call [`Session::evaluate`].
    pub fn train(&mut self) -> (Vec<Event>, bool) {
        let indices = self.batcher.next_indices().to_vec();
        let (x, y) = self.data.train.batch::<f32>(&indices);
        self.last_sample = Some((x.range_rows(0, 1), y.range_rows(0, 1)));
        self.iteration += 1;
        let iteration = self.iteration;
        let per_epoch = self.batcher.per_epoch();
        let eval_due = iteration % self.config.eval_every == 0 || iteration == self.config.iterations;
        let align = self.config.aligns_at(iteration);
        let mut events = Vec::with_capacity(self.runs.len() + 1);
        for run in self.runs.iter_mut().filter(|r| r.is_running()) {
            let t0 = Instant::now();
            let reports = run.backend.train_step(iteration, &indices, &x, &y, align);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            run.total_ms += ms;
            file(run, reports, iteration, ms, per_epoch, &mut events);
        }
        (events, eval_due)
    }

    /// The events of GPU reports that have come back since the last call, without waiting.
    pub fn poll(&mut self) -> Vec<Event> {
        let (iteration, per_epoch) = (self.iteration, self.batcher.per_epoch());
        let mut events = Vec::new();
        for run in self.runs.iter_mut().filter(|r| r.is_running()) {
            let reports = run.backend.poll();
            file(run, reports, iteration, 0.0, per_epoch, &mut events);
        }
        events
    }

    /// Test accuracy of every live run on all test images. Every report still in flight is
    /// filed first, so a run that diverged is stopped before it is evaluated.
    pub async fn evaluate(&mut self) -> Vec<Event> {
        let (iteration, per_epoch) = (self.iteration, self.batcher.per_epoch());
        let test = &self.data.test;
        let x = self.test_x.get_or_insert_with(|| Arc::new(self.data.test_inputs()));
        let mut events = Vec::new();
        for run in self.runs.iter_mut().filter(|r| r.is_running()) {
            let reports = run.backend.flush().await;
            file(run, reports, iteration, 0.0, per_epoch, &mut events);
            if !run.is_running() {
                continue;
            }
            match run.backend.evaluate(x, &test.labels).await {
                Ok(evaluation) => {
                    let test_accuracy = evaluation.accuracy;
                    run.accuracy.push(iteration, test_accuracy);
                    let train_loss = run.last.as_ref().map_or(f64::NAN, |r| r.loss);
                    let confusion = evaluation.confusion.clone();
                    run.last_eval = Some((iteration, evaluation));
                    events.push(Event::Eval(EvalSample {
                        rule: run.name(),
                        iteration,
                        test_accuracy,
                        train_loss,
                        confusion,
                    }));
                }
                Err(e) => fail(run, iteration, e, &mut events),
            }
        }
        self.take_checkpoint().await;
        events
    }

    /// Keeps every live GPU run's state on the CPU side (after an evaluation); a failed download
    /// keeps the previous checkpoint.
    async fn take_checkpoint(&mut self) {
        // A pooled session's runs on the first worker alone are rebuilt with the rest after a loss.
        let pooled = self.runs.iter().any(|r| matches!(r.backend, Backend::Pool(_)));
        let mut cps = Vec::with_capacity(self.runs.len());
        for run in &mut self.runs {
            if !run.is_running() {
                cps.push(None);
                continue;
            }
            cps.push(match run.backend.checkpoint(pooled).await {
                Some(Ok(cp)) => Some(cp),
                Some(Err(_)) => return,
                None => None,
            });
        }
        if cps.iter().any(Option::is_some) {
            self.checkpoint = Some((self.iteration, cps));
        }
    }

    /// The iteration of the latest checkpoint (0 when there is none: recovery starts from the seed).
    pub fn checkpoint_iteration(&self) -> usize {
        self.checkpoint.as_ref().map_or(0, |c| c.0)
    }

    /// After a lost device: rebuilds on `device` (a new GPU) every run the loss stopped, from the
    /// latest checkpoint — the latest evaluation's weights, with Adam's state for networks up to
    /// [`crate::gpu::CHECKPOINT_MOMENTS_UP_TO`] weights — or from the seed when there was none,
    /// and rewinds the session to that iteration, so the batches continue as they would have.
    /// Runs that had diverged by then stay stopped. Returns the iteration resumed from.
    pub async fn recover(&mut self, device: Device) -> Result<usize, SessionError> {
        if !matches!(device, Device::Gpu(_) | Device::Pool { .. }) {
            let why = "recovery needs a GPU device or a pool of workers";
            return Err(BackendError::Gpu(GpuError::Unsupported(why.into())).into());
        }
        // Borrowed, not cloned: a paper-size checkpoint is hundreds of megabytes.
        let (at, cps) = match &self.checkpoint {
            Some((at, cps)) => (*at, cps.as_slice()),
            None => (0, &[][..]),
        };
        for (i, run) in self.runs.iter_mut().enumerate() {
            let cp = cps.get(i).and_then(Option::as_ref);
            if matches!(run.status, RunStatus::Diverged { iteration, .. } if iteration <= at) {
                continue;
            }
            let rs = run.settings;
            let backend = match (cp, at) {
                (Some(cp), _) => match &device {
                    Device::Gpu(ctx) => Backend::restore(ctx.clone(), cp, &self.config, &rs).await?,
                    Device::Pool { links, fixed, exchange } => {
                        Backend::restore_pool(links, (*fixed, *exchange), cp, &self.config, &rs)?
                    }
                    Device::Cpu | Device::Worker(_) => unreachable!("checked above"),
                },
                (None, 0) => Backend::create(&self.config, &rs, &device).await?,
                // Stopped before the checkpoint for another reason: it stays stopped.
                (None, _) => continue,
            };
            run.backend = backend;
            run.status = RunStatus::Running;
            run.last = None;
            run.loss.truncate_after(at);
            run.accuracy.truncate_after(at);
            run.energies.truncate_after(at);
            run.alignment.truncate_after(at);
            run.last_alignment = None;
            run.last_eval = None;
        }
        self.iteration = at;
        self.batcher = Batcher::new(self.data.train.len(), self.config.batch, self.config.seed);
        for _ in 0..at {
            self.batcher.next_indices();
        }
        Ok(at)
    }
}

/// Files a backend's answer: its reports, or the failure that stops the run.
fn file(
    run: &mut Run,
    reports: Result<Vec<(usize, IterationReport)>, BackendError>,
    iteration: usize,
    ms: f64,
    per_epoch: usize,
    events: &mut Vec<Event>,
) {
    match reports {
        Ok(reports) => absorb(run, reports, ms, per_epoch, events),
        Err(e) => fail(run, iteration, e, events),
    }
}

fn fail(run: &mut Run, iteration: usize, e: BackendError, events: &mut Vec<Event>) {
    let message = e.to_string();
    run.status = RunStatus::Failed { iteration, message: message.clone() };
    events.push(Event::Failed { rule: run.name(), iteration, message });
}

/// Files a run's reports under the iterations they describe (a pipelined run's arrive late):
/// losses into its history, events out, and a divergence stops the run at its iteration.
fn absorb(run: &mut Run, reports: Vec<(usize, IterationReport)>, ms: f64, per_epoch: usize, events: &mut Vec<Event>) {
    for (at, report) in reports {
        if !run.is_running() {
            break; // reports after a divergence describe a run that has stopped
        }
        if report.finite {
            run.loss.push(at, report.loss);
            if !report.energies_post.is_empty() {
                run.energies.push(at, report.energies_post.clone());
            }
            if let Some(a) = &report.alignment {
                let summary = AlignmentPoint::of(a);
                if let Some(p) = summary {
                    run.alignment.push(at, p);
                }
                events.push(Event::Alignment(AlignmentSample {
                    rule: run.name(),
                    iteration: at,
                    layers: a.last().clone(),
                    summary,
                    bp_loss: a.bp_loss,
                    steps: a.at.last().copied().unwrap_or(0),
                }));
                run.last_alignment = Some((at, a.clone()));
            }
        } else {
            let (layer, site) = match report.divergence_site() {
                Some((l, site)) => (Some(l), site),
                None => (None, "a weight or activity became NaN or ±∞".to_string()),
            };
            run.status = RunStatus::Diverged { iteration: at, layer, site: site.clone() };
            events.push(Event::Diverged { rule: run.name(), iteration: at, layer, site });
        }
        let epoch = (at - 1) / per_epoch.max(1);
        events.push(Event::Iteration(IterationSample {
            rule: run.name(),
            iteration: at,
            epoch,
            ms,
            report: report.clone(),
        }));
        run.last = Some(report);
    }
}
