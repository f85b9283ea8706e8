//! The settings in the address bar: a control's value checked into the configuration, the URL
//! rewritten, and the share link.

use super::*;

/// Writes the configuration into the address bar (no new history entry).
pub(super) fn write_url(cfg: &PageConfig) {
    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
        // Refused only for cross-origin URLs, which a query string never is.
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&cfg.to_query()));
    }
}

/// Sets one setting from a control; an invalid value is named in the status and the control
/// shows the value in force again.
pub(super) fn commit(form: RwSignal<PageConfig>, key: &str, value: &str) {
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
            let (hide, present, plots, device) = (next.hide.clone(), next.present, next.plots.clone(), next.device);
            // Choosing a preset leaves a guided tour.
            next.tour = None;
            next.set(key, value).map(|()| {
                next.hide = hide;
                next.present = present;
                next.plots = plots;
                next.device = device;
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

/// The link that restores this page: the full setup, with the classroom options.
pub(super) fn share_url(cfg: &PageConfig, hide_controls: bool, present: bool) -> String {
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
