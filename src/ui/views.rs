//! The plot panels and the two experiment sections (κ against depth, the learning-rate grid).

use super::*;

/// Redraws plot `index` at once (after a zoom or a pan), not at the next frame's turn.
fn redraw(index: usize) {
    runner::with(|r| {
        if let Err(e) = plots::draw(index, r) {
            r.message(Level::Error, e);
        }
    });
}

/// Where plot `id` stands among the plots presentation mode shows (`None`: not shown there, or
/// not presenting).
fn present_position(c: &PageConfig, id: crate::plot_id::PlotId) -> Option<usize> {
    c.present.then(|| c.shown_plots().iter().position(|p| *p == id)).flatten()
}

#[component]
pub(super) fn Plot(index: usize, hover: RwSignal<Vec<String>>, form: RwSignal<PageConfig>) -> impl IntoView {
    let def = &plots::PLOTS[index];
    let tall = def.id.tall();
    let id = def.id.id();
    let help = RwSignal::new(false);
    // The pointer's last canvas x while a drag pans the plot.
    let drag = Rc::new(Cell::new(None::<f64>));
    let canvas_x = |ev: &web_sys::MouseEvent| {
        let canvas: web_sys::HtmlCanvasElement = event_target(ev);
        let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
        (ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale)
    };
    let on_move = {
        let drag = drag.clone();
        move |ev: web_sys::MouseEvent| {
            let (x, y) = canvas_x(&ev);
            if let Some(last) = drag.get() {
                if ev.buttons() & 1 == 1 {
                    if plots::pan(index, x - last) {
                        redraw(index);
                    }
                    drag.set(Some(x));
                } else {
                    drag.set(None);
                }
            }
            let text = plots::hover_text(index, x, y);
            hover.update(|h| h[index] = text);
        }
    };
    let on_down = {
        let drag = drag.clone();
        move |ev: web_sys::MouseEvent| {
            if plots::zoomable(index) && ev.button() == 0 {
                drag.set(Some(canvas_x(&ev).0));
            }
        }
    };
    let on_up = move |_| drag.set(None);
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    // The wheel zooms the plot instead of scrolling the page: a listener that is not passive.
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) || !plots::zoomable(index) {
            return true;
        }
        let Some(canvas) = canvas_ref.get() else { return false };
        let on_wheel = Closure::<dyn Fn(web_sys::WheelEvent)>::new(move |ev: web_sys::WheelEvent| {
            ev.prevent_default();
            let canvas: web_sys::HtmlCanvasElement = event_target(&ev);
            let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
            let factor = if ev.delta_y() > 0.0 { 1.25 } else { 0.8 };
            if plots::zoom(index, ev.offset_x() as f64 * scale, factor) {
                redraw(index);
            }
        });
        let options = web_sys::AddEventListenerOptions::new();
        options.set_passive(false);
        let added = canvas
            .add_event_listener_with_callback_and_add_event_listener_options(
                "wheel",
                on_wheel.as_ref().unchecked_ref(),
                &options,
            )
            .is_ok();
        // The canvas lives as long as the page: the listener is never removed.
        on_wheel.forget();
        added
    });
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
    let order =
        move || form.with(|c| present_position(c, def.id)).map_or(String::new(), |k| format!("order:{}", k + 1));
    let lead = move || form.with(|c| present_position(c, def.id) == Some(0) && c.shown_plots().len() == 3);
    let smooth = (def.id == crate::plot_id::PlotId::Loss).then(|| {
        view! {
            <label class="check small" title="draw each loss line as its moving average over 25 iterations, the raw values faint">
                <input type="checkbox" data-testid="smooth-loss" on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    runner::with(|r| { r.smooth_loss = on; r.dirty[index] = true; });
                } />
                "smooth"
            </label>
        }
    });
    let zoom_hint = if plots::zoomable(index) { " Wheel: zoom · drag: pan · double-click: all." } else { "" };
    view! {
        <figure class="plot" class:wide=tall class:hidden=hidden class:lead=lead style=order data-plot=id>
            <figcaption class="title">
                <span>{def.title}</span>
                <span class="plot-actions">
                    {smooth}
                    <button class="small" data-testid=format!("help-{}", id) title="what this plot shows" aria-label=format!("what the {} plot shows", def.title) on:click=move |_| help.update(|h| *h = !*h)>"?"</button>
                    <button class="small" data-testid=format!("export-png-{}", id) title="download as PNG" aria-label=format!("download the {} plot as PNG", def.title) on:click=png>"PNG"</button>
                    <button class="small" data-testid=format!("export-svg-{}", id) title="download as SVG" aria-label=format!("download the {} plot as SVG", def.title) on:click=svg>"SVG"</button>
                </span>
            </figcaption>
            {move || help.get().then(|| view! { <p class="help" data-testid=format!("help-text-{}", id)>{def.help}</p> })}
            <div class="canvas-box">
                <canvas
                    node_ref=canvas_ref
                    id=format!("plot-{}", id)
                    data-testid=id
                    role="img"
                    aria-label=def.title
                    width=if tall { 900 } else { 640 }
                    height=if tall { 330 } else { 300 }
                    on:mousemove=on_move
                    on:mousedown=on_down
                    on:mouseup=on_up
                    on:dblclick=move |_| if plots::reset_view(index) { redraw(index) }
                    on:mouseleave=move |_| hover.update(|h| h[index].clear())
                ></canvas>
            </div>
            <div class="hover" data-testid=format!("hover-{}", id)>
                {move || hover.with(|h| h[index].clone())}
            </div>
            <p class="caption"><span class="long">{def.caption}{zoom_hint}</span><span class="short">{def.short}</span></p>
        </figure>
    }
}

#[component]
pub(super) fn Conditioning(
    snap: RwSignal<Snapshot>,
    hover: RwSignal<Vec<String>>,
    form: RwSignal<PageConfig>,
) -> impl IntoView {
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
                        runner::with(|r| r.set_kappa_every(v));
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

#[component]
pub(super) fn LrGridSection(
    snap: RwSignal<Snapshot>,
    hover: RwSignal<Vec<String>>,
    form: RwSignal<PageConfig>,
) -> impl IntoView {
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
                    <select data-testid="lr-grid-depth-a" aria-label="the shallower depth" on:change=choose(|c, v| c.depths[0] = v.parse().unwrap_or(4))>{options(&[2, 4, 8, 16], d.depths[0])}</select>
                    <select data-testid="lr-grid-depth-b" aria-label="the deeper depth" on:change=choose(|c, v| c.depths[1] = v.parse().unwrap_or(16))>{options(&[8, 16, 32, 64, 128], d.depths[1])}</select>
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
