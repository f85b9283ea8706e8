//! The pool natively: one thread per worker of the plan, each running the blocks dealt to it (one
//! rayon thread inside, as a browser worker has one), every message between workers and to the
//! driver passed as postcard bytes over channels — the same bytes browser workers exchange — so
//! that the block decomposition is proven here, against the one-worker model, for any plan, and
//! timed (`pclab bench --pool`). A block's boundary value leaves as soon as the block has it, and
//! the worker runs on while its neighbour takes it up, as in the browser.

use super::{assemble, Block, BlockDone, BlockMsg, BlockState, Out, Plan};
use crate::pcn::learn::AdamConfig;
use crate::pcn::train::{IterationReport, Learning};
use crate::pcn::{Arch, Mat, Network, Scalings};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a worker's thread is told.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// A message for block `.0`.
    Block(usize, BlockMsg<f32>),
    State,
    Activities,
    Rates {
        lr: f64,
        eta_z: f64,
        steps: usize,
    },
    /// End the thread (as if its worker were lost).
    Stop,
}

/// What a worker's thread answers the driver.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// A block's report, and the worker's busy milliseconds on it.
    Done(BlockDone, f64),
    State(usize, BlockState<f32>),
    Activities(usize, Vec<Mat<f32>>),
}

/// A pool failure: a worker whose thread ended (a lost worker) or a message that did not decode.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PoolError {
    /// The worker's thread is gone.
    #[error("worker {0} of the pool was lost")]
    Lost(usize),
    /// Bytes that were not a message.
    #[error("a pool message did not decode: {0}")]
    Decode(String),
}

/// A PC network's blocks on threads, one thread per worker of the plan.
#[derive(Debug)]
pub struct ThreadPool {
    plan: Plan,
    arch: Arch,
    scalings: Scalings,
    inboxes: Vec<Sender<Vec<u8>>>,
    replies: Receiver<Vec<u8>>,
    threads: Vec<JoinHandle<()>>,
    /// Each worker's busy milliseconds in the last iteration.
    busy: Vec<f64>,
}

fn bytes<M: Serialize>(m: &M) -> Vec<u8> {
    postcard::to_allocvec(m).expect("pool messages serialise")
}

/// One worker's loop: its blocks, the messages they wait for, the blocks that can go on.
struct Worker {
    me: usize,
    workers: usize,
    blocks: BTreeMap<usize, Block<f32>>,
    runnable: VecDeque<usize>,
    busy: BTreeMap<usize, f64>,
    inboxes: Vec<Sender<Vec<u8>>>,
    reply: Sender<Vec<u8>>,
}

impl Worker {
    fn accept(&mut self, i: usize, msg: BlockMsg<f32>) -> Option<()> {
        self.blocks.get_mut(&i)?.accept(msg);
        // As in the page's workers: a block given a value first (its edge layer unblocks a neighbour).
        self.runnable.retain(|&j| j != i);
        self.runnable.push_front(i);
        Some(())
    }

    /// Runs blocks until one sends to another worker (then returns, so the inbox is read again)
    /// or none can go on.
    fn pump(&mut self) -> Option<()> {
        while let Some(i) = self.runnable.pop_front() {
            let t0 = std::time::Instant::now();
            let outs = self.blocks.get_mut(&i)?.poll();
            *self.busy.entry(i).or_default() += t0.elapsed().as_secs_f64() * 1e3;
            if outs.is_empty() {
                continue;
            }
            self.runnable.push_back(i);
            let mut remote = false;
            for out in outs {
                let (to, m) = match out {
                    Out::Up(m) => (i + 1, m),
                    Out::Down(m) => (i - 1, m),
                    Out::Done(d) => {
                        let ms = self.busy.remove(&i).unwrap_or(0.0);
                        self.reply.send(bytes(&Reply::Done(d, ms))).ok()?;
                        continue;
                    }
                };
                if to % self.workers == self.me {
                    self.accept(to, m)?;
                } else {
                    self.inboxes[to % self.workers].send(bytes(&Wire::Block(to, m))).ok()?;
                    remote = true;
                }
            }
            if remote {
                return Some(());
            }
        }
        Some(())
    }

    /// Takes one message; `None` to end the thread.
    fn take(&mut self, msg: &[u8]) -> Option<()> {
        match postcard::from_bytes(msg).ok()? {
            Wire::Block(i, m) => self.accept(i, m)?,
            Wire::State => {
                for (&i, b) in &self.blocks {
                    self.reply.send(bytes(&Reply::State(i, b.state()))).ok()?;
                }
            }
            Wire::Activities => {
                for (&i, b) in &self.blocks {
                    self.reply.send(bytes(&Reply::Activities(i, b.activities()))).ok()?;
                }
            }
            Wire::Rates { lr, eta_z, steps } => self.blocks.values_mut().for_each(|b| b.set_rates(lr, eta_z, steps)),
            Wire::Stop => return None,
        }
        Some(())
    }

    fn run(mut self, inbox: Receiver<Vec<u8>>) -> Option<()> {
        loop {
            // Everything that has come first, then one run of the blocks; wait only when idle.
            let msg =
                if self.runnable.is_empty() { inbox.recv().ok()? } else { inbox.try_recv().ok().unwrap_or_default() };
            if !msg.is_empty() {
                self.take(&msg)?;
                while let Ok(m) = inbox.try_recv() {
                    self.take(&m)?;
                }
            }
            self.pump()?;
        }
    }
}

impl ThreadPool {
    /// `net` split by `plan`, with a fresh Adam state, for batches of `batch`.
    pub fn new(
        net: &Network<f32>,
        plan: Plan,
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
        batch: usize,
    ) -> Result<Self, String> {
        let states = plan.split(net);
        Self::from_states(net.arch, net.scalings, plan, states, learning, lr, adam, batch)
    }

    /// A pool from the blocks' saved states (a checkpoint).
    #[allow(clippy::too_many_arguments)]
    pub fn from_states(
        arch: Arch,
        scalings: Scalings,
        plan: Plan,
        states: Vec<BlockState<f32>>,
        learning: Learning,
        lr: f64,
        adam: AdamConfig,
        batch: usize,
    ) -> Result<Self, String> {
        let workers = plan.workers.max(1);
        let mut dealt: Vec<BTreeMap<usize, Block<f32>>> = (0..workers).map(|_| BTreeMap::new()).collect();
        for (i, (&range, state)) in plan.blocks.iter().zip(states).enumerate() {
            dealt[i % workers].insert(i, Block::new(i, arch, scalings, range, learning, lr, adam, batch, state)?);
        }
        let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| channel::<Vec<u8>>()).unzip();
        let (reply_tx, replies) = channel();
        let mut threads = Vec::with_capacity(workers);
        for (me, (blocks, inbox)) in dealt.into_iter().zip(receivers).enumerate() {
            let worker = Worker {
                me,
                workers,
                blocks,
                runnable: VecDeque::new(),
                busy: BTreeMap::new(),
                inboxes: inboxes.clone(),
                reply: reply_tx.clone(),
            };
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| format!("cannot start the pool's worker {me}: {e}"))?;
            let spawned = std::thread::Builder::new().name(format!("pool worker {me}")).spawn(move || {
                one.install(|| worker.run(inbox));
            });
            threads.push(spawned.map_err(|e| format!("cannot start the pool's worker {me}: {e}"))?);
        }
        Ok(ThreadPool { plan, arch, scalings, inboxes, replies, threads, busy: vec![0.0; workers] })
    }

    /// Each worker's busy milliseconds in the last iteration (its blocks' own work, not its waits).
    pub fn busy_ms(&self) -> &[f64] {
        &self.busy
    }

    /// The plan the pool runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn send(&self, worker: usize, wire: &Wire) -> Result<(), PoolError> {
        self.inboxes[worker].send(bytes(wire)).map_err(|_| PoolError::Lost(worker))
    }

    fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// The next reply, or the first worker whose thread has ended.
    fn reply(&self) -> Result<Reply, PoolError> {
        loop {
            match self.replies.recv_timeout(Duration::from_millis(20)) {
                Ok(b) => return postcard::from_bytes(&b).map_err(|e| PoolError::Decode(e.to_string())),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(i) = self.threads.iter().position(|t| t.is_finished()) {
                        return Err(PoolError::Lost(i));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(PoolError::Lost(0)),
            }
        }
    }

    /// One training iteration on `(x, y)`, every block's part of it; the report as the one-worker
    /// model's, with each block's count of matrix products.
    pub fn train_step(
        &mut self,
        iteration: usize,
        x: &Mat<f32>,
        y: &Mat<f32>,
    ) -> Result<(IterationReport, Vec<usize>), PoolError> {
        self.train_step_aligned(iteration, x, y, false)
    }

    /// [`ThreadPool::train_step`], with `align` comparing PC's gradients with backprop's (as
    /// [`crate::pcn::train::Model::train_step_aligned`]).
    pub fn train_step_aligned(
        &mut self,
        iteration: usize,
        x: &Mat<f32>,
        y: &Mat<f32>,
        align: bool,
    ) -> Result<(IterationReport, Vec<usize>), PoolError> {
        let last = self.plan.len() - 1;
        for i in 0..=last {
            let (x, y) = ((i == 0).then(|| x.clone()), (i == last).then(|| y.clone()));
            let step = BlockMsg::Step { iteration, x, y, align };
            self.send(i % self.workers(), &Wire::Block(i, step))?;
        }
        let mut dones: Vec<Option<BlockDone>> = vec![None; self.plan.len()];
        let mut busy = vec![0.0; self.workers()];
        while dones.iter().any(Option::is_none) {
            if let Reply::Done(d, ms) = self.reply()? {
                let at = d.block;
                busy[at % self.workers()] += ms;
                dones[at] = Some(d);
            }
        }
        self.busy = busy;
        let dones: Vec<BlockDone> = dones.into_iter().flatten().collect();
        let products = dones.iter().map(|d| d.products).collect();
        Ok((assemble(&dones), products))
    }

    /// Every block's weights and Adam state, in plan order.
    pub fn states(&self) -> Result<Vec<BlockState<f32>>, PoolError> {
        for w in 0..self.workers() {
            self.send(w, &Wire::State)?;
        }
        let mut out: Vec<Option<BlockState<f32>>> = vec![None; self.plan.len()];
        while out.iter().any(Option::is_none) {
            if let Reply::State(i, s) = self.reply()? {
                out[i] = Some(s);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The whole network, gathered from the blocks.
    pub fn network(&self) -> Result<Network<f32>, PoolError> {
        let weights = self.plan.join(&self.states()?);
        Ok(Network { arch: self.arch, scalings: self.scalings, weights })
    }

    /// The hidden activities `z_1 … z_H` after the last iteration's inference.
    pub fn activities(&self) -> Result<Vec<Mat<f32>>, PoolError> {
        for w in 0..self.workers() {
            self.send(w, &Wire::Activities)?;
        }
        let mut out: Vec<Option<Vec<Mat<f32>>>> = vec![None; self.plan.len()];
        while out.iter().any(Option::is_none) {
            if let Reply::Activities(i, z) = self.reply()? {
                out[i] = Some(z);
            }
        }
        Ok(out.into_iter().flatten().flatten().collect())
    }

    /// New η_w, η_z and `T` from the next iteration on, in every block.
    pub fn set_rates(&self, lr: f64, eta_z: f64, steps: usize) -> Result<(), PoolError> {
        (0..self.workers()).try_for_each(|w| self.send(w, &Wire::Rates { lr, eta_z, steps }))
    }

    /// Ends worker `w`'s thread, as a lost worker (tests).
    pub fn stop_worker(&mut self, w: usize) {
        let _ = self.send(w, &Wire::Stop);
        if let Some(t) = self.threads.get(w) {
            while !t.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        for i in 0..self.inboxes.len() {
            let _ = self.send(i, &Wire::Stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcn::train::Model;
    use crate::pcn::{Activation, Param};
    use rand::{Rng, SeedableRng};

    fn batch(rows: usize, cols: usize, seed: u64) -> Mat<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Mat { rows, cols, data: (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect() }
    }

    /// The pool against the one-worker model, iteration by iteration: reports, weights and
    /// activities bit for bit; the first difference found. `skew` scales the pool's η_z (a
    /// planted defect for the negative control).
    fn differs_from_one_worker(
        arch: Arch,
        learning: Learning,
        plan: Plan,
        iterations: usize,
        skew: f64,
    ) -> Option<String> {
        let net: Network<f32> = Network::init(arch, 5);
        let b = 7;
        let mut one = Model::new(net.clone(), learning, 0.01, AdamConfig::default());
        let mut pool = ThreadPool::new(&net, plan.clone(), learning, 0.01, AdamConfig::default(), b).expect("pool");
        if let Learning::Pc { eta_z, steps } = learning {
            pool.set_rates(0.01, eta_z * skew, steps).expect("rates");
        }
        for it in 1..=iterations {
            let (x, y) = (batch(b, arch.input, it as u64), batch(b, arch.output, 100 + it as u64));
            // Odd iterations compare PC's gradients with backprop's, in the blocks as in one model.
            let align = it % 2 == 1;
            let want = one.train_step_aligned(&x, &y, align);
            let (got, products) = pool.train_step_aligned(it, &x, &y, align).expect("pool iteration");
            let case = format!("H={} {learning:?} plan {:?} iteration {it} align {align}", arch.hidden, plan.blocks);
            assert_eq!(products.len(), plan.len(), "{case}");
            assert_eq!(got.alignment.is_some(), align, "{case}: the comparison with backprop");
            if let Some(a) = &got.alignment {
                // Not an empty comparison: the output layer's PC gradient is there from step 0.
                assert!(a.steps.iter().all(|p| p.last().is_some_and(Option::is_some)), "{case}: {a:?}");
            }
            if got != want {
                return Some(format!("{case}: report {got:?} against {want:?}"));
            }
            if pool.network().expect("weights").weights != one.net.weights {
                return Some(format!("{case}: weights"));
            }
            if pool.activities().expect("activities") != one.z {
                return Some(format!("{case}: activities"));
            }
        }
        None
    }

    fn same_as_one_worker(arch: Arch, learning: Learning, workers: usize, iterations: usize) {
        same_by_plan(arch, learning, Plan::even(arch.layers(), workers), iterations);
    }

    fn same_by_plan(arch: Arch, learning: Learning, plan: Plan, iterations: usize) {
        if let Some(d) = differs_from_one_worker(arch, learning, plan.clone(), iterations, 1.0) {
            panic!("{d}");
        }
        // The negative control: η_z one part in 10⁶ off, and the comparison sees it.
        let skewed = differs_from_one_worker(arch, learning, plan, 1, 1.0 + 1e-6);
        assert!(skewed.is_some(), "a pool with η_z off by 1e-6 passed as the same");
    }

    fn arch(hidden: usize, act: Activation, skips: bool, param: Param) -> Arch {
        Arch { input: 12, width: 9, hidden, output: 4, act, skips, param }
    }

    #[test]
    fn a_pool_trains_bit_for_bit_as_one_worker_for_every_plan() {
        let pc = |steps| Learning::Pc { eta_z: 0.3, steps };
        // Odd depth, two and three blocks, one layer per block, more workers than layers.
        for workers in [2, 3, 6, 9] {
            same_as_one_worker(arch(5, Activation::Tanh, true, Param::Mupc), pc(5), workers, 3);
        }
        // The wavefront short of the bottom blocks (T < H), and inference past it (T > H).
        same_as_one_worker(arch(7, Activation::Relu, true, Param::Sp), pc(3), 4, 3);
        same_as_one_worker(arch(4, Activation::Gelu, false, Param::Mupc), pc(9), 2, 3);
        // One hidden layer: a block of its own for the input, hidden and output layer each.
        same_as_one_worker(arch(1, Activation::Linear, true, Param::Sp), pc(2), 3, 2);
        // Several blocks per worker, dealt round-robin (as the page's plans are): the blocks of
        // one worker take turns, and each sends its edge values before its inner layers.
        same_by_plan(arch(9, Activation::Tanh, true, Param::Mupc), pc(9), Plan::dealt(10, 5, 2), 3);
        same_by_plan(arch(8, Activation::Relu, true, Param::Sp), pc(6), Plan::dealt(9, 9, 3), 2);
        same_by_plan(arch(6, Activation::Gelu, true, Param::Mupc), pc(8), Plan::dealt(7, 4, 2), 2);
    }

    #[test]
    fn a_lost_worker_is_reported_by_number() {
        let a = arch(5, Activation::Tanh, true, Param::Mupc);
        let net: Network<f32> = Network::init(a, 1);
        let learning = Learning::Pc { eta_z: 0.3, steps: 5 };
        let mut pool = ThreadPool::new(&net, Plan::even(6, 3), learning, 0.01, AdamConfig::default(), 4).expect("pool");
        let (x, y) = (batch(4, 12, 1), batch(4, 4, 2));
        pool.train_step(1, &x, &y).expect("first iteration");
        pool.stop_worker(1);
        assert_eq!(pool.train_step(2, &x, &y).unwrap_err(), PoolError::Lost(1));
    }

    #[test]
    fn plans_are_contiguous_even_and_never_have_more_blocks_than_layers() {
        assert_eq!(Plan::even(9, 2).blocks, vec![(1, 5), (6, 9)]);
        assert_eq!(Plan::even(9, 4).blocks, vec![(1, 3), (4, 5), (6, 7), (8, 9)]);
        assert_eq!(Plan::even(3, 8).blocks, vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(Plan::even(5, 0).blocks, vec![(1, 5)]);
    }
}
