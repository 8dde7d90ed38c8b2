//! The file stage: `services.toml` (and its overlays and `.env`) →
//! [`Desired`]. Reads the files; the rest is pure.

mod chain;
mod diagnostic;
mod effective;
pub mod file;
pub mod interpolate;
mod load;
mod locate;
mod model;
pub mod sensitive;
mod validate;

pub(crate) use chain::dir_of;
pub use chain::{NOT_FOUND, Read, ReadFile, Sources};
pub use chain::{
    load, load_as, load_read, parse_bytes, parse_bytes_as, parse_str, parse_str_as, parse_str_with,
};
pub use diagnostic::{Invalid, Problem, Source, plural};
pub use load::{MAX_FILE_BYTES, read_capped};
pub use model::*;
pub use validate::{MAX_TOTAL_CONTAINERS, default_project, parse_duration, valid_name};
