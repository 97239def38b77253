//! Hostile and heavy use: modules that loop or allocate without bound are stopped and deny, the
//! worker recovers, memory stays flat over many evaluations, modules are cached by hash.

use std::path::Path;

use policy_compiler::input::PolicyInput;
use policy_compiler::parse::parse_one_turtle;
use policy_compiler::wasm;
use policy_evaluator::{Decision, EvalError, Worker};
use walrus::ir::BinaryOp;
use walrus::{ExportItem, FunctionBuilder, Module, ValType};

use super::common::{block_on, engine, vocab};

const HEIDENHEIM: &str = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019";
const DATASET: &str = "https://broker.kdr.example/datasets/aalen-buergerbuero-termine";

fn example_module_bytes() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/aalen-buergerbuero-termine.ttl");
    let text = std::fs::read_to_string(&path).expect("example policy");
    let policy = parse_one_turtle(&text, vocab()).expect("example policy compiles");
    wasm::compile(&policy, vocab()).expect("wasm")
}

fn request(purpose: &str, padding: usize) -> serde_json::Value {
    let input = PolicyInput {
        assignee: Some(HEIDENHEIM.into()),
        action: Some("http://www.w3.org/ns/odrl/2/read".into()),
        target: Some(DATASET.into()),
        purpose: Some(format!("https://w3id.org/dpv#{purpose}")),
        count: Some(3),
        // A long recipient makes a long input: the trigger of the hostile modules below.
        recipient: (padding > 0).then(|| format!("urn:x:{}", "p".repeat(padding))),
        ..PolicyInput::default()
    };
    serde_json::to_value(input).expect("json")
}

enum Bomb {
    Loop,
    Alloc,
}

/// The example module with `opa_eval` wrapped: an input longer than 400 bytes sets off `bomb`,
/// a shorter one is evaluated as usual.
fn hostile(bomb: Bomb) -> Vec<u8> {
    let mut m = Module::from_buffer(&example_module_bytes()).expect("parse");
    let original = m.exports.get_func("opa_eval").expect("opa_eval");
    let malloc = m.exports.get_func("opa_malloc").expect("opa_malloc");
    let args: Vec<_> = (0..7).map(|_| m.locals.add(ValType::I32)).collect();
    let mut f = FunctionBuilder::new(&mut m.types, &[ValType::I32; 7], &[ValType::I32]);
    f.func_body().local_get(args[4]).i32_const(400).binop(BinaryOp::I32GtU).if_else(
        None,
        |then| match bomb {
            Bomb::Loop => {
                then.loop_(None, |l| {
                    let top = l.id();
                    l.br(top);
                });
            }
            Bomb::Alloc => {
                then.loop_(None, |l| {
                    let top = l.id();
                    l.i32_const(1 << 20).call(malloc).br_if(top);
                });
                then.unreachable();
            }
        },
        |_| {},
    );
    for a in &args {
        f.func_body().local_get(*a);
    }
    f.func_body().call(original);
    let wrapped = f.finish(args, &mut m.funcs);
    for e in m.exports.iter_mut() {
        if e.name == "opa_eval" {
            e.item = ExportItem::Function(wrapped);
        }
    }
    m.emit_wasm()
}

fn check_bomb(bomb: Bomb, expect: fn(&EvalError) -> bool) {
    let module = engine().load(&hostile(bomb)).expect("load");
    block_on(async {
        let mut worker = Worker::new(engine());
        let ok = worker
            .evaluate(&module, &request("ImprovePublicServices", 0))
            .await
            .expect("harmless input");
        assert_eq!(ok.decision, Decision::Permit);
        let err = worker
            .evaluate(&module, &request("ImprovePublicServices", 1000))
            .await
            .expect_err("the bomb must be stopped");
        assert!(expect(&err), "unexpected error: {err}");
        let denied = worker.decide(&module, &request("ImprovePublicServices", 1000)).await;
        assert_eq!(denied.decision, Decision::Deny);
        assert!(denied.error.as_deref().is_some_and(|e| e.contains("stopped")), "{denied:?}");
        // The same worker goes on: the broken instance was replaced.
        let before = worker.instantiations;
        let again = worker
            .evaluate(&module, &request("ImprovePublicServices", 0))
            .await
            .expect("after the bomb");
        assert_eq!(again.decision, Decision::Permit);
        assert_eq!(worker.instantiations, before + 1, "a fresh instance replaced the trapped one");
    });
}

#[test]
fn a_looping_module_is_stopped_at_its_deadline_and_denies() {
    check_bomb(Bomb::Loop, |e| matches!(e, EvalError::Timeout(_)));
}

#[test]
fn an_allocating_module_hits_the_memory_limit_and_denies() {
    check_bomb(Bomb::Alloc, |e| matches!(e, EvalError::MemoryLimit(_)));
}

#[test]
fn memory_stays_flat_over_100k_evaluations_of_one_instance() {
    let module = engine().load(&example_module_bytes()).expect("load");
    let permit = request("ImprovePublicServices", 0);
    let deny = request("CommercialPurpose", 0);
    block_on(async {
        let mut worker = Worker::new(engine());
        for _ in 0..1_000 {
            worker.evaluate(&module, &permit).await.expect("eval");
        }
        let warm = worker.peak_memory(&module.hash).expect("instance");
        for i in 0..100_000 {
            let input = if i % 2 == 0 { &permit } else { &deny };
            let d = worker.evaluate(&module, input).await.expect("eval");
            assert_eq!(d.decision == Decision::Permit, i % 2 == 0);
        }
        assert_eq!(worker.peak_memory(&module.hash), Some(warm), "linear memory grew");
        assert_eq!(worker.instantiations, 1, "one instance served every evaluation");
    });
}

#[test]
fn the_same_policy_compiles_to_the_same_bytes_and_one_cached_module() {
    let a = example_module_bytes();
    let b = example_module_bytes();
    assert_eq!(a, b, "compilation is deterministic");
    let m1 = engine().load(&a).expect("load");
    let m2 = engine().load(&b).expect("load");
    assert_eq!(m1.hash, m2.hash);
    assert!(m1.hash.to_string().starts_with("sha256:"));
}

#[test]
fn a_denial_names_the_failed_purpose_constraint() {
    let module = engine().load(&example_module_bytes()).expect("load");
    let d = block_on(async { Worker::new(engine()).evaluate(&module, &request("Marketing", 0)).await }).expect("eval");
    assert_eq!(d.decision, Decision::Deny);
    let failed: Vec<&str> = d.failed_constraints().collect();
    assert_eq!(failed.len(), 2, "{d:?}");
    assert!(
        failed.iter().any(|c| c.contains("#use")),
        "the permission's purpose constraint fails: {failed:?}"
    );
}

#[test]
fn garbage_is_not_a_module() {
    let err = engine().load(b"\0asm\x01\0\0\0garbage").expect_err("not wasm");
    assert!(matches!(err, EvalError::Load(_)), "{err}");
}

/// OPA modules of ABI 1.0/1.1 have no `opa_eval`; the host then goes through the evaluation
/// context exports. The same module declared as ABI 1.1 must decide the same way.
#[test]
fn the_evaluation_context_path_of_older_abi_versions_decides_the_same() {
    let mut m = Module::from_buffer(&example_module_bytes()).expect("parse");
    let global = m
        .exports
        .iter()
        .find_map(|e| match e.item {
            ExportItem::Global(g) if e.name == "opa_wasm_abi_minor_version" => Some(g),
            _ => None,
        })
        .expect("minor version global");
    m.globals.get_mut(global).kind = walrus::GlobalKind::Local(walrus::ConstExpr::Value(walrus::ir::Value::I32(1)));
    let module = engine().load(&m.emit_wasm()).expect("load");
    block_on(async {
        let mut worker = Worker::new(engine());
        for (purpose, permit) in [
            ("ImprovePublicServices", true),
            ("Marketing", false),
            ("ImprovePublicServices", true),
        ] {
            let d = worker.evaluate(&module, &request(purpose, 0)).await.expect("eval");
            assert_eq!(d.permits(), permit, "{purpose}: {d:?}");
        }
        assert_eq!(worker.instantiations, 1);
    });
}
