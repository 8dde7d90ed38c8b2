//! muster keeps a Docker engine in the state that one `services.toml` declares.
//!
//! The pipeline:
//!
//! ```text
//! services.toml ──config::load──▶ Desired ─┐
//!                                          ├─▶ plan::plan() ──▶ Plan ──render──▶ text / JSON
//! engine ────────engine::observe──▶ Actual ─┘                   │
//!                                                               └──apply──▶ engine
//! ```

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod lock;
pub mod plan;
pub mod render;
pub mod sanitize;
pub mod watch;
