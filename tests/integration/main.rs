//! The broker's integration tests: real TLS handshakes on 127.0.0.1 with certificates from the
//! test PKI, the real oxigraph store, the real HTTP stack. One binary, a module per area.

mod aggregates;
mod attacks;
mod audit;
mod availability;
mod backup;
mod browser;
mod catalog;
mod cli;
mod console;
mod crash;
mod datasets;
mod exchange;
mod governance;
mod openapi;
mod ops;
mod policies;
mod reports;
mod sparql;
mod support;
mod tidy;
mod tls;
mod upstream;
