//! The page's entry point (wasm only): shows the name, the version and the WebGPU adapter the
//! browser offers — or, plainly, why there is none. The training UI grows from here.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

fn set_text(id: &str, text: &str) {
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) {
        el.set_text_content(Some(text));
    }
}

fn set_state(id: &str, state: &str) {
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) {
        // Setting a data attribute cannot meaningfully fail on an element we just found.
        let _ = el.set_attribute("data-state", state);
    }
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| get(&e, "message").as_string())
        .unwrap_or_else(|| "an unknown JavaScript error".to_string())
}

/// A one-line description of the WebGPU adapter, or why there is none.
async fn describe_adapter() -> Result<String, String> {
    let window = web_sys::window().ok_or("no browser window")?;
    let gpu = get(&window.navigator(), "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return Err(
            "No WebGPU in this browser (navigator.gpu is missing). Use a recent Chrome or Edge, or Firefox/Safari \
                    with WebGPU enabled, over https or on localhost."
                .into(),
        );
    }
    let request: Function =
        get(&gpu, "requestAdapter").dyn_into().map_err(|_| "navigator.gpu.requestAdapter is missing")?;
    let promise: Promise =
        request.call0(&gpu).map_err(js_err)?.dyn_into().map_err(|_| "requestAdapter returned no promise")?;
    let adapter = JsFuture::from(promise).await.map_err(js_err)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but the browser offered no adapter (blocklisted or disabled GPU).".into());
    }
    let info = get(&adapter, "info");
    let field = |k: &str| get(&info, k).as_string().filter(|s| !s.is_empty());
    let parts: Vec<String> =
        ["vendor", "architecture", "device", "description"].iter().filter_map(|k| field(k)).collect();
    let fallback = get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool());
    let mut text = if parts.is_empty() { "an unnamed adapter".to_string() } else { parts.join(" · ") };
    if fallback == Some(true) {
        text.push_str(" (software adapter: expect it to be slow)");
    }
    Ok(text)
}

/// Runs the kernels' self-check on the browser's WebGPU and shows the outcome.
async fn gpu_check() {
    set_text("gpu-check", "Checking the GPU kernels against the CPU reference…");
    // The page is single-threaded: the Arc only satisfies GpuModel's shared ownership.
    #[allow(clippy::arc_with_non_send_sync)]
    let outcome = match crate::gpu::GpuContext::new().await {
        Ok(ctx) => crate::gpu::self_check(std::sync::Arc::new(ctx)).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(text) => {
            set_text("gpu-check", &format!("GPU check: {text}"));
            set_state("gpu-check", "ok");
        }
        Err(e) => {
            set_text("gpu-check", &format!("GPU check failed: {e}"));
            set_state("gpu-check", "failed");
        }
    }
}

/// Runs when the wasm module loads.
#[wasm_bindgen(start)]
pub fn start() {
    set_text("version", &format!("version {}", crate::VERSION));
    set_text("adapter", "Looking for a WebGPU adapter…");
    wasm_bindgen_futures::spawn_local(async {
        match describe_adapter().await {
            Ok(desc) => {
                set_text("adapter", &format!("WebGPU adapter: {desc}"));
                set_state("adapter", "found");
                gpu_check().await;
            }
            Err(why) => {
                set_text("adapter", &why);
                set_state("adapter", "missing");
                set_text("gpu-check", "The GPU kernels cannot run here; the CPU reference still can.");
                set_state("gpu-check", "skipped");
            }
        }
    });
}
