//! A pooled network across several workers: each worker hosts some blocks of it
//! ([`crate::pool::Plan`]); boundary values go worker to worker (in the browser over
//! `MessageChannel` ports in a ring, never through the page), and the page's [`PoolModel`] only
//! sends each worker the iteration and files the blocks' reports.
//!
//! Natively a [`Ring`] holds the hosts in-process and routes their boundary messages through the
//! same postcard bytes, for tests.

use super::{decode, encode, FromWorker, RemoteError, ToWorker, WorkerHost, WorkerLink};
use crate::data::Evaluation;
use crate::pcn::train::{IterationReport, Learning};
use crate::pcn::{Arch, Mat, Network};
use crate::pool::{assemble, Block, BlockDone, BlockMsg, BlockState, Out, Plan};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Which ring neighbour a boundary message goes to: the next worker (the block above) or the
/// previous one (the block below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// Worker `w + 1` (mod the pool's size).
    Next,
    /// Worker `w − 1`.
    Prev,
}

/// This worker's blocks of one pooled network.
#[derive(Debug)]
pub(super) struct Pooled {
    plan: Plan,
    worker: usize,
    blocks: BTreeMap<usize, Block<f32>>,
    /// Milliseconds each block has spent on the iteration it is in.
    busy: HashMap<usize, f64>,
    /// Blocks that may go on, in the order they became so.
    runnable: VecDeque<usize>,
}

impl Pooled {
    /// This worker's blocks of `arch` drawn from `seed`, as `plan` deals them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        arch: Arch,
        seed: u64,
        learning: Learning,
        lr: f64,
        batch: usize,
        plan: Plan,
        worker: usize,
        saved: Option<Vec<(usize, BlockState<f32>)>>,
    ) -> Result<Self, String> {
        if plan.blocks.first().map(|b| b.0) != Some(1)
            || plan.blocks.last().map(|b| b.1) != Some(arch.layers())
            || plan.blocks.windows(2).any(|w| w[1].0 != w[0].1 + 1)
        {
            return Err(format!("the plan {:?} does not cover layers 1 … {} in order", plan.blocks, arch.layers()));
        }
        if worker >= plan.workers {
            return Err(format!("worker {worker} is not one of the plan's {}", plan.workers));
        }
        let mine: Vec<(usize, BlockState<f32>)> = match saved {
            Some(states) => states,
            None => {
                let net = Network::init(arch, seed);
                plan.split(&net).into_iter().enumerate().filter(|(i, _)| i % plan.workers == worker).collect()
            }
        };
        let mut blocks = BTreeMap::new();
        for (i, state) in mine {
            if i >= plan.len() || i % plan.workers != worker {
                return Err(format!("block {i} is not worker {worker}'s in the plan {:?}", plan.blocks));
            }
            let adam = crate::pcn::learn::AdamConfig::default();
            blocks.insert(i, Block::new(i, arch, arch.scalings(), plan.blocks[i], learning, lr, adam, batch, state)?);
        }
        Ok(Pooled { plan, worker, blocks, busy: HashMap::new(), runnable: VecDeque::new() })
    }

    /// True while one of this worker's blocks is in an iteration (or has one queued).
    pub(super) fn busy(&self) -> bool {
        self.blocks.values().any(Block::busy)
    }

    /// Whether this worker holds the block with layer 1 / layer L.
    pub(super) fn holds_ends(&self) -> (bool, bool) {
        (self.blocks.contains_key(&0), self.blocks.contains_key(&(self.plan.len() - 1)))
    }

    /// Runs messages for this worker's blocks until none is left: a block's output to a block of
    /// this worker is handled here, one to another worker is returned for the ring, a finished
    /// block's report for the page.
    pub(super) fn run(
        &mut self,
        id: u32,
        first: Vec<(usize, BlockMsg<f32>)>,
        page: &mut Vec<FromWorker>,
        ring: &mut Vec<(Dir, ToWorker)>,
    ) {
        self.deliver(id, first, page);
        while self.pump(id, page, ring) {}
    }

    /// Hands messages to this worker's blocks without running them (see [`Pooled::pump`]).
    pub(super) fn deliver(&mut self, id: u32, msgs: Vec<(usize, BlockMsg<f32>)>, page: &mut Vec<FromWorker>) {
        for (i, msg) in msgs {
            match self.blocks.get_mut(&i) {
                Some(block) => {
                    block.accept(msg);
                    // A block given a value goes first: it can compute its edge layer and send
                    // what its other neighbour waits for; inner layers can wait.
                    self.runnable.retain(|&j| j != i);
                    self.runnable.push_front(i);
                }
                None => {
                    page.push(FromWorker::Error { id, message: format!("worker {} holds no block {i}", self.worker) })
                }
            }
        }
    }

    /// True when a block here may be able to go on (it was given a message, or it stopped to
    /// send something).
    pub(super) fn runnable(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// Runs this worker's blocks, the latest given a value first, until one has a value for another worker
    /// (in `ring`: the caller sends it at once, so the neighbour is not kept waiting while this
    /// worker computes on) or none can go on. `false` when nothing ran.
    pub(super) fn pump(&mut self, id: u32, page: &mut Vec<FromWorker>, ring: &mut Vec<(Dir, ToWorker)>) -> bool {
        let mut ran = false;
        while let Some(i) = self.runnable.pop_front() {
            let Some(block) = self.blocks.get_mut(&i) else { continue };
            let t0 = web_time::Instant::now();
            let outs = block.poll();
            *self.busy.entry(i).or_default() += t0.elapsed().as_secs_f64() * 1e3;
            ran = true;
            if outs.is_empty() {
                continue;
            }
            // It stopped to send: it may go on (after the blocks given values meanwhile).
            self.runnable.push_back(i);
            let mut remote = false;
            for out in outs {
                let (to, dir, m) = match out {
                    Out::Up(m) => (i + 1, Dir::Next, m),
                    Out::Down(m) => (i - 1, Dir::Prev, m),
                    Out::Done(done) => {
                        let ms = self.busy.remove(&i).unwrap_or(0.0);
                        page.push(FromWorker::BlockDone { id, ms, done });
                        continue;
                    }
                };
                if to % self.plan.workers == self.worker {
                    self.deliver(id, vec![(to, m)], page);
                } else {
                    ring.push((dir, ToWorker::Boundary { id, block: to, msg: m }));
                    remote = true;
                }
            }
            if remote {
                return true;
            }
        }
        ran
    }

    /// Each block's index, state and the first sample's activities.
    pub(super) fn states(&self, moments: bool) -> Vec<(usize, BlockState<f32>, Vec<Mat<f32>>)> {
        self.blocks
            .iter()
            .map(|(&i, b)| {
                let z = b.activities().iter().filter(|z| z.rows > 0).map(|z| z.range_rows(0, 1)).collect();
                let mut state = b.state();
                if !moments {
                    (state.m, state.v) = (Vec::new(), Vec::new());
                }
                (i, state, z)
            })
            .collect()
    }

    /// New rates in every block.
    pub(super) fn set_rates(&mut self, lr: f64, learning: Learning) {
        if let Learning::Pc { eta_z, steps } = learning {
            self.blocks.values_mut().for_each(|b| b.set_rates(lr, eta_z, steps));
        }
    }

    /// The step messages of one iteration for this worker's blocks: `x` to the block of layer 1,
    /// `y` to the block of layer L; with `align` every block compares its gradients with
    /// backprop's.
    pub(super) fn step_messages(
        &self,
        iteration: usize,
        mut x: Option<Mat<f32>>,
        mut y: Option<Mat<f32>>,
        align: bool,
    ) -> Vec<(usize, BlockMsg<f32>)> {
        let last = self.plan.len() - 1;
        self.blocks
            .keys()
            .map(|&i| {
                let x = if i == 0 { x.take() } else { None };
                let y = if i == last { y.take() } else { None };
                (i, BlockMsg::Step { iteration, x, y, align })
            })
            .collect()
    }
}

/// One block's state and its first-sample activities, as gathered from its worker.
type Gathered = (BlockState<f32>, Vec<Mat<f32>>);

/// A pooled network seen from the page: one set of blocks per worker.
#[derive(Debug)]
pub struct PoolModel {
    links: Vec<Arc<WorkerLink>>,
    id: u32,
    plan: Plan,
    arch: Arch,
    submitted: usize,
    completed: usize,
    /// Per iteration in progress: the blocks' reports so far and each worker's busy milliseconds.
    partial: BTreeMap<usize, (Vec<Option<BlockDone>>, Vec<f64>)>,
    ready: Vec<(usize, IterationReport)>,
    /// Per worker: its blocks' busy milliseconds per iteration, latest last (at most 32).
    busy: Vec<VecDeque<f64>>,
}

impl PoolModel {
    /// Builds `arch`'s blocks in the workers as `plan` deals them (worker `w` is `links[w]`).
    pub fn create(
        links: Vec<Arc<WorkerLink>>,
        arch: Arch,
        seed: u64,
        learning: Learning,
        lr: f64,
        batch: usize,
        plan: Plan,
    ) -> Result<Self, RemoteError> {
        Self::build(links, arch, seed, learning, lr, batch, plan, None)
    }

    /// A pooled model in the state of `cp` (after a lost worker): its weights, and Adam's
    /// moments and step count when it has them (else fresh moments from step `updates`).
    pub fn restore(
        links: Vec<Arc<WorkerLink>>,
        cp: &crate::gpu::Checkpoint,
        learning: Learning,
        lr: f64,
        batch: usize,
        plan: Plan,
    ) -> Result<Self, RemoteError> {
        let mut states = plan.split(&cp.net);
        for (s, &(lo, hi)) in states.iter_mut().zip(&plan.blocks) {
            if let Some((m, v)) = &cp.moments {
                (s.m, s.v) = (m[lo - 1..hi].to_vec(), v[lo - 1..hi].to_vec());
            }
            s.adam_steps = cp.updates as u64;
        }
        let arch = cp.net.arch;
        Self::build(links, arch, 0, learning, lr, batch, plan, Some(states))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        links: Vec<Arc<WorkerLink>>,
        arch: Arch,
        seed: u64,
        learning: Learning,
        lr: f64,
        batch: usize,
        plan: Plan,
        states: Option<Vec<BlockState<f32>>>,
    ) -> Result<Self, RemoteError> {
        if links.len() < plan.workers {
            return Err(RemoteError::Refused(format!(
                "the plan deals its blocks to {} workers, the pool has {}",
                plan.workers,
                links.len()
            )));
        }
        let links: Vec<_> = links.into_iter().take(plan.workers).collect();
        let id = links[0].next_id();
        for (worker, link) in links.iter().enumerate() {
            let states = states.as_ref().map(|all| {
                all.iter()
                    .enumerate()
                    .filter(|(i, _)| i % plan.workers == worker)
                    .map(|(i, s)| (i, s.clone()))
                    .collect()
            });
            let plan = plan.clone();
            link.send(ToWorker::CreateBlocks { id, arch, seed, learning, lr, batch, plan, worker, states })?;
        }
        let busy = vec![VecDeque::new(); links.len()];
        Ok(PoolModel {
            links,
            id,
            plan,
            arch,
            submitted: 0,
            completed: 0,
            partial: BTreeMap::new(),
            ready: Vec::new(),
            busy,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Files every answer that has arrived; `want` picks out a request's answers (one per worker).
    fn collect<R>(&mut self, mut want: impl FnMut(usize, FromWorker) -> Option<R>) -> Result<Vec<R>, RemoteError> {
        let mut got = Vec::new();
        for (w, link) in self.links.iter().enumerate() {
            for msg in link.take(self.id) {
                match msg {
                    FromWorker::Created { .. } => {}
                    FromWorker::BlockDone { ms, done, .. } => {
                        let it = done.iteration;
                        let (blocks, workers) = (self.plan.len(), self.links.len());
                        let (slot, busy) =
                            self.partial.entry(it).or_insert_with(|| (vec![None; blocks], vec![0.0; workers]));
                        busy[w] += ms;
                        let at = done.block;
                        slot[at] = Some(done);
                        if slot.iter().all(Option::is_some) {
                            let Some((dones, busy)) = self.partial.remove(&it) else { continue };
                            for (q, ms) in self.busy.iter_mut().zip(busy) {
                                if q.len() == super::RECENT {
                                    q.pop_front();
                                }
                                q.push_back(ms);
                            }
                            let dones: Vec<BlockDone> = dones.into_iter().flatten().collect();
                            self.ready.push((it, assemble(&dones)));
                            self.completed += 1;
                        }
                    }
                    FromWorker::Error { message, .. } => {
                        return Err(RemoteError::Refused(format!("worker {w}: {message}")))
                    }
                    other => got.extend(want(w, other)),
                }
            }
            if let Some(why) = link.dead() {
                return Err(RemoteError::Dead(format!("worker {w} of the pool: {why}")));
            }
        }
        Ok(got)
    }

    /// Asks for one iteration on the training images at `indices` (with `align`, every block
    /// compares its PC gradients with backprop's and the report has the whole comparison).
    pub fn submit_step(&mut self, iteration: usize, indices: &[usize], align: bool) -> Result<(), RemoteError> {
        let indices: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        for link in &self.links {
            link.send(ToWorker::BlockStep { id: self.id, iteration, indices: indices.clone(), align })?;
        }
        self.submitted += 1;
        Ok(())
    }

    /// The reports whose every block has answered, oldest first.
    pub fn ready_reports(&mut self) -> Result<Vec<(usize, IterationReport)>, RemoteError> {
        self.collect(|_, _| None::<()>)?;
        self.ready.sort_by_key(|r| r.0);
        Ok(std::mem::take(&mut self.ready))
    }

    /// Iterations asked for whose reports are not complete.
    pub fn in_flight(&self) -> usize {
        self.submitted - self.completed
    }

    /// Every report still to come.
    pub async fn flush(&mut self) -> Result<Vec<(usize, IterationReport)>, RemoteError> {
        loop {
            self.collect(|_, _| None::<()>)?;
            if self.in_flight() == 0 {
                self.ready.sort_by_key(|r| r.0);
                return Ok(std::mem::take(&mut self.ready));
            }
            super::pause().await;
        }
    }

    /// Each worker's median busy milliseconds per iteration over the latest iterations.
    pub fn worker_ms(&self) -> Vec<Option<f64>> {
        self.busy
            .iter()
            .map(|b| {
                let mut v: Vec<f64> = b.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            })
            .collect()
    }

    /// Every block's state and first-sample activities, in plan order.
    async fn states(&mut self, moments: bool) -> Result<Vec<Gathered>, RemoteError> {
        for link in &self.links {
            link.send(ToWorker::BlockStates { id: self.id, moments })?;
        }
        let mut by_block: Vec<Option<Gathered>> = vec![None; self.plan.len()];
        let mut answered = vec![false; self.links.len()];
        while answered.iter().any(|a| !a) {
            let got = self.collect(|w, m| match m {
                FromWorker::BlockStates { states, .. } => Some((w, states)),
                _ => None,
            })?;
            for (w, states) in got {
                answered[w] = true;
                for (i, s, z) in states {
                    if let Some(slot) = by_block.get_mut(i) {
                        *slot = Some((s, z));
                    }
                }
            }
            if answered.iter().any(|a| !a) {
                super::pause().await;
            }
        }
        by_block
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| RemoteError::Refused(format!("no worker holds block {i}"))))
            .collect()
    }

    /// The whole network and the latest batch's first-sample activities, gathered from the blocks.
    pub async fn snapshot(&mut self) -> Result<(Network<f32>, Vec<Mat<f32>>), RemoteError> {
        let states = self.states(false).await?;
        let z = states.iter().flat_map(|(_, z)| z.iter().cloned()).collect();
        let weights = states.into_iter().flat_map(|(s, _)| s.weights).collect();
        let net = Network { arch: self.arch, scalings: self.arch.scalings(), weights };
        Ok((net, z))
    }

    /// The training state (every block's weights, Adam's moments and step count), gathered.
    pub async fn checkpoint(&mut self) -> Result<crate::gpu::Checkpoint, RemoteError> {
        let states: Vec<BlockState<f32>> = self.states(true).await?.into_iter().map(|(s, _)| s).collect();
        let updates = states.first().map_or(0, |s| s.adam_steps as usize);
        let cat =
            |f: fn(&BlockState<f32>) -> &Vec<Mat<f32>>| states.iter().flat_map(|s| f(s).iter().cloned()).collect();
        let (weights, m, v) = (cat(|s| &s.weights), cat(|s| &s.m), cat(|s| &s.v));
        let net = Network { arch: self.arch, scalings: self.arch.scalings(), weights };
        Ok(crate::gpu::Checkpoint { net, moments: Some((m, v)), updates })
    }

    /// A test evaluation: the gathered network, evaluated in the first worker.
    pub async fn evaluate(&mut self) -> Result<Evaluation, RemoteError> {
        let (net, _) = self.snapshot().await?;
        self.links[0].send(ToWorker::EvaluateNet { id: self.id, net: Box::new(net) })?;
        loop {
            let got = self.collect(|_, m| match m {
                FromWorker::Evaluated { evaluation, .. } => Some(evaluation),
                _ => None,
            })?;
            if let Some(e) = got.into_iter().next() {
                return Ok(e);
            }
            super::pause().await;
        }
    }

    /// New rates from the next iteration on, in every block.
    pub fn set_rates(&mut self, lr: f64, learning: Learning) -> Result<(), RemoteError> {
        self.links.iter().try_for_each(|l| l.send(ToWorker::SetRates { id: self.id, lr, learning }))
    }
}

impl Drop for PoolModel {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = link.send(ToWorker::Drop { id: self.id });
            link.take(self.id);
        }
    }
}

/// Hosts in this process, each a worker of a pool, their boundary messages routed round the ring
/// as postcard bytes (native tests of the pool's protocol).
#[derive(Default)]
pub struct Ring {
    hosts: Vec<Option<WorkerHost>>,
    inboxes: Vec<VecDeque<FromWorker>>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring of {}", self.hosts.len())
    }
}

impl Ring {
    /// `hosts` in a ring, and a link to each. The hosts stream, as the browser's workers do: a
    /// block's boundary value goes round the ring as soon as it has it, and the host runs on.
    pub fn links(mut hosts: Vec<WorkerHost>) -> Vec<Arc<WorkerLink>> {
        hosts.iter_mut().for_each(|h| h.set_streaming(true));
        let n = hosts.len();
        let ring = Arc::new(Mutex::new(Ring {
            hosts: hosts.into_iter().map(Some).collect(),
            inboxes: vec![VecDeque::new(); n],
        }));
        (0..n).map(|w| Arc::new(WorkerLink::ring(ring.clone(), w))).collect()
    }

    fn lock(ring: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
        ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers `bytes` (a [`ToWorker`]) to host `w` and everything it sends round the ring.
    pub(super) fn deliver(ring: &Mutex<Ring>, w: usize, bytes: Vec<u8>) -> Result<(), RemoteError> {
        let mut r = Self::lock(ring);
        let n = r.hosts.len();
        let mut queue = VecDeque::from([(w, bytes)]);
        while let Some((w, bytes)) = queue.pop_front() {
            let msg: ToWorker = decode(&bytes)?;
            // A lost worker's messages go nowhere (its link says it is dead).
            let Some(host) = r.hosts[w].as_mut() else { continue };
            let mut answers = host.handle(msg);
            let mut boundary = host.take_boundary();
            while host.runnable() {
                answers.extend(host.pump());
                boundary.extend(host.take_boundary());
            }
            for a in answers {
                let back = decode(&encode(&a)?)?;
                r.inboxes[w].push_back(back);
            }
            for (dir, m) in boundary {
                let to = match dir {
                    Dir::Next => (w + 1) % n,
                    Dir::Prev => (w + n - 1) % n,
                };
                queue.push_back((to, encode(&m)?));
            }
        }
        Ok(())
    }

    /// Worker `w`'s answers so far.
    pub(super) fn take_answers(ring: &Mutex<Ring>, w: usize) -> Vec<FromWorker> {
        Self::lock(ring).inboxes[w].drain(..).collect()
    }

    /// Loses worker `w` (tests): its host is gone and its link reports it dead.
    pub fn lose(links: &[Arc<WorkerLink>], w: usize) {
        if let Some(ring) = links[w].ring_of() {
            Self::lock(&ring).hosts[w] = None;
        }
        links[w].kill(format!("worker {w} was lost"));
    }
}
