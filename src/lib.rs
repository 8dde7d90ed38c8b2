//! muster keeps a Docker engine in the state that one `services.toml` declares.
//!
//! The pipeline, top to bottom (arrows point down only):
//!
//! ```text
//! services.toml ──config::load──▶ Desired ─┐
//!                                          ├─▶ plan::plan() ──▶ Plan ──render──▶ text / JSON
//! engine ──Backend::observe──▶ Actual ─────┘                   │
//!                                                              └──apply──▶ Backend
//! ```
//!
//! [`reconcile`] runs that pipeline once (with the pull of missing images,
//! the lock and a second look under it); [`commands`] and the daemon
//! ([`watch`]) are thin shells over it; [`cli`] parses the command line and
//! is the only place that turns outcomes into exit codes. A backend
//! ([`engine::Backend`]) is the only thing that talks to an engine.

pub mod annotations;
pub mod apply;
pub mod apply_error;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod environments;
pub mod error;
pub mod files;
pub mod import;
pub mod lock;
pub mod logs;
pub mod markdown;
pub mod output;
pub mod plan;
pub mod readiness;
pub mod reconcile;
pub mod render;
pub mod restart;
pub mod runtime_dir;
pub mod safe_file;
pub mod sanitize;
pub mod saved_plan;
pub mod target;
pub mod terminal;
pub mod waiting;
pub mod watch;
pub mod web;
