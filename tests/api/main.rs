//! One test binary for everything that goes through HTTP: each test spawns the
//! exporter on 127.0.0.1:0 with its own SQLite file in a temp dir.

mod backup;
mod basic_auth;
mod binary;
mod config;
mod connections;
mod contract;
mod docs;
mod errors;
mod escapes;
mod events;
mod export;
mod exposition;
mod faults;
mod faults_disk;
mod faults_file;
mod healthcheck;
mod helpers;
mod import;
mod import_race;
mod input;
mod links;
mod openapi;
mod read;
mod readers;
mod releases;
mod report;
mod secrets;
#[path = "../support/skip.rs"]
mod skip;
mod startup;
mod summary_page;
mod surface;
mod tls;
