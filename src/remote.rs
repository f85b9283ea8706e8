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
use crate::pcn::learn::{Adam, AdamConfig};
use crate::pcn::train::{IterationReport, Learning, Model};
use crate::pcn::{Arch, Mat, Network};
use crate::pool::{BlockDone, BlockMsg, BlockState, Plan};
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
    /// Forget the model (a pooled one's blocks too).
    Drop {
        /// The model.
        id: u32,
    },
    /// Build this worker's blocks of a pooled network, the network drawn from the seed.
    CreateBlocks {
        /// The model.
        id: u32,
        /// Shapes and parameterisation.
        arch: Arch,
        /// The initialisation seed.
        seed: u64,
        /// PC, with η_z and `T`.
        learning: Learning,
        /// η_w (Adam).
        lr: f64,
        /// The batch size.
        batch: usize,
        /// The blocks and how they are dealt to the workers.
        plan: Plan,
        /// This worker's number in the pool.
        worker: usize,
        /// Its blocks' saved states (a checkpoint), or `None` to draw them from the seed.
        states: Option<Vec<(usize, BlockState<f32>)>>,
    },
    /// One iteration of a pooled network: the batch for this worker's blocks.
    BlockStep {
        /// The model.
        id: u32,
        /// The iteration (from 1).
        iteration: usize,
        /// Indices into the training split.
        indices: Vec<u32>,
        /// Compare PC's gradients with backprop's in this iteration.
        #[serde(default)]
        align: bool,
    },
    /// A boundary value for one of this worker's blocks, from a neighbouring block on another
    /// worker (worker to worker, not through the page).
    Boundary {
        /// The model.
        id: u32,
        /// The block it is for.
        block: usize,
        /// The value.
        msg: BlockMsg<f32>,
    },
    /// The states of this worker's blocks.
    BlockStates {
        /// The model.
        id: u32,
        /// With Adam's moments (a checkpoint); without, only the weights (an evaluation, a
        /// snapshot: a third of the bytes).
        moments: bool,
    },
    /// Evaluate a whole network (a pooled model's, gathered) on the test images.
    EvaluateNet {
        /// The model.
        id: u32,
        /// Its weights.
        net: Box<Network<f32>>,
    },
    /// The model's training state: weights, Adam's step count and (with `moments`) its moments.
    Checkpoint {
        /// The model.
        id: u32,
        /// With Adam's moments.
        moments: bool,
    },
    /// Keep a model under `id` resumed from a checkpoint (after a pool lost a worker).
    Restore {
        /// The model's number, chosen by the page.
        id: u32,
        /// The weights.
        net: Box<Network<f32>>,
        /// Adam's moments, or `None` to start them at zero.
        moments: Option<crate::gpu::Moments>,
        /// Adam updates applied so far.
        updates: u64,
        /// PC or BP, with η_z and `T`.
        learning: Learning,
        /// η_w (Adam).
        lr: f64,
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
    /// One block of a pooled model finished an iteration.
    BlockDone {
        /// The model.
        id: u32,
        /// Milliseconds the block was busy in it.
        ms: f64,
        /// Its energies, activation RMS and weight changes.
        done: BlockDone,
    },
    /// This worker's blocks of a pooled model: index, weights and Adam state, and the first
    /// sample's activities.
    BlockStates {
        /// The model.
        id: u32,
        /// One entry per block.
        states: Vec<(usize, BlockState<f32>, Vec<Mat<f32>>)>,
    },
    /// A model's training state (the answer to [`ToWorker::Checkpoint`]).
    Checkpoint {
        /// The model.
        id: u32,
        /// The weights.
        net: Box<Network<f32>>,
        /// Adam's moments, when asked for.
        moments: Option<crate::gpu::Moments>,
        /// Adam updates applied.
        updates: u64,
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
            | FromWorker::Error { id, .. }
            | FromWorker::BlockDone { id, .. }
            | FromWorker::BlockStates { id, .. }
            | FromWorker::Checkpoint { id, .. } => Some(*id),
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
    pooled: HashMap<u32, pool::Pooled>,
    /// Boundary values that came for a pooled model before its `CreateBlocks` (a neighbour
    /// that is ahead), kept until it comes.
    early: HashMap<u32, Vec<(usize, crate::pool::BlockMsg<f32>)>>,
    /// Pooled models dropped here: late boundary values for them are ignored.
    dropped: std::collections::HashSet<u32>,
    /// Boundary messages for the ring neighbours, from the last messages handled.
    boundary: Vec<(pool::Dir, ToWorker)>,
    /// Whether pooled blocks stop at their first value for a neighbour (see
    /// [`WorkerHost::set_streaming`]).
    streaming: bool,
}

impl WorkerHost {
    /// A host with its data (the test images are normalised at the first evaluation).
    pub fn new(data: Arc<Mnist>) -> Self {
        WorkerHost { data: Some(data), ..WorkerHost::default() }
    }

    /// Models alive (each `Create` or `CreateBlocks` adds one, each `Drop` removes one).
    pub fn models(&self) -> usize {
        self.models.len() + self.pooled.len()
    }

    /// Whether a model of `arch` fits beside the others this worker holds (`id` replaced).
    fn fits(&self, id: u32, arch: &Arch) -> Result<(), String> {
        let weights = arch.parameter_count();
        let held: usize =
            self.models.iter().filter(|(k, _)| **k != id).map(|(_, m)| m.net.arch.parameter_count()).sum();
        if arch.hidden == 0 || held + weights > MAX_WEIGHTS {
            return Err(format!(
                "H={}, N={} has {:.1} M weights and the worker already holds {:.1} M; the CPU worker holds at most {} M (about 1 GB with Adam's state): choose a smaller width or depth",
                arch.hidden,
                arch.width,
                weights as f64 / 1e6,
                held as f64 / 1e6,
                MAX_WEIGHTS >> 20
            ));
        }
        Ok(())
    }

    /// True while a pooled model's block here is in an iteration: it waits for boundary values.
    pub fn pooled_busy(&self) -> bool {
        self.pooled.values().any(pool::Pooled::busy)
    }

    /// Forgets every pooled model (their pool was replaced: their neighbours are gone).
    pub fn drop_pooled(&mut self) {
        self.dropped.extend(self.pooled.keys().chain(self.early.keys()).copied());
        self.pooled.clear();
        self.early.clear();
        self.boundary.clear();
    }

    /// With `on`, a message for a pooled model runs its blocks only until one has a value for a
    /// neighbour (in [`WorkerHost::take_boundary`]); the caller sends it and goes on with
    /// [`WorkerHost::pump`] while [`WorkerHost::runnable`]. Without, every message runs the
    /// blocks as far as they can go.
    pub fn set_streaming(&mut self, on: bool) {
        self.streaming = on;
    }

    /// True when a pooled block here can go on without a new message (streaming).
    pub fn runnable(&self) -> bool {
        self.pooled.values().any(pool::Pooled::runnable)
    }

    /// Runs pooled blocks until one has a value for a neighbour or none can go on; the answers
    /// for the page.
    pub fn pump(&mut self) -> Vec<FromWorker> {
        let mut page = Vec::new();
        for (&id, p) in &mut self.pooled {
            p.pump(id, &mut page, &mut self.boundary);
            if !self.boundary.is_empty() {
                break;
            }
        }
        page
    }

    /// Gives `msgs` to pooled model `id`'s blocks and runs them (as far as they go, or streaming
    /// until their first value for a neighbour).
    fn run_pooled(&mut self, id: u32, msgs: Vec<(usize, crate::pool::BlockMsg<f32>)>, page: &mut Vec<FromWorker>) {
        let Some(p) = self.pooled.get_mut(&id) else { return };
        if self.streaming {
            p.deliver(id, msgs, page);
            p.pump(id, page, &mut self.boundary);
        } else {
            p.run(id, msgs, page, &mut self.boundary);
        }
    }

    /// The boundary messages for the ring neighbours that the messages handled so far produced.
    pub fn take_boundary(&mut self) -> Vec<(pool::Dir, ToWorker)> {
        std::mem::take(&mut self.boundary)
    }

    /// The messages about pooled models.
    fn handle_pooled(&mut self, msg: ToWorker) -> Vec<FromWorker> {
        let missing =
            |id: u32| FromWorker::Error { id, message: format!("there is no pooled model {id} in the worker") };
        let mut page = Vec::new();
        match msg {
            ToWorker::CreateBlocks { id, arch, seed, learning, lr, batch, plan, worker, states } => {
                let held: usize = self.models.values().map(|m| m.net.arch.parameter_count()).sum();
                let share = arch.parameter_count() / plan.workers.max(1);
                if arch.hidden == 0 || held + share > MAX_WEIGHTS {
                    let message = format!(
                        "H={}, N={}: this worker's share is {:.1} M weights; it holds at most {} M",
                        arch.hidden,
                        arch.width,
                        share as f64 / 1e6,
                        MAX_WEIGHTS >> 20
                    );
                    return vec![FromWorker::Error { id, message }];
                }
                match pool::Pooled::new(arch, seed, learning, lr, batch, plan, worker, states) {
                    Ok(p) => {
                        page.push(FromWorker::Created { id });
                        self.pooled.insert(id, p);
                        if let Some(early) = self.early.remove(&id) {
                            self.run_pooled(id, early, &mut page);
                        }
                    }
                    Err(message) => page.push(FromWorker::Error { id, message }),
                }
            }
            ToWorker::BlockStep { id, iteration, indices, align } => {
                let Some(data) = self.data.clone() else {
                    return vec![FromWorker::Error { id, message: "the worker has no training data".into() }];
                };
                let Some(p) = self.pooled.get_mut(&id) else { return vec![missing(id)] };
                let len = data.train.len();
                let idx: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
                if let Some(bad) = idx.iter().find(|&&i| i >= len) {
                    let message = format!("training index {bad} is out of range (0 … {})", len - 1);
                    return vec![FromWorker::Error { id, message }];
                }
                let (first, last) = p.holds_ends();
                let (x, y) =
                    if first || last { data.train.batch::<f32>(&idx) } else { (Mat::zeros(0, 0), Mat::zeros(0, 0)) };
                let msgs = p.step_messages(iteration, first.then_some(x), last.then_some(y), align);
                self.run_pooled(id, msgs, &mut page);
            }
            ToWorker::Boundary { id, block, msg } => match self.pooled.get(&id) {
                Some(_) => self.run_pooled(id, vec![(block, msg)], &mut page),
                None if self.dropped.contains(&id) => {}
                None => self.early.entry(id).or_default().push((block, msg)),
            },
            ToWorker::BlockStates { id, moments } => match self.pooled.get(&id) {
                Some(p) => page.push(FromWorker::BlockStates { id, states: p.states(moments) }),
                None => page.push(missing(id)),
            },
            ToWorker::EvaluateNet { id, net } => {
                let Some(data) = self.data.clone() else {
                    return vec![FromWorker::Error { id, message: "the worker has no test data".into() }];
                };
                let x = self.test_x.get_or_insert_with(|| data.test_inputs());
                let evaluation = Evaluation::of(&predict(&net, x), &data.test.labels);
                page.push(FromWorker::Evaluated { id, evaluation });
            }
            _ => unreachable!("handle_pooled takes the pooled models' messages"),
        }
        page
    }

    /// Answers one message.
    pub fn handle(&mut self, msg: ToWorker) -> Vec<FromWorker> {
        let missing = |id: u32| FromWorker::Error { id, message: format!("there is no model {id} in the worker") };
        match msg {
            ToWorker::CreateBlocks { .. }
            | ToWorker::BlockStep { .. }
            | ToWorker::Boundary { .. }
            | ToWorker::BlockStates { .. }
            | ToWorker::EvaluateNet { .. } => self.handle_pooled(msg),
            ToWorker::SetRates { id, lr, learning } if self.pooled.contains_key(&id) => {
                if let Some(p) = self.pooled.get_mut(&id) {
                    p.set_rates(lr, learning);
                }
                Vec::new()
            }
            ToWorker::Checkpoint { id, moments } => {
                let Some(model) = self.models.get(&id) else { return vec![missing(id)] };
                let moments = moments.then(|| {
                    let (m, v) = model.adam.moments();
                    (m.to_vec(), v.to_vec())
                });
                vec![FromWorker::Checkpoint {
                    id,
                    net: Box::new(model.net.clone()),
                    moments,
                    updates: model.adam.steps,
                }]
            }
            ToWorker::Restore { id, net, moments, updates, learning, lr } => {
                if let Err(message) = self.fits(id, &net.arch) {
                    return vec![FromWorker::Error { id, message }];
                }
                let mut model = Model::new(*net, learning, lr, AdamConfig::default());
                match moments {
                    Some((m, v)) => model.adam = Adam::resume(lr, AdamConfig::default(), updates, m, v),
                    None => model.adam.steps = updates,
                }
                self.models.insert(id, model);
                vec![FromWorker::Created { id }]
            }
            ToWorker::Create { id, arch, seed, learning, lr } => {
                if let Err(message) = self.fits(id, &arch) {
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
                if self.pooled.remove(&id).is_some() || self.early.remove(&id).is_some() {
                    self.dropped.insert(id);
                }
                Vec::new()
            }
        }
    }
}

/// Where a link's messages go.
enum Outbox {
    /// In-process: the host answers at once (native tests, and the same bytes as the browser).
    Host(Box<WorkerHost>),
    /// In-process, worker `w` of a ring of hosts (native tests of a pool).
    Ring(Arc<Mutex<pool::Ring>>, usize),
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

    /// Worker `w` of an in-process ring ([`pool::Ring::links`]).
    fn ring(ring: Arc<Mutex<pool::Ring>>, w: usize) -> Self {
        Self::with(Outbox::Ring(ring, w))
    }

    /// The ring this link is a worker of, if it is one.
    fn ring_of(&self) -> Option<Arc<Mutex<pool::Ring>>> {
        match &self.lock().out {
            Outbox::Ring(r, _) => Some(r.clone()),
            _ => None,
        }
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
            Outbox::Ring(ring, w) => {
                let (ring, w) = (ring.clone(), *w);
                drop(s);
                pool::Ring::deliver(&ring, w, bytes)
            }
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
        if let Outbox::Ring(ring, w) = &s.out {
            let answers = pool::Ring::take_answers(ring, *w);
            s.inbox.extend(answers);
        }
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
            Outbox::Post(_) | Outbox::Ring(..) => None,
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

    /// Builds a model in the worker from `cp` (weights, Adam's state where kept).
    pub fn restore(
        link: Arc<WorkerLink>,
        cp: &crate::gpu::Checkpoint,
        learning: Learning,
        lr: f64,
    ) -> Result<Self, RemoteError> {
        let id = link.next_id();
        let (net, moments, updates) = (Box::new(cp.net.clone()), cp.moments.clone(), cp.updates as u64);
        link.send(ToWorker::Restore { id, net, moments, updates, learning, lr })?;
        Ok(RemoteModel { link, id, submitted: 0, completed: 0, ready: Vec::new(), recent_ms: VecDeque::new() })
    }

    /// The training state: weights, Adam's moments and step count (as a pooled model's).
    pub async fn checkpoint(&mut self) -> Result<crate::gpu::Checkpoint, RemoteError> {
        self.ask(ToWorker::Checkpoint { id: self.id, moments: true }, |m| match m {
            FromWorker::Checkpoint { net, moments, updates, .. } => {
                Some(crate::gpu::Checkpoint { net: *net, moments, updates: updates as usize })
            }
            _ => None,
        })
        .await
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

pub mod pool;
pub mod shared;
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
