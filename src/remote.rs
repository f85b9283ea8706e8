//! The CPU backend at arm's length: models that live in another thread of control (the page's
//! Web Worker) and are driven by typed messages, so the thread that draws never computes.
//!
//! [`ToWorker`] and [`FromWorker`] are serde types, sent as postcard bytes (compact, and `NaN`
//! and `±∞` survive the trip, which JSON's do not). [`WorkerHost`] is the other side: it owns
//! MNIST and the models and answers each message; the browser worker wraps it (`web`), and
//! natively a [`WorkerLink::loopback`] runs it in-process, through the same bytes, for tests.
//! [`RemoteModel`] is one model seen from the session: pipelined like the GPU's, its reports
//! arrive after the step that asked for them.

use crate::data::Evaluation;
use crate::data::Mnist;
use crate::pcn::forward::predict;
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning, Model};
use crate::pcn::{Arch, Mat, Network};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// What the page asks of the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Draw a network from the seed and keep a model of it under `id`.
    Create {
        /// The model's number, chosen by the page.
        id: u32,
        /// Shapes and parameterisation.
        arch: Arch,
        /// The initialisation seed.
        seed: u64,
        /// PC or BP, with η_z and `T`.
        learning: Learning,
        /// η_w (Adam).
        lr: f64,
    },
    /// One training iteration on the training images at these indices.
    Step {
        /// The model.
        id: u32,
        /// The iteration (from 1), echoed in the report.
        iteration: usize,
        /// Indices into the training split.
        indices: Vec<u32>,
        /// Compare PC's gradients with backprop's in this iteration.
        #[serde(default)]
        align: bool,
    },
    /// New rates from the next iteration on (weights and Adam's moments kept).
    SetRates {
        /// The model.
        id: u32,
        /// η_w.
        lr: f64,
        /// PC or BP, with η_z and `T`.
        learning: Learning,
    },
    /// Evaluate on all test images.
    Evaluate {
        /// The model.
        id: u32,
    },
    /// The weights and the first sample's activities (for κ).
    Snapshot {
        /// The model.
        id: u32,
    },
    /// Forget the model.
    Drop {
        /// The model.
        id: u32,
    },
}

/// What the worker answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// MNIST is loaded: the worker takes work.
    Ready {
        /// Training images.
        train: usize,
        /// Test images.
        test: usize,
    },
    /// A model was built.
    Created {
        /// The model.
        id: u32,
    },
    /// One iteration's report.
    Report {
        /// The model.
        id: u32,
        /// The iteration it describes.
        iteration: usize,
        /// Milliseconds the worker spent on it.
        ms: f64,
        /// What it measured.
        report: IterationReport,
    },
    /// A test evaluation: accuracy, confusion matrix, the strip's guesses.
    Evaluated {
        /// The model.
        id: u32,
        /// What it measured.
        evaluation: Evaluation,
    },
    /// The weights and the first sample's activities after the latest iteration.
    Snapshot {
        /// The model.
        id: u32,
        /// The network.
        net: Box<Network<f32>>,
        /// `z_1 … z_H` of the batch's first sample (empty before the first iteration).
        z: Vec<Mat<f32>>,
    },
    /// A request for this model failed.
    Error {
        /// The model.
        id: u32,
        /// What went wrong.
        message: String,
    },
    /// The worker itself failed (MNIST not loaded, a panic): nothing more will come.
    Fatal {
        /// What went wrong.
        message: String,
    },
}

impl FromWorker {
    /// The model a message is about (`None` for the worker's own messages).
    pub fn model(&self) -> Option<u32> {
        match self {
            FromWorker::Created { id }
            | FromWorker::Report { id, .. }
            | FromWorker::Evaluated { id, .. }
            | FromWorker::Snapshot { id, .. }
            | FromWorker::Error { id, .. } => Some(*id),
            FromWorker::Ready { .. } | FromWorker::Fatal { .. } => None,
        }
    }
}

/// A message that could not be encoded or decoded.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("a worker message could not be {what}: {why}")]
pub struct CodecError {
    what: &'static str,
    why: String,
}

/// A message as bytes.
pub fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(msg).map_err(|e| CodecError { what: "encoded", why: e.to_string() })
}

/// Bytes as a message.
pub fn decode<'a, M: Deserialize<'a>>(bytes: &'a [u8]) -> Result<M, CodecError> {
    postcard::from_bytes(bytes).map_err(|e| CodecError { what: "decoded", why: e.to_string() })
}

/// The most weights the worker's models may hold together: 64 M, about 1 GiB with their
/// gradients and Adam's two moments (a wasm32 worker has at most 4 GiB).
pub const MAX_WEIGHTS: usize = 1 << 26;

/// The worker's side: MNIST, the models, and an answer to every message.
#[derive(Default)]
pub struct WorkerHost {
    data: Option<Arc<Mnist>>,
    test_x: Option<Mat<f32>>,
    models: HashMap<u32, Model<f32>>,
}

impl WorkerHost {
    /// A host with its data (the test images are normalised at the first evaluation).
    pub fn new(data: Arc<Mnist>) -> Self {
        WorkerHost { data: Some(data), test_x: None, models: HashMap::new() }
    }

    /// Models alive (each `Create` adds one, each `Drop` removes one).
    pub fn models(&self) -> usize {
        self.models.len()
    }

    /// Answers one message.
    pub fn handle(&mut self, msg: ToWorker) -> Vec<FromWorker> {
        let missing = |id: u32| FromWorker::Error { id, message: format!("there is no model {id} in the worker") };
        match msg {
            ToWorker::Create { id, arch, seed, learning, lr } => {
                let weights = arch.parameter_count();
                let held: usize =
                    self.models.iter().filter(|(k, _)| **k != id).map(|(_, m)| m.net.arch.parameter_count()).sum();
                if arch.hidden == 0 || held + weights > MAX_WEIGHTS {
                    let message = format!(
                        "H={}, N={} has {:.1} M weights and the worker already holds {:.1} M; the CPU worker holds at most {} M (about 1 GB with Adam's state): choose a smaller width or depth",
                        arch.hidden,
                        arch.width,
                        weights as f64 / 1e6,
                        held as f64 / 1e6,
                        MAX_WEIGHTS >> 20
                    );
                    return vec![FromWorker::Error { id, message }];
                }
                let net = Network::init(arch, seed);
                self.models.insert(id, Model::new(net, learning, lr, AdamConfig::default()));
                vec![FromWorker::Created { id }]
            }
            ToWorker::Step { id, iteration, indices, align } => {
                let Some(data) = self.data.clone() else {
                    return vec![FromWorker::Error { id, message: "the worker has no training data".into() }];
                };
                let Some(model) = self.models.get_mut(&id) else { return vec![missing(id)] };
                let len = data.train.len();
                let idx: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
                if let Some(bad) = idx.iter().find(|&&i| i >= len) {
                    return vec![FromWorker::Error {
                        id,
                        message: format!("training index {bad} is out of range (0 … {})", len - 1),
                    }];
                }
                let (x, y) = data.train.batch::<f32>(&idx);
                let t0 = web_time::Instant::now();
                let report = model.train_step_aligned(&x, &y, align);
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                vec![FromWorker::Report { id, iteration, ms, report }]
            }
            ToWorker::SetRates { id, lr, learning } => match self.models.get_mut(&id) {
                Some(m) => {
                    m.adam.lr = lr;
                    m.learning = learning;
                    Vec::new()
                }
                None => vec![missing(id)],
            },
            ToWorker::Evaluate { id } => {
                let Some(data) = self.data.clone() else {
                    return vec![FromWorker::Error { id, message: "the worker has no test data".into() }];
                };
                let Some(model) = self.models.get(&id) else { return vec![missing(id)] };
                let x = self.test_x.get_or_insert_with(|| data.test_inputs());
                let evaluation = Evaluation::of(&predict(&model.net, x), &data.test.labels);
                vec![FromWorker::Evaluated { id, evaluation }]
            }
            ToWorker::Snapshot { id } => match self.models.get(&id) {
                Some(m) => {
                    let z = m.z.iter().filter(|z| z.rows > 0).map(|z| z.range_rows(0, 1)).collect();
                    vec![FromWorker::Snapshot { id, net: Box::new(m.net.clone()), z }]
                }
                None => vec![missing(id)],
            },
            ToWorker::Drop { id } => {
                self.models.remove(&id);
                Vec::new()
            }
        }
    }
}

/// Where a link's messages go.
enum Outbox {
    /// In-process: the host answers at once (native tests, and the same bytes as the browser).
    Host(Box<WorkerHost>),
    /// A posting function (the page's Web Worker).
    Post(Box<dyn Fn(Vec<u8>) -> Result<(), String> + Send>),
}

struct LinkState {
    out: Outbox,
    inbox: VecDeque<FromWorker>,
    dead: Option<String>,
    ready: Option<(usize, usize)>,
    next_id: u32,
}

/// The page's end of the worker: sends requests, collects answers by model.
pub struct WorkerLink {
    state: Mutex<LinkState>,
}

impl std::fmt::Debug for WorkerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerLink")
    }
}

impl WorkerLink {
    /// A link whose messages are posted by `post` (answers come back through [`WorkerLink::deliver`]).
    pub fn posting(post: impl Fn(Vec<u8>) -> Result<(), String> + Send + 'static) -> Self {
        Self::with(Outbox::Post(Box::new(post)))
    }

    /// A link to a host in this thread: every message is encoded, decoded and answered at once.
    pub fn loopback(host: WorkerHost) -> Self {
        Self::with(Outbox::Host(Box::new(host)))
    }

    fn with(out: Outbox) -> Self {
        WorkerLink { state: Mutex::new(LinkState { out, inbox: VecDeque::new(), dead: None, ready: None, next_id: 1 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh model number.
    pub fn next_id(&self) -> u32 {
        let mut s = self.lock();
        s.next_id += 1;
        s.next_id - 1
    }

    /// Sends a request; an error when the worker has failed or the message cannot be sent.
    pub fn send(&self, msg: ToWorker) -> Result<(), RemoteError> {
        let mut s = self.lock();
        if let Some(why) = &s.dead {
            return Err(RemoteError::Dead(why.clone()));
        }
        let bytes = encode(&msg)?;
        match &mut s.out {
            Outbox::Host(host) => {
                let answers = host.handle(decode(&bytes)?);
                for a in answers {
                    let back = decode(&encode(&a)?)?;
                    s.inbox.push_back(back);
                }
                Ok(())
            }
            Outbox::Post(post) => post(bytes).map_err(RemoteError::Dead),
        }
    }

    /// An answer from the worker, as bytes.
    pub fn deliver(&self, bytes: &[u8]) {
        let mut s = self.lock();
        match decode::<FromWorker>(bytes) {
            Ok(FromWorker::Fatal { message }) => s.dead = Some(message),
            Ok(FromWorker::Ready { train, test }) => s.ready = Some((train, test)),
            Ok(msg) => s.inbox.push_back(msg),
            Err(e) => s.dead = Some(e.to_string()),
        }
    }

    /// The worker failed: every pending and later request fails with `why`.
    pub fn kill(&self, why: String) {
        self.lock().dead.get_or_insert(why);
    }

    /// The worker's training and test images, once it has loaded MNIST.
    pub fn ready(&self) -> Option<(usize, usize)> {
        self.lock().ready
    }

    /// Why the worker stopped, if it has.
    pub fn dead(&self) -> Option<String> {
        self.lock().dead.clone()
    }

    /// Removes and returns every answer about model `id`.
    fn take(&self, id: u32) -> Vec<FromWorker> {
        let mut s = self.lock();
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = s.inbox.drain(..).partition(|m| m.model() == Some(id));
        s.inbox = rest;
        mine.into()
    }

    /// Answers waiting in the inbox, for any model.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().inbox.len()
    }

    /// Models alive in an in-process host (`None` for a browser worker).
    pub fn host_models(&self) -> Option<usize> {
        match &self.lock().out {
            Outbox::Host(h) => Some(h.models()),
            Outbox::Post(_) => None,
        }
    }
}

/// A remote model failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RemoteError {
    /// The worker stopped, or could not be reached.
    #[error("the CPU worker stopped: {0}")]
    Dead(String),
    /// The worker answered a request with an error.
    #[error("the CPU worker refused: {0}")]
    Refused(String),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Waits a few milliseconds (in the browser; natively answers are already there).
async fn pause() {
    #[cfg(target_arch = "wasm32")]
    {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
                .ok()
                .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
            if let Some(f) = set_timeout {
                let _ = f.call2(&wasm_bindgen::JsValue::NULL, &resolve, &4.into());
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}

/// Iterations over which [`RemoteModel::median_ms`] is taken.
pub const RECENT: usize = 32;

/// One model in the worker, seen from the session.
#[derive(Debug)]
pub struct RemoteModel {
    link: Arc<WorkerLink>,
    id: u32,
    submitted: usize,
    completed: usize,
    ready: Vec<(usize, IterationReport)>,
    recent_ms: VecDeque<f64>,
}

impl RemoteModel {
    /// Builds a model in the worker (its answer is awaited by the first request that needs it).
    pub fn create(
        link: Arc<WorkerLink>,
        arch: Arch,
        seed: u64,
        learning: Learning,
        lr: f64,
    ) -> Result<Self, RemoteError> {
        let id = link.next_id();
        link.send(ToWorker::Create { id, arch, seed, learning, lr })?;
        Ok(RemoteModel { link, id, submitted: 0, completed: 0, ready: Vec::new(), recent_ms: VecDeque::new() })
    }

    /// The model's number in the worker.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Files the answers that have arrived; `want` picks out a request's answer.
    fn collect<R>(&mut self, mut want: impl FnMut(FromWorker) -> Option<R>) -> Result<Option<R>, RemoteError> {
        let mut got = None;
        for msg in self.link.take(self.id) {
            match msg {
                FromWorker::Created { .. } => {}
                FromWorker::Report { iteration, ms, report, .. } => {
                    self.completed += 1;
                    if self.recent_ms.len() == RECENT {
                        self.recent_ms.pop_front();
                    }
                    self.recent_ms.push_back(ms);
                    self.ready.push((iteration, report));
                }
                FromWorker::Error { message, .. } => return Err(RemoteError::Refused(message)),
                other => {
                    if got.is_none() {
                        got = want(other);
                    }
                }
            }
        }
        match (got, self.link.dead()) {
            (None, Some(why)) => Err(RemoteError::Dead(why)),
            (got, _) => Ok(got),
        }
    }

    /// Asks for one iteration on the training images at `indices` (with `align`, comparing PC's
    /// gradients with backprop's).
    pub fn submit_step(&mut self, iteration: usize, indices: &[usize], align: bool) -> Result<(), RemoteError> {
        let indices = indices.iter().map(|&i| i as u32).collect();
        self.link.send(ToWorker::Step { id: self.id, iteration, indices, align })?;
        self.submitted += 1;
        Ok(())
    }

    /// The reports that have arrived, oldest first.
    pub fn ready_reports(&mut self) -> Result<Vec<(usize, IterationReport)>, RemoteError> {
        self.collect(|_| None::<()>)?;
        Ok(std::mem::take(&mut self.ready))
    }

    /// The median of the worker's milliseconds per iteration over the latest [`RECENT`]
    /// iterations (`None` before the first).
    pub fn median_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.recent_ms.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// Iterations asked for whose reports have not arrived.
    pub fn in_flight(&self) -> usize {
        self.submitted - self.completed
    }

    /// Every report still to come.
    pub async fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, RemoteError> {
        loop {
            self.collect(|_| None::<()>)?;
            if self.in_flight() == 0 {
                return Ok(std::mem::take(&mut self.ready));
            }
            pause().await;
        }
    }

    async fn ask<R>(&mut self, msg: ToWorker, mut want: impl FnMut(FromWorker) -> Option<R>) -> Result<R, RemoteError> {
        self.link.send(msg)?;
        loop {
            if let Some(r) = self.collect(&mut want)? {
                return Ok(r);
            }
            pause().await;
        }
    }

    /// A test evaluation, computed in the worker.
    pub async fn evaluate(&mut self) -> Result<Evaluation, RemoteError> {
        self.ask(ToWorker::Evaluate { id: self.id }, |m| match m {
            FromWorker::Evaluated { evaluation, .. } => Some(evaluation),
            _ => None,
        })
        .await
    }

    /// The weights and the latest batch's first-sample activities.
    pub async fn snapshot(&mut self) -> Result<(Network<f32>, Vec<Mat<f32>>), RemoteError> {
        self.ask(ToWorker::Snapshot { id: self.id }, |m| match m {
            FromWorker::Snapshot { net, z, .. } => Some((*net, z)),
            _ => None,
        })
        .await
    }

    /// New rates from the next iteration on.
    pub fn set_rates(&mut self, lr: f64, learning: Learning) -> Result<(), RemoteError> {
        self.link.send(ToWorker::SetRates { id: self.id, lr, learning })
    }
}

impl Drop for RemoteModel {
    fn drop(&mut self) {
        // A dead worker has nothing to free.
        let _ = self.link.send(ToWorker::Drop { id: self.id });
        self.link.take(self.id);
    }
}

#[cfg(target_arch = "wasm32")]
pub mod web;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_survive_the_trip() {
        let report = IterationReport {
            loss: f64::NAN,
            energies_post: vec![1.0, f64::INFINITY, f64::NEG_INFINITY],
            finite: false,
            ..Default::default()
        };
        let msg = FromWorker::Report { id: 3, iteration: 7, ms: 1.5, report };
        let back: FromWorker = decode(&encode(&msg).unwrap()).unwrap();
        let FromWorker::Report { report, .. } = back else { panic!("not a report: {back:?}") };
        assert!(report.loss.is_nan());
        assert_eq!(report.energies_post[1], f64::INFINITY);
        assert_eq!(report.energies_post[2], f64::NEG_INFINITY);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<ToWorker>(&[255, 255, 255]).is_err());
        let link = WorkerLink::posting(|_| Ok(()));
        link.deliver(&[200, 1, 2]);
        assert!(link.dead().unwrap().contains("decoded"), "{:?}", link.dead());
        assert_eq!(link.pending(), 0);
    }
}
