//! Why a command or a pass of the pipeline failed: one enum over the
//! stages' own errors. Only `cli` decides how each is shown and which exit
//! code it gets. Pure.

use crate::apply::ApplyError;
use crate::config;
use crate::engine::EngineError;
use crate::lock::LockError;
use crate::saved_plan::SavedPlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is invalid (exit 3).
    #[error(transparent)]
    Invalid(#[from] config::Invalid),
    /// The command line asks for something impossible (exit 64).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A saved plan that cannot be applied; nothing changed.
    #[error(transparent)]
    SavedPlan(#[from] SavedPlanError),
    /// Images that cannot be pulled: with `missing`, images the engine
    /// lacks, for an apply that then changed nothing (else `muster pull`).
    #[error("{}", pull_text(failed, *missing))]
    Pull {
        failed: Vec<EngineError>,
        missing: bool,
    },
    /// `scale --apply`: the files were changed, then the apply failed;
    /// they are ahead of the engine.
    #[error("{source}")]
    FileAhead {
        /// The files that now hold the counts, as shown.
        files: Vec<String>,
        /// The counts the files now say, by service.
        counts: Vec<(String, u32)>,
        source: Box<Error>,
    },
    #[error("{0}")]
    Other(String),
}

fn pull_text(failures: &[EngineError], missing: bool) -> String {
    let mut out = String::new();
    for e in failures {
        out.push_str(&format!("{e}\n"));
    }
    out.push_str(&match (missing, failures.len()) {
        (true, 1) => {
            "an image is not on the engine and cannot be pulled; nothing was changed".into()
        }
        (true, _) => {
            "images are not on the engine and cannot be pulled; nothing was changed".into()
        }
        (false, 1) => "an image could not be pulled".into(),
        (false, n) => format!("{n} images could not be pulled"),
    });
    out
}
