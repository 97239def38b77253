//! The policy toolchain's front half: ODRL 2.2 policies (with W3C DPV purposes) are parsed into
//! a small rule IR, and a reference evaluator decides requests against that IR.
//!
//! The IR is the contract between the parts: the Wasm code generator (issue 3, next step)
//! compiles it, the Rego renderer prints it, and this crate's evaluator is the executable
//! specification both are checked against. Anything the parser does not understand is a
//! [`CompileError`] that names the term and the node it was found on; nothing is dropped.

pub mod eval;
pub mod explain;
pub mod input;
pub mod ir;
pub mod jsonld;
pub mod parse;
pub mod rego;
pub mod vocab;
pub mod wasm;

pub use eval::{ActivationState, Request, RuleReport, World, evaluate};
pub use ir::Policy;
pub use parse::{CompileError, parse_turtle};
pub use vocab::Vocabulary;
