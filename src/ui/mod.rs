//! The page (wasm only, Leptos 0.8 CSR): controls, the standard PC ⇄ μPC switch, live plots and
//! status. The runner ([`runner`]) is the only loop; this module hosts it in an animation frame
//! (`leptos-use`), sends it commands from the controls and shows its [`runner::Snapshot`].

mod boot;
mod plots;
mod runner;

use crate::config::Rule;
use crate::page::PageConfig;
use crate::pcn::Activation;
use leptos::prelude::*;
use runner::{Snapshot, SPEEDS};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Least milliseconds between two redraws of one plot.
const REDRAW_MS: f64 = 250.0;

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Writes the configuration into the address bar (no new history entry).
fn write_url(cfg: &PageConfig) {
    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
        // Refused only for cross-origin URLs, which a query string never is.
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&cfg.to_query()));
    }
}

/// Sets one setting from a control; an invalid value is named in the status and the control
/// shows the value in force again.
fn commit(form: RwSignal<PageConfig>, key: &str, value: &str) {
    let mut next = form.get_untracked();
    let value = value.trim();
    let result = match (key, value) {
        ("T", "") => {
            next.steps = None;
            Ok(())
        }
        ("eta_z", "") => {
            next.eta_z = None;
            Ok(())
        }
        _ => next.set(key, value),
    };
    match result {
        Ok(()) => {
            write_url(&next);
            runner::with(|r| r.apply(next.clone()));
            form.set(next);
        }
        Err(msg) => {
            runner::with(|r| r.message("warn", msg));
            form.update(|_| {});
        }
    }
}

/// Finds the adapter, creates the device, loads MNIST, builds the networks.
async fn boot_sequence() {
    match boot::describe_adapter().await {
        Err(why) => {
            runner::with(|r| {
                r.backend = ("no WebGPU".into(), "missing");
                r.phase = "cannot train here".into();
                r.no_webgpu = Some(why);
            });
            return;
        }
        Ok((desc, software)) => {
            runner::with(|r| r.backend = (format!("WebGPU · {desc}"), if software { "software" } else { "ok" }));
        }
    }
    match boot::gpu_context().await {
        Ok(ctx) => {
            // The page is single-threaded: the Arc only satisfies the models' shared ownership.
            #[allow(clippy::arc_with_non_send_sync)]
            let ctx = Arc::new(ctx);
            runner::with(|r| r.gpu = Some(ctx));
        }
        Err(e) => {
            runner::with(|r| {
                r.phase = "cannot train here".into();
                r.no_webgpu = Some(format!("WebGPU is present but pclab could not create a device on it: {e}"));
            });
            return;
        }
    }
    runner::with(|r| r.phase = "loading MNIST…".into());
    let loaded = boot::load_mnist(|files, bytes| {
        runner::with(|r| r.phase = format!("loading MNIST: {files} / 4 files, {:.1} MB", bytes as f64 / 1e6));
    })
    .await;
    match loaded {
        Ok(m) => {
            runner::with(|r| {
                r.message("info", format!("MNIST loaded: {} training and {} test images", m.train.len(), m.test.len()));
                let test_x = Arc::new(crate::session::test_inputs(&m));
                r.data = Some((Arc::new(m), test_x));
                r.reset();
            });
        }
        Err(e) => {
            runner::with(|r| {
                r.phase = "no data".into();
                r.message("error", format!("MNIST could not be loaded: {e}"));
            });
        }
    }
}

/// Runs the kernels' self-check against the CPU reference on the page's device.
async fn gpu_check(result: RwSignal<(String, &'static str)>) {
    let Some(ctx) = runner::with(|r| r.gpu.clone()).flatten() else {
        result.set(("there is no GPU device to check".into(), "failed"));
        return;
    };
    result.set(("checking the GPU kernels against the CPU reference…".into(), "running"));
    match crate::gpu::self_check(ctx).await {
        Ok(text) => result.set((format!("GPU check: {text}"), "ok")),
        Err(e) => result.set((format!("GPU check failed: {e}"), "failed")),
    }
}

#[component]
fn Field(
    form: RwSignal<PageConfig>,
    key: &'static str,
    label: &'static str,
    title: &'static str,
    value: Signal<String>,
    #[prop(optional)] placeholder: &'static str,
) -> impl IntoView {
    view! {
        <label class="field" title=title>
            <span>{label}</span>
            <input
                type="text"
                inputmode="decimal"
                data-testid=key
                placeholder=placeholder
                prop:value=value
                on:change=move |ev| commit(form, key, &event_target_value(&ev))
            />
        </label>
    }
}

#[component]
fn Controls(form: RwSignal<PageConfig>) -> impl IntoView {
    let text = |f: fn(&PageConfig) -> String| Signal::derive(move || form.with(f));
    let toggle_rule = move |rule: Rule, on: bool| {
        let mut rules = form.get_untracked().rules;
        if on && !rules.contains(&rule) {
            rules.push(rule);
        }
        if !on {
            rules.retain(|r| *r != rule);
        }
        let list: Vec<&str> = Rule::ALL.iter().filter(|r| rules.contains(r)).map(|r| r.name()).collect();
        commit(form, "rules", &list.join(","));
    };
    view! {
        <aside class="controls">
            <h2>"Network"</h2>
            <Field form key="depth" label="depth H" title="hidden layers, 1 to 256" value=text(|c| c.depth.to_string()) />
            <Field form key="width" label="width N" title="units per hidden layer, 16 to 1024" value=text(|c| c.width.to_string()) />
            <label class="field">
                <span>"activation φ"</span>
                <select data-testid="activation" on:change=move |ev| commit(form, "act", &event_target_value(&ev))>
                    {Activation::ALL
                        .iter()
                        .map(|a| {
                            let name = a.name();
                            view! { <option value=name selected=move || form.with(|c| c.act.name() == name)>{name}</option> }
                        })
                        .collect::<Vec<_>>()}
                </select>
            </label>
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="skips"
                    prop:checked=move || form.with(|c| c.skips)
                    on:change=move |ev| commit(form, "skips", if event_target_checked(&ev) { "1" } else { "0" })
                />
                "identity skips (residual)"
            </label>
            <h2>"Rules"</h2>
            {Rule::ALL
                .iter()
                .map(|&rule| {
                    view! {
                        <label class="check">
                            <input
                                type="checkbox"
                                data-testid=format!("rule-{}", rule.name())
                                prop:checked=move || form.with(|c| c.rules.contains(&rule))
                                on:change=move |ev| toggle_rule(rule, event_target_checked(&ev))
                            />
                            <span class="swatch" style=format!("background:{}", swatch(rule))></span>
                            {rule.label()}
                        </label>
                    }
                })
                .collect::<Vec<_>>()}
            <h2>"Rates (change live)"</h2>
            <Field form key="lr_mupc" label="η_w μPC" title="Adam learning rate of μPC" value=text(|c| c.lr_mupc.to_string()) />
            <Field form key="lr_sp" label="η_w standard PC" title="Adam learning rate of standard PC" value=text(|c| c.lr_sp.to_string()) />
            <Field form key="lr_bp" label="η_w BP" title="Adam learning rate of both backprop baselines" value=text(|c| c.lr_bp.to_string()) />
            <Field
                form
                key="eta_z"
                label="η_z"
                title="inference rate of every PC rule; empty: standard PC 0.1, μPC 0.5"
                placeholder="sp 0.1 · μPC 0.5"
                value=text(|c| c.eta_z.map_or(String::new(), |v| v.to_string()))
            />
            <Field
                form
                key="T"
                label="inference steps T"
                title="inference steps per iteration; empty: T = H"
                placeholder="= H"
                value=text(|c| c.steps.map_or(String::new(), |v| v.to_string()))
            />
            <h2>"Data"</h2>
            <Field form key="batch" label="batch B" title="images per batch, 1 to 1024" value=text(|c| c.batch.to_string()) />
            <Field form key="seed" label="seed" title="weights and batch order; the same seed gives the same curves" value=text(|c| c.seed.to_string()) />
            <Field form key="eval_every" label="evaluate every" title="iterations between test-set evaluations" value=text(|c| c.eval_every.to_string()) />
        </aside>
    }
}

fn swatch(rule: Rule) -> String {
    let c = crate::charts::rule_color(rule.name());
    format!("rgb({},{},{})", c.0, c.1, c.2)
}

#[component]
fn Plot(index: usize, hover: RwSignal<Vec<String>>) -> impl IntoView {
    let def = &plots::PLOTS[index];
    let tall = matches!(def.id, "energy-heatmap" | "inference-view");
    let on_move = move |ev: web_sys::MouseEvent| {
        let canvas: web_sys::HtmlCanvasElement = event_target(&ev);
        let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
        let text = plots::hover_text(index, ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale);
        hover.update(|h| h[index] = text);
    };
    view! {
        <figure class="plot" class:wide=tall>
            <figcaption class="title">{def.title}</figcaption>
            <canvas
                id=format!("plot-{}", def.id)
                data-testid=def.id
                width=if tall { 900 } else { 640 }
                height=if tall { 330 } else { 300 }
                on:mousemove=on_move
                on:mouseleave=move |_| hover.update(|h| h[index].clear())
            ></canvas>
            <div class="hover" data-testid=format!("hover-{}", def.id)>
                {move || hover.with(|h| h[index].clone())}
            </div>
            <p class="caption">{def.caption}</p>
        </figure>
    }
}

#[component]
fn Conditioning(snap: RwSignal<Snapshot>, hover: RwSignal<Vec<String>>) -> impl IntoView {
    let run = move |_| {
        runner::with(|r| if r.sweep_running() { r.cancel_sweep() } else { r.start_sweep() });
    };
    view! {
        <section class="conditioning">
            <h2>"Conditioning of inference"</h2>
            <p class="caption">
                "The Hessian of one sample's energy over all hidden activities, N·H × N·H; κ from Lanczos (float64, 1 %). "
                "μPC fixes the forward pass, not this: κ still grows with depth and width."
            </p>
            <div class="toolbar">
                <label class="field inline">
                    <span>"sweep depths 1 … "</span>
                    <select data-testid="kappa-sweep-depth" on:change=move |ev| {
                        let v = event_target_value(&ev).parse().unwrap_or(32);
                        runner::with(|r| r.sweep_max_depth = v);
                    }>
                        {[8usize, 16, 32, 64, 128].iter().map(|&h| view! { <option value=h.to_string() selected=h == 32>{h}</option> }).collect::<Vec<_>>()}
                    </select>
                </label>
                <label class="field inline">
                    <span>"seeds"</span>
                    <select data-testid="kappa-sweep-seeds" on:change=move |ev| {
                        let v = event_target_value(&ev).parse().unwrap_or(3);
                        runner::with(|r| r.sweep_seeds = v);
                    }>
                        {[1u64, 2, 3, 5].iter().map(|&k| view! { <option value=k.to_string() selected=k == 3>{k}</option> }).collect::<Vec<_>>()}
                    </select>
                </label>
                <button data-testid="kappa-sweep-run" on:click=run>
                    {move || if snap.with(|s| s.sweep_running) { "cancel the sweep" } else { "run the κ sweep" }}
                </button>
                <span data-testid="kappa-sweep-progress">{move || snap.with(|s| s.sweep.clone())}</span>
                <label class="field inline">
                    <span>"κ during training every"</span>
                    <select data-testid="kappa-every" on:change=move |ev| {
                        let v = event_target_value(&ev).parse().unwrap_or(0);
                        runner::with(|r| r.kappa_every = v);
                    }>
                        {[(0usize, "off"), (25, "25"), (50, "50"), (100, "100"), (250, "250"), (1000, "1000")]
                            .iter()
                            .map(|&(k, t)| view! { <option value=k.to_string() selected=k == 100>{t}</option> })
                            .collect::<Vec<_>>()}
                    </select>
                    <span>"iterations"</span>
                </label>
            </div>
            <div class="plots">
                <Plot index=6 hover />
                <Plot index=7 hover />
            </div>
        </section>
    }
}

#[component]
fn App() -> impl IntoView {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    let (first, problems) = PageConfig::from_query(&search);
    runner::install(first.clone(), problems);
    let form = RwSignal::new(first);
    let snap = RwSignal::new(Snapshot::default());
    let hover = RwSignal::new(vec![String::new(); plots::PLOTS.len()]);
    let check = RwSignal::new((String::new(), "idle"));

    // The frame loop: the runner's work, at most one plot redrawn, the text updated if it changed.
    let next_plot = Rc::new(Cell::new(0usize));
    let drawn_at = Rc::new(Cell::new([f64::NEG_INFINITY; runner::PLOT_COUNT]));
    leptos_use::use_raf_fn(move |_| {
        let now = now_ms();
        let out = runner::with(|r| {
            r.tick();
            r.work_conditioning();
            let mut times = drawn_at.get();
            let n = plots::PLOTS.len();
            // While an evaluation has the session, the plots keep what they show.
            // The conditioning plots (6, 7) do not read the session.
            let due = |i: usize| r.dirty[i] && now - times[i] >= REDRAW_MS && (!r.lent || i >= 6);
            if let Some(i) = (0..n).map(|k| (next_plot.get() + k) % n).find(|&i| due(i)) {
                r.dirty[i] = false;
                times[i] = now;
                drawn_at.set(times);
                next_plot.set(i + 1);
                if let Err(e) = plots::draw(i, r) {
                    r.message("error", e);
                }
            }
            (r.snapshot(), r.cfg.clone())
        });
        if let Some((s, cfg)) = out {
            if snap.with_untracked(|old| *old != s) {
                snap.set(s);
            }
            // The runner changes its settings itself on the switch.
            if form.with_untracked(|f| *f != cfg) {
                write_url(&cfg);
                form.set(cfg);
            }
        }
    });
    wasm_bindgen_futures::spawn_local(boot_sequence());

    let play = move |_| {
        runner::with(|r| r.toggle_play());
    };
    let switch = move |_| {
        runner::with(|r| r.switch_param());
    };
    let pc_rules = move || form.with(|c| c.rules.iter().copied().filter(|r| r.is_pc()).collect::<Vec<_>>());
    view! {
        <header>
            <h1>"pclab"</h1>
            <p class="tagline">"Deep residual predictive coding networks — standard PC, μPC and backprop — trained live on MNIST, on your GPU."</p>
            <p class="backend" data-state=move || snap.with(|s| s.backend_state)>
                <span data-testid="backend">{move || snap.with(|s| s.backend.clone())}</span>
                {move || (snap.with(|s| s.backend_state) == "software").then(|| view! {
                    <strong class="warn">" ⚠ a software adapter: correct, but a CPU pretending to be a GPU — expect it to be slow."</strong>
                })}
            </p>
        </header>
        {move || snap.with(|s| s.no_webgpu.clone()).map(|why| view! {
            <section class="panel no-webgpu" data-testid="no-webgpu">
                <h2>"This browser cannot train on the GPU"</h2>
                <p>{why}</p>
                <p>"pclab trains with WebGPU compute shaders. Nothing was lost: every setting is in the address bar, so the same link works in a browser with WebGPU."</p>
            </section>
        })}
        <div class="layout">
            <Controls form />
            <main>
                <div class="toolbar">
                    <button data-testid="play" class="primary" on:click=play>
                        {move || if snap.with(|s| s.playing) { "pause" } else { "▶ play" }}
                    </button>
                    <button data-testid="step" title="one training iteration" on:click=move |_| { runner::with(|r| r.step_iteration()); }>"step iteration"</button>
                    <button data-testid="step-inference" title="one inference step of an iteration" on:click=move |_| { runner::with(|r| r.step_inference()); }>"step inference"</button>
                    <button data-testid="reset" title="start again from the seed" on:click=move |_| { runner::with(|r| { r.ghosts.clear(); r.reset(); }); }>"reset"</button>
                    <button data-testid="param-toggle" title="re-initialise every rule under the other parameterisation" on:click=switch>"switch standard PC ⇄ μPC"</button>
                    <label class="field inline">
                        <span>"speed"</span>
                        <select data-testid="speed" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            let speed = SPEEDS.iter().find(|s| s.0 == v).and_then(|s| s.1);
                            runner::with(|r| r.speed = speed);
                        }>
                            {SPEEDS.iter().map(|s| view! { <option value=s.0>{s.0}</option> }).collect::<Vec<_>>()}
                        </select>
                    </label>
                    <span class="counter">"iteration " <strong data-testid="iteration">{move || snap.with(|s| s.iteration)}</strong></span>
                </div>
                <div class="scores">
                    {move || snap.with(|s| s.rules.iter().map(|row| {
                        let color = swatch(row.name.parse().unwrap_or(Rule::ALL[0]));
                        view! {
                            <div class="score" style=format!("border-color:{color}")>
                                <div class="label">{row.label}</div>
                                <div>"test accuracy " <strong data-testid=format!("test-accuracy-{}", row.name)>{row.accuracy.clone()}</strong></div>
                                <div>"training loss " <strong data-testid=format!("train-loss-{}", row.name)>{row.loss.clone()}</strong></div>
                                {row.kappa.clone().map(|k| view! {
                                    <div>"κ " <strong data-testid=format!("kappa-{}", row.name)>{k}</strong></div>
                                })}
                                <div class="state">{row.state.clone()}</div>
                            </div>
                        }
                    }).collect::<Vec<_>>())}
                </div>
                <div class="status-line">
                    <span>{move || snap.with(|s| s.phase.clone())}</span>
                    <span>{move || snap.with(|s| s.epoch.clone())}</span>
                    <span data-testid="throughput">{move || snap.with(|s| s.throughput.clone())}</span>
                    <span data-testid="memory">{move || snap.with(|s| s.memory.clone())}</span>
                </div>
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
                    {(0..6).map(|i| view! { <Plot index=i hover /> }).collect::<Vec<_>>()}
                </div>
                <Conditioning snap hover />
                <section class="messages" data-testid="status">
                    {move || snap.with(|s| s.messages.iter().map(|m| view! { <p class=m.level>{m.text.clone()}</p> }).collect::<Vec<_>>())}
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
            "MNIST: Y. LeCun, C. Cortes, C. J. C. Burges (CC BY-SA 3.0)."
        </footer>
    }
}

/// Runs when the wasm module loads: replaces the loading note with the app.
#[wasm_bindgen(start)]
pub fn start() {
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot-note")) {
        el.remove();
    }
    leptos::mount::mount_to_body(App);
}
