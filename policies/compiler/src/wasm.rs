//! The Wasm back end: the rule IR compiled into a copy of the committed policy runtime
//! (`policies/runtime`, built once for `wasm32-unknown-unknown`), giving a module that follows
//! the OPA Wasm ABI and that `opa-wasm` loads like one built by `opa build -t wasm`.
//!
//! Per policy this appends one data segment of constants (strings, sorted IRI tables with the
//! action and purpose hierarchies already expanded, the metadata table the runtime writes the
//! decision from), turns the runtime's three `kdr.*` imports into generated functions (the
//! rules as straight-line code over the runtime's `kdr_rt_*` helpers), and adds the two ABI
//! version globals. Nothing depends on a clock, a hash seed or the filesystem: the same policy
//! gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use walrus::ir::{BinaryOp, UnaryOp, Value};
use walrus::{ConstExpr, DataKind, ExportItem, FunctionId, ImportKind, InstrSeqBuilder, Module, ModuleConfig, ValType};

use crate::input::datetime_ms;
use crate::ir::{Asset, Conflict, Constraint, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind};
use crate::parse::CompileError;
use crate::vocab::Vocabulary;

/// The committed runtime and the hashes it was built from (`policies/runtime/build.sh`).
pub const RUNTIME: &[u8] = include_bytes!("../../runtime/kdr-policy-runtime.wasm");
pub const RUNTIME_HASHES: &str = include_str!("../../runtime/kdr-policy-runtime.wasm.sha256");

/// The entrypoint of every compiled policy, as `opa build -e` names it.
pub const ENTRYPOINT: &str = "kdr/policy/result";

const PAGE: u64 = 65_536;
/// Heap pages a fresh instance starts with beyond the constants; the runtime grows memory
/// on demand (up to the host's limit).
const HEAP_PAGES: u64 = 2;

/// Input fields as the runtime numbers them (`policy.rs`).
#[derive(Clone, Copy)]
enum Field {
    Assignee = 0,
    Action = 1,
    Target = 2,
    Purpose = 3,
    Recipient = 4,
    Spatial = 5,
}

#[derive(Clone, Copy)]
enum NumField {
    NowMs = 0,
    Count = 1,
}

/// Compiles `policy` into an OPA-ABI Wasm module.
pub fn compile(policy: &Policy, vocab: &Vocabulary) -> Result<Vec<u8>, CompileError> {
    let internal = |m: String| CompileError {
        message: format!("wasm back end: {m}"),
        at: policy.uid.clone(),
    };
    let mut module = ModuleConfig::new()
        .generate_producers_section(false)
        .parse(RUNTIME)
        .map_err(|e| internal(e.to_string()))?;
    let base = heap_base(&module).map_err(internal)?.next_multiple_of(16);
    let helpers = Helpers::find(&module).map_err(internal)?;
    let mut consts = Constants::new(base);

    let constraint_index = number_constraints(policy);
    let mut code = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut g = Gen {
            consts: &mut consts,
            vocab,
            constraint_index: &constraint_index,
            code: Vec::new(),
        };
        g.rule(i, rule)?;
        code.extend(g.code);
    }
    let meta = consts.meta(policy, &constraint_index);
    let end = consts.end();

    replace(&mut module, "eval", |b| {
        for op in &code {
            op.emit(b, &helpers);
        }
    })
    .map_err(internal)?;
    replace(&mut module, "meta", |b| {
        b.i32_const(as_i32(meta));
    })
    .map_err(internal)?;
    replace(&mut module, "heap_base", |b| {
        b.i32_const(as_i32(end.next_multiple_of(16)));
    })
    .map_err(internal)?;
    finish(&mut module, consts.bytes, base, end).map_err(internal)?;
    let bytes = module.emit_wasm();
    validate(&bytes).map_err(internal)?;
    Ok(bytes)
}

fn as_i32(addr: u32) -> i32 {
    // Wasm addresses are i32 bit patterns.
    i32::from_ne_bytes(addr.to_ne_bytes())
}

/// Where the runtime's heap begins (`__heap_base`, exported by the linker).
fn heap_base(module: &Module) -> Result<u32, String> {
    let global = module
        .exports
        .iter()
        .find_map(|e| match e.item {
            ExportItem::Global(g) if e.name == "__heap_base" => Some(g),
            _ => None,
        })
        .ok_or("the runtime exports no __heap_base")?;
    match module.globals.get(global).kind {
        walrus::GlobalKind::Local(ConstExpr::Value(Value::I32(n))) => u32::try_from(n).map_err(|e| e.to_string()),
        _ => Err("__heap_base is not an i32 constant".into()),
    }
}

/// Turns the import `kdr.<name>` into a local function with the given body.
fn replace(module: &mut Module, name: &str, body: impl FnOnce(&mut InstrSeqBuilder<'_>)) -> Result<(), String> {
    let import = module
        .imports
        .find("kdr", name)
        .ok_or_else(|| format!("the runtime has no import kdr.{name}"))?;
    let ImportKind::Function(fid) = module.imports.get(import).kind else {
        return Err(format!("kdr.{name} is not a function"));
    };
    module
        .replace_imported_func(fid, |(b, _)| body(b))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Appends the constants, sizes the memory, adds the ABI globals and hides the helpers.
fn finish(module: &mut Module, data: Vec<u8>, base: u32, end: u32) -> Result<(), String> {
    let memory = module.memories.iter().next().map(|m| m.id()).ok_or("the runtime has no memory")?;
    module.data.add(
        DataKind::Active {
            memory,
            offset: ConstExpr::Value(Value::I32(as_i32(base))),
        },
        data,
    );
    let needed = u64::from(end).div_ceil(PAGE) + HEAP_PAGES;
    let mem = module.memories.get_mut(memory);
    mem.initial = mem.initial.max(needed);
    for (name, value) in [("opa_wasm_abi_version", 1), ("opa_wasm_abi_minor_version", 2)] {
        let g = module
            .globals
            .add_local(ValType::I32, false, false, ConstExpr::Value(Value::I32(value)));
        module.exports.add(name, g);
    }
    let internal: Vec<_> = module
        .exports
        .iter()
        .filter(|e| e.name.starts_with("kdr_rt_") || e.name.starts_with("__"))
        .map(|e| e.id())
        .collect();
    for id in internal {
        module.exports.delete(id);
    }
    walrus::passes::gc::run(module);
    Ok(())
}

fn validate(bytes: &[u8]) -> Result<(), String> {
    wasmparser::Validator::new()
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| format!("generated module is invalid: {e}"))
}

/// The runtime's helper functions, found through their exports.
struct Helpers {
    present: FunctionId,
    str_eq: FunctionId,
    str_in: FunctionId,
    num_cmp: FunctionId,
    part_of: FunctionId,
    duty_violated: FunctionId,
    constraint: FunctionId,
    rule: FunctionId,
}

impl Helpers {
    fn find(module: &Module) -> Result<Self, String> {
        let f = |name: &str| {
            module
                .exports
                .get_func(format!("kdr_rt_{name}"))
                .map_err(|_| format!("the runtime does not export kdr_rt_{name}"))
        };
        Ok(Self {
            present: f("present")?,
            str_eq: f("str_eq")?,
            str_in: f("str_in")?,
            num_cmp: f("num_cmp")?,
            part_of: f("part_of")?,
            duty_violated: f("duty_violated")?,
            constraint: f("constraint")?,
            rule: f("rule")?,
        })
    }
}

/// The policy's data segment, laid out from `base`.
struct Constants {
    base: u32,
    bytes: Vec<u8>,
    strings: BTreeMap<Vec<u8>, u32>,
}

impl Constants {
    fn new(base: u32) -> Self {
        Self {
            base,
            bytes: Vec::new(),
            strings: BTreeMap::new(),
        }
    }

    fn end(&self) -> u32 {
        self.here()
    }

    fn here(&self) -> u32 {
        // The segment of one policy is far below 4 GiB (checked by the memory limit anyway).
        self.base + u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// A string's (address, length), stored once.
    fn string(&mut self, s: &[u8]) -> (u32, u32) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        if let Some(addr) = self.strings.get(s) {
            return (*addr, len);
        }
        let addr = self.here();
        self.bytes.extend_from_slice(s);
        self.strings.insert(s.to_vec(), addr);
        (addr, len)
    }

    fn align4(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn words(&mut self, words: &[u32]) -> u32 {
        self.align4();
        let addr = self.here();
        for w in words {
            self.bytes.extend_from_slice(&w.to_le_bytes());
        }
        addr
    }

    /// A table of (address, length) pairs sorted by bytes, for the runtime's binary search.
    fn table(&mut self, items: &BTreeSet<String>) -> (u32, u32) {
        let pairs: Vec<u32> = items
            .iter()
            .flat_map(|s| {
                let (a, l) = self.string(s.as_bytes());
                [a, l]
            })
            .collect();
        let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        (self.words(&pairs), count)
    }

    /// The metadata table `policy.rs` (`Meta`) reads.
    fn meta(&mut self, policy: &Policy, constraints: &BTreeMap<String, u32>) -> u32 {
        let conflict = match policy.conflict {
            Conflict::Perm => 0,
            Conflict::Prohibit => 1,
            Conflict::Invalid => 2,
        };
        let mut words = vec![conflict, len32(policy.rules.len()), len32(constraints.len())];
        for rule in &policy.rules {
            let kind = match rule.kind {
                RuleKind::Permission => 0,
                RuleKind::Prohibition => 1,
                RuleKind::Obligation => 2,
            };
            let (name, name_len) = self.string(json_string(&rule.uid).as_bytes());
            let duties = duties_json(rule);
            let (d, d_len) = self.string(duties.as_bytes());
            words.extend([kind, name, name_len, d, d_len]);
        }
        let mut by_index: Vec<(&u32, &String)> = constraints.iter().map(|(uid, i)| (i, uid)).collect();
        by_index.sort();
        for (_, uid) in by_index {
            let (a, l) = self.string(json_string(uid).as_bytes());
            words.extend([a, l]);
        }
        self.words(&words)
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `s` as a JSON string literal, quotes included.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The duties of a permission as JSON objects, comma-separated (the decision's `duties`).
pub fn duties_json(rule: &Rule) -> String {
    rule.duties
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",")
}

/// Every constraint uid of the policy (nested ones included), numbered in first-seen order. A
/// constraint shared by two rules has one uid and one outcome.
fn number_constraints(policy: &Policy) -> BTreeMap<String, u32> {
    fn walk(c: &Constraint, out: &mut BTreeMap<String, u32>) {
        if let Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } = c {
            for o in operands {
                walk(o, out);
            }
        }
        let next = len32(out.len());
        out.entry(c.uid().to_owned()).or_insert(next);
    }
    let mut out = BTreeMap::new();
    for rule in &policy.rules {
        for c in rule.constraints.iter().chain(rule.duties.iter().flat_map(|d| &d.constraints)) {
            walk(c, &mut out);
        }
    }
    out
}

/// One instruction of generated code (kept as data so it can be emitted inside walrus'
/// builder closure).
enum Op {
    I32(i32),
    I64(i64),
    Call(fn(&Helpers) -> FunctionId),
    And,
    Or,
    Add,
    Eq,
    Eqz,
}

impl Op {
    fn emit(&self, b: &mut InstrSeqBuilder<'_>, h: &Helpers) {
        match self {
            Op::I32(n) => {
                b.i32_const(*n);
            }
            Op::I64(n) => {
                b.i64_const(*n);
            }
            Op::Call(f) => {
                b.call(f(h));
            }
            Op::And => {
                b.binop(BinaryOp::I32And);
            }
            Op::Or => {
                b.binop(BinaryOp::I32Or);
            }
            Op::Add => {
                b.binop(BinaryOp::I32Add);
            }
            Op::Eq => {
                b.binop(BinaryOp::I32Eq);
            }
            Op::Eqz => {
                b.unop(UnaryOp::I32Eqz);
            }
        }
    }
}

/// Generates the code of the rules: every test leaves 0 or 1 on the stack.
struct Gen<'a> {
    consts: &'a mut Constants,
    vocab: &'a Vocabulary,
    constraint_index: &'a BTreeMap<String, u32>,
    code: Vec<Op>,
}

impl Gen<'_> {
    fn addr(&mut self, a: u32) {
        self.code.push(Op::I32(as_i32(a)));
    }

    fn str_eq(&mut self, f: Field, value: &str) {
        let (a, l) = self.consts.string(value.as_bytes());
        self.code.push(Op::I32(f as i32));
        self.addr(a);
        self.addr(l);
        self.code.push(Op::Call(|h| h.str_eq));
    }

    fn str_in(&mut self, f: Field, values: &BTreeSet<String>) {
        let (t, n) = self.consts.table(values);
        self.code.push(Op::I32(f as i32));
        self.addr(t);
        self.addr(n);
        self.code.push(Op::Call(|h| h.str_in));
    }

    fn present(&mut self, f: Field) {
        self.code.push(Op::I32(f as i32));
        self.code.push(Op::Call(|h| h.present));
    }

    /// `present(f) && !<the test on the stack>`.
    fn present_and_not(&mut self, f: Field, test: impl FnOnce(&mut Self)) {
        self.present(f);
        test(self);
        self.code.extend([Op::Eqz, Op::And]);
    }

    fn num_cmp(&mut self, f: NumField, op: Operator, value: i64) {
        let code = match op {
            Operator::Eq => 0,
            Operator::Neq => 1,
            Operator::Lt => 2,
            Operator::Lteq => 3,
            Operator::Gt => 4,
            Operator::Gteq => 5,
            _ => unreachable!("checked by the caller"),
        };
        self.code
            .extend([Op::I32(f as i32), Op::I32(code), Op::I64(value), Op::Call(|h| h.num_cmp)]);
    }

    /// `input.<f>` is `iri`, or (for a collection) is part of it.
    fn membership(&mut self, f: Field, iri: &str, collection: bool) {
        self.str_eq(f, iri);
        if collection {
            let (a, l) = self.consts.string(iri.as_bytes());
            self.code.push(Op::I32(f as i32));
            self.addr(a);
            self.addr(l);
            self.code.push(Op::Call(|h| h.part_of));
            self.code.push(Op::Or);
        }
    }

    fn rule(&mut self, index: usize, rule: &Rule) -> Result<(), CompileError> {
        self.code.push(Op::I32(i32::try_from(index).unwrap_or(i32::MAX)));
        self.code.push(Op::I32(1));
        match &rule.assignee {
            Some(Party::One(p)) => self.membership(Field::Assignee, p, false),
            Some(Party::Collection(c)) => self.membership(Field::Assignee, c, true),
            None => self.code.push(Op::I32(1)),
        }
        self.code.push(Op::And);
        if let Some(a) = &rule.action {
            let within: BTreeSet<String> = self.vocab.actions_within(a).into_iter().collect();
            self.str_in(Field::Action, &within);
            self.code.push(Op::And);
        }
        match &rule.target {
            Some(Asset::One(t)) => self.membership(Field::Target, t, false),
            Some(Asset::Collection(c)) => self.membership(Field::Target, c, true),
            None => self.code.push(Op::I32(1)),
        }
        self.code.push(Op::And);
        for c in &rule.constraints {
            self.constraint(c)?;
            self.code.push(Op::And);
        }
        for d in &rule.duties {
            let (a, l) = self.consts.string(d.uid.as_bytes());
            self.addr(a);
            self.addr(l);
            self.code.extend([Op::Call(|h| h.duty_violated), Op::Eqz, Op::And]);
        }
        self.code.push(Op::Call(|h| h.rule));
        Ok(())
    }

    /// Evaluates every operand (no short-circuit: the decision names each failing constraint)
    /// and records the outcome.
    fn constraint(&mut self, c: &Constraint) -> Result<(), CompileError> {
        let index = self.constraint_index.get(c.uid()).copied().unwrap_or(u32::MAX);
        self.code.push(Op::I32(as_i32(index)));
        match c {
            Constraint::And { operands, .. } => self.logical(operands, 1, Op::And)?,
            Constraint::Or { operands, .. } => self.logical(operands, 0, Op::Or)?,
            Constraint::Xone { operands, .. } => {
                self.logical(operands, 0, Op::Add)?;
                self.code.extend([Op::I32(1), Op::Eq]);
            }
            Constraint::Atomic {
                uid,
                left,
                operator,
                right,
            } => self
                .atomic(*left, *operator, right)
                .map_err(|message| CompileError { message, at: uid.clone() })?,
        }
        self.code.push(Op::Call(|h| h.constraint));
        Ok(())
    }

    fn logical(&mut self, operands: &[Constraint], empty: i32, combine: Op) -> Result<(), CompileError> {
        let Some((first, rest)) = operands.split_first() else {
            self.code.push(Op::I32(empty));
            return Ok(());
        };
        self.constraint(first)?;
        for o in rest {
            self.constraint(o)?;
            self.code.push(match combine {
                Op::And => Op::And,
                Op::Or => Op::Or,
                _ => Op::Add,
            });
        }
        Ok(())
    }

    fn atomic(&mut self, left: LeftOperand, op: Operator, right: &Operand) -> Result<(), String> {
        let unsupported = || format!("{op:?} on {left:?} with {right:?} cannot be compiled");
        let comparison = matches!(
            op,
            Operator::Eq | Operator::Neq | Operator::Lt | Operator::Lteq | Operator::Gt | Operator::Gteq
        );
        match left {
            LeftOperand::DateTime => {
                let Operand::DateTime(d) = right else { return Err(unsupported()) };
                let ms = datetime_ms(d).ok_or_else(|| format!("'{d}' is not an RFC 3339 date-time"))?;
                if !comparison {
                    return Err(unsupported());
                }
                self.num_cmp(NumField::NowMs, op, ms);
            }
            LeftOperand::Count => {
                let Operand::Integer(n) = right else { return Err(unsupported()) };
                if !comparison {
                    return Err(unsupported());
                }
                self.num_cmp(NumField::Count, op, *n);
            }
            LeftOperand::Purpose => self.purpose(op, right).ok_or_else(unsupported)?,
            LeftOperand::Recipient => self.listed(Field::Recipient, op, right).ok_or_else(unsupported)?,
            LeftOperand::Spatial => self.listed(Field::Spatial, op, right).ok_or_else(unsupported)?,
        }
        Ok(())
    }

    fn purpose(&mut self, op: Operator, right: &Operand) -> Option<()> {
        let named = iris(right);
        let within: BTreeSet<String> = named.iter().flat_map(|p| self.vocab.purposes_within(p)).collect();
        match op {
            Operator::Eq => self.str_eq(Field::Purpose, &named.concat()),
            Operator::Neq => self.present_and_not(Field::Purpose, |g| g.str_eq(Field::Purpose, &named.concat())),
            Operator::IsA | Operator::IsAnyOf => self.str_in(Field::Purpose, &within),
            Operator::IsNoneOf => self.present_and_not(Field::Purpose, |g| g.str_in(Field::Purpose, &within)),
            _ => return None,
        }
        Some(())
    }

    /// Recipient and spatial: a value compared with a list of IRIs.
    fn listed(&mut self, f: Field, op: Operator, right: &Operand) -> Option<()> {
        let values = iris(right);
        let single = |g: &mut Self| match values.as_slice() {
            [one] => g.str_eq(f, one),
            _ => g.code.push(Op::I32(0)),
        };
        match op {
            Operator::Eq => single(self),
            Operator::Neq => self.present_and_not(f, single),
            Operator::IsAnyOf => self.str_in(f, &values.iter().cloned().collect()),
            Operator::IsNoneOf => self.present_and_not(f, |g| g.str_in(f, &values.iter().cloned().collect())),
            _ => return None,
        }
        Some(())
    }
}

fn iris(o: &Operand) -> Vec<String> {
    match o {
        Operand::Iri(i) => vec![i.clone()],
        Operand::Iris(is) => is.clone(),
        _ => Vec::new(),
    }
}

/// SHA-256 over the runtime's sources, as `policies/runtime/source-hash.sh` computes it.
pub fn runtime_source_hash(runtime_dir: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<String> = ["Cargo.toml", "Cargo.lock", "build.sh"].iter().map(|s| (*s).to_owned()).collect();
    for entry in std::fs::read_dir(runtime_dir.join("src"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            files.push(format!("src/{name}"));
        }
    }
    files.sort();
    let mut listing = String::new();
    for f in &files {
        let digest = Sha256::digest(std::fs::read(runtime_dir.join(f))?);
        listing.push_str(&format!("{f}\n{}\n", hex(&digest)));
    }
    Ok(hex(&Sha256::digest(listing.as_bytes())))
}

/// Lower-case hex of `bytes` (hashes in records and file names).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0a, 0x7f, 0xff]), "000a7fff");
        assert_eq!(hex(&[]), "");
    }

    fn recorded(key: &str) -> String {
        RUNTIME_HASHES
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("kdr-policy-runtime.wasm.sha256 has no '{key}' line"))
    }

    #[test]
    fn runtime_wasm_matches_its_source() {
        use sha2::{Digest, Sha256};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
        let source = runtime_source_hash(&dir).expect("hash the runtime sources");
        assert_eq!(
            source,
            recorded("source "),
            "policies/runtime changed since kdr-policy-runtime.wasm was built: run policies/runtime/build.sh"
        );
        assert_eq!(
            hex(&Sha256::digest(RUNTIME)),
            recorded("wasm "),
            "kdr-policy-runtime.wasm was altered after its build"
        );
    }
}
