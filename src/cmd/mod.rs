//! The sub-commands that run once and exit (each beside `serve` in `main`).

pub mod sync;
