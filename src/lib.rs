//! 责任制 Portal: organisations, the rules they must keep, and the duties those rules make
//! them owe, tracked on PostgreSQL and shown to the people who answer for them.
//!
//! Four rooms with one-way doors: `web` and `scheduler` use `db` and `domain`; `db` uses
//! `domain`; `domain` does no I/O.

pub mod app;
pub mod bench_data;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod files;
pub mod import;
pub mod scheduler;
pub mod secret;
pub mod web;
