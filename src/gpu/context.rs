//! Adapter and device: the adapter's own limits are requested (a 128-layer network at width 512
//! needs a ~133 MB weight binding, beyond WebGPU's default 128 MiB), and device loss is recorded so
//! the next operation reports it instead of failing obscurely.

use super::GpuError;
use std::sync::{Arc, Mutex};

/// A device, its queue and what the adapter is.
#[derive(Debug)]
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name, backend, type, driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    lost: Arc<Mutex<Option<String>>>,
    /// The first error the device reported that no error scope caught.
    reported: Arc<Mutex<Option<GpuError>>>,
    /// The compiled kernels, shared by every model on this device. Compiled once, here, so the
    /// error scopes that catch shader errors (a per-device stack) never interleave.
    pub(crate) kernels: Arc<super::kernels::Kernels>,
}

impl GpuContext {
    /// Finds an adapter (the one whose name contains `WGPU_ADAPTER_NAME` when set, else the
    /// high-performance default) and creates a device with the adapter's limits.
    pub async fn new() -> Result<Self, GpuError> {
        Self::with_shaders(&super::shaders::modules()).await
    }

    /// [`GpuContext::new`] with the kernels compiled from the given WGSL modules `(name, source)`
    /// instead of [`super::shaders::modules`] (tests plant defects in a kernel this way and check
    /// that the parity suites catch them).
    pub async fn with_shaders(modules: &[(&str, String)]) -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = match std::env::var("WGPU_ADAPTER_NAME").ok().filter(|s| !s.is_empty()) {
            Some(want) => {
                let want = want.to_lowercase();
                let all = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
                all.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&want)).ok_or_else(|| {
                    GpuError::NoAdapter(format!("none named like WGPU_ADAPTER_NAME={want}; found: {names:?}"))
                })?
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    ..Default::default()
                })
                .await
                .map_err(|e| GpuError::NoAdapter(e.to_string()))?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pclab"),
                required_limits: limits.clone(),
                // Per-kernel GPU timing (`pclab bench --kernels`) where the adapter offers it.
                required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let lost = Arc::new(Mutex::new(None));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = sink.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        // Errors no scope catches would otherwise panic (natively) or only reach the console:
        // keep the first, so the next operation reports it and the run stops with its text.
        let reported = Arc::new(Mutex::new(None));
        let sink = reported.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let err = match e {
                wgpu::Error::OutOfMemory { .. } => {
                    GpuError::TooLarge("the GPU ran out of memory; choose a smaller width, depth or batch".into())
                }
                other => GpuError::Reported(other.to_string()),
            };
            if let Ok(mut r) = sink.lock() {
                r.get_or_insert(err);
            }
        }));
        let kernels = Arc::new(super::kernels::Kernels::with_modules(&device, modules).await?);
        Ok(GpuContext { device, queue, info, limits, lost, reported, kernels })
    }

    /// The compiled kernels (each WGSL entry point with its bind-group layout).
    pub fn kernels(&self) -> &super::kernels::Kernels {
        &self.kernels
    }

    /// [`GpuContext::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self, GpuError> {
        pollster::block_on(Self::new())
    }

    /// A one-line description: name, backend, type.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// The capability report: the adapter and the limits that decide what fits — one buffer,
    /// one storage binding, workgroup memory and workgroups per dimension.
    pub fn capabilities(&self) -> String {
        let l = &self.limits;
        let mb = |b: u64| b as f64 / (1 << 20) as f64;
        format!(
            "{}; max buffer {:.0} MiB, max storage binding {:.0} MiB, workgroup memory {} KiB, {} workgroups per dimension{}",
            self.describe(),
            mb(l.max_buffer_size),
            mb(l.max_storage_buffer_binding_size),
            l.max_compute_workgroup_storage_size / 1024,
            l.max_compute_workgroups_per_dimension,
            if self.is_software() { "; a software adapter" } else { "" }
        )
    }

    /// Whether the device can time GPU work with timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// True for software adapters (lavapipe, SwiftShader, WARP): correct, but a CPU.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// An error if the device has been lost, or has reported an error nothing caught.
    pub fn check_lost(&self) -> Result<(), GpuError> {
        if let Some(msg) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(GpuError::DeviceLost(msg));
        }
        match self.reported.lock().ok().and_then(|r| r.clone()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// True once the device is lost (the page offers to create a new one).
    pub fn is_lost(&self) -> bool {
        self.lost.lock().map(|l| l.is_some()).unwrap_or(true)
    }

    /// Destroys the device, as a driver reset or a removed GPU would: every later operation
    /// reports [`GpuError::DeviceLost`]. For tests and demonstrations of recovery.
    pub fn simulate_loss(&self) {
        if let Ok(mut l) = self.lost.lock() {
            l.get_or_insert_with(|| "simulated: the device was destroyed".into());
        }
        self.device.destroy();
    }

    /// GPU buffers alive on this device, as wgpu counts them (natively; 0 where the backend keeps
    /// no count, as in the browser).
    pub fn live_buffers(&self) -> i64 {
        self.device.get_internal_counters().hal.buffers.read() as i64
    }
}
