//! The `pclab` command line: its contract spellings, its outputs and its error messages.

use std::process::Command;

fn pclab(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pclab")).args(args).output().expect("runs pclab");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let (ok, _, err) = pclab(args);
    assert!(!ok, "{args:?} should fail");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected '{n}' in: {err}");
    }
}

#[test]
fn invalid_options_say_what_is_allowed() {
    fails_with(&["train", "--depth", "0"], &["depth (H) must be between 1 and"]);
    fails_with(&["train", "--width", "0"], &["width (N) must be between 1 and"]);
    fails_with(&["train", "--lr-mupc", "-0.1"], &["weight learning rate for mupc must be a positive finite number"]);
    fails_with(&["train", "--eta-z", "NaN"], &["η_z for mupc", "positive finite"]);
    fails_with(&["train", "--act", "sigmoid"], &["unknown activation 'sigmoid'", "relu"]);
    fails_with(&["train", "--rules", "mupc,pc"], &["unknown rule 'pc'", "bp_mup"]);
    fails_with(&["train", "--steps", "0"], &["inference steps (T) must be between 1 and"]);
    fails_with(&["train", "--batch", "60001"], &["batch size (B) must be between 1 and 60000"]);
    fails_with(&["train", "--preset", "fig1-relu-h9"], &["unknown preset", "fig1-relu-h8", "tutorial"]);
    fails_with(&["train", "--backend", "tpu"], &["unknown backend 'tpu'", "cpu or gpu"]);
    fails_with(&["train", "--data", "/nonexistent"], &["train-images-idx3-ubyte.gz"]);
    fails_with(&["bench", "--reps", "0"], &["reps must be at least 1"]);
}

#[test]
fn train_writes_eval_lines_and_a_summary() {
    let file = std::env::temp_dir().join(format!("pclab-cli-{}.jsonl", std::process::id()));
    let f = file.to_str().expect("utf-8 path");
    let (ok, out, err) = pclab(&[
        "train",
        "--rules",
        "mupc,sp,bp_mup",
        "--depth",
        "3",
        "--width",
        "16",
        "--act",
        "relu",
        "--steps",
        "3",
        "--batch",
        "32",
        "--iters",
        "20",
        "--eval-every",
        "10",
        "--seed",
        "0",
        "--backend",
        "cpu",
        "--metrics",
        f,
    ]);
    assert!(ok, "{err}");
    for label in ["μPC", "standard PC", "BP Depth-μP"] {
        assert!(out.contains(label), "summary lists {label}: {out}");
    }
    let text = std::fs::read_to_string(&file).expect("metrics file");
    std::fs::remove_file(&file).ok();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let evals: Vec<&serde_json::Value> = lines.iter().filter(|v| v["kind"] == "eval").collect();
    assert_eq!(evals.len(), 6, "3 rules × evaluations at 10 and 20");
    for e in &evals {
        let acc = e["test_accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=100.0).contains(&acc) && e["train_loss"].as_f64().is_some(), "{e}");
        assert!(["mupc", "sp", "bp_mup"].contains(&e["rule"].as_str().expect("rule")));
    }
    assert!(text.contains(r#"{"kind":"eval","rule":"mupc","iteration":10,"test_accuracy":"#), "field order: {text}");
    let iters = lines.iter().filter(|v| v["kind"] == "iteration").count();
    assert_eq!(iters, 60);
    let inference: Vec<_> = lines.iter().filter(|v| v["kind"] == "inference").collect();
    assert_eq!(inference.len(), 2, "the last inference trace of each PC rule");
    assert_eq!(inference[0]["energy_steps"].as_array().expect("steps").len(), 4, "T + 1 rows");
}

#[test]
fn bench_prints_json_with_timings_and_gflops() {
    let (ok, out, err) = pclab(&[
        "bench",
        "--rules",
        "mupc",
        "--depth",
        "4",
        "--width",
        "32",
        "--steps",
        "4",
        "--batch",
        "16",
        "--backend",
        "cpu",
        "--json",
        "--warmup",
        "1",
        "--reps",
        "3",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let ms = v["ms_per_iteration"].as_f64().expect("ms_per_iteration");
    let gflops = v["gflops"].as_f64().expect("gflops");
    assert!(ms > 0.0 && gflops > 0.0, "{v}");
    // FLOPs: 2·B·(in·out) per product: forward (L products), 2 per layer above the input per
    // step, weight gradients (L products).
    let (b, d, n, o, h, t) = (16.0, 784.0, 32.0, 10.0, 4.0, 4.0);
    let all = d * n + (h - 1.0) * n * n + n * o;
    let above = (h - 1.0) * n * n + n * o;
    let expected = 2.0 * b * (2.0 * all + 2.0 * t * above);
    assert!((v["gflop_per_iteration"].as_f64().expect("gflop") * 1e9 - expected).abs() < 1.0, "{v}");
}

#[test]
fn presets_fill_in_the_papers_settings() {
    let file = std::env::temp_dir().join(format!("pclab-preset-{}.jsonl", std::process::id()));
    let f = file.to_str().expect("utf-8 path");
    let (ok, _, err) =
        pclab(&["train", "--preset", "tutorial", "--width", "16", "--depth", "2", "--iters", "1", "--metrics", f]);
    assert!(ok, "{err}");
    let first = std::fs::read_to_string(&file).expect("metrics").lines().next().map(str::to_string).expect("a line");
    std::fs::remove_file(&file).ok();
    let cfg: serde_json::Value = serde_json::from_str(&first).expect("config line");
    assert_eq!(cfg["config"]["steps"], 30, "tutorial: T = 30");
    assert_eq!(cfg["config"]["rules"][0]["rule"], "mupc");
    assert_eq!(cfg["config"]["depth"], 2, "explicit options override the preset");
}

#[test]
fn sweep_kappa_prints_one_json_line_per_point_and_hessian_reports_lanczos() {
    let (ok, out, err) = pclab(&[
        "sweep-kappa",
        "--widths",
        "16",
        "--depths",
        "2,4",
        "--seeds",
        "0,1",
        "--params",
        "sp,sp_noskip,mupc",
        "--json",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 12, "3 params × 2 depths × 2 seeds");
    for l in &lines {
        for key in ["param", "width", "depth", "seed", "kappa", "lambda_min", "lambda_max"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        let k = l["kappa"].as_f64().expect("kappa");
        let (lo, hi) = (l["lambda_min"].as_f64().expect("min"), l["lambda_max"].as_f64().expect("max"));
        assert!((k - hi.abs() / lo.abs()).abs() <= 1e-9 * k, "κ = |λ_max|/|λ_min| in {l}");
    }
    assert_eq!(lines[0]["param"], "sp");
    assert_eq!(lines[4]["param"], "sp_noskip");
    // A Hessian too large for the dense solve goes to block bisection by default; Lanczos, on
    // request, reports its iterations and agrees.
    let hessian = |method: &str| {
        let args = ["hessian", "--param", "mupc", "--width", "64", "--depth", "24", "--act", "tanh", "--json"];
        let (ok, out, err) = pclab(&[&args[..], &["--method", method]].concat());
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert!(
            v["converged"].as_bool().expect("converged") && v["iterations"].as_u64().expect("iterations") > 10,
            "{v}"
        );
        v
    };
    let (blocks, lanczos) = (hessian("auto"), hessian("lanczos"));
    assert_eq!((blocks["method"].as_str(), lanczos["method"].as_str()), (Some("blocks"), Some("lanczos")));
    let (kb, kl) = (blocks["kappa"].as_f64().expect("κ"), lanczos["kappa"].as_f64().expect("κ"));
    assert!((kb - kl).abs() <= 5e-3 * kb, "blocks κ {kb} vs Lanczos κ {kl}");
    let (ok, out, err) = pclab(&["hessian", "--param", "sp", "--width", "16", "--depth", "4", "--iters", "3"]);
    assert!(ok && out.contains("after 3 iterations: κ ="), "{out}{err}");
    fails_with(&["hessian", "--param", "bp"], &["unknown parameterisation 'bp'", "sp, sp_noskip or mupc"]);
    fails_with(
        &["sweep-kappa", "--widths", "4096", "--depths", "1024"],
        &["beyond what the float64 CPU Hessian handles"],
    );
    fails_with(&["hessian", "--tol", "2"], &["--tol must be between 0 and 1"]);
    fails_with(&["hessian", "--method", "qr"], &["unknown method 'qr'", "dense, blocks or lanczos"]);
    fails_with(&["hessian", "--samples", "3"], &["--samples 3 needs --backend gpu"]);
}

#[test]
fn sweep_lr_prints_one_json_line_per_cell_and_a_table() {
    let args =
        ["sweep-lr", "--rules", "mupc", "--width", "16", "--depths", "2,4", "--lrs", "0.1,0.01", "--eta-zs", "0.5,5"];
    let (ok, out, err) = pclab(&[&args[..], &["--iters", "6", "--json"]].concat());
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 8, "2 depths × 2 η_w × 2 η_z");
    for l in &lines {
        assert_eq!(
            (l["param"].as_str(), l["width"].as_u64(), l["iterations"].as_u64()),
            (Some("mupc"), Some(16), Some(6))
        );
        let min = l["min_loss"].as_f64().expect("a minimum loss");
        assert!(min > 0.0 && min <= l["final_loss"].as_f64().expect("final loss") + 1e-12, "{l}");
        assert!(l["diverged"].is_null() && l["test_accuracy"].as_f64().is_some(), "{l}");
    }
    assert_eq!((lines[0]["depth"].as_u64(), lines[4]["depth"].as_u64()), (Some(2), Some(4)));
    // η_w = 0.1 learns faster than 0.01 in 6 iterations at both depths.
    for d in [0, 4] {
        assert!(lines[d]["min_loss"].as_f64() < lines[d + 2]["min_loss"].as_f64(), "{} vs {}", lines[d], lines[d + 2]);
    }
    let (ok, out, err) = pclab(&[&args[..], &["--iters", "3"]].concat());
    assert!(ok && out.contains("μPC N=16 H=4: minimum training loss over 3 iterations"), "{out}{err}");
    fails_with(&["sweep-lr", "--rules", "bp_mup"], &["sweep-lr needs a PC rule"]);
}

#[test]
fn train_writes_the_pages_plots_as_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("pclab-plots-{}", std::process::id()));
    let d = dir.to_str().expect("utf-8 path");
    let (ok, out, err) = pclab(&[
        "train",
        "--rules",
        "mupc,bp_mup",
        "--depth",
        "3",
        "--width",
        "16",
        "--iters",
        "8",
        "--eval-every",
        "4",
        "--align-every",
        "4",
        "--metrics",
        &format!("{d}.jsonl"),
        "--plots",
        d,
    ]);
    assert!(ok && out.contains("16 plot files"), "{out}{err}");
    // The alignment table: every layer of μPC, the last two with a PC gradient at least.
    assert!(out.contains("PC's weight gradient against backprop's") && out.contains("mupc: median cosine"), "{out}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(format!("{d}.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let aligned: Vec<_> = lines.iter().filter(|v| v["kind"] == "alignment").collect();
    assert_eq!(aligned.len(), 2, "μPC at iterations 4 and 8 (BP is not compared)");
    let a = aligned[1];
    assert!(a["rule"] == "mupc" && a["iteration"] == 8 && a["layers"].as_array().map(Vec::len) == Some(4), "{a}");
    assert!(a["layers"][3]["cosine"].as_f64().is_some_and(|c| c > 0.99), "the output layer's PC gradient is BP's: {a}");
    assert!(a["median"].as_f64().is_some() && a["energy_ratio"].as_f64().is_some(), "{a}");
    for e in lines.iter().filter(|v| v["kind"] == "eval") {
        let m = e["confusion"].as_array().expect("a confusion matrix");
        let sum: u64 = m.iter().flat_map(|r| r.as_array().unwrap().iter().map(|c| c.as_u64().unwrap())).sum();
        let diag: u64 = (0..10).map(|i| m[i][i].as_u64().unwrap()).sum();
        assert_eq!(sum, 10_000, "every test image once");
        assert!(
            (diag as f64 / 100.0 - e["test_accuracy"].as_f64().unwrap()).abs() < 1e-9,
            "the diagonal is the accuracy: {e}"
        );
    }
    for id in [
        "accuracy",
        "loss",
        "energy-heatmap",
        "activation-rms",
        "weight-change",
        "alignment",
        "alignment-steps",
        "confusion",
    ] {
        let svg = std::fs::read_to_string(dir.join(format!("{id}.svg"))).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("<text") && svg.len() > 2000, "{id}.svg");
        let png = std::fs::read(dir.join(format!("{id}.png"))).expect("png");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5000, "{id}.png has {} bytes", png.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(format!("{d}.jsonl"));
    fails_with(&["train", "--align-every", "0"], &["align-every must be at least 1"]);
}

/// `reproduce` in shards equals one process, resumes without recomputing, and `report` merges the
/// shards (refusing two experiments in one report and conflicting duplicates).
#[test]
fn reproduce_shards_resume_and_merge_into_a_report() {
    let dir = std::env::temp_dir().join(format!("pclab-cli-reproduce-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_string();
    let small =
        ["reproduce", "fig1", "--width", "16", "--depths", "2,3", "--seeds", "0", "--iters", "12", "--eval-every", "6"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = small.iter().copied().chain(extra.iter().copied()).collect();
        let (ok, out, err) = pclab(&args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let one = d("one");
    let out = run(&["--out", &one, "--jobs", "2"]);
    assert!(out.contains("ran 6 of 6 runs (0 finished before)"), "{out}");
    let again = run(&["--out", &one]);
    assert!(again.contains("ran 0 of 6 runs (6 finished before)"), "a rerun recomputes nothing: {again}");
    let shards: Vec<String> = (0..3).map(|k| d(&format!("shard{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        let out = run(&["--out", s, "--shard", &format!("{k}/3")]);
        assert!(out.contains("ran 2 of 2 runs"), "{out}");
    }
    // The shards and the one process hold the same runs: the merge of all four accepts them.
    let mut args = vec!["report".to_string()];
    args.extend(shards.iter().cloned());
    args.extend([one.clone(), "--out".into(), d("report")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = pclab(&args);
    assert!(ok && out.contains("6 runs of fig1 merged"), "{out}{err}");
    let md = std::fs::read_to_string(dir.join("report/report.md")).expect("report.md");
    assert!(md.contains("| 3 | μPC |") && md.contains("fig1-accuracy-vs-depth.svg"), "{md}");
    for f in ["fig1-accuracy-vs-depth.svg", "fig1-accuracy-vs-depth.png", "fig1-accuracy-H2.png"] {
        assert!(dir.join("report").join(f).exists(), "{f}");
    }
    // A run whose result differs is refused, naming it.
    let file = dir.join("shard0/runs.shard-0-of-3.jsonl");
    let text = std::fs::read_to_string(&file).expect("shard file");
    std::fs::write(&file, text.replacen("\"min_loss\":", "\"min_loss\":1e9,\"x\":", 1)).expect("write");
    fails_with(&["report", &shards[0], &one], &["appears twice with different results"]);
    // Two experiments in one report are refused.
    let grid = d("grid");
    let (ok, _, err) = pclab(&[
        "reproduce",
        "lr-width",
        "--widths",
        "16",
        "--depths",
        "1",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--shard",
        "0/88",
        "--out",
        &grid,
    ]);
    assert!(ok, "{err}");
    fails_with(&["report", &grid, &one], &["mixed experiments"]);
    fails_with(&["reproduce", "fig2", "--out", &one], &["unknown experiment 'fig2'", "lr-depth"]);
    fails_with(&["reproduce", "fig1", "--shard", "3/3", "--out", &one], &["shard 3/3 does not exist"]);
    fails_with(&["reproduce", "fig1", "--shard", "auto", "--out", &one], &["SLURM_ARRAY_TASK_ID"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_alignment_prints_one_json_line_per_network_with_per_layer_cosines() {
    let args = ["sweep-alignment", "--widths", "16,64", "--depths", "2", "--params", "sp,mupc", "--batch", "8"];
    let (ok, out, err) = pclab(&[&args[..], &["--json"]].concat());
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 4, "2 params × 2 widths");
    for l in &lines {
        assert_eq!(l["kind"], "alignment");
        assert_eq!(l["layers"].as_array().map(Vec::len), Some(3), "L = H + 1 layers in {l}");
        let c = l["cosine_median"].as_f64().expect("median");
        assert!((-1.0..=1.0).contains(&c), "{l}");
        assert!(l["settled"].as_bool().expect("settled") && l["steps"].as_u64().expect("steps") > 3, "{l}");
        assert!(l["energy_ratio"].as_f64().is_some_and(|r| r > 0.0 && r <= 1.0 + 1e-9), "F* ≤ ℓ̃: {l}");
    }
    // Fixed steps as in training, and the table.
    let (ok, out, err) = pclab(&[&args[..], &["--steps", "2"]].concat());
    assert!(ok && out.starts_with("param") && out.contains("2="), "{out}{err}");
    fails_with(&["sweep-alignment", "--eta-z=-1"], &["--eta-z must be a positive number"]);
    fails_with(&["sweep-alignment", "--params", "bp"], &["unknown parameterisation 'bp'"]);
}
