//! The sub-commands that are not `serve`: each reads its flags' values and
//! drives the layers below it.

pub mod export;
pub mod import;
