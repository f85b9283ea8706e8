//! Several runs in lockstep: one seed fixes every rule's initial weights and the batch order, and
//! every rule sees the same batch at the same iteration, so differences between curves are the
//! rules'. Test accuracy is the feedforward pass on all 10 000 test images.

use super::backend::{Backend, BackendError};
use super::metrics::{EvalSample, Event, IterationSample};
use super::run::{Run, RunStatus};
use crate::config::{ConfigError, RunConfig};
use crate::data::{Batcher, Mnist};
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
    test_x: Option<Mat<f32>>,
}

impl Session {
    /// Validates the configuration and initialises every run from the seed.
    pub fn new(config: RunConfig, data: Arc<Mnist>) -> Result<Self, SessionError> {
        config.validate(data.train.len())?;
        let runs = config
            .rules
            .iter()
            .map(|rs| Ok(Run::new(*rs, Backend::new(&config, rs)?)))
            .collect::<Result<Vec<_>, BackendError>>()?;
        let batcher = Batcher::new(data.train.len(), config.batch, config.seed);
        Ok(Session { config, runs, data, batcher, iteration: 0, test_x: None })
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
    /// due (every `eval_every` iterations and after the last).
    pub fn step(&mut self) -> Vec<Event> {
        let (x, y) = self.data.train.batch::<f32>(self.batcher.next_indices());
        self.iteration += 1;
        let iteration = self.iteration;
        let per_epoch = self.batcher.per_epoch();
        // Pipelined (GPU) runs hand in every outstanding report before an evaluation or the end,
        // so a run that diverged is stopped before it is evaluated.
        let eval_due = iteration % self.config.eval_every == 0 || iteration == self.config.iterations;
        let mut events = Vec::with_capacity(self.runs.len() + 1);
        for run in self.runs.iter_mut().filter(|r| r.is_running()) {
            let t0 = Instant::now();
            let reports = run.backend.train_step(iteration, &x, &y).and_then(|mut r| {
                if eval_due {
                    r.extend(run.backend.flush()?);
                }
                Ok(r)
            });
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            run.total_ms += ms;
            match reports {
                Ok(reports) => absorb(run, reports, ms, per_epoch, &mut events),
                Err(e) => {
                    let message = e.to_string();
                    run.status = RunStatus::Failed { iteration, message: message.clone() };
                    events.push(Event::Failed { rule: run.name(), iteration, message });
                }
            }
        }
        if eval_due {
            events.extend(self.evaluate());
        }
        events
    }

    /// Test accuracy of every live run on all test images.
    pub fn evaluate(&mut self) -> Vec<Event> {
        let test = &self.data.test;
        let x = self.test_x.get_or_insert_with(|| test.range::<f32>(0, test.len()).0);
        let iteration = self.iteration;
        self.runs
            .iter_mut()
            .filter(|r| r.is_running())
            .map(|run| match run.backend.accuracy(x, &test.labels) {
                Ok(test_accuracy) => {
                    run.accuracy.push(iteration, test_accuracy);
                    let train_loss = run.last.as_ref().map_or(f64::NAN, |r| r.loss);
                    Event::Eval(EvalSample { rule: run.name(), iteration, test_accuracy, train_loss })
                }
                Err(e) => {
                    let message = e.to_string();
                    run.status = RunStatus::Failed { iteration, message: message.clone() };
                    Event::Failed { rule: run.name(), iteration, message }
                }
            })
            .collect()
    }
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
        } else {
            run.status = RunStatus::Diverged { iteration: at };
            events.push(Event::Diverged { rule: run.name(), iteration: at });
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

/// Percent of rows whose largest output is the label (a NaN row counts as wrong).
pub fn accuracy(y_hat: &Mat<f32>, labels: &[u8]) -> f64 {
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &label)| {
            let row = y_hat.row(i);
            let best = row
                .iter()
                .enumerate()
                .fold((usize::MAX, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
            best.0 == label as usize
        })
        .count();
    100.0 * correct as f64 / labels.len().max(1) as f64
}
