//! The guided lecture on the page: the step shown heads the page (and the screen when
//! presenting), with next and previous (PageDown/PageUp — what presentation clickers send — and
//! N/B); the built-in tour, or one loaded from a JSON file (kept in this browser so that its links
//! work here), and the one in use saved back to a file.

use super::*;
use crate::tour::{StepRun, Tour, BUILTIN};
use std::cell::RefCell;

thread_local! {
    /// Tours loaded from files in this page.
    static LOADED: RefCell<Vec<Tour>> = const { RefCell::new(Vec::new()) };
}

const STORAGE_PREFIX: &str = "pclab-tour:";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The tour `id`: built in, loaded in this page, or kept in this browser from an earlier load.
pub(super) fn find_tour(id: &str) -> Option<Tour> {
    Tour::builtin(id)
        .or_else(|| LOADED.with(|l| l.borrow().iter().find(|t| t.id == id).cloned()))
        .or_else(|| Tour::from_json(&storage()?.get_item(&format!("{STORAGE_PREFIX}{id}")).ok()??).ok())
}

/// The tour in force and its step (`None` outside a tour).
fn current(form: RwSignal<PageConfig>) -> Option<(Tour, usize)> {
    let (id, k) = form.with_untracked(|c| c.tour.clone())?;
    Some((find_tour(&id)?, k))
}

/// Shows step `k` of `tour` (clamped to its steps): its settings, plots and what it starts (on
/// the device chosen, unless the step itself names one).
pub(super) fn show_step(form: RwSignal<PageConfig>, tour: &Tour, k: usize) {
    let (present, device) = form.with_untracked(|c| (c.present, c.device));
    let (mut next, problems) = tour.page_config(k, present);
    // A choice of device stands unless the step itself names one.
    let step_names_device = tour.steps[next.tour.as_ref().map_or(1, |t| t.1) - 1].config.contains("device=");
    if !step_names_device {
        next.device = device;
    }
    let k = next.tour.as_ref().map_or(1, |t| t.1);
    let run = tour.steps[k - 1].run;
    write_url(&next);
    runner::with(|r| {
        for p in problems {
            r.message(Level::Warn, format!("tour step {k}: {p}"));
        }
        r.apply(next.clone());
        r.playing = next.autoplay;
        r.preset_started();
        match run {
            StepRun::Nothing | StepRun::KappaSweep if next.preset.is_some() => {}
            StepRun::Nothing => {}
            StepRun::StepInference => r.step_inference(),
            StepRun::KappaSweep => r.start_sweep(),
            StepRun::AlignmentSweep => r.start_align_sweep(),
            StepRun::LrGrid if next.preset.is_some() => {}
            StepRun::LrGrid => r.start_lr_grid(),
        }
    });
    form.set(next);
}

/// The next (`by = 1`) or previous (`by = -1`) step; `false` outside a tour or at its ends.
pub(super) fn step_by(form: RwSignal<PageConfig>, by: isize) -> bool {
    let Some((tour, k)) = current(form) else { return false };
    let to = k as isize + by;
    if to < 1 || to as usize > tour.steps.len() {
        return false;
    }
    show_step(form, &tour, to as usize);
    true
}

/// Reads a tour file: on success it starts at step 1 (and is kept in this browser); otherwise
/// every bad entry is named in the status and nothing changes.
async fn load_tour(form: RwSignal<PageConfig>, file: web_sys::File) {
    let text = wasm_bindgen_futures::JsFuture::from(file.text()).await.ok().and_then(|t| t.as_string());
    let Some(text) = text else {
        runner::with(|r| r.message(Level::Error, format!("{} could not be read", file.name())));
        return;
    };
    match Tour::from_json(&text) {
        Ok(tour) => {
            if let Some(s) = storage() {
                let _ = s.set_item(&format!("{STORAGE_PREFIX}{}", tour.id), &tour.to_json());
            }
            LOADED.with(|l| {
                let mut l = l.borrow_mut();
                l.retain(|t| t.id != tour.id);
                l.push(tour.clone());
            });
            runner::with(|r| {
                r.message(Level::Info, format!("tour “{}” loaded: {} steps", tour.title, tour.steps.len()))
            });
            show_step(form, &tour, 1);
        }
        Err(bad) => runner::with(|r| {
            r.message(
                Level::Error,
                format!(
                    "{} is not a tour ({} problem{}); nothing was loaded:",
                    file.name(),
                    bad.len(),
                    if bad.len() == 1 { "" } else { "s" }
                ),
            );
            for b in bad.iter().take(6) {
                r.message(Level::Warn, b.clone());
            }
        })
        .unwrap_or(()),
    }
}

/// Starts the built-in tour, loads one from a file.
#[component]
pub(super) fn TourMenu(form: RwSignal<PageConfig>) -> impl IntoView {
    let start = move |_| {
        if let Some(t) = Tour::builtin(BUILTIN) {
            show_step(form, &t, 1);
        }
    };
    let on_load = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            wasm_bindgen_futures::spawn_local(load_tour(form, file));
        }
        input.set_value("");
    };
    view! {
        <button data-testid="tour-start" title="the μPC paper's story, step by step (PageDown / PageUp, or N / B)" on:click=start>"guided tour"</button>
        <label class="file" title="a tour of your own: a JSON file with the same fields as a saved one">"load a tour " <input type="file" accept=".json,application/json" data-testid="tour-load" on:change=on_load /></label>
    }
}

/// The step shown: its title, paragraph and what to do, with previous and next.
#[component]
pub(super) fn TourBar(form: RwSignal<PageConfig>) -> impl IntoView {
    let state = move || {
        let (id, k) = form.with(|c| c.tour.clone())?;
        let tour = find_tour(&id)?;
        let step = tour.steps.get(k.saturating_sub(1))?.clone();
        Some((tour, k, step))
    };
    move || {
        state().map(|(tour, k, step)| {
            let n = tour.steps.len();
            let save = {
                let tour = tour.clone();
                move |_| report(download(&format!("{}.json", tour.id), "application/json", &tour.to_json()), "the tour (JSON)")
            };
            let leave = move |_| {
                form.update(|c| c.tour = None);
                form.with_untracked(write_url);
                runner::with(|r| r.cfg.tour = None);
            };
            view! {
                <section class="tour" data-testid="tour" aria-label="the guided tour">
                    <div class="tour-head">
                        <h2 data-testid="tour-title">{step.title.clone()}</h2>
                        <span class="tour-nav">
                            <button class="small" data-testid="tour-prev" disabled={k <= 1} title="previous step (PageUp, B)" on:click=move |_| { step_by(form, -1); }>"◀ previous"</button>
                            <span data-testid="tour-step" aria-label=format!("step {k} of {n}")>{format!("{k} / {n}")}</span>
                            <button class="small" data-testid="tour-next" disabled={k >= n} title="next step (PageDown, N)" on:click=move |_| { step_by(form, 1); }>"next ▶"</button>
                        </span>
                    </div>
                    <p class="tour-text">{step.text.clone()}</p>
                    <p class="tour-action" data-testid="tour-action"><strong>"Do: "</strong>{step.action.clone()}</p>
                    <p class="tour-meta">
                        {format!("{} · ", tour.title)}
                        <button class="small" data-testid="tour-save" on:click=save>"save this tour"</button>
                        " "
                        <button class="small" data-testid="tour-exit" on:click=leave>"leave the tour"</button>
                    </p>
                </section>
            }
        })
    }
}
