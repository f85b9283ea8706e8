//! PC against backprop, for a room: the gradient alignment (over training, layer × step, and the
//! width-over-depth sweep), the strip of test digits with each rule's guess, and the confusion
//! matrices.

use super::*;
use crate::plot_id::PlotId;
use runner::Digit;
use wasm_bindgen::{Clamped, JsCast};

/// Draws test image `index` (28 × 28 grey levels, ink dark) on the canvas `digit-<k>`.
fn draw_digit(k: usize, index: usize) -> Option<()> {
    let pixels = runner::with(|r| {
        let (data, _) = r.data.as_ref()?;
        let px = data.test.pixels.get(index * 784..(index + 1) * 784)?;
        Some(px.iter().flat_map(|&p| [255 - p, 255 - p, 255 - p, 255]).collect::<Vec<u8>>())
    })??;
    let doc = web_sys::window()?.document()?;
    let canvas: web_sys::HtmlCanvasElement = doc.get_element_by_id(&format!("digit-{k}"))?.dyn_into().ok()?;
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), 28, 28).ok()?;
    ctx.put_image_data(&image, 0.0, 0.0).ok()
}

/// One digit of the strip: the image, its label, each rule's guess (wrong ones marked).
fn digit_view(k: usize, d: Digit) -> impl IntoView {
    let wrong = d.guesses.iter().any(|g| g.2.is_some_and(|g| g != d.label));
    let guesses = d
        .guesses
        .iter()
        .map(|&(name, label, g)| {
            let (text, class) = match g {
                Some(g) if g == d.label => (format!("{g} ✓"), "right"),
                Some(g) => (format!("{g} ✗"), "wrong"),
                None => ("–".to_string(), "none"),
            };
            let title = format!("{label}: {text}");
            view! { <span class=format!("guess {class} rule-{name}") title=title>{text}</span> }
        })
        .collect::<Vec<_>>();
    view! {
        <figure class="digit" class:missed=wrong data-index=d.index>
            <canvas id=format!("digit-{k}") width="28" height="28" role="img" aria-label=format!("test image {} (a {})", d.index, d.label)></canvas>
            <figcaption><span class="label">{format!("a {}", d.label)}</span>{guesses}</figcaption>
        </figure>
    }
}

#[component]
pub(super) fn Teaching(
    snap: RwSignal<Snapshot>,
    hover: RwSignal<Vec<String>>,
    form: RwSignal<PageConfig>,
) -> impl IntoView {
    let run = move |_| {
        runner::with(|r| if r.align_sweep_running() { r.cancel_align_sweep() } else { r.start_align_sweep() });
    };
    let digits = Memo::new(move |_| snap.with(|s| s.teaching.digits.clone()));
    // Each image is drawn once its canvas exists (the strip is rebuilt when the guesses change).
    Effect::new(move |_| {
        let d = digits.get();
        request_animation_frame(move || {
            for (k, digit) in d.iter().enumerate() {
                draw_digit(k, digit.index);
            }
        });
    });
    // Memos: the snapshot changes every frame while training; these parts only now and then.
    let rules = Memo::new(move |_| snap.with(|s| s.rules.iter().map(|r| (r.name, r.label)).collect::<Vec<_>>()));
    let confusion = Memo::new(move |_| snap.with(|s| s.teaching.confusion.clone()));
    let alignment = Memo::new(move |_| snap.with(|s| s.teaching.alignment.clone()));
    let at = |id: PlotId| id.index();
    view! {
        <section class="conditioning teaching" data-testid="teaching">
            <h2>"PC against backprop"</h2>
            <p class="caption" data-testid="alignment-state">{move || alignment.get()}</p>
            <div class="plots">
                <Plot index=at(PlotId::Alignment) hover form />
                <Plot index=at(PlotId::AlignmentSteps) hover form />
            </div>
            <h3>"The digits"</h3>
            <p class="caption">
                "24 test images, the same every time, with each rule's guess at the latest evaluation ("
                {move || rules.get().into_iter().map(|(name, label)| view! { <span class=format!("legend rule-{name}")>{label}</span> }).collect::<Vec<_>>()}
                "); a red frame: some rule got it wrong. The strip appears at the first test evaluation."
            </p>
            <div class="digits" data-testid="digits">
                {move || digits.get().into_iter().enumerate().map(|(k, d)| digit_view(k, d)).collect::<Vec<_>>()}
            </div>
            <div class="plots">
                <Plot index=at(PlotId::Confusion) hover form />
            </div>
            <div class="confusion-notes">
                {move || confusion.get().into_iter().map(|c| view! {
                    <p data-testid=format!("confusion-{}", c.name)>{c.text}</p>
                }).collect::<Vec<_>>()}
            </div>
            <h3>"Width against depth"</h3>
            <div class="toolbar">
                <button data-testid="alignment-sweep-run" on:click=run>
                    {move || if snap.with(|s| s.align_sweep_running) { "cancel the sweep" } else { "run the alignment sweep" }}
                </button>
                <span data-testid="alignment-sweep-progress">{move || snap.with(|s| s.align_sweep.clone())}</span>
            </div>
            <div class="plots">
                <Plot index=at(PlotId::AlignmentSweep) hover form />
            </div>
        </section>
    }
}
