//! The page's start: the adapter and device (or the CPU worker), MNIST, the networks; and the
//! kernels' self-check on the page's own device.

use super::*;

/// Finds the adapter, creates the device (or, without one, starts the CPU worker), loads MNIST,
/// builds the networks.
pub(super) async fn boot_sequence() {
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
            // Each step its own task, so the page's thread is never held long.
            crate::remote::web::yield_now().await;
            let test_x = Arc::new(m.test_inputs());
            crate::remote::web::yield_now().await;
            runner::with(|r| {
                r.message(
                    Level::Info,
                    format!("MNIST loaded: {} training and {} test images", m.train.len(), m.test.len()),
                );
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
pub(super) async fn gpu_check(result: RwSignal<(String, &'static str)>) {
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
