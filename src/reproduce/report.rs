//! `pclab report`: merges the finished runs of one experiment from any number of folders (the
//! shards of a job array), and writes `report.md` with its figures (SVG and PNG through the
//! page's chart code), the paper's numbers beside pclab's.

use super::store::{self, RunRecord};
use super::Experiment;
use crate::charts::{self, rule_color, Axes, Line};
use crate::config::Rule;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The runs of one experiment, each once, in run-list order.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The experiment.
    pub experiment: Experiment,
    /// The runs.
    pub runs: Vec<RunRecord>,
}

/// Merges every `runs*.jsonl` of `dirs`. Refuses an empty merge, runs of different experiments,
/// and a run that appears twice with different results; the same result twice is kept once.
pub fn merge(dirs: &[PathBuf]) -> Result<Merged, String> {
    let mut by_key: BTreeMap<String, RunRecord> = BTreeMap::new();
    let mut experiment: Option<(Experiment, PathBuf)> = None;
    for dir in dirs {
        if !dir.is_dir() {
            return Err(format!("{} is not a folder of finished runs", dir.display()));
        }
        for file in store::files(dir)? {
            for r in store::read(&file)? {
                match &experiment {
                    None => experiment = Some((r.spec.experiment, file.clone())),
                    Some((e, first)) if *e != r.spec.experiment => {
                        return Err(format!(
                            "mixed experiments: {} holds {e} runs, {} holds {} runs; report one experiment at a time",
                            first.display(),
                            file.display(),
                            r.spec.experiment
                        ))
                    }
                    Some(_) => {}
                }
                let key = r.spec.key();
                match by_key.get(&key) {
                    Some(old) if !old.same_result(&r) => {
                        return Err(format!(
                        "run {key} appears twice with different results (one in {}); the runs are deterministic, so \
                             one of the files comes from a different build or machine",
                        file.display()
                    ))
                    }
                    Some(_) => {}
                    None => {
                        by_key.insert(key, r);
                    }
                }
            }
        }
    }
    let Some((experiment, _)) = experiment else {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(format!("no finished runs (runs*.jsonl) in {}", names.join(", ")));
    };
    let mut runs: Vec<RunRecord> = by_key.into_values().collect();
    runs.sort_by_key(|r| r.spec.index);
    Ok(Merged { experiment, runs })
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

fn label(rule: &str) -> &'static str {
    rule.parse::<Rule>().map_or("?", |r| r.label())
}

/// The paper's Fig. 1 (N = 512, ReLU; docs/maths.md §9): test accuracy at iterations 300, 600 and 900.
pub fn paper_fig1(rule: &str, depth: usize) -> Option<[f64; 3]> {
    match (rule, depth) {
        ("mupc", 8 | 16 | 32 | 64 | 128) => Some([92.0, 93.0, 94.0]),
        ("sp", 8) => Some([65.0, 80.0, 82.0]),
        ("sp", 32) => Some([52.0, 61.0, 67.0]),
        ("sp", 64 | 128) => Some([10.0, 10.0, 10.0]),
        _ => None,
    }
}

const FIG1_RULES: [&str; 3] = ["mupc", "sp", "bp_mup"];

type Files = Vec<PathBuf>;

/// What a figure shows.
enum Chart<'a> {
    /// Lines on axes.
    Lines(Axes, &'a [Line]),
    /// Learning-rate grids side by side on one colour scale.
    Panels(&'a [Panel], Option<(f64, f64)>),
}

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, chart: &Chart<'_>) -> Result<(), String> {
    match chart {
        Chart::Lines(axes, lines) => charts::draw_lines(root, axes, lines, "").map(|_| ()),
        Chart::Panels(panels, range) => draw_panels(root, panels, *range),
    }?;
    root.present().map_err(|e| format!("drawing failed: {e:?}"))
}

/// Writes `<name>.svg` and `<name>.png` of `chart` in `dir`.
fn figure(dir: &Path, name: &str, size: (u32, u32), chart: &Chart<'_>, files: &mut Files) -> Result<(), String> {
    let svg = dir.join(format!("{name}.svg"));
    render(&SVGBackend::new(&svg, size).into_drawing_area(), chart).map_err(|e| format!("{}: {e}", svg.display()))?;
    let png = dir.join(format!("{name}.png"));
    render(&BitMapBackend::new(&png, size).into_drawing_area(), chart)
        .map_err(|e| format!("{}: {e}", png.display()))?;
    files.extend([svg, png]);
    Ok(())
}

/// Lines with a band for each rule, and the paper's values as faint reference lines.
fn fig1_depth_lines(m: &Merged) -> Vec<Line> {
    let mut lines = Vec::new();
    for rule in FIG1_RULES {
        let mut depths: Vec<usize> = m.runs.iter().filter(|r| r.spec.rule == rule).map(|r| r.spec.depth).collect();
        depths.sort();
        depths.dedup();
        let (mut points, mut band, mut diverged_at) = (Vec::new(), Vec::new(), None);
        for &h in &depths {
            let runs: Vec<&RunRecord> = m.runs.iter().filter(|r| r.spec.rule == rule && r.spec.depth == h).collect();
            let acc: Vec<f64> = runs.iter().filter_map(|r| r.final_accuracy()).collect();
            if acc.is_empty() {
                continue;
            }
            let (mean, sd) = mean_sd(&acc);
            points.push((h as f64, mean));
            band.push((h as f64, mean - sd, mean + sd));
            let diverged = runs.iter().filter(|r| r.diverged.is_some()).count();
            if diverged > 0 && diverged_at.is_none() {
                diverged_at = Some((h as f64, format!("diverged ({diverged} of {} seeds)", runs.len())));
            }
        }
        if points.is_empty() {
            continue;
        }
        lines.push(Line {
            label: label(rule).into(),
            color: rule_color(rule),
            points,
            faded: false,
            diverged_at,
            band,
            dash: None,
        });
        let paper: Vec<(f64, f64)> =
            depths.iter().filter_map(|&h| paper_fig1(rule, h).map(|p| (h as f64, p[2]))).collect();
        if !paper.is_empty() {
            lines.push(Line {
                label: format!("paper: {} (N = 512, 900 it.)", label(rule)),
                color: rule_color(rule),
                points: paper,
                faded: true,
                diverged_at: None,
                band: Vec::new(),
                dash: None,
            });
        }
    }
    lines
}

fn fig1_iteration_lines(m: &Merged, depth: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    for rule in FIG1_RULES {
        let runs: Vec<&RunRecord> = m.runs.iter().filter(|r| r.spec.rule == rule && r.spec.depth == depth).collect();
        let mut at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in &runs {
            for &(it, acc) in &r.evals {
                at.entry(it).or_default().push(acc);
            }
        }
        if at.is_empty() {
            continue;
        }
        let stats: Vec<(f64, f64, f64)> = at
            .iter()
            .map(|(&it, v)| {
                let (mean, sd) = mean_sd(v);
                (it as f64, mean, sd)
            })
            .collect();
        // The earliest divergence over the seeds, with its layer.
        let first = runs.iter().filter_map(|r| r.diverged.as_ref()).min_by_key(|d| d.iteration);
        let diverged_at = first.map(|d| {
            let layer = d.layer.map_or("?".into(), |l| l.to_string());
            (d.iteration as f64, format!("diverged (layer {layer})"))
        });
        lines.push(Line {
            label: label(rule).into(),
            color: rule_color(rule),
            points: stats.iter().map(|s| (s.0, s.1)).collect(),
            faded: false,
            diverged_at,
            band: stats.iter().map(|s| (s.0, s.1 - s.2, s.1 + s.2)).collect(),
            dash: None,
        });
        if let Some(p) = paper_fig1(rule, depth) {
            lines.push(Line {
                label: format!("paper: {} (N = 512)", label(rule)),
                color: rule_color(rule),
                points: vec![(300.0, p[0]), (600.0, p[1]), (900.0, p[2])],
                faded: true,
                diverged_at: None,
                band: Vec::new(),
                dash: None,
            });
        }
    }
    lines
}

fn fig1(m: &Merged, dir: &Path, md: &mut String, files: &mut Files) -> Result<(), String> {
    let axes = |x: &str, log_x| {
        let a = Axes::new(x, "test accuracy (%)").bounded(0.0, 100.0);
        if log_x {
            a.log_x()
        } else {
            a
        }
    };
    let lines = fig1_depth_lines(m);
    figure(dir, "fig1-accuracy-vs-depth", (900, 520), &Chart::Lines(axes("depth H", true), &lines), files)?;
    let spec = &m.runs[0].spec;
    let seeds: std::collections::BTreeSet<u64> = m.runs.iter().map(|r| r.spec.seed).collect();
    let _ = writeln!(
        md,
        "## Fig. 1: test accuracy against depth\n\nResidual {} networks, N = {}, T = H, B = {}, {} iterations, seeds {:?}; \
         mean ± sd over seeds of the last evaluation (a diverged run counts at chance, 10 %, as in the paper).\n\n\
         ![accuracy against depth](fig1-accuracy-vs-depth.svg)\n",
        spec.act, spec.width, spec.batch, spec.iterations, seeds
    );
    let mut depths: Vec<usize> = m.runs.iter().map(|r| r.spec.depth).collect();
    depths.sort();
    depths.dedup();
    let _ = writeln!(
        md,
        "| H | rule | η_w | η_z | acc @300 | acc @600 | acc @900 | last | paper @300/600/900 (N = 512) | diverged |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for &h in &depths {
        for rule in FIG1_RULES {
            let runs: Vec<&RunRecord> = m.runs.iter().filter(|r| r.spec.rule == rule && r.spec.depth == h).collect();
            let Some(first) = runs.first() else { continue };
            let at = |it: usize| -> String {
                let v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| {
                        if r.diverged.as_ref().is_some_and(|d| d.iteration <= it) {
                            Some(10.0)
                        } else {
                            r.evals.iter().find(|e| e.0 == it).map(|e| e.1)
                        }
                    })
                    .collect();
                if v.is_empty() {
                    "–".into()
                } else {
                    let (mean, sd) = mean_sd(&v);
                    format!("{mean:.1} ± {sd:.1}")
                }
            };
            let last: Vec<f64> = runs.iter().filter_map(|r| r.final_accuracy()).collect();
            let (lm, ls) = mean_sd(&last);
            let paper =
                paper_fig1(rule, h).map_or("–".into(), |p| format!("{:.0} / {:.0} / {:.0}", p[0], p[1], p[2]));
            let diverged: Vec<String> = runs
                .iter()
                .filter_map(|r| {
                    r.diverged
                        .as_ref()
                        .map(|d| format!("seed {} at {} (layer {:?})", r.spec.seed, d.iteration, d.layer))
                })
                .collect();
            let _ = writeln!(
                md,
                "| {h} | {} | {} | {} | {} | {} | {} | {lm:.1} ± {ls:.1} (n = {}) | {paper} | {} |",
                label(rule),
                first.spec.lr,
                first.spec.eta_z,
                at(300),
                at(600),
                at(900),
                last.len(),
                if diverged.is_empty() { "–".into() } else { diverged.join("; ") }
            );
        }
    }
    let _ = writeln!(md);
    for &h in &depths {
        let lines = fig1_iteration_lines(m, h);
        let name = format!("fig1-accuracy-H{h}");
        figure(dir, &name, (900, 420), &Chart::Lines(axes("iteration", false), &lines), files)?;
        let _ = writeln!(md, "### H = {h}: test accuracy against iteration\n\n![H = {h}]({name}.svg)\n");
    }
    Ok(())
}

/// One panel of a grid: `(size label, rows η_w, columns η_z, values)`.
struct Panel {
    title: String,
    lrs: Vec<f64>,
    eta_zs: Vec<f64>,
    values: Vec<Vec<Option<f64>>>,
    best: Option<(usize, usize)>,
}

fn panels(m: &Merged, rule: &str) -> Vec<Panel> {
    let runs: Vec<&RunRecord> = m.runs.iter().filter(|r| r.spec.rule == rule).collect();
    let mut sizes: Vec<(usize, usize)> = runs.iter().map(|r| (r.spec.width, r.spec.depth)).collect();
    sizes.sort();
    sizes.dedup();
    let mut out = Vec::new();
    for (n, h) in sizes {
        let here: Vec<&&RunRecord> = runs.iter().filter(|r| (r.spec.width, r.spec.depth) == (n, h)).collect();
        let mut lrs: Vec<f64> = here.iter().map(|r| r.spec.lr).collect();
        let mut eta_zs: Vec<f64> = here.iter().map(|r| r.spec.eta_z).collect();
        lrs.sort_by(f64::total_cmp);
        lrs.dedup();
        eta_zs.sort_by(f64::total_cmp);
        eta_zs.dedup();
        // Mean over seeds of the minimum loss; a diverged cell is NaN (drawn as ×).
        let values: Vec<Vec<Option<f64>>> = lrs
            .iter()
            .map(|&lr| {
                eta_zs
                    .iter()
                    .map(|&ez| {
                        let cell: Vec<f64> = here
                            .iter()
                            .filter(|r| r.spec.lr == lr && r.spec.eta_z == ez)
                            .map(|r| if r.diverged.is_some() { f64::NAN } else { r.min_loss.unwrap_or(f64::NAN) })
                            .collect();
                        (!cell.is_empty()).then(|| cell.iter().sum::<f64>() / cell.len() as f64)
                    })
                    .collect()
            })
            .collect();
        let mut best = None;
        let mut best_v = f64::INFINITY;
        for (i, row) in values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                if let Some(v) = v.filter(|v| v.is_finite() && *v < best_v) {
                    (best, best_v) = (Some((i, j)), v);
                }
            }
        }
        out.push(Panel { title: format!("{} · N = {n} · H = {h}", label(rule)), lrs, eta_zs, values, best });
    }
    out
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    panels: &[Panel],
    range: Option<(f64, f64)>,
) -> Result<(), String> {
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (p, area) in panels.iter().zip(&areas) {
        let xl: Vec<String> = p.eta_zs.iter().map(|v| format!("{v}")).collect();
        let yl: Vec<String> = p.lrs.iter().map(|v| format!("{v}")).collect();
        let title = match p.best {
            Some((i, j)) => format!("{} · best η_w = {}, η_z = {}", p.title, p.lrs[i], p.eta_zs[j]),
            None => format!("{} · every cell diverged", p.title),
        };
        let frame = charts::draw_matrix(area, &title, ("η_z", &xl), ("η_w", &yl), &p.values, range)?;
        if let Some((i, j)) = p.best {
            // The optimum's cell, outlined.
            let to_px = |x: f64, y: f64| {
                let fx = (x - frame.x.0) / (frame.x.1 - frame.x.0);
                let fy = (y - frame.y.0) / (frame.y.1 - frame.y.0);
                let px = frame.px.0 as f64 + fx * (frame.px.1 - frame.px.0) as f64;
                let py = frame.py.1 as f64 - fy * (frame.py.1 - frame.py.0) as f64;
                (px.round() as i32, py.round() as i32)
            };
            // The frame is in the root's pixels, drawing on the area in its own.
            let (ox, oy) = area.get_base_pixel();
            let shift = |(x, y): (i32, i32)| (x - ox, y - oy);
            let (a, b) = (shift(to_px(j as f64, i as f64)), shift(to_px(j as f64 + 1.0, i as f64 + 1.0)));
            area.draw(&Rectangle::new([a, b], RED.stroke_width(3))).map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(())
}

fn grids(m: &Merged, dir: &Path, md: &mut String, files: &mut Files) -> Result<(), String> {
    let spec = &m.runs[0].spec;
    let across = if m.experiment == Experiment::LrDepth { "depths" } else { "widths" };
    let _ = writeln!(
        md,
        "## Learning-rate transfer across {across}\n\n{} networks, {} iterations a cell, B = {}, T = H; each cell is the \
         lowest training loss of the run (mean over seeds; × diverged), one colour scale for every panel, the best cell \
         outlined. The paper (Fig. 1 left, docs/maths.md §9): under μPC the best region stays in place across {across}, under \
         standard PC it moves and shrinks.\n",
        spec.act, spec.iterations, spec.batch
    );
    let all: Vec<(String, Vec<Panel>)> =
        ["mupc", "sp"].iter().map(|r| (r.to_string(), panels(m, r))).filter(|(_, p)| !p.is_empty()).collect();
    let range = charts::matrix_range(all.iter().flat_map(|(_, ps)| ps.iter().map(|p| &p.values)));
    for (rule, ps) in &all {
        let name = format!("{}-{rule}", m.experiment);
        let size = (420 * ps.len() as u32, 440);
        figure(dir, &name, size, &Chart::Panels(ps, range), files)?;
        let _ = writeln!(md, "### {}\n\n![{}]({name}.svg)\n", label(rule), label(rule));
        let _ = writeln!(md, "| size | best η_w | best η_z | its minimum loss | cells diverged |");
        let _ = writeln!(md, "|---|---|---|---|---|");
        for p in ps {
            let diverged = p.values.iter().flatten().filter(|v| v.is_some_and(|v| !v.is_finite())).count();
            let total = p.values.iter().flatten().filter(|v| v.is_some()).count();
            match p.best {
                Some((i, j)) => {
                    let v = p.values[i][j].unwrap_or(f64::NAN);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {v:.4} | {diverged} of {total} |",
                        p.title, p.lrs[i], p.eta_zs[j]
                    );
                }
                None => {
                    let _ = writeln!(md, "| {} | – | – | – | {diverged} of {total} |", p.title);
                }
            }
        }
        let _ = writeln!(md);
    }
    Ok(())
}

/// Writes `dir/report.md` and its figures for `m`; `command` is the line that made the runs (it
/// heads the report). Returns the files written.
pub fn write(m: &Merged, dir: &Path, command: &str) -> Result<Files, String> {
    crate::charts::figures::register_font();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut md = String::new();
    let hours: f64 = m.runs.iter().map(|r| r.seconds).sum::<f64>() / 3600.0;
    let _ = writeln!(
        md,
        "# pclab reproduction: {}\n\nMade by `{command}`, then `pclab report`. {} runs ({:.1} h of run time in all).\n",
        m.experiment,
        m.runs.len(),
        hours
    );
    match m.experiment {
        Experiment::Fig1 => fig1(m, dir, &mut md, &mut files)?,
        Experiment::LrDepth | Experiment::LrWidth => grids(m, dir, &mut md, &mut files)?,
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    files.push(path);
    Ok(files)
}
