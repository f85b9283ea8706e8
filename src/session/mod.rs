//! Backend-agnostic orchestration: several rules trained in lockstep on the same batches from one
//! seed, with typed metrics out. No DOM, no timers of its own, no frame loop: callers drive it.

pub mod backend;
pub mod conditioning;
pub mod history;
pub mod metrics;
pub mod run;
#[allow(clippy::module_inception)]
pub mod session;

pub use backend::{Backend, BackendError, Device, Exchange};
pub use history::Series;
pub use metrics::{AlignmentSample, EvalSample, Event, IterationSample};
pub use run::{AlignmentPoint, Run, RunStatus};
pub use session::{Session, SessionError};
