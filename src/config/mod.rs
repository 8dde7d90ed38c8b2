//! The file stage: `services.toml` → [`Desired`]. Reads one file; the rest
//! is pure.

mod diagnostic;
pub mod file;
mod load;
mod locate;
mod model;
mod validate;

pub use diagnostic::{Invalid, Problem, plural};
pub use load::{
    MAX_FILE_BYTES, load, load_as, load_read, parse_bytes, parse_bytes_as, parse_str, parse_str_as,
    read_capped,
};
pub use model::*;
pub use validate::{MAX_TOTAL_CONTAINERS, default_project, parse_duration, valid_name};
