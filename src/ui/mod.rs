//! The page (wasm only, Leptos 0.8 CSR): controls, the standard PC ⇄ μPC switch, live plots and
//! status. The runner ([`runner`]) is the only loop; this module hosts it in an animation frame
//! (`leptos-use`), sends it commands from the controls and shows its [`runner::Snapshot`].

mod boot;
mod controls;
mod files;
mod keys;
mod lr_grid;
mod plots;
mod runner;
mod startup;
mod teaching;
mod tour;
mod url;
mod views;

use controls::*;
use files::*;
use keys::*;
use startup::*;
use teaching::*;
use tour::*;
use url::*;
use views::*;

use crate::config::Rule;
use crate::page::PageConfig;
use crate::pcn::{Activation, Param};
use crate::presets::Preset;
use leptos::prelude::*;
use runner::{Level, Snapshot, SPEEDS};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Least milliseconds between two redraws of one plot.
const REDRAW_MS: f64 = 250.0;
/// The plots are first drawn once MNIST is in the page (or after this long from load, whatever
/// happens): each plot's first drawing runs code the browser compiles on first use, and during
/// the start — the page and the CPU worker decompressing MNIST on both cores — that made one
/// long task of the first frames.
const FIRST_DRAW_LATEST_MS: f64 = 5000.0;
/// A frame runs the page's background jobs only when its training tick and drawing took less.
const BACKGROUND_AFTER_MS: f64 = 16.0;

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

#[component]
fn App() -> impl IntoView {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    let (first, problems) = PageConfig::from_query_with(&search, &find_tour);
    runner::install(first.clone(), problems);
    chart_text(first.present);
    let form = RwSignal::new(first);
    let snap = RwSignal::new(Snapshot::default());
    let hover = RwSignal::new(vec![String::new(); plots::PLOTS.len()]);
    let check = RwSignal::new((String::new(), "idle"));
    let keys = RwSignal::new(false);
    let glossary = RwSignal::new(false);
    // The share panel: open, hide the controls, open in presentation mode.
    let share = RwSignal::new((false, false, false));
    runner::with(|r| r.preset_started());
    if let Some(w) = web_sys::window() {
        let handler =
            Closure::<dyn Fn(web_sys::KeyboardEvent)>::new(move |ev: web_sys::KeyboardEvent| on_key(&ev, form, keys));
        if w.add_event_listener_with_callback("keydown", handler.as_ref().unchecked_ref()).is_ok() {
            // The page lives as long as the window: the listener is never removed.
            handler.forget();
        }
    }

    // The frame loop: the runner's work, at most one plot redrawn, the text updated if it changed.
    let next_plot = Rc::new(Cell::new(0usize));
    let drawn_at = Rc::new(Cell::new([f64::NEG_INFINITY; runner::PLOT_COUNT]));
    // The page comes in parts, each its own task on the page's thread with a frame between:
    // the header, the toolbar and the scores at once, then the settings, then the live plots in
    // pairs, then the two experiment sections one at a time, then PC against backprop (whose
    // canvases then follow their size on the screen): a slow machine still gets short tasks.
    let stage = RwSignal::new(0u8);
    stage_in(stage, 7);
    // Memos: each part is built once, when its stage comes, not again at the next stage.
    let shown_from = move |k: u8| Memo::new(move |_| stage.get() >= k);
    let (controls_in, conditioning_in, grid_in, teaching_in) =
        (shown_from(1), shown_from(5), shown_from(6), shown_from(7));
    let plot_in = [shown_from(2), shown_from(3), shown_from(4)];
    frame_loop(Rc::new(move || {
        let now = now_ms();
        let mut drew = false;
        let out = runner::with(|r| {
            r.tick();
            let mut times = drawn_at.get();
            let n = plots::PLOTS.len();
            // While an evaluation has the session, the plots that read it keep what they show.
            let started = r.data.is_some() || r.phase == "no data" || now >= FIRST_DRAW_LATEST_MS;
            let due = |i: usize| {
                started && r.dirty[i] && now - times[i] >= REDRAW_MS && (!r.lent || !plots::PLOTS[i].reads_session)
            };
            if let Some(i) = (0..n).map(|k| (next_plot.get() + k) % n).find(|&i| due(i)) {
                r.dirty[i] = false;
                times[i] = now;
                drawn_at.set(times);
                next_plot.set(i + 1);
                drew = true;
                if let Err(e) = plots::draw(i, r) {
                    r.message(Level::Error, e);
                }
            }
            // The page's own background work (κ, the η grid, the alignment sweep) gets what is
            // left of the frame: after a long drawing (a plot's first, which the browser compiles
            // as it goes) it waits for the next frame rather than make one long task.
            if now_ms() - now < BACKGROUND_AFTER_MS {
                r.work_lr_grid();
                r.work_conditioning();
                r.work_align_sweep();
            }
            (r.snapshot(), r.cfg.clone())
        });
        let mut changed = false;
        if let Some((s, cfg)) = out {
            if snap.with_untracked(|old| *old != s) {
                snap.set(s);
                changed = true;
            }
            // The runner changes its settings itself on the switch.
            if form.with_untracked(|f| *f != cfg) {
                write_url(&cfg);
                form.set(cfg);
            }
        }
        // Busy: something was drawn or changed, or the frame worked (training on this thread,
        // κ, the η grid): the next frame comes at once. Otherwise the page only waits on its
        // workers or the GPU, and looks again in IDLE_FRAME_MS.
        drew || changed || now_ms() - now > IDLE_WORK_MS
    }));
    wasm_bindgen_futures::spawn_local(boot_sequence());

    let play = move |_| {
        runner::with(|r| r.toggle_play());
    };
    let switch = move |_| {
        runner::with(|r| r.switch_param());
    };
    let pc_rules = move || form.with(|c| c.rules.iter().copied().filter(|r| r.is_pc()).collect::<Vec<_>>());
    let hidden = move |id: &'static str| move || form.with(|c| c.hide.iter().any(|h| h == id));
    let share_link = move || form.with(|c| share.with(|s| share_url(c, s.1, s.2)));
    let open_share = move |_| {
        share.update(|s| s.0 = !s.0);
        let url = share_link();
        let copied = web_sys::window().map(|w| w.navigator().clipboard().write_text(&url));
        runner::with(|r| {
            r.message(
                Level::Info,
                if copied.is_some() {
                    "the link is copied (and shown under “share”)"
                } else {
                    "the link is shown under “share”"
                },
            )
        });
    };
    let on_load = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            wasm_bindgen_futures::spawn_local(load_run(form, file));
        }
        input.set_value("");
    };
    let param_state = move || form.with(|c| c.param());
    let run_sweep = move |_| {
        runner::with(|r| if r.sweep_running() { r.cancel_sweep() } else { r.start_sweep() });
    };
    let shows_sweep = move || form.with(|c| c.present && c.shown_plots().contains(&crate::plot_id::PlotId::KappaSweep));
    let grid_style = move || {
        let n = form.with(|c| c.shown_plots().len()).max(1);
        let (cols, rows) = match n {
            1 => (1, 1),
            2 => (2, 1),
            3 | 4 => (2, 2),
            5 | 6 => (3, 2),
            _ => (3, 3),
        };
        format!("--cols:{cols};--rows:{rows}")
    };
    let live = move || {
        snap.with(|s| {
            let acc: Vec<String> =
                s.rules.iter().filter(|r| r.accuracy != "–").map(|r| format!("{} {}", r.label, r.accuracy)).collect();
            let acc = if acc.is_empty() { String::new() } else { format!("; test accuracy: {}", acc.join(", ")) };
            let at = if s.playing { String::new() } else { format!(" at iteration {}", s.iteration) };
            format!("{}{at}{acc}", s.phase)
        })
    };
    view! {
           <div class="app" class:present=move || form.with(|c| c.present)>
           <a class="skip-link" href="#controls-bar">"skip to the training controls"</a>
           <header>
               <h1>"pclab"</h1>
               <p class="tagline">"Deep residual predictive coding networks — standard PC, μPC and backprop — trained live on MNIST, on your GPU."</p>
               <p class="backend" data-state=move || snap.with(|s| s.backend_state)>
                   <span data-testid="backend">{move || snap.with(|s| s.backend.clone())}</span>
                   {move || snap.with(|s| s.pick.clone()).map(|why| view! {
                       <span class="pick" data-testid="device-pick">" · "{why}</span>
                   })}
                   {move || (snap.with(|s| s.backend_state == "software" && s.pick.is_none())).then(|| view! {
                       <span class="warn" data-testid="software-adapter">
                           " ⚠ a software adapter: a CPU pretending to be a GPU. The page's own CPU worker is usually faster here. "
                           <button class="small" data-testid="use-cpu" on:click=move |_| commit(form, "device", "cpu")>"train on the CPU worker instead"</button>
                       </span>
                   })}
               </p>
               <TourBar form />
               {move || form.with(|c| c.preset.filter(|_| c.tour.is_none())).map(|p| view! {
                   <section class="preset-text" data-testid="preset-text" aria-label="the preset">
                       <h2>{p.title()}</h2>
                       <p>{p.explanation()}</p>
                   </section>
               })}
           </header>
           <div class="layout">
               {move || controls_in.get().then(|| view! { <Controls form /> })}
               <main style=grid_style class:lead3=move || form.with(|c| c.shown_plots().len() == 3)>
                   {move || snap.with(|s| s.on_cpu.clone()).map(|why| view! {
                       <section class="panel cpu-banner" class:info=move || snap.with(|s| s.no_webgpu.is_none()) data-testid="cpu-banner">
                           <h2>"Training on the CPU"</h2>
                           {snap.with_untracked(|s| s.no_webgpu.is_some()).then(|| view! { <p><strong>"This browser cannot train on the GPU. "</strong></p> })}
                           <p data-testid="no-webgpu">{why}</p>
                           <p>"The same networks train on the CPU instead: the reference implementation compiled to WebAssembly (with SIMD), in a background worker, so the page stays responsive. It is much slower than a GPU — keep networks small (depth ≤ 8, width ≤ 128). For the GPU: Chrome, Edge or Opera 113 or later (on Linux, enable chrome://flags/#enable-unsafe-webgpu), Safari 26, or Firefox 141+ on Windows, with the page opened from http://localhost or over https. Every setting is in the address bar, so the same link works there."</p>
                       </section>
                   })}
                   {move || snap.with(|s| s.device_lost.clone()).map(|why| view! {
                       <section class="panel device-lost" data-testid="device-lost" role="alert">
                           <h2>"The GPU device was lost"</h2>
                           <p>{why}</p>
                           <p>"A driver reset, a GPU switched off or out of memory, or another tab that took it. Training is paused; the networks' state from the latest evaluation is kept on the CPU side."</p>
                           <button class="primary" data-testid="recover" on:click=move |_| { runner::with(|r| r.recover()); }>"create a new GPU device and resume"</button>
                       </section>
                   })}
                   {move || keys.get().then(|| view! {
                       <section class="overlay" data-testid="keys-help" role="dialog" aria-label="keyboard shortcuts">
                           <h2>"Keyboard"</h2>
                           <table>{SHORTCUTS.iter().map(|(k, what)| view! { <tr><th><kbd>{*k}</kbd></th><td>{*what}</td></tr> }).collect::<Vec<_>>()}</table>
                           <p class="caption">"Shortcuts do nothing while you type in a field."</p>
                           <button on:click=move |_| keys.set(false)>"close"</button>
                       </section>
                   })}
                   <p class="sr-only" role="status" aria-live="polite" data-testid="live">{live}</p>
                   <div class="toolbar" id="controls-bar" tabindex="-1">
                       <button data-testid="play" class="primary" class:hidden=hidden("play") on:click=play>
                           {move || if snap.with(|s| s.playing) { "pause" } else { "▶ play" }}
                       </button>
                       <button data-testid="step" class:hidden=hidden("step") title="one training iteration (→)" on:click=move |_| { runner::with(|r| r.step_iteration()); }>"step iteration"</button>
                       <button data-testid="step-inference" class:hidden=hidden("step-inference") title="one inference step of an iteration (Shift+→)" on:click=move |_| { runner::with(|r| r.step_inference()); }>"step inference"</button>
                       <button data-testid="reset" class:hidden=hidden("reset") title="start again from the seed (R)" on:click=move |_| { runner::with(|r| { r.ghosts.clear(); r.reset(); }); }>"reset"</button>
                       <button
                           data-testid="param-toggle"
                           class="switch"
                           class:hidden=hidden("param-toggle")
                           aria-pressed=move || match param_state() { Some(Param::Mupc) => "true", Some(Param::Sp) => "false", None => "mixed" }
                           title="μPC's Depth-μP scaling on or off for every rule: restarts them from the same seed (P)"
                           on:click=switch
                       >
                           "μPC scaling: "
                           <strong data-testid="param-state">{move || match param_state() {
                               Some(Param::Mupc) => "on",
                               Some(Param::Sp) => "off (standard PC)",
                               None => "both run — press for μPC only",
                           }}</strong>
                       </button>
                       <label class="field inline" class:hidden=hidden("speed")>
                           <span>"speed"</span>
                           <select data-testid="speed" on:change=move |ev| {
                               let v = event_target_value(&ev);
                               let speed = SPEEDS.iter().find(|s| s.0 == v).and_then(|s| s.1);
                               runner::with(|r| r.speed = speed);
                           }>
                               {SPEEDS.iter().map(|s| view! { <option value=s.0>{s.0}</option> }).collect::<Vec<_>>()}
                           </select>
                       </label>
                       <label class="field inline device" title="where the networks train: the GPU (WebGPU) or the CPU (Web Workers); auto: the GPU, unless its only adapter is a software one that times slower than the CPU workers">
                           <span>"device"</span>
                           <select data-testid="device" on:change=move |ev| commit(form, "device", &event_target_value(&ev))>
                               <option value="auto" selected=move || form.with(|c| c.device == crate::page::DeviceChoice::Auto)>"auto"</option>
                               <option value="gpu" disabled=move || !snap.with(|s| s.has_gpu) selected=move || form.with(|c| c.device == crate::page::DeviceChoice::Gpu)>"GPU (WebGPU)"</option>
                               <option value="cpu" selected=move || form.with(|c| c.device == crate::page::DeviceChoice::Cpu)>"CPU (workers)"</option>
                           </select>
                       </label>
                       <label class="field inline workers" title="CPU workers of the pool: each PC network's layers are split across them (auto: one per core, less one for the page)">
                           <span>"workers"</span>
                           <select data-testid="workers" on:change=move |ev| commit(form, "workers", &event_target_value(&ev))>
                               {["auto", "1", "2", "3", "4", "6", "8"].into_iter().map(|v| {
                                   let chosen = move || form.with(|c| c.workers.map_or("auto".to_string(), |w| w.to_string())) == v;
                                   view! { <option value=v selected=chosen>{v}</option> }
                               }).collect::<Vec<_>>()}
                           </select>
                       </label>
                       {move || shows_sweep().then(|| view! {
                           <button data-testid="present-kappa-run" on:click=run_sweep>
                               {move || if snap.with(|s| s.sweep_running) { "cancel the κ sweep" } else { "run the κ sweep" }}
                           </button>
                       })}
                       <button data-testid="present-toggle" title="large type, the chosen plots only, fullscreen (F)" on:click=move |_| {
                           let on = !form.with_untracked(|c| c.present);
                           set_present(form, on, true);
                       }>{move || if form.with(|c| c.present) { "leave presentation" } else { "present" }}</button>
                       <span class="counter">"iteration " <strong data-testid="iteration">{move || snap.with(|s| s.iteration)}</strong></span>
                       <span
                           class="counter network"
                           title="the networks in force"
                           data-testid="session"
                           data-generation=move || snap.with(|s| s.generation.to_string())
                           data-reported=move || snap.with(|s| s.reported.to_string())
                       >{move || snap.with(|s| s.session.clone())}</span>
                   </div>
                   <div class="toolbar secondary">
                       <button data-testid="share" title="a link that restores this exact setup" on:click=open_share>"share"</button>
                       <button data-testid="export-csv" title="every recorded metric, one row per iteration" on:click=move |_| export_metrics(true)>"metrics CSV"</button>
                       <button data-testid="export-json" title="configuration, seed and history; loads back" on:click=move |_| export_metrics(false)>"save run (JSON)"</button>
                       <label class="file" title="several saved runs can be shown at once, each dashed in its own pattern; reset clears them">"load saved runs " <input type="file" accept=".json,application/json" data-testid="load-run" on:change=on_load /></label>
    <TourMenu form />
                       <button data-testid="glossary-toggle" on:click=move |_| glossary.update(|g| *g = !*g)>"symbols"</button>
                       <button data-testid="keys-toggle" title="keyboard shortcuts (?)" on:click=move |_| keys.update(|k| *k = !*k)>"keys"</button>
                   </div>
                   {move || share.with(|s| s.0).then(|| view! {
                       <div class="share-panel" data-testid="share-panel">
                           <input type="text" readonly data-testid="share-url" aria-label="the link to this setup" prop:value=share_link />
                           <label class="check"><input type="checkbox" data-testid="share-hide" prop:checked=move || share.with(|s| s.1) on:change=move |ev| { let on = event_target_checked(&ev); share.update(|s| s.1 = on); } />"hide the controls"</label>
                           <label class="check"><input type="checkbox" data-testid="share-present" prop:checked=move || share.with(|s| s.2) on:change=move |ev| { let on = event_target_checked(&ev); share.update(|s| s.2 = on); } />"open in presentation mode"</label>
                       </div>
                   })}
                   {move || glossary.get().then(|| view! {
                       <section class="glossary" data-testid="glossary">
                           <h2>"Symbols"</h2>
                           <table>{GLOSSARY.iter().map(|(sym, what)| view! { <tr><th>{*sym}</th><td>{*what}</td></tr> }).collect::<Vec<_>>()}</table>
                       </section>
                   })}
                   <div class="scores">
                       {move || snap.with(|s| s.rules.iter().map(|row| {
                           let color = swatch(row.name.parse().unwrap_or(Rule::ALL[0]));
                           view! {
                               <div class="score" style=format!("border-color:{color}")>
                                   <div class="label">{row.label}</div>
                                   <div>"test accuracy " <strong data-testid=format!("test-accuracy-{}", row.name)>{row.accuracy.clone()}</strong></div>
                                   <div>"training loss " <strong data-testid=format!("train-loss-{}", row.name)>{row.loss.clone()}</strong></div>
                                   {row.kappa.clone().map(|k| view! {
                                       <div class="kappa">"κ " <strong data-testid=format!("kappa-{}", row.name)>{k}</strong></div>
                                   })}
                                   <div class="state" data-testid=format!("state-{}", row.name)>{row.state.clone()}</div>
                               </div>
                           }
                       }).collect::<Vec<_>>())}
                   </div>
                   <div class="status-line">
                       <span data-testid="phase">{move || snap.with(|s| s.phase.clone())}</span>
                       <span>{move || snap.with(|s| s.epoch.clone())}</span>
                       <span data-testid="throughput">{move || snap.with(|s| s.throughput.clone())}</span>
                       <span data-testid="memory">{move || snap.with(|s| s.memory.clone())}</span>
                   </div>
                   <Show when=move || snap.with(|s| s.has_gpu)>
                       <div class="kernel-times">
                           <button data-testid="time-kernels" title="One PC iteration of the networks' shape on a network of its own, every dispatch timed by the GPU's timestamp queries"
                               on:click=move |_| { runner::with(|r| r.start_kernel_timing()); }>"time the GPU kernels"</button>
                           <span data-testid="kernel-times">{move || snap.with(|s| s.kernel_times.clone())}</span>
                       </div>
                   </Show>
                   <details class="capabilities">
                       <summary>"GPU capabilities"</summary>
                       <span data-testid="capabilities">{move || snap.with(|s| s.capabilities.clone())}</span>
                   </details>
                   <div class="view-rule">
                       <label class="field inline">
                           <span>"energies of"</span>
                           <select data-testid="view-rule" on:change=move |ev| {
                               let v = event_target_value(&ev);
                               runner::with(|r| {
                                   r.view_rule = Rule::ALL.iter().find(|x| x.name() == v).map(|x| x.name());
                                   r.touch();
                               });
                           }>
                               {move || pc_rules().into_iter().map(|r| {
                                   let name = r.name();
                                   view! { <option value=name selected=move || snap.with(|s| s.view_rule == Some(name))>{r.label()}</option> }
                               }).collect::<Vec<_>>()}
                           </select>
                       </label>
                       <span class="inference-note" data-testid="inference-state">{move || snap.with(|s| s.inference.clone())}</span>
                   </div>
                   <div class="plots">
                       {(0..6).map(|i| view! { {move || plot_in[i / 2].get().then(|| view! { <Plot index=i hover form /> })} }).collect::<Vec<_>>()}
                   </div>
                   {move || teaching_in.get().then(|| view! { <Teaching snap hover form /> })}
                   {move || conditioning_in.get().then(|| view! { <Conditioning snap hover form /> })}
                   {move || grid_in.get().then(|| view! { <LrGridSection snap hover form /> })}
                   <section class="messages" data-testid="status" aria-label="messages">
                       {move || snap.with(|s| s.messages.iter().map(|m| view! { <p class=m.level.class()>{m.text.clone()}</p> }).collect::<Vec<_>>())}
                   </section>
                   <p class="gpu-check">
                       <button data-testid="gpu-check-run" on:click=move |_| wasm_bindgen_futures::spawn_local(gpu_check(check))>
                           "check the GPU kernels against the CPU reference"
                       </button>
                       <span id="gpu-check" data-testid="gpu-check" data-state=move || check.with(|c| c.1)>{move || check.with(|c| c.0.clone())}</span>
                   </p>
               </main>
           </div>
           <footer>
               {format!("pclab {} · ", crate::VERSION)}
               "MNIST: Y. LeCun, C. Cortes, C. J. C. Burges (CC BY-SA 3.0). Press ? for keyboard shortcuts."
           </footer>
           </div>
       }
}

/// Raises `stage` by one after each frame (a timer after an animation frame, so that each part
/// is mounted, styled and laid out in a task of its own) up to `last`; then the canvases follow
/// their size on the screen.
/// Milliseconds between frames while the page has nothing to do but wait (for its workers, or
/// the GPU): an animation frame costs the browser's thread work even when nothing is drawn, and
/// a pool of workers on every core feels each millisecond of it.
const IDLE_FRAME_MS: u64 = 50;

/// A frame whose work took less than this many milliseconds and that drew and changed nothing is
/// idle.
const IDLE_WORK_MS: f64 = 1.0;

/// The page's frame loop: `frame` runs in every animation frame while it says it was busy, and
/// after an idle one the next frame is asked for `IDLE_FRAME_MS` later.
fn frame_loop(frame: Rc<dyn Fn() -> bool>) {
    request_animation_frame(move || {
        if frame() {
            frame_loop(frame);
        } else {
            set_timeout(move || frame_loop(frame), std::time::Duration::from_millis(IDLE_FRAME_MS));
        }
    });
}

fn stage_in(stage: RwSignal<u8>, last: u8) {
    request_animation_frame(move || {
        set_timeout(
            move || {
                stage.update(|s| *s += 1);
                if stage.get_untracked() < last {
                    stage_in(stage, last);
                } else {
                    request_animation_frame(plots::observe_canvases);
                }
            },
            std::time::Duration::ZERO,
        )
    });
}

/// If pclab ever panics, the page says so in a panel instead of freezing silently, with the
/// message and a way back: the same page without its settings. Built with DOM text nodes only.
fn install_panic_panel() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        web_sys::console::error_1(&JsValue::from_str(&format!("pclab panicked: {msg}")));
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
        let (Ok(panel), Some(body)) = (doc.create_element("section"), doc.body()) else { return };
        panel.set_class_name("panel panic");
        panel.set_attribute("data-testid", "panic").ok();
        let path = web_sys::window().and_then(|w| w.location().pathname().ok()).unwrap_or_else(|| "/".into());
        for (tag, text) in [
            ("h2", "pclab stopped because of an internal error"),
            ("p", msg.as_str()),
            ("p", "Nothing you did caused this. Reload the page, or start again with the default settings:"),
        ] {
            if let Ok(el) = doc.create_element(tag) {
                el.set_text_content(Some(text));
                panel.append_child(&el).ok();
            }
        }
        if let Ok(a) = doc.create_element("a") {
            a.set_attribute("href", &path).ok();
            a.set_attribute("data-testid", "panic-reset").ok();
            a.set_text_content(Some("reset to defaults"));
            panel.append_child(&a).ok();
        }
        body.prepend_with_node_1(&panel).ok();
    }));
}

/// Destroys the page's GPU device, as a driver reset would (for tests and demonstrations of
/// recovery): `false` when there is none.
#[wasm_bindgen]
pub fn pclab_simulate_device_loss() -> bool {
    runner::with(|r| r.gpu.as_ref().map(|g| g.simulate_loss()).is_some()).unwrap_or(false)
}

/// Stops worker `k` of the CPU pool, as a crash would (for tests and demonstrations of
/// recovery): `false` when the pool has no such worker.
#[wasm_bindgen]
pub fn pclab_simulate_worker_loss(k: usize) -> bool {
    let Some(link) = runner::with(|r| r.pool.as_ref().and_then(|p| p.get(k).cloned())).flatten() else { return false };
    if !crate::remote::web::terminate(k) {
        return false;
    }
    link.kill("it was stopped (a simulated crash)".into());
    true
}

/// Chart text is measured on a canvas that is never shown: `measureText` needs no layout of the
/// page, where plotters' own measure appends a span to the page and reads its size.
fn install_text_measure() {
    let ctx = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok())
        .and_then(|c| c.get_context("2d").ok().flatten())
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
    if let Some(ctx) = ctx {
        // Every width is measured once, in one font at one size, and scaled to the size asked
        // for: text widths are proportional to the font size, and each new size a canvas font
        // is set to costs the browser a font lookup (the first drawings, which try titles at
        // several sizes, were long tasks for it). Widths are remembered: tick labels and
        // legends repeat from one drawing to the next.
        const REFERENCE_PX: f64 = 64.0;
        ctx.set_font(&format!("{REFERENCE_PX}px sans-serif"));
        let _ = ctx.measure_text("0123456789.−-+eE%×·abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_ηκμλ()/=,:");
        let known = std::cell::RefCell::new(std::collections::HashMap::<String, f64>::new());
        crate::charts::set_text_measure(move |text, size| {
            let height = (1.15 * size as f64).ceil() as u32;
            let cached = known.borrow().get(text).copied();
            let at_reference = cached.unwrap_or_else(|| {
                let w = ctx.measure_text(text).map_or(0.62 * REFERENCE_PX * text.chars().count() as f64, |m| m.width());
                let mut known = known.borrow_mut();
                if known.len() > 4096 {
                    known.clear();
                }
                known.insert(text.to_string(), w);
                w
            });
            let w = (at_reference * size as f64 / REFERENCE_PX).ceil() as u32;
            (w, height)
        });
    }
}

/// Draws sample text once at each size the plots use (8 px to a little over the page's 13 px, at
/// the device's pixel ratio), one size a task, before the first plot is drawn: the first text
/// drawn at a size makes the browser load that font, which in the first drawings made long tasks.
fn warm_fonts() {
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<web_sys::HtmlCanvasElement>().ok());
    let Some(ctx) = canvas
        .and_then(|c| c.get_context("2d").ok().flatten())
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).clamp(1.0, 4.0);
    wasm_bindgen_futures::spawn_local(async move {
        for size in (8.0 * dpr).round() as u32..=(15.0 * dpr).round() as u32 {
            crate::remote::web::yield_now().await;
            ctx.set_font(&format!("{size}px sans-serif"));
            let _ = ctx.fill_text("0123456789 −+.e% layer l iteration E_l ηκμλ", 0.0, size as f64);
        }
    });
}

/// Runs when the wasm module loads: replaces the loading note with the app.
#[wasm_bindgen(start)]
pub fn start() {
    install_panic_panel();
    install_text_measure();
    warm_fonts();
    // The page is built in a task of its own, not in the one that instantiated the module.
    set_timeout(
        || {
            if let Some(el) =
                web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot-note"))
            {
                el.remove();
            }
            leptos::mount::mount_to_body(App);
        },
        std::time::Duration::ZERO,
    );
}
