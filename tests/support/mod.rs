//! The one harness of the tests that run against a real Docker engine.
//! Every test file declares `mod support;` and imports from here:
//!
//! - [`engine`]: the engine (`DOCKER_HOST` honoured, unreachable is a
//!   clear failure, never a skip), one tokio runtime, blocking helpers to
//!   inspect and exec into containers.
//! - [`image`]: the test image `muster-test/busybox:latest`, imported from
//!   the host's static busybox, and the local registry on `127.0.0.1:5000`.
//! - [`project`]: one test's [`Project`]: a unique name and directory,
//!   `muster` preconfigured for it, views of what it has on the engine,
//!   cleanup even when the test panicked.
//! - [`run`]: the one way to run muster, and its [`Outcome`].
//! - [`events`]: the one recorder of the engine's events.
//! - [`fixtures`]: the common service files, editors' saves, bounded waits.
//! - [`daemon`]: `muster watch` as a child process.
//! - [`proxy`]: a proxy to cut the engine's connection, or its event
//!   streams alone.
//! - [`reliability`]: the invariants a project holds during and after an
//!   apply, a seeded generator, a process's memory.

// Each test binary uses a different part of this harness.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod engine;
pub mod events;
pub mod fixtures;
pub mod image;
pub mod project;
pub mod proxy;
pub mod reliability;
pub mod run;

pub use daemon::*;
pub use engine::*;
pub use events::*;
pub use fixtures::*;
pub use image::*;
pub use project::*;
pub use proxy::*;
pub use reliability::*;
pub use run::*;
