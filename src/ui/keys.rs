//! The keyboard, presentation mode and the glossary of symbols.

use super::*;

/// Presentation mode on or off: the chosen plots only, filling the screen (their type grows with
/// their canvases); fullscreen
/// when asked from a key or button (browsers allow it only then).
pub(super) fn set_present(form: RwSignal<PageConfig>, on: bool, fullscreen: bool) {
    chart_text(on);
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

/// Chart text at 13 CSS pixels on every plot alike, or, presenting, growing with each canvas
/// (from 12 to 40 CSS pixels).
pub(super) fn chart_text(present: bool) {
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).clamp(1.0, 3.0);
    if present {
        crate::charts::set_text_limits(12.0 * dpr, 40.0 * dpr);
    } else {
        crate::charts::set_text_limits(13.0 * dpr, 13.0 * dpr);
    }
}

/// The symbols (docs/maths.md §1), as the glossary shows them.
pub(super) const GLOSSARY: [(&str, &str); 13] = [
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
pub(super) const SHORTCUTS: [(&str, &str); 9] = [
    ("Space", "play / pause"),
    ("→", "step one iteration"),
    ("Shift + →", "step one inference step"),
    ("R", "reset to the seed"),
    ("P", "μPC scaling on ⇄ off (standard PC)"),
    ("PageDown / PageUp, N / B", "the guided tour's next / previous step"),
    ("F", "presentation mode (fullscreen)"),
    ("?", "show or hide this list"),
    ("Esc", "close this list"),
];

/// Handles a key press outside text fields.
pub(super) fn on_key(ev: &web_sys::KeyboardEvent, form: RwSignal<PageConfig>, keys: RwSignal<bool>) {
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
        // A presentation clicker sends PageDown / PageUp; outside a tour they scroll.
        "PageDown" | "n" | "N" => super::tour::step_by(form, 1),
        "PageUp" | "b" | "B" => super::tour::step_by(form, -1),
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
