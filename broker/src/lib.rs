//! The data-space broker as a library; `main.rs` is a thin CLI over it.
//!
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod admin_client;
pub mod audit;
pub mod authoring;
pub mod backup;
pub mod catalog;
pub mod changes;
pub mod chart;
pub mod client;
pub mod config;
pub mod conneg;
pub mod demo;
pub mod durable;
pub mod enforce;
pub mod exchange;
pub mod fresh;
pub mod fsutil;
pub mod german;
pub mod governance;
pub mod health;
pub mod hex;
pub mod hosted;
pub mod http;
pub mod identity;
pub mod kept;
pub mod metrics;
pub mod ns;
pub mod pki;
pub mod policy;
pub mod privacy;
pub mod reports;
pub mod schema;
pub mod serve;
pub mod shares;
pub mod spreadsheet;
pub mod stewardship;
pub mod tls;
pub mod upstream;
pub mod usage;
