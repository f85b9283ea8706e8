//! Downloads (metrics CSV, the run state, the plots as PNG) and loading a saved run.

use super::*;

pub(super) fn plots_canvas(id: &str) -> Option<web_sys::HtmlCanvasElement> {
    let doc = web_sys::window()?.document()?;
    doc.get_element_by_id(&format!("plot-{id}"))?.dyn_into().ok()
}

/// Says in the status whether a download started.
pub(super) fn report(done: Result<(), String>, what: &str) {
    runner::with(|r| match done {
        Ok(()) => r.message(Level::Info, format!("downloaded {what}")),
        Err(e) => r.message(Level::Error, format!("{what} could not be exported: {e}")),
    });
}

/// Starts a download of `url` as `name`.
pub(super) fn download_url(name: &str, url: &str) -> Result<(), String> {
    let doc = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement =
        doc.create_element("a").map_err(|e| format!("{e:?}"))?.dyn_into().map_err(|_| "not an anchor".to_string())?;
    a.set_href(url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Starts a download of `text` as a file `name` of type `mime`.
pub(super) fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
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

/// Exports the metrics (CSV) or the whole run state (JSON, loadable); while an evaluation holds
/// the session, as soon as it hands it back (up to half a minute).
pub(super) fn export_metrics(csv: bool) {
    if !runner::with(|r| r.lent).unwrap_or(false) {
        return export_now(csv);
    }
    wasm_bindgen_futures::spawn_local(async move {
        let t0 = js_sys::Date::now();
        while runner::with(|r| r.lent).unwrap_or(false) && js_sys::Date::now() - t0 < 30_000.0 {
            crate::remote::web::yield_now().await;
        }
        export_now(csv);
    });
}

fn export_now(csv: bool) {
    let state = runner::with(|r| r.run_state()).flatten();
    let done = match state {
        None => Err("there is no run yet".to_string()),
        Some(st) if csv => download("pclab-metrics.csv", "text/csv", &st.to_csv()),
        Some(st) => download("pclab-run.json", "application/json", &st.to_json()),
    };
    report(done, if csv { "the metrics (CSV)" } else { "the run (JSON)" });
}

/// Loads a run saved by [`export_metrics`] from the file chosen in `input`.
pub(super) async fn load_run(form: RwSignal<PageConfig>, file: web_sys::File) {
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
