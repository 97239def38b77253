//! Usage policies as the broker handles them: a steward's Turtle is compiled (to the rule IR and
//! to an OPA-ABI Wasm module) and checked against the dataset it is attached to before anything
//! is stored. Decisions on live requests go through `policy_evaluator` (issue 4).
//!
//! **Architecture Invariant:** policies reach the evaluator only as compiled modules whose hash
//! the stored version names; the source is recompiled on load and a hash mismatch is refused.

use policy_compiler::ir::{Asset, Policy};
use policy_compiler::parse::Syntax;
use policy_compiler::{CompileError, Vocabulary, parse, wasm};
use policy_evaluator::ModuleHash;

/// A policy ready to be stored: its IR, its module and the module's hash.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub module: Vec<u8>,
    pub hash: ModuleHash,
    /// The document's triples as N-Triples, for the graph.
    pub ntriples: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyRejection {
    #[error("the policy is not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("rule {rule} targets <{target}>, not this dataset <{dataset}>; a dataset's policy governs only that dataset")]
    ForeignTarget { rule: String, target: String, dataset: String },
}

/// Compiles `source` (Turtle or JSON-LD) as the policy of the dataset `dataset_iri`.
pub fn compile_for_dataset(
    source: &[u8],
    syntax: Syntax,
    dataset_iri: &str,
    vocab: &Vocabulary,
) -> Result<CompiledPolicy, PolicyRejection> {
    let text = std::str::from_utf8(source).map_err(|_| PolicyRejection::NotUtf8)?;
    let policy = parse::parse_one(text, syntax, vocab)?;
    let ntriples = parse::document_graph(text, syntax)?.to_string();
    for rule in &policy.rules {
        if let Some(Asset::One(target)) = &rule.target
            && target != dataset_iri
        {
            return Err(PolicyRejection::ForeignTarget {
                rule: rule.uid.clone(),
                target: target.clone(),
                dataset: dataset_iri.to_owned(),
            });
        }
    }
    let module = wasm::compile(&policy, vocab)?;
    let hash = ModuleHash::of(&module);
    Ok(CompiledPolicy {
        policy,
        module,
        hash,
        ntriples,
    })
}
