//! The rules of DESIGN.md sections 2 and 3 as pure functions: periods, deadlines, duty
//! status, liability, access and the built-in templates. Nothing here does I/O or reads
//! the clock; `now` is a parameter.

pub mod access;
pub mod liability;
pub mod period;
pub mod status;
pub mod templates;
pub mod time;
