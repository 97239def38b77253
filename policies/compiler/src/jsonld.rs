//! ODRL policies in JSON-LD. The ODRL context (`http://www.w3.org/ns/odrl.jsonld`) is answered
//! from a built-in equivalent made from the shipped ODRL 2.2 vocabulary, so parsing never touches
//! the network; any other remote context is an error that names it. The graph then goes through
//! the same reader as Turtle.

use std::collections::BTreeSet;

use oxjsonld::{JsonLdParser, JsonLdRemoteDocument};
use oxrdf::Graph;
use oxttl::TurtleParser;
use serde_json::{Map, Value, json};

use crate::ir::KDR;
use crate::parse::CompileError;
use crate::vocab::{DPV, ODRL, ODRL22_TTL};

/// The addresses the ODRL context is published under.
pub const ODRL_CONTEXT_URLS: &[&str] = &["http://www.w3.org/ns/odrl.jsonld", "https://www.w3.org/ns/odrl.jsonld"];

/// Properties whose values are IRIs, terms resolved against the vocabulary, or ordered lists,
/// as in the published ODRL context.
const ID_PROPERTIES: &[&str] = &[
    "target",
    "assignee",
    "assigner",
    "informedParty",
    "partOf",
    "inheritFrom",
    "output",
    "hasPolicy",
    "profile",
];
const VOCAB_PROPERTIES: &[&str] = &["action", "leftOperand", "operator", "conflict", "unit"];
const LIST_PROPERTIES: &[&str] = &["and", "or", "xone", "andSequence"];

/// The ODRL context: every ODRL term by its local name, with the published type coercions.
pub fn odrl_context() -> Value {
    let mut terms: BTreeSet<String> = BTreeSet::new();
    for triple in TurtleParser::new().for_slice(ODRL22_TTL.as_bytes()).flatten() {
        let subject = triple.subject.to_string();
        if let Some(local) = subject.trim_matches(['<', '>']).strip_prefix(ODRL)
            && !local.is_empty()
            && local.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            terms.insert(local.to_owned());
        }
    }
    let mut ctx = Map::new();
    for (prefix, ns) in [
        ("odrl", ODRL),
        ("dpv", DPV),
        ("kdr", KDR),
        ("xsd", "http://www.w3.org/2001/XMLSchema#"),
        ("dct", "http://purl.org/dc/terms/"),
    ] {
        ctx.insert(prefix.into(), json!(ns));
    }
    for t in terms {
        let id = format!("odrl:{t}");
        let def = if ID_PROPERTIES.contains(&t.as_str()) {
            json!({ "@id": id, "@type": "@id" })
        } else if VOCAB_PROPERTIES.contains(&t.as_str()) {
            json!({ "@id": id, "@type": "@vocab" })
        } else if LIST_PROPERTIES.contains(&t.as_str()) {
            json!({ "@id": id, "@type": "@id", "@container": "@list" })
        } else {
            json!(id)
        };
        ctx.insert(t, def);
    }
    // Unknown keys and vocabulary values expand into the ODRL namespace instead of being dropped
    // (JSON-LD's default), so the reader reports them as unsupported terms: nothing is silently lost.
    ctx.insert("@vocab".into(), json!(ODRL));
    // As in the published context, `uid` and `type` are the JSON-LD keywords, not ODRL's properties.
    ctx.insert("uid".into(), json!("@id"));
    ctx.insert("type".into(), json!("@type"));
    json!({ "@context": ctx })
}

/// Parses a JSON-LD document into a graph (a file read locally: within `Limits::LOCAL`).
pub fn jsonld_graph(text: &str) -> Result<Graph, CompileError> {
    jsonld_graph_within(text, &crate::parse::Limits::LOCAL)
}

/// Parses a JSON-LD document into a graph within `limits`.
pub(crate) fn jsonld_graph_within(text: &str, limits: &crate::parse::Limits) -> Result<Graph, CompileError> {
    crate::parse::check_document_size(text, limits)?;
    // Made once from the shipped ODRL vocabulary (parsing it is most of a small document's cost).
    static CONTEXT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let context = CONTEXT.get_or_init(|| odrl_context().to_string().into_bytes()).clone();
    let parser = JsonLdParser::new()
        .for_slice(text.as_bytes())
        .with_load_document_callback(move |url, _| {
            if ODRL_CONTEXT_URLS.contains(&url) {
                Ok(JsonLdRemoteDocument {
                    document: context.clone(),
                    document_url: url.to_owned(),
                })
            } else {
                Err(format!("remote context <{url}> is not available offline; inline it or use the ODRL context").into())
            }
        });
    let mut graph = Graph::new();
    for quad in parser {
        let quad = quad.map_err(|e| CompileError {
            message: format!("not a JSON-LD document: {e}"),
            at: "the document".into(),
        })?;
        graph.insert(quad.as_ref());
        crate::parse::check_triple_count(&graph, limits)?;
    }
    Ok(graph)
}
