//! The page (wasm only, Leptos 0.8 CSR): controls, the standard PC ⇄ μPC switch, live plots and
//! status. The runner ([`runner`]) is the only loop; this module hosts it in an animation frame
//! (`leptos-use`), sends it commands from the controls and shows its [`runner::Snapshot`].

mod boot;
mod lr_grid;
mod plots;
mod runner;

use crate::config::Rule;
use crate::page::PageConfig;
use crate::pcn::Activation;
use crate::plot_id::PlotId;
use crate::presets::Preset;
use leptos::prelude::*;
use runner::{Level, Snapshot, SPEEDS};
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
        ("eta_z" | "eta_z_sp" | "eta_z_mupc", "") => {
            if key != "eta_z_mupc" {
                next.eta_z_sp = None;
            }
            if key != "eta_z_sp" {
                next.eta_z_mupc = None;
            }
            Ok(())
        }
        ("preset", "") => {
            next.preset = None;
            Ok(())
        }
        ("preset", _) => {
            // A preset replaces the setup but not how the page is shown.
            let (hide, present, plots, cpu) = (next.hide.clone(), next.present, next.plots.clone(), next.cpu);
            next.set(key, value).map(|()| {
                next.hide = hide;
                next.present = present;
                next.plots = plots;
                next.cpu = cpu;
            })
        }
        _ => next.set(key, value),
    };
    match result {
        Ok(()) => {
            write_url(&next);
            runner::with(|r| {
                r.apply(next.clone());
                if key == "preset" {
                    r.preset_started();
                }
            });
            form.set(next);
        }
        Err(msg) => {
            runner::with(|r| r.message(Level::Warn, msg));
            form.update(|_| {});
        }
    }
}

/// Finds the adapter, creates the device (or, without one, starts the CPU worker), loads MNIST,
/// builds the networks.
async fn boot_sequence() {
    let adapter = boot::describe_adapter().await;
    let device = match adapter {
        Err(why) => Err(why),
        Ok((desc, software)) => {
            runner::with(|r| r.backend = (format!("WebGPU · {desc}"), if software { "software" } else { "ok" }));
            boot::gpu_context()
                .await
                .map_err(|e| format!("WebGPU is present but pclab could not create a device on it: {e}"))
        }
    };
    match device {
        Ok(ctx) => {
            // The page is single-threaded: the Arc only satisfies the models' shared ownership.
            #[allow(clippy::arc_with_non_send_sync)]
            let ctx = Arc::new(ctx);
            runner::with(|r| {
                r.capabilities = format!("WebGPU · {}", ctx.capabilities());
                r.gpu = Some(ctx);
            });
        }
        Err(why) => {
            runner::with(|r| {
                r.backend = ("no WebGPU".into(), "missing");
                r.capabilities =
                    format!("no WebGPU: {why} Training runs on the CPU (WebAssembly SIMD, in a Web Worker).");
                r.no_webgpu = Some(why);
            });
        }
    }
    // The worker loads its own copy of MNIST while the page loads one.
    runner::with(|r| {
        if r.wants_worker() {
            r.start_worker();
        }
    });
    runner::with(|r| r.phase = "loading MNIST…".into());
    let loaded = boot::load_mnist(|files, bytes| {
        runner::with(|r| r.phase = format!("loading MNIST: {files} / 4 files, {:.1} MB", bytes as f64 / 1e6));
    })
    .await;
    match loaded {
        Ok(m) => {
            runner::with(|r| {
                r.message(
                    Level::Info,
                    format!("MNIST loaded: {} training and {} test images", m.train.len(), m.test.len()),
                );
                let test_x = Arc::new(m.test_inputs());
                r.data = Some((Arc::new(m), test_x));
                r.reset();
                if std::mem::take(&mut r.sweep_on_load) {
                    r.preset_started();
                }
            });
        }
        Err(e) => {
            runner::with(|r| {
                r.phase = "no data".into();
                r.message(Level::Error, format!("MNIST could not be loaded: {e}"));
            });
        }
    }
}

/// Runs the kernels' self-check against the CPU reference on the page's device.
async fn gpu_check(result: RwSignal<(String, &'static str)>) {
    let Some(ctx) = runner::with(|r| r.gpu.clone()).flatten() else {
        result.set(("there is no GPU device to check: the page trains on the CPU".into(), "failed"));
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
    let hidden = move || form.with(|c| c.hides(key) || (key.starts_with("eta_z") && c.hides("eta_z")));
    view! {
        <label class="field" title=title class:hidden=hidden>
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
    let hides = move |id: &'static str| move || form.with(|c| c.hides(id));
    view! {
        <aside class="controls" class:hidden=move || form.with(|c| c.hide.iter().any(|h| h == "controls"))>
            <label class="field" class:hidden=hides("preset")>
                <span>"preset"</span>
                <select data-testid="preset" on:change=move |ev| commit(form, "preset", &event_target_value(&ev))>
                    <option value="" selected=move || form.with(|c| c.preset.is_none())>"— your own setup —"</option>
                    {Preset::all()
                        .into_iter()
                        .map(|p| {
                            let id = p.id();
                            view! { <option value=id.clone() selected=move || form.with(|c| c.preset == Some(p))>{p.title()}</option> }
                        })
                        .collect::<Vec<_>>()}
                </select>
            </label>
            <h2>"Network"</h2>
            <Field form key="depth" label="depth H" title="hidden layers, 1 to 256" value=text(|c| c.depth.to_string()) />
            <Field form key="width" label="width N" title="units per hidden layer, 16 to 1024" value=text(|c| c.width.to_string()) />
            <label class="field" class:hidden=hides("act")>
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
            <label class="check" class:hidden=hides("skips")>
                <input
                    type="checkbox"
                    data-testid="skips"
                    prop:checked=move || form.with(|c| c.skips)
                    on:change=move |ev| commit(form, "skips", if event_target_checked(&ev) { "1" } else { "0" })
                />
                "identity skips (residual)"
            </label>
            <h2 class:hidden=hides("rules")>"Rules"</h2>
            {Rule::ALL
                .iter()
                .map(|&rule| {
                    view! {
                        <label class="check" class:hidden=hides("rules")>
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
                key="eta_z_mupc"
                label="η_z μPC"
                title="inference rate of μPC; empty: 0.5"
                placeholder="0.5"
                value=text(|c| c.eta_z_mupc.map_or(String::new(), |v| v.to_string()))
            />
            <Field
                form
                key="eta_z_sp"
                label="η_z standard PC"
                title="inference rate of standard PC; empty: 0.1"
                placeholder="0.1"
                value=text(|c| c.eta_z_sp.map_or(String::new(), |v| v.to_string()))
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
fn Plot(index: usize, hover: RwSignal<Vec<String>>, form: RwSignal<PageConfig>) -> impl IntoView {
    let def = &plots::PLOTS[index];
    let tall = def.id.tall();
    let id = def.id.id();
    let help = RwSignal::new(false);
    let on_move = move |ev: web_sys::MouseEvent| {
        let canvas: web_sys::HtmlCanvasElement = event_target(&ev);
        let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
        let text = plots::hover_text(index, ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale);
        hover.update(|h| h[index] = text);
    };
    let png = move |_| {
        let url = plots_canvas(id).and_then(|c| c.to_data_url().ok());
        let done = url
            .ok_or_else(|| "the canvas could not be read".to_string())
            .and_then(|u| download_url(&format!("pclab-{}.png", id), &u));
        report(done, &format!("{}.png", id));
    };
    let svg = move |_| {
        let text = runner::with(|r| plots::svg(index, r)).unwrap_or_else(|| Err("the page is not ready".into()));
        let done = text.and_then(|t| download(&format!("pclab-{}.svg", id), "image/svg+xml", &t));
        report(done, &format!("{}.svg", id));
    };
    let hidden = move || form.with(|c| c.present && !c.shown_plots().contains(&def.id));
    view! {
        <figure class="plot" class:wide=tall class:hidden=hidden>
            <figcaption class="title">
                <span>{def.title}</span>
                <span class="plot-actions">
                    <button class="small" data-testid=format!("help-{}", id) title="what this plot shows" on:click=move |_| help.update(|h| *h = !*h)>"?"</button>
                    <button class="small" data-testid=format!("export-png-{}", id) title="download as PNG" on:click=png>"PNG"</button>
                    <button class="small" data-testid=format!("export-svg-{}", id) title="download as SVG" on:click=svg>"SVG"</button>
                </span>
            </figcaption>
            {move || help.get().then(|| view! { <p class="help" data-testid=format!("help-text-{}", id)>{def.help}</p> })}
            <canvas
                id=format!("plot-{}", id)
                data-testid=id
                width=if tall { 900 } else { 640 }
                height=if tall { 330 } else { 300 }
                on:mousemove=on_move
                on:mouseleave=move |_| hover.update(|h| h[index].clear())
            ></canvas>
            <div class="hover" data-testid=format!("hover-{}", id)>
                {move || hover.with(|h| h[index].clone())}
            </div>
            <p class="caption">{def.caption}</p>
        </figure>
    }
}

fn plots_canvas(id: &str) -> Option<web_sys::HtmlCanvasElement> {
    let doc = web_sys::window()?.document()?;
    doc.get_element_by_id(&format!("plot-{id}"))?.dyn_into().ok()
}

/// Says in the status whether a download started.
fn report(done: Result<(), String>, what: &str) {
    runner::with(|r| match done {
        Ok(()) => r.message(Level::Info, format!("downloaded {what}")),
        Err(e) => r.message(Level::Error, format!("{what} could not be exported: {e}")),
    });
}

/// Starts a download of `url` as `name`.
fn download_url(name: &str, url: &str) -> Result<(), String> {
    let doc = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement =
        doc.create_element("a").map_err(|e| format!("{e:?}"))?.dyn_into().map_err(|_| "not an anchor".to_string())?;
    a.set_href(url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Starts a download of `text` as a file `name` of type `mime`.
fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let done = download_url(name, &url);
    // The download reads the blob after this returns: revoking the URL now can cancel it, so it
    // is released a minute later.
    let release = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(release.unchecked_ref(), 60_000);
    }
    done
}

/// Exports the metrics (CSV) or the whole run state (JSON, loadable).
fn export_metrics(csv: bool) {
    let state = runner::with(|r| r.run_state()).flatten();
    let done = match state {
        None => Err("there is no run yet".to_string()),
        Some(st) if csv => download("pclab-metrics.csv", "text/csv", &st.to_csv()),
        Some(st) => download("pclab-run.json", "application/json", &st.to_json()),
    };
    report(done, if csv { "the metrics (CSV)" } else { "the run (JSON)" });
}

/// Loads a run saved by [`export_metrics`] from the file chosen in `input`.
async fn load_run(form: RwSignal<PageConfig>, file: web_sys::File) {
    let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
    let text = match text.ok().and_then(|t| t.as_string()) {
        Some(t) => t,
        None => {
            runner::with(|r| r.message(Level::Error, format!("{} could not be read", file.name())));
            return;
        }
    };
    match crate::export::RunState::from_json(&text) {
        Ok(state) => {
            if let Some(cfg) = runner::with(|r| r.load_state(state)) {
                write_url(&cfg);
                form.set(cfg);
            }
        }
        Err(e) => runner::with(|r| r.message(Level::Error, format!("{}: {e}", file.name()))).unwrap_or(()),
    }
}

/// The link that restores this page: the full setup, with the classroom options.
fn share_url(cfg: &PageConfig, hide_controls: bool, present: bool) -> String {
    let mut c = cfg.clone();
    if hide_controls && !c.hide.iter().any(|h| h == "controls") {
        c.hide.push("controls".into());
    }
    c.present = present;
    let base = web_sys::window()
        .and_then(|w| Some(format!("{}{}", w.location().origin().ok()?, w.location().pathname().ok()?)))
        .unwrap_or_default();
    format!("{base}{}", c.to_query())
}

/// Presentation mode on or off: large type and thick lines, the chosen plots only; fullscreen
/// when asked from a key or button (browsers allow it only then).
fn set_present(form: RwSignal<PageConfig>, on: bool, fullscreen: bool) {
    crate::charts::set_emphasis(if on { 1.7 } else { 1.0 });
    commit(form, "present", if on { "1" } else { "0" });
    runner::with(|r| r.dirty.iter_mut().for_each(|d| *d = true));
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    if on && fullscreen {
        if let Some(root) = doc.document_element() {
            let _ = root.request_fullscreen();
        }
    } else if !on && doc.fullscreen_element().is_some() {
        doc.exit_fullscreen();
    }
}

/// The symbols (docs/maths.md §1), as the glossary shows them.
const GLOSSARY: [(&str, &str); 13] = [
    ("D, O", "input (784 pixels) and output (10 classes) dimensions"),
    ("N", "width: units per hidden layer"),
    ("H, L = H + 1", "hidden layers (depth) and weight matrices"),
    ("B", "batch size: images per iteration"),
    ("z_l", "activities of hidden layer l — free during inference"),
    ("e_l", "prediction error of layer l: z_l minus its prediction from the layer below"),
    ("E_l, F", "layer energy ½‖e_l‖² and the total energy F = Σ E_l"),
    ("a_1, a_h, a_L", "branch scalings of the parameterisation (μPC: 1/√D, 1/√(N·L), 1/N; standard PC: 1)"),
    ("τ", "1 with identity skips (residual), 0 without"),
    ("φ", "activation function"),
    ("η_z, T", "inference rate and inference steps per iteration"),
    ("η_w", "weight learning rate (Adam)"),
    ("κ = |λ_max| / |λ_min|", "condition number of the inference Hessian ∂²F/∂z²"),
];

/// The keyboard shortcuts, as shown by "?".
const SHORTCUTS: [(&str, &str); 8] = [
    ("Space", "play / pause"),
    ("→", "step one iteration"),
    ("Shift + →", "step one inference step"),
    ("R", "reset to the seed"),
    ("P", "switch standard PC ⇄ μPC"),
    ("F", "presentation mode (fullscreen)"),
    ("?", "show or hide this list"),
    ("Esc", "close this list"),
];

/// Handles a key press outside text fields.
fn on_key(ev: &web_sys::KeyboardEvent, form: RwSignal<PageConfig>, keys: RwSignal<bool>) {
    if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
        return;
    }
    let target = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok());
    let tag = target.as_ref().map(|t| t.tag_name()).unwrap_or_default();
    if matches!(tag.as_str(), "INPUT" | "TEXTAREA" | "SELECT") || target.is_some_and(|t| t.is_content_editable()) {
        return;
    }
    let key = ev.key();
    // Space on a focused button presses that button; leave it to the browser.
    if key == " " && tag == "BUTTON" {
        return;
    }
    let handled = match key.as_str() {
        " " => runner::with(|r| r.toggle_play()).is_some(),
        "ArrowRight" if ev.shift_key() => runner::with(|r| r.step_inference()).is_some(),
        "ArrowRight" => runner::with(|r| r.step_iteration()).is_some(),
        "r" | "R" => runner::with(|r| {
            r.ghosts.clear();
            r.reset();
        })
        .is_some(),
        "p" | "P" => runner::with(|r| r.switch_param()).is_some(),
        "f" | "F" => {
            let on = !form.with_untracked(|c| c.present);
            set_present(form, on, true);
            true
        }
        "?" => {
            keys.update(|k| *k = !*k);
            true
        }
        "Escape" => {
            keys.set(false);
            true
        }
        _ => false,
    };
    if handled {
        ev.prevent_default();
    }
}

#[component]
fn Conditioning(snap: RwSignal<Snapshot>, hover: RwSignal<Vec<String>>, form: RwSignal<PageConfig>) -> impl IntoView {
    let run = move |_| {
        runner::with(|r| if r.sweep_running() { r.cancel_sweep() } else { r.start_sweep() });
    };
    view! {
        <section class="conditioning" class:hidden=move || form.with(|c| c.hide.iter().any(|h| h == "conditioning"))>
            <h2>"Conditioning of inference"</h2>
            <p class="caption">
                "The Hessian of one sample's energy over all hidden activities, N·H × N·H; κ exact to 10⁻⁴ up to width 128 (block bisection, float64), else from Lanczos (1 %). "
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
                <Plot index=6 hover form />
                <Plot index=7 hover form />
            </div>
        </section>
    }
}

/// A select's handler that sets part of the grid's choice from its value.
fn choose(f: impl Fn(&mut lr_grid::GridChoice, &str) + 'static) -> impl Fn(web_sys::Event) + 'static {
    move |ev: web_sys::Event| {
        let v = event_target_value(&ev);
        runner::with(|r| f(&mut r.lr_choice, &v));
    }
}

#[component]
fn LrGridSection(snap: RwSignal<Snapshot>, hover: RwSignal<Vec<String>>, form: RwSignal<PageConfig>) -> impl IntoView {
    use crate::pcn::Param;
    let run = move |_| {
        runner::with(|r| {
            if r.lr_grid.as_ref().is_some_and(|g| g.running()) {
                r.cancel_lr_grid()
            } else {
                r.start_lr_grid()
            }
        });
    };
    let options = |values: &[usize], default: usize| {
        values
            .iter()
            .map(|&v| view! { <option value=v.to_string() selected=v == default>{v}</option> })
            .collect::<Vec<_>>()
    };
    let d = lr_grid::GridChoice::default();
    view! {
        <section class="conditioning" class:hidden=move || form.with(|c| c.hide.iter().any(|h| h == "lr-grid"))>
            <h2>"Learning-rate transfer"</h2>
            <p class="caption">
                "Small networks trained at every (η_w, η_z) of a grid, at two depths: under μPC the good rates stay in the same place as depth grows."
            </p>
            <div class="toolbar">
                <label class="field inline"><span>"rule"</span>
                    <select data-testid="lr-grid-rule" on:change=choose(|c, v| c.rule = if v == "sp" { Rule::Pc(Param::Sp) } else { Rule::Pc(Param::Mupc) })>
                        <option value="mupc" selected>"μPC"</option>
                        <option value="sp">"standard PC"</option>
                    </select>
                </label>
                <label class="field inline"><span>"depths"</span>
                    <select data-testid="lr-grid-depth-a" on:change=choose(|c, v| c.depths[0] = v.parse().unwrap_or(4))>{options(&[2, 4, 8, 16], d.depths[0])}</select>
                    <select data-testid="lr-grid-depth-b" on:change=choose(|c, v| c.depths[1] = v.parse().unwrap_or(16))>{options(&[8, 16, 32, 64, 128], d.depths[1])}</select>
                </label>
                <label class="field inline"><span>"width"</span>
                    <select data-testid="lr-grid-width" on:change=choose(|c, v| c.width = v.parse().unwrap_or(32))>{options(&[16, 32, 64, 128, 256, 512], d.width)}</select>
                </label>
                <label class="field inline"><span>"grid"</span>
                    <select data-testid="lr-grid-size" on:change=choose(|c, v| c.paper = v == "paper")>
                        <option value="quick" selected>"quick: 3 η_w × 4 η_z"</option>
                        <option value="paper">"the paper's: 4 η_w × 11 η_z"</option>
                    </select>
                </label>
                <label class="field inline"><span>"iterations"</span>
                    <select data-testid="lr-grid-iters" on:change=choose(|c, v| c.iters = v.parse().unwrap_or(10))>{options(&[3, 10, 30, 100, 300], d.iters)}</select>
                </label>
                <button data-testid="lr-grid-run" on:click=run>
                    {move || if snap.with(|s| s.lr_running) { "cancel the grid" } else { "run the grid" }}
                </button>
                <span data-testid="lr-grid-progress">{move || snap.with(|s| s.lr_grid.clone())}</span>
            </div>
            <div class="plots">
                <Plot index=8 hover form />
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
    let keys = RwSignal::new(false);
    let glossary = RwSignal::new(false);
    // The share panel: open, hide the controls, open in presentation mode.
    let share = RwSignal::new((false, false, false));
    if form.with_untracked(|c| c.present) {
        crate::charts::set_emphasis(1.7);
    }
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
    leptos_use::use_raf_fn(move |_| {
        let now = now_ms();
        let out = runner::with(|r| {
            r.tick();
            r.work_lr_grid();
            r.work_conditioning();
            let mut times = drawn_at.get();
            let n = plots::PLOTS.len();
            // While an evaluation has the session, the plots keep what they show.
            // The conditioning plots and the grid do not read the session.
            let reads_session =
                |i: usize| !matches!(PlotId::ALL[i], PlotId::KappaSweep | PlotId::KappaTraining | PlotId::LrGrid);
            let due = |i: usize| r.dirty[i] && now - times[i] >= REDRAW_MS && (!r.lent || !reads_session(i));
            if let Some(i) = (0..n).map(|k| (next_plot.get() + k) % n).find(|&i| due(i)) {
                r.dirty[i] = false;
                times[i] = now;
                drawn_at.set(times);
                next_plot.set(i + 1);
                if let Err(e) = plots::draw(i, r) {
                    r.message(Level::Error, e);
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
    view! {
        <div class="app" class:present=move || form.with(|c| c.present)>
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
        {move || snap.with(|s| s.on_cpu.clone()).map(|why| view! {
            <section class="panel cpu-banner" data-testid="cpu-banner">
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
            <section class="overlay" data-testid="keys-help">
                <h2>"Keyboard"</h2>
                <table>{SHORTCUTS.iter().map(|(k, what)| view! { <tr><th><kbd>{*k}</kbd></th><td>{*what}</td></tr> }).collect::<Vec<_>>()}</table>
                <p class="caption">"Shortcuts do nothing while you type in a field."</p>
                <button on:click=move |_| keys.set(false)>"close"</button>
            </section>
        })}
        {move || form.with(|c| c.preset).map(|p| view! {
            <section class="preset-text" data-testid="preset-text">
                <h2>{p.title()}</h2>
                <p>{p.explanation()}</p>
            </section>
        })}
        <div class="layout">
            <Controls form />
            <main>
                <div class="toolbar">
                    <button data-testid="play" class="primary" class:hidden=hidden("play") on:click=play>
                        {move || if snap.with(|s| s.playing) { "pause" } else { "▶ play" }}
                    </button>
                    <button data-testid="step" class:hidden=hidden("step") title="one training iteration (→)" on:click=move |_| { runner::with(|r| r.step_iteration()); }>"step iteration"</button>
                    <button data-testid="step-inference" class:hidden=hidden("step-inference") title="one inference step of an iteration (Shift+→)" on:click=move |_| { runner::with(|r| r.step_inference()); }>"step inference"</button>
                    <button data-testid="reset" class:hidden=hidden("reset") title="start again from the seed (R)" on:click=move |_| { runner::with(|r| { r.ghosts.clear(); r.reset(); }); }>"reset"</button>
                    <button data-testid="param-toggle" class:hidden=hidden("param-toggle") title="re-initialise every rule under the other parameterisation (P)" on:click=switch>"switch standard PC ⇄ μPC"</button>
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
                    <label class="field inline" title="where the networks train: the GPU (WebGPU) or the CPU (a Web Worker)">
                        <span>"device"</span>
                        <select data-testid="device" on:change=move |ev| commit(form, "device", &event_target_value(&ev))>
                            <option value="gpu" disabled=move || !snap.with(|s| s.has_gpu) selected=move || !form.with(|c| c.cpu)>"GPU (WebGPU)"</option>
                            <option value="cpu" selected=move || form.with(|c| c.cpu) || !snap.with(|s| s.has_gpu)>"CPU (worker)"</option>
                        </select>
                    </label>
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
                    <button data-testid="present-toggle" title="large type, the chosen plots only, fullscreen (F)" on:click=move |_| {
                        let on = !form.with_untracked(|c| c.present);
                        set_present(form, on, true);
                    }>{move || if form.with(|c| c.present) { "leave presentation" } else { "present" }}</button>
                    <button data-testid="share" title="a link that restores this exact setup" on:click=open_share>"share"</button>
                    <button data-testid="export-csv" title="every recorded metric, one row per iteration" on:click=move |_| export_metrics(true)>"metrics CSV"</button>
                    <button data-testid="export-json" title="configuration, seed and history; loads back" on:click=move |_| export_metrics(false)>"save run (JSON)"</button>
                    <label class="file">"load a saved run " <input type="file" accept=".json,application/json" data-testid="load-run" on:change=on_load /></label>
                    <button data-testid="glossary-toggle" on:click=move |_| glossary.update(|g| *g = !*g)>"symbols"</button>
                    <button data-testid="keys-toggle" title="keyboard shortcuts (?)" on:click=move |_| keys.update(|k| *k = !*k)>"keys"</button>
                </div>
                {move || share.with(|s| s.0).then(|| view! {
                    <div class="share-panel" data-testid="share-panel">
                        <input type="text" readonly data-testid="share-url" prop:value=share_link />
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
                    {(0..6).map(|i| view! { <Plot index=i hover form /> }).collect::<Vec<_>>()}
                </div>
                <Conditioning snap hover form />
                <LrGridSection snap hover form />
                <section class="messages" data-testid="status">
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

/// Runs when the wasm module loads: replaces the loading note with the app.
#[wasm_bindgen(start)]
pub fn start() {
    install_panic_panel();
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot-note")) {
        el.remove();
    }
    leptos::mount::mount_to_body(App);
}
