//! What generated policy code runs on: the current request's fields, the helpers that test them
//! against the policy's constants, and the decision document built from what the rules recorded.
//!
//! The compiler lays out a metadata table (`Meta`) in the policy's data segment; all strings in
//! it are already JSON-quoted, so writing the decision is copying.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::sync::atomic::{AtomicUsize, Ordering as MemOrder};

use crate::json::Value;

/// String fields of the input, by the index generated code passes.
const STRING_FIELDS: [&str; 6] = ["assignee", "action", "target", "purpose", "recipient", "spatial"];
/// Numeric fields of the input.
const NUMBER_FIELDS: [&str; 2] = ["nowMs", "count"];

#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

struct Current<'a> {
    strings: [Option<&'a str>; 6],
    numbers: [Option<Num>; 2],
    part_of: Option<&'a Value>,
    violated: Option<&'a Value>,
    rules: Vec<bool>,
    constraints: Vec<bool>,
}

/// The evaluation in progress (a `*const Current`), 0 outside `run`.
static CURRENT: AtomicUsize = AtomicUsize::new(0);

fn current<'a>() -> &'a mut Current<'a> {
    let p = CURRENT.load(MemOrder::Relaxed) as *mut Current<'a>;
    assert!(!p.is_null(), "a policy helper was called outside an evaluation");
    // SAFETY: set by `run` to a live `Current` for exactly the duration of `hooks::eval`;
    // single-threaded, and helpers never hold two references at once.
    unsafe { &mut *p }
}

/// Reads little-endian u32 words of the compiler's tables.
fn word(addr: usize, index: usize) -> usize {
    // SAFETY: addresses come from the compiler's data segment, inside memory.
    unsafe { core::ptr::read_unaligned((addr as *const u32).add(index)) as usize }
}

fn bytes<'a>(ptr: usize, len: usize) -> &'a [u8] {
    // SAFETY: (ptr, len) pairs come from the compiler's data segment, inside memory.
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

/// The compiler's metadata table: conflict strategy, then every rule (kind, JSON name,
/// JSON duties), then every constraint (JSON name).
struct Meta(usize);

const RULE_WORDS: usize = 5;

impl Meta {
    fn conflict_is_perm(&self) -> bool {
        word(self.0, 0) == 0
    }
    fn rules(&self) -> usize {
        word(self.0, 1)
    }
    fn constraints(&self) -> usize {
        word(self.0, 2)
    }
    fn rule(&self, i: usize) -> (usize, &[u8], &[u8]) {
        let base = 3 + i * RULE_WORDS;
        let w = |k| word(self.0, base + k);
        (w(0), bytes(w(1), w(2)), bytes(w(3), w(4)))
    }
    fn constraint(&self, i: usize) -> &[u8] {
        let base = 3 + self.rules() * RULE_WORDS + i * 2;
        bytes(word(self.0, base), word(self.0, base + 1))
    }
}

const PERMISSION: usize = 0;
const PROHIBITION: usize = 1;

/// Evaluates the policy for `input` and returns the OPA result set as JSON.
pub fn run(input: Option<&Value>) -> String {
    // SAFETY: a generated function that returns a constant address.
    let meta = Meta(unsafe { crate::hooks::meta() });
    let field = |name| input.and_then(|i| i.get(name));
    let mut cur = Current {
        strings: STRING_FIELDS.map(|f| field(f).and_then(Value::as_str)),
        numbers: NUMBER_FIELDS.map(|f| match field(f) {
            Some(Value::Int(n)) => Some(Num::Int(*n)),
            Some(Value::Float(x)) => Some(Num::Float(*x)),
            _ => None,
        }),
        part_of: field("partOf"),
        violated: field("violatedDuties"),
        rules: vec![false; meta.rules()],
        constraints: vec![false; meta.constraints()],
    };
    CURRENT.store(&raw mut cur as usize, MemOrder::Relaxed);
    // SAFETY: the generated rules; they call back into the helpers below.
    unsafe { crate::hooks::eval() };
    CURRENT.store(0, MemOrder::Relaxed);
    decision_document(&meta, &cur.rules, &cur.constraints)
}

fn decision_document(meta: &Meta, rules: &[bool], constraints: &[bool]) -> String {
    let active = |kind| (0..rules.len()).any(|i| rules[i] && meta.rule(i).0 == kind);
    let permit = active(PERMISSION) && (!active(PROHIBITION) || meta.conflict_is_perm());
    let mut out = String::with_capacity(256);
    out.push_str(r#"[{"result":{"decision":""#);
    out.push_str(if permit { "permit" } else { "deny" });
    out.push_str(r#"","rules":{"#);
    for (i, on) in rules.iter().enumerate() {
        entry(&mut out, i, meta.rule(i).1, *on);
    }
    out.push_str(r#"},"constraints":{"#);
    for (i, on) in constraints.iter().enumerate() {
        entry(&mut out, i, meta.constraint(i), *on);
    }
    out.push_str(r#"},"duties":["#);
    let mut first = true;
    for (i, on) in rules.iter().enumerate() {
        let (kind, _, duties) = meta.rule(i);
        if permit && *on && kind == PERMISSION && !duties.is_empty() {
            if !first {
                out.push(',');
            }
            first = false;
            push_bytes(&mut out, duties);
        }
    }
    out.push_str("]}}]");
    out
}

fn entry(out: &mut String, i: usize, name: &[u8], value: bool) {
    if i > 0 {
        out.push(',');
    }
    push_bytes(out, name);
    out.push_str(if value { ":true" } else { ":false" });
}

fn push_bytes(out: &mut String, b: &[u8]) {
    // The compiler writes valid UTF-8 (JSON text); anything else is left out rather than trusted.
    if let Ok(s) = core::str::from_utf8(b) {
        out.push_str(s);
    }
}

fn string_field(field: usize) -> Option<&'static str> {
    current().strings.get(field).copied().flatten()
}

#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_present(field: usize) -> u32 {
    u32::from(string_field(field).is_some())
}

#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_str_eq(field: usize, ptr: usize, len: usize) -> u32 {
    u32::from(string_field(field).is_some_and(|v| v.as_bytes() == bytes(ptr, len)))
}

/// Whether the field is in a table of `count` (ptr, len) pairs sorted by bytes.
#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_str_in(field: usize, table: usize, count: usize) -> u32 {
    let Some(v) = string_field(field) else { return 0 };
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let item = bytes(word(table, 2 * mid), word(table, 2 * mid + 1));
        match item.cmp(v.as_bytes()) {
            Ordering::Equal => return 1,
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
        }
    }
    0
}

/// Compares a numeric field with a constant: op 0 eq, 1 neq, 2 lt, 3 lteq, 4 gt, 5 gteq.
/// An absent field satisfies nothing.
#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_num_cmp(field: usize, op: u32, value: i64) -> u32 {
    let ord = match current().numbers.get(field).copied().flatten() {
        Some(Num::Int(n)) => Some(n.cmp(&value)),
        Some(Num::Float(x)) => x.partial_cmp(&(value as f64)),
        None => None,
    };
    let Some(o) = ord else { return 0 };
    u32::from(match op {
        0 => o == Ordering::Equal,
        1 => o != Ordering::Equal,
        2 => o == Ordering::Less,
        3 => o != Ordering::Greater,
        4 => o == Ordering::Greater,
        5 => o != Ordering::Less,
        _ => false,
    })
}

/// Whether `input.partOf[<field>]` lists the collection.
#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_part_of(field: usize, ptr: usize, len: usize) -> u32 {
    let Some(member) = string_field(field) else { return 0 };
    let collections = current().part_of.and_then(|p| p.get(member));
    u32::from(list_contains(collections, bytes(ptr, len)))
}

#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_duty_violated(ptr: usize, len: usize) -> u32 {
    u32::from(list_contains(current().violated, bytes(ptr, len)))
}

fn list_contains(list: Option<&Value>, wanted: &[u8]) -> bool {
    match list {
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str().is_some_and(|s| s.as_bytes() == wanted)),
        _ => false,
    }
}

/// Records a constraint's outcome and passes it on.
#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_constraint(index: usize, satisfied: u32) -> u32 {
    if let Some(slot) = current().constraints.get_mut(index) {
        *slot = satisfied != 0;
    }
    satisfied
}

/// Records whether a rule is active.
#[unsafe(no_mangle)]
pub extern "C" fn kdr_rt_rule(index: usize, active: u32) {
    if let Some(slot) = current().rules.get_mut(index) {
        *slot = active != 0;
    }
}
