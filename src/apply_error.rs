//! Why an apply, a readiness wait or a restart stopped. Pure data.

use crate::engine::EngineError;

/// Why an apply stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{container} {why}")]
    NotReady {
        container: String,
        why: String,
        /// The tail of its output.
        logs: String,
    },
    #[error("stopped after an earlier failure")]
    Skipped,
    /// Stopped by a signal between two steps.
    #[error("interrupted; the next apply finishes the plan")]
    Interrupted,
}
