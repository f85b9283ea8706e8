//! What the page needs before it can train: a WebGPU adapter and device (or, plainly, why there is
//! none) and the four MNIST files, fetched from `data/mnist/` with progress.

use crate::gpu::GpuContext;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) use crate::remote::web::js_err;

/// The adapter the browser offers, described; `Err` says why there is none and what to do.
pub async fn describe_adapter() -> Result<(String, bool), String> {
    let window = web_sys::window().ok_or("no browser window")?;
    let secure = get(&window, "isSecureContext").as_bool().unwrap_or(true);
    let gpu = get(&window.navigator(), "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        let why = if !secure {
            "WebGPU needs a secure context, and this page was opened over plain http from a network address. \
             Open it as http://localhost or http://127.0.0.1 on this machine, or serve it over https."
        } else {
            "This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or Opera \
             (version 113 or later), Safari 26, or Firefox 141+ on Windows; on Linux, Chrome with \
             chrome://flags/#enable-unsafe-webgpu enabled."
        };
        return Err(why.into());
    }
    let request: Function =
        get(&gpu, "requestAdapter").dyn_into().map_err(|_| "navigator.gpu.requestAdapter is missing")?;
    let promise: Promise =
        request.call0(&gpu).map_err(js_err)?.dyn_into().map_err(|_| "requestAdapter returned no promise")?;
    let adapter = JsFuture::from(promise).await.map_err(js_err)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but the browser offered no adapter: the GPU may be blocklisted or \
                    hardware acceleration switched off (see chrome://gpu)."
            .into());
    }
    let info = get(&adapter, "info");
    let field = |k: &str| get(&info, k).as_string().filter(|s| !s.is_empty());
    let parts: Vec<String> =
        ["vendor", "architecture", "device", "description"].iter().filter_map(|k| field(k)).collect();
    let fallback = get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool());
    let text = if parts.is_empty() { "an unnamed adapter".to_string() } else { parts.join(" · ") };
    let lower = text.to_lowercase();
    let software = fallback == Some(true) || lower.contains("swiftshader") || lower.contains("llvmpipe");
    Ok((text, software))
}

/// The device the page trains on.
pub async fn gpu_context() -> Result<GpuContext, String> {
    GpuContext::new().await.map_err(|e| e.to_string())
}

/// Fetches and parses MNIST, calling `progress(files_done, bytes_so_far)` after each file.
pub use crate::remote::web::load_mnist;
