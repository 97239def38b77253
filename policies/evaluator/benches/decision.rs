//! Decision latency of a typical purpose policy (Aalen's appointment statistics) through the
//! compiled module on a reused instance, beside regorus evaluating the same rules rendered as
//! Rego; and what compiling that policy costs. Run on purpose: `cargo bench -p policy-evaluator`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use policy_compiler::input::PolicyInput;
use policy_compiler::parse::parse_one_turtle;
use policy_compiler::{Vocabulary, rego, wasm};
use policy_evaluator::{Engine, Limits, Worker};

fn policy_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/aalen-buergerbuero-termine.ttl");
    std::fs::read_to_string(path).expect("example policy")
}

fn input() -> PolicyInput {
    PolicyInput {
        assignee: Some("http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019".into()),
        action: Some("http://www.w3.org/ns/odrl/2/read".into()),
        target: Some("https://broker.kdr.example/datasets/aalen-buergerbuero-termine".into()),
        purpose: Some("https://w3id.org/dpv#ImprovePublicServices".into()),
        count: Some(12),
        now_ms: Some(1_795_000_000_000),
        ..PolicyInput::default()
    }
}

fn decisions(c: &mut Criterion) {
    let vocab = Vocabulary::standard().expect("vocab");
    let policy = parse_one_turtle(&policy_text(), &vocab).expect("policy");
    let input = input();
    let mut group = c.benchmark_group("decision");

    let engine = Engine::new(Limits::default()).expect("engine");
    let module = engine.load(&wasm::compile(&policy, &vocab).expect("wasm")).expect("load");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut worker = Worker::new(engine.clone());
    group.bench_function("wasm (opa-wasm, reused instance)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let d = worker.evaluate(&module, black_box(&input)).await.expect("eval");
                    assert!(d.permits());
                }
                start.elapsed()
            })
        });
    });

    let mut commercial = input.clone();
    commercial.purpose = Some("https://w3id.org/dpv#Marketing".into());
    group.bench_function("wasm, a deny (no duties to carry)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let d = worker.evaluate(&module, black_box(&commercial)).await.expect("eval");
                    assert!(!d.permits());
                }
                start.elapsed()
            })
        });
    });

    let mut regorus = regorus::Engine::new();
    regorus
        .add_policy("policy.rego".into(), rego::render(&policy, &vocab).expect("rego"))
        .expect("regorus policy");
    let regorus_input = regorus::Value::from_json_str(&serde_json::to_string(&input).expect("json")).expect("regorus input");
    group.bench_function("regorus (native Rego)", |b| {
        b.iter(|| {
            regorus.set_input(regorus_input.clone());
            let v = regorus.eval_rule(rego::ENTRYPOINT.into()).expect("eval");
            black_box(v);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("compile");
    group.measurement_time(Duration::from_secs(10)).sample_size(20);
    let text = policy_text();
    group.bench_function("odrl to wasm bytes", |b| {
        b.iter(|| wasm::compile(&parse_one_turtle(black_box(&text), &vocab).expect("parse"), &vocab).expect("wasm"));
    });
    let bytes = wasm::compile(&policy, &vocab).expect("wasm");
    group.bench_function("wasm to machine code (cranelift)", |b| {
        b.iter(|| {
            let engine = Engine::new(Limits::default()).expect("engine");
            engine.load(black_box(&bytes)).expect("load")
        });
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
