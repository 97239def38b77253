//! SPARQL 1.1 query evaluation with a time limit, a result-size cap and content negotiation.
//!
//! Queries see the union of all graphs as their default graph, so `?d a dcat:Dataset` finds every
//! dataset although each lives in its own named graph. Updates never get here: the parser is
//! asked for a query, and an update is a syntax error at this point.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use oxigraph::sparql::{CancellationToken, QueryEvaluationError, QueryResults, SparqlEvaluator};
use oxigraph::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub timeout: Duration,
    /// Most solutions (SELECT) or triples (CONSTRUCT/DESCRIBE) a query may return.
    pub max_results: usize,
    /// Most queries evaluated at once; more are refused as busy.
    pub max_concurrent: usize,
    /// Most queries one member (all its certificates) may have running at once.
    pub max_per_member: usize,
    /// Largest answer a query may have, in bytes.
    pub max_result_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOutput {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SparqlError {
    #[error("the query is not valid SPARQL 1.1: {0}")]
    Syntax(String),
    #[error("the query ran longer than the limit of {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the query returns more than the limit of {0} results; narrow it or add LIMIT")]
    TooManyResults(usize),
    #[error("the query's answer is larger than the limit of {0} bytes; narrow it")]
    TooLarge(usize),
    #[error("none of the accepted media types ({accept}) can carry {form} results; offered: {offered}")]
    NotAcceptable {
        accept: String,
        form: &'static str,
        offered: String,
    },
    #[error("{0} queries are already running, the most this endpoint evaluates at once; try again shortly")]
    Busy(usize),
    #[error("your city has {0} queries running already, the most one member may; try again when one has ended")]
    MemberBusy(usize),
    #[error("the query needed more memory than one query may use ({0} MiB) and was stopped")]
    MemoryLimit(u64),
    #[error("the query failed: {0}")]
    Evaluation(String),
}

const SOLUTION_FORMATS: &[(&str, QueryResultsFormat)] = &[
    ("application/sparql-results+json", QueryResultsFormat::Json),
    ("application/sparql-results+xml", QueryResultsFormat::Xml),
    ("text/csv", QueryResultsFormat::Csv),
    ("text/tab-separated-values", QueryResultsFormat::Tsv),
    ("application/json", QueryResultsFormat::Json),
];

const GRAPH_FORMATS: &[(&str, RdfFormat)] = &[
    ("text/turtle", RdfFormat::Turtle),
    ("application/n-triples", RdfFormat::NTriples),
    ("application/rdf+xml", RdfFormat::RdfXml),
];

/// Runs `query` against `store` within `limits` *in this process*, serialised for the best type in
/// `accept`: what the catalog does when it has no worker processes (unit tests, a store opened
/// by the command line). The broker itself answers queries in workers (`isolated`), because:
///
/// The query runs on its own thread; when the time limit passes, the caller gets
/// [`SparqlError::Timeout`] at once and the query's cancellation token is set. Oxigraph checks
/// that token whenever it reads the store, which stops most runaway queries promptly, but a plan
/// that only recombines rows it already read (a cartesian product of hash joins) does not read
/// the store again and runs on after its deadline until it ends.
pub fn evaluate(
    store: &Store,
    running: &Arc<AtomicUsize>,
    query: &str,
    accept: &str,
    limits: &QueryLimits,
) -> Result<QueryOutput, SparqlError> {
    let slot = Slot::take(running, limits.max_concurrent)?;
    let token = CancellationToken::new();
    let (tx, rx) = mpsc::channel();
    let (store, query, accept, limits_copy, t) = (store.clone(), query.to_owned(), accept.to_owned(), *limits, token.clone());
    std::thread::Builder::new()
        .name("sparql-query".into())
        .spawn(move || {
            let _slot = slot;
            let _ = tx.send(run(&store, &query, &accept, &limits_copy, t));
        })
        .map_err(|e| SparqlError::Evaluation(format!("cannot start a query thread: {e}")))?;
    match rx.recv_timeout(limits.timeout) {
        Ok(result) => result,
        Err(_) => {
            token.cancel();
            Err(SparqlError::Timeout(limits.timeout))
        }
    }
}

/// One of the `max_concurrent` evaluation slots, released on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(running: &Arc<AtomicUsize>, max: usize) -> Result<Self, SparqlError> {
        let before = running.fetch_add(1, Ordering::SeqCst);
        if before >= max {
            running.fetch_sub(1, Ordering::SeqCst);
            return Err(SparqlError::Busy(max));
        }
        Ok(Self(running.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `query` to its end (a worker process, which is killed at the deadline from outside).
pub fn run_unbounded(store: &Store, query: &str, accept: &str, limits: &QueryLimits) -> Result<QueryOutput, SparqlError> {
    run(store, query, accept, limits, CancellationToken::new())
}

/// The offered media type named `m` (what a worker's answer names), or the first one.
pub fn media_type(m: &str) -> &'static str {
    SOLUTION_FORMATS
        .iter()
        .map(|(t, _)| *t)
        .chain(GRAPH_FORMATS.iter().map(|(t, _)| *t))
        .find(|t| *t == m)
        .unwrap_or(SOLUTION_FORMATS[0].0)
}

/// The query form named `f` (what a worker's answer names).
pub fn form_name(f: &str) -> &'static str {
    ["SELECT", "ASK", "CONSTRUCT/DESCRIBE"]
        .into_iter()
        .find(|n| *n == f)
        .unwrap_or("SELECT")
}

fn run(store: &Store, query: &str, accept: &str, limits: &QueryLimits, token: CancellationToken) -> Result<QueryOutput, SparqlError> {
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(token)
        .parse_query(query)
        .map_err(|e| SparqlError::Syntax(e.to_string()))?;
    if prepared.dataset().is_default_dataset() {
        prepared.dataset_mut().set_default_graph_as_union();
    }
    let results = prepared.on_store(store).execute().map_err(|e| eval_err(e, limits))?;
    match results {
        QueryResults::Solutions(solutions) => {
            let (content_type, format) = negotiate(accept, SOLUTION_FORMATS, "SELECT")?;
            let mut ser = QueryResultsSerializer::from_format(format)
                .serialize_solutions_to_writer(Vec::new(), solutions.variables().to_vec())
                .map_err(io_err)?;
            for (n, solution) in solutions.enumerate() {
                if n >= limits.max_results {
                    return Err(SparqlError::TooManyResults(limits.max_results));
                }
                ser.serialize(&solution.map_err(|e| eval_err(e, limits))?).map_err(io_err)?;
            }
            Ok(QueryOutput {
                content_type,
                body: ser.finish().map_err(io_err)?,
            })
        }
        QueryResults::Boolean(value) => {
            let (content_type, format) = negotiate(accept, SOLUTION_FORMATS, "ASK")?;
            let body = QueryResultsSerializer::from_format(format)
                .serialize_boolean_to_writer(Vec::new(), value)
                .map_err(io_err)?;
            Ok(QueryOutput { content_type, body })
        }
        QueryResults::Graph(triples) => {
            let (content_type, format) = negotiate(accept, GRAPH_FORMATS, "CONSTRUCT/DESCRIBE")?;
            let mut ser = RdfSerializer::from_format(format).for_writer(Vec::new());
            for (n, triple) in triples.enumerate() {
                if n >= limits.max_results {
                    return Err(SparqlError::TooManyResults(limits.max_results));
                }
                ser.serialize_triple(&triple.map_err(|e| eval_err(e, limits))?).map_err(io_err)?;
            }
            let mut body = ser.finish().map_err(io_err)?;
            body.flush().map_err(io_err)?;
            Ok(QueryOutput { content_type, body })
        }
    }
}

fn eval_err(e: QueryEvaluationError, limits: &QueryLimits) -> SparqlError {
    match e {
        QueryEvaluationError::Cancelled => SparqlError::Timeout(limits.timeout),
        other => SparqlError::Evaluation(other.to_string()),
    }
}

fn io_err(e: std::io::Error) -> SparqlError {
    SparqlError::Evaluation(e.to_string())
}

/// Picks the offered media type the `Accept` header prefers ([`crate::conneg`]). An empty
/// header means the first offer.
pub fn negotiate<F: Copy>(accept: &str, offers: &[(&'static str, F)], form: &'static str) -> Result<(&'static str, F), SparqlError> {
    let header = Some(accept).filter(|a| !a.trim().is_empty());
    crate::conneg::negotiate(header, offers).ok_or_else(|| SparqlError::NotAcceptable {
        accept: accept.to_owned(),
        form,
        offered: crate::conneg::offered(offers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_honours_q_values_and_wildcards() {
        let offers = SOLUTION_FORMATS;
        assert_eq!(
            negotiate("", offers, "SELECT").map(|o| o.0).ok(),
            Some("application/sparql-results+json")
        );
        assert_eq!(
            negotiate("text/csv;q=0.5, text/tab-separated-values", offers, "SELECT")
                .map(|o| o.0)
                .ok(),
            Some("text/tab-separated-values")
        );
        assert_eq!(negotiate("text/*", offers, "SELECT").map(|o| o.0).ok(), Some("text/csv"));
        assert_eq!(negotiate("*/*", GRAPH_FORMATS, "CONSTRUCT").map(|o| o.0).ok(), Some("text/turtle"));
        assert!(negotiate("image/png", offers, "SELECT").is_err());
        assert!(negotiate("text/csv;q=0", offers, "SELECT").is_err());
    }
}
