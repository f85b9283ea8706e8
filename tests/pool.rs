//! A PC network's layers across a pool of workers. Natively the workers are hosts in a ring,
//! every message — page to worker and worker to worker — passed as postcard bytes, as in the
//! browser. A pooled session must be the one-worker session, number for number; a lost worker is
//! reported, and the run resumes from the last evaluation.

use pclab::config::{Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::pcn::{Network, Param};
use pclab::pool::Plan;
use pclab::remote::pool::{PoolModel, Ring};
use pclab::remote::{RemoteModel, WorkerHost, WorkerLink};
use pclab::session::{Backend, Device, Event, Exchange, Session};
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn data() -> Arc<Mnist> {
    static DATA: OnceLock<Arc<Mnist>> = OnceLock::new();
    DATA.get_or_init(|| {
        Arc::new(Mnist::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist")).expect("MNIST"))
    })
    .clone()
}

fn ring(n: usize) -> Vec<Arc<WorkerLink>> {
    Ring::links((0..n).map(|_| WorkerHost::new(data())).collect())
}

fn one_worker() -> Arc<WorkerLink> {
    Arc::new(WorkerLink::loopback(WorkerHost::new(data())))
}

fn config(depth: usize, width: usize, rules: &[Rule], iterations: usize, eval_every: usize) -> RunConfig {
    RunConfig {
        width,
        depth,
        rules: rules.iter().map(|&r| RuleSettings::new(r)).collect(),
        batch: 32,
        iterations,
        eval_every,
        ..RunConfig::default()
    }
}

/// Losses, accuracies and every confusion cell, by rule and iteration.
fn numbers(events: &[Event]) -> Vec<(String, usize, f64)> {
    let mut out = Vec::new();
    for e in events {
        match e {
            Event::Iteration(i) => out.push((i.rule.to_string(), i.iteration, i.report.loss)),
            Event::Eval(e) => {
                out.push((format!("{} accuracy", e.rule), e.iteration, e.test_accuracy));
                for (k, &c) in e.confusion.iter().flatten().enumerate() {
                    out.push((format!("{} confusion {k}", e.rule), e.iteration, c as f64));
                }
            }
            _ => {}
        }
    }
    out
}

fn run_to_end(s: &mut Session) -> Vec<Event> {
    let mut events = Vec::new();
    while !s.is_finished() {
        events.extend(s.step());
    }
    events
}

#[test]
fn a_pooled_session_is_the_one_worker_session_bit_for_bit() {
    // The browser test's network: depth 16, width 64; both PC rules on the pool, backprop on the
    // first worker.
    let cfg = config(16, 64, &[Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp), Rule::Bp(Param::Mupc)], 20, 10);
    let mut one = pollster::block_on(Session::create(cfg.clone(), data(), Device::Worker(one_worker()))).expect("one");
    let want = run_to_end(&mut one);
    for workers in [2, 3] {
        let links = ring(workers);
        let mut pooled = pollster::block_on(Session::create(
            cfg.clone(),
            data(),
            Device::Pool { links, fixed: true, exchange: Exchange::Ports },
        ))
        .expect("pool");
        for run in &pooled.runs {
            match (&run.backend, run.settings.rule) {
                (Backend::Pool(m), Rule::Pc(_)) => {
                    let p = m.plan();
                    println!("{workers} workers, {}: {} blocks {:?}", run.name(), p.len(), p.blocks);
                    assert!(p.workers > 1, "a depth-16 network uses the pool");
                }
                (Backend::Remote(_), Rule::Bp(_)) => {}
                (b, r) => panic!("{r:?} runs on {}", b.name()),
            }
        }
        let got = run_to_end(&mut pooled);
        assert_eq!(numbers(&got), numbers(&want), "{workers} workers: losses, accuracies, confusion cells");
        for (a, b) in pooled.runs.iter_mut().zip(one.runs.iter_mut()) {
            let (na, za) = pollster::block_on(a.backend.network_and_activities()).expect("pooled weights");
            let (nb, zb) = pollster::block_on(b.backend.network_and_activities()).expect("one-worker weights");
            assert_eq!(na.weights, nb.weights, "{workers} workers, {}: weights", a.name());
            assert_eq!(za, zb, "{workers} workers, {}: the first sample's activities", a.name());
        }
    }
}

#[test]
fn odd_depths_one_layer_blocks_and_more_workers_than_layers_train_as_one_worker() {
    let cfg = config(5, 24, &[Rule::Pc(Param::Mupc)], 4, 4);
    let rs = cfg.rules[0];
    let (arch, learning) = (cfg.arch(rs.rule), cfg.learning(&rs));
    let idx: Vec<usize> = (0..32).collect();
    for (blocks, workers) in [(2, 2), (3, 2), (6, 3), (6, 6), (5, 9)] {
        let plan = Plan::dealt(arch.layers(), blocks, workers);
        let mut one = RemoteModel::create(one_worker(), arch, cfg.seed, learning, rs.lr).expect("one worker");
        let links = ring(workers);
        let mut pool = PoolModel::create(links, arch, cfg.seed, learning, rs.lr, 32, plan.clone()).expect("pool");
        for it in 1..=4 {
            one.submit_step(it, &idx, false).expect("step");
            pool.submit_step(it, &idx, false).expect("step");
        }
        let (a, b) = (pool.ready_reports().expect("pool"), one.ready_reports().expect("one"));
        assert_eq!(a, b, "plan {:?} on {} workers: reports", plan.blocks, plan.workers);
        let (na, za) = pollster::block_on(pool.snapshot()).expect("pool snapshot");
        let (nb, zb) = pollster::block_on(one.snapshot()).expect("snapshot");
        assert_eq!((na.weights, za), (nb.weights, zb), "plan {:?}: weights and activities", plan.blocks);
    }
    // The negative control: a pool from another seed is told apart.
    let plan = Plan::dealt(arch.layers(), 3, 2);
    let mut other = PoolModel::create(ring(2), arch, cfg.seed + 1, learning, rs.lr, 32, plan).expect("pool");
    let mut one = RemoteModel::create(one_worker(), arch, cfg.seed, learning, rs.lr).expect("one worker");
    other.submit_step(1, &idx, false).expect("step");
    one.submit_step(1, &idx, false).expect("step");
    assert_ne!(other.ready_reports().expect("pool"), one.ready_reports().expect("one"));
}

#[test]
fn a_lost_worker_is_reported_and_the_run_resumes_from_the_last_evaluation() {
    // Both PC rules pooled; then μPC pooled beside backprop on the first worker, which the new
    // pool rebuilds from its own checkpoint (weights and Adam's state).
    for rules in [[Rule::Pc(Param::Mupc), Rule::Pc(Param::Sp)], [Rule::Pc(Param::Mupc), Rule::Bp(Param::Mupc)]] {
        let pooled_rules = rules.iter().filter(|r| r.is_pc()).count();
        let cfg = config(8, 32, &rules, 12, 5);
        let mut one =
            pollster::block_on(Session::create(cfg.clone(), data(), Device::Worker(one_worker()))).expect("one");
        let want = numbers(&run_to_end(&mut one));
        let links = ring(2);
        let mut pooled = pollster::block_on(Session::create(
            cfg.clone(),
            data(),
            Device::Pool { links: links.clone(), fixed: true, exchange: Exchange::Ports },
        ))
        .expect("pool");
        let mut before = Vec::new();
        for _ in 0..7 {
            before.extend(pooled.step());
        }
        Ring::lose(&links, 1);
        let failed: Vec<String> = pooled
            .step()
            .into_iter()
            .filter_map(|e| match e {
                Event::Failed { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), pooled_rules, "{rules:?}: every pooled run fails: {failed:?}");
        assert!(failed.iter().all(|m| m.contains("worker 1") && m.contains("lost")), "{failed:?}");
        assert_eq!(pooled.runs.iter().filter(|r| r.is_running()).count(), rules.len() - pooled_rules);
        // A fresh pool: the runs resume from the evaluation at iteration 5 and train on as before.
        let at =
            pollster::block_on(pooled.recover(Device::Pool { links: ring(2), fixed: true, exchange: Exchange::Ports }))
                .expect("recovered");
        assert_eq!(at, 5);
        let after = numbers(&run_to_end(&mut pooled));
        let resumed: Vec<_> = want.iter().filter(|(_, it, _)| *it > 5).cloned().collect();
        assert_eq!(after, resumed, "{rules:?}: after the loss the runs continue exactly as an unbroken session");
        let kept: Vec<_> = numbers(&before).into_iter().filter(|(_, it, _)| *it <= 5).collect();
        let first: Vec<_> = want.iter().filter(|(_, it, _)| *it <= 5).cloned().collect();
        assert_eq!(kept, first);
    }
}

#[test]
fn the_plan_spreads_the_wavefront_over_the_workers() {
    use pclab::pool::Workload;
    // T = H = 128: with one block per worker the bottom worker idles through most of inference
    // (at most about 1.33× on two workers); dealt blocks come close to 2× when messages are cheap.
    let w = Workload { hidden: 128, steps: 128, message: 0.0, latency: 0.0 };
    let one = Plan::even(129, 1).modelled_time(&w);
    let halves = Plan::even(129, 2).modelled_time(&w);
    let best = Plan::for_pool(129, 2, &w);
    let t = best.modelled_time(&w);
    println!("H = 128, 2 workers: halves {:.2}×, best plan ({} blocks) {:.2}×", one / halves, best.len(), one / t);
    assert!(one / halves < 1.55, "{}", one / halves);
    assert!(one / t > 1.8 && best.workers == 2, "{:?}: {:.2}×", best.blocks, one / t);
    // A small network whose exchanges would cost more than they save stays on one worker.
    let tiny = Workload { hidden: 2, steps: 2, message: 5.0, latency: 5.0 };
    assert_eq!(Plan::for_pool(3, 4, &tiny).workers, 1);
    // Costly messages favour fewer, larger blocks.
    let costly = Workload { message: 1.0, latency: 4.6, ..w };
    let fewer = Plan::for_workers(129, 2, &costly);
    assert!(fewer.len() < best.len(), "{} blocks with costly messages, {} without", fewer.len(), best.len());
    println!("costly messages: {} blocks, {:.2}× modelled", fewer.len(), one / fewer.modelled_time(&costly));
    // Splitting a network by a plan and joining it back gives the network.
    let cfg = config(8, 16, &[Rule::Pc(Param::Mupc)], 1, 1);
    let net: Network<f32> = Network::init(cfg.arch(cfg.rules[0].rule), 3);
    let plan = Plan::dealt(9, 4, 2);
    assert_eq!(plan.join(&plan.split(&net)), net.weights);
}

#[test]
fn a_boundary_that_comes_before_its_blocks_waits_for_them_and_changes_nothing() {
    // Through shared memory a neighbour's boundary value can overtake the page's `CreateBlocks`:
    // worker 0 is asked to build and step first, and its forward pass reaches worker 1 before
    // worker 1 has its blocks. Worker 1 must keep the value, not refuse it.
    use pclab::remote::{FromWorker, ToWorker};
    use std::collections::VecDeque;
    let cfg = config(6, 16, &[Rule::Pc(Param::Mupc)], 1, 1);
    let rs = &cfg.rules[0];
    let (arch, learning) = (cfg.arch(rs.rule), cfg.learning(rs));
    let plan = Plan::dealt(arch.layers(), 4, 2);
    let create = |worker| ToWorker::CreateBlocks {
        id: 7,
        arch,
        seed: cfg.seed,
        learning,
        lr: rs.lr,
        batch: cfg.batch,
        plan: plan.clone(),
        worker,
        states: None,
    };
    let step = || ToWorker::BlockStep { id: 7, iteration: 1, indices: (0..cfg.batch as u32).collect(), align: false };
    // The page's messages in `order`; boundary values between hosts go first, as they come.
    let run = |order: Vec<(usize, ToWorker)>| {
        let mut hosts = [WorkerHost::new(data()), WorkerHost::new(data())];
        let (mut page, mut wire, mut answers) = (VecDeque::from(order), VecDeque::new(), Vec::new());
        let mut overtook = false;
        while let Some((w, msg)) = wire.pop_front().or_else(|| page.pop_front()) {
            overtook |= matches!(msg, ToWorker::Boundary { .. })
                && page.iter().any(|(to, m)| *to == w && matches!(m, ToWorker::CreateBlocks { .. }));
            answers.extend(hosts[w].handle(msg).into_iter().map(|a| (w, a)));
            for (_, m) in hosts[w].take_boundary() {
                wire.push_back((1 - w, m));
            }
        }
        (answers, overtook)
    };
    let (ordered, overtook) = run(vec![(0, create(0)), (1, create(1)), (0, step()), (1, step())]);
    assert!(!overtook);
    let (early, overtook) = run(vec![(0, create(0)), (0, step()), (1, create(1)), (1, step())]);
    assert!(overtook, "the test must deliver a boundary value before worker 1's blocks exist");
    let done = |answers: &[(usize, FromWorker)]| -> Vec<String> {
        let mut v: Vec<String> = answers
            .iter()
            .map(|(w, a)| match a {
                FromWorker::BlockDone { done, .. } => format!("{w} {done:?}"),
                other => format!("{w} {other:?}"),
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (done(&ordered), done(&early));
    assert!(a.iter().all(|s| !s.contains("Error")), "{a:?}");
    assert_eq!(a.iter().filter(|s| s.contains("BlockDone")).count(), plan.len(), "every block reports");
    assert_eq!(a, b, "a boundary value before its blocks changes nothing");
}
