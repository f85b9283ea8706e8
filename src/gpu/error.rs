//! Everything the GPU can say no to, as values with readable text.

use thiserror::Error;

/// A GPU failure.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpuError {
    /// No adapter: no driver, no WebGPU, or none matching `WGPU_ADAPTER_NAME`.
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the GPU adapter refused to create a device: {0}")]
    Device(String),
    /// The configuration does not fit the adapter's limits.
    #[error("this configuration does not fit the GPU: {0}")]
    TooLarge(String),
    /// A shader or pipeline failed to compile or validate.
    #[error("a GPU kernel failed to compile: {0}")]
    Shader(String),
    /// Reading results back failed.
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    /// The device was lost (driver reset, GPU removed, out of memory).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// The GPU reported an error outside any operation that checks (a validation error or an
    /// allocation that failed): the results since are not trustworthy.
    #[error("the GPU reported an error: {0}")]
    Reported(String),
    /// Something this backend does not do yet.
    #[error("{0}")]
    Unsupported(String),
}
