//! The page's CPU backend speaks to its Web Worker in messages; natively the same host answers
//! through a loopback link (every message encoded and decoded as in the browser). A session on
//! the worker must be the CPU session, number for number.

use pclab::config::{Rule, RuleSettings, RunConfig};
use pclab::data::Mnist;
use pclab::remote::{FromWorker, RemoteModel, ToWorker, WorkerHost, WorkerLink};
use pclab::session::{Backend, Device, Event, Session};
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn data() -> Arc<Mnist> {
    static DATA: OnceLock<Arc<Mnist>> = OnceLock::new();
    DATA.get_or_init(|| {
        Arc::new(Mnist::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("www/data/mnist")).expect("MNIST"))
    })
    .clone()
}

fn config() -> RunConfig {
    RunConfig {
        width: 32,
        depth: 4,
        rules: Rule::ALL.iter().map(|&r| RuleSettings::new(r)).collect(),
        batch: 32,
        iterations: 8,
        eval_every: 4,
        align_every: 4,
        ..RunConfig::default()
    }
}

fn numbers(events: &[Event]) -> Vec<(String, usize, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Iteration(i) => Some((i.rule.to_string(), i.iteration, i.report.loss)),
            Event::Eval(e) => Some((format!("{} accuracy", e.rule), e.iteration, e.test_accuracy)),
            _ => None,
        })
        .chain(events.iter().flat_map(|e| -> Vec<(String, usize, f64)> {
            match e {
                // Every cell of the confusion matrix, every layer's cosine and norm ratio.
                Event::Eval(e) => e
                    .confusion
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(k, &c)| (format!("{} confusion {k}", e.rule), e.iteration, c as f64))
                    .collect(),
                Event::Alignment(a) => a
                    .layers
                    .iter()
                    .enumerate()
                    .flat_map(|(l, x)| {
                        let (c, r) = x.map_or((f64::NAN, f64::NAN), |x| (x.cosine, x.norm_ratio));
                        [
                            (format!("{} cos {l}", a.rule), a.iteration, c),
                            (format!("{} ratio {l}", a.rule), a.iteration, r),
                        ]
                    })
                    .collect(),
                _ => Vec::new(),
            }
        }))
        .map(|(k, i, v)| (k, i, if v.is_nan() { -1.0 } else { v }))
        .collect()
}

fn worker() -> Arc<WorkerLink> {
    Arc::new(WorkerLink::loopback(WorkerHost::new(data())))
}

#[test]
fn a_session_in_the_worker_is_the_cpu_session() {
    let mut cpu = Session::new(config(), data()).expect("valid");
    let link = worker();
    let mut remote =
        pollster::block_on(Session::create(config(), data(), Device::Worker(link.clone()))).expect("valid");
    assert!(remote.runs.iter().all(|r| matches!(r.backend, Backend::Remote(_))));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while !cpu.is_finished() {
        a.extend(cpu.step());
        b.extend(remote.step());
    }
    let (a, b) = (numbers(&a), numbers(&b));
    // Every rule's 8 iterations and 2 evaluations (each with its 100 confusion cells), and the two
    // PC rules' 2 aligned iterations (2 numbers for each of 5 layers).
    assert_eq!(a.len(), 4 * 8 + 4 * 2 + 4 * 2 * 100 + 2 * 2 * 10, "{a:?}");
    assert_eq!(a, b, "same losses and accuracies, bit for bit");
    // Rates changed mid-run reach the worker's models too.
    let mut rules = config().rules;
    rules.iter_mut().for_each(|r| r.lr *= 0.5);
    cpu.set_rates(&rules, Some(2)).expect("valid rates");
    remote.set_rates(&rules, Some(2)).expect("valid rates");
    cpu.config.iterations = 10;
    remote.config.iterations = 10;
    let (a, b) = (numbers(&cpu.step()), numbers(&remote.step()));
    assert_eq!(a, b);
    assert_eq!(link.host_models(), Some(4));
    drop(remote);
    assert_eq!(link.host_models(), Some(0), "a dropped session frees its models in the worker");
}

#[test]
fn the_snapshot_is_the_trained_network() {
    let link = worker();
    let cfg = config();
    let rs = cfg.rules[0];
    let mut cpu = Backend::new(&RunConfig { backend: pclab::config::BackendKind::Cpu, ..cfg.clone() }, &rs).unwrap();
    let mut remote =
        RemoteModel::create(link.clone(), cfg.arch(rs.rule), cfg.seed, cfg.learning(&rs), rs.lr).expect("created");
    let idx: Vec<usize> = (100..132).collect();
    let (x, y) = data().train.batch::<f32>(&idx);
    cpu.train_step(1, &idx, &x, &y, false).unwrap();
    remote.submit_step(1, &idx, false).unwrap();
    let (net, z) = pollster::block_on(remote.snapshot()).expect("snapshot");
    let Backend::Cpu(m) = &cpu else { panic!("a CPU model") };
    assert_eq!(net.weights, m.net.weights);
    assert_eq!(z.len(), 4);
    assert_eq!(z[0].data, m.z[0].row(0), "the first sample's activities");
    assert_eq!(remote.ready_reports().unwrap().len(), 1);
}

#[test]
fn bad_requests_get_answers_that_say_what_is_wrong() {
    let mut host = WorkerHost::new(data());
    let cfg = config();
    let rs = cfg.rules[0];
    let create = ToWorker::Create { id: 1, arch: cfg.arch(rs.rule), seed: 0, learning: cfg.learning(&rs), lr: rs.lr };
    assert_eq!(host.handle(create), vec![FromWorker::Created { id: 1 }]);
    let out_of_range = host.handle(ToWorker::Step { id: 1, iteration: 1, indices: vec![0, 60_000], align: false });
    assert!(
        matches!(&out_of_range[..], [FromWorker::Error { id: 1, message }] if message.contains("60000") && message.contains("59999")),
        "{out_of_range:?}"
    );
    let missing = host.handle(ToWorker::Evaluate { id: 9 });
    assert!(matches!(&missing[..], [FromWorker::Error { id: 9, message }] if message.contains("no model 9")));
    let mut huge = cfg.arch(rs.rule);
    (huge.width, huge.hidden) = (1024, 128);
    let refused = host.handle(ToWorker::Create { id: 2, arch: huge, seed: 0, learning: cfg.learning(&rs), lr: 1e-3 });
    assert!(
        matches!(&refused[..], [FromWorker::Error { id: 2, message }] if message.contains("134.0 M weights") && message.contains("at most 64 M")),
        "{refused:?}"
    );
    assert_eq!(host.models(), 1);
}

#[test]
fn a_dead_worker_fails_the_runs_and_says_why() {
    let link = Arc::new(WorkerLink::posting(|_| Ok(())));
    let mut s = pollster::block_on(Session::create(config(), data(), Device::Worker(link.clone()))).expect("built");
    link.kill("the worker's script could not be loaded".into());
    let (events, _) = s.train();
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 4, "{events:?}");
    assert!(failed[0].contains("could not be loaded"), "{failed:?}");
    assert!(s.runs.iter().all(|r| !r.is_running()));
}
