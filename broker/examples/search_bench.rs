//! Search and harvest benchmark, run on purpose (not a test):
//!
//!     cargo run --profile production -p broker --example search_bench -- [datasets] [queries]
//!
//! A synthetic export of `datasets` datasets (default 100,000) is imported into a fresh RocksDB
//! store, then, side by side on that store:
//! - the keyword search (`GET /v1/datasets?q=`'s catalog call): `queries` searches (default
//!   1,000) of one or two words with German inflections, every fourth with a facet filter;
//!   p50 / p99 / max (goal of issue 19: p50 < 20 ms, p99 < 50 ms);
//! - the same words as a SPARQL `FILTER(CONTAINS(LCASE(...)))` over titles, descriptions and
//!   keywords, what finding a dataset took before: a few runs, their median;
//! - walking every page of the harvestable catalog (100 datasets a page, RDF/XML).

use std::time::{Duration, Instant};

use broker::catalog::search::SearchQuery;
use broker::catalog::{
    CatalogDocuments, CatalogImport, DatasetSearch, MemberRegistry, OxigraphCatalog, QueryLimits, RdfSyntax, SpaceCatalog, SparqlService,
};

#[path = "common/synthetic.rs"]
mod synthetic;

const WORDS: &[&str] = &[
    "Parkhaus",
    "Bäume",
    "baumkataster",
    "Verkehrszählungen",
    "Kindertagesstätte",
    "Wahlergebnis",
    "Radweg",
    "Spielplatz",
    "Luftqualität",
    "Bebauungsplan",
    "Friedhof",
    "Schule",
    "Bibliothek",
    "Stadtteil",
    "Einwohner",
    "Abfallkalender",
    "Hochwasser",
    "Lärmkarten",
    "Ladesäule",
    "Denkmal",
];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = OxigraphCatalog::open(&dir.path().join("store"), "https://broker.kdr.example/").expect("catalog");
    for m in broker::demo::demo_members() {
        catalog.put_member(&m).expect("member");
    }
    let bytes = synthetic::export(n);
    let t = Instant::now();
    let publisher = "08136088".parse().expect("ags");
    let triples = broker::catalog::import::parse(&bytes, RdfSyntax::NTriples).expect("parse");
    let prepared = broker::catalog::import::prepare(triples, catalog.iris(), &publisher).expect("prepare");
    let plan = catalog
        .plan_import(&publisher, "https://portal.example/", &prepared.datasets)
        .expect("plan");
    catalog
        .apply_import(&plan, &prepared.datasets, "2026-12-02T12:00:00Z")
        .expect("apply");
    println!(
        "imported {} datasets in {:.1} s ({} refused)",
        plan.imported.len(),
        t.elapsed().as_secs_f64(),
        plan.refused.len()
    );

    let t = Instant::now();
    let all = catalog
        .search(&SearchQuery {
            page: 1,
            per_page: 1,
            ..SearchQuery::default()
        })
        .expect("search");
    println!(
        "index built on first search: {:.2} s, {} datasets",
        t.elapsed().as_secs_f64(),
        all.total
    );

    let mut times = Vec::with_capacity(queries);
    let mut found = 0usize;
    for i in 0..queries {
        let mut text = WORDS[i % WORDS.len()].to_owned();
        if i % 3 == 0 {
            text.push(' ');
            text.push_str(WORDS[(i / 3 + 5) % WORDS.len()]);
        }
        let filters = if i % 4 == 0 { vec![("theme", "TRAN".to_owned())] } else { vec![] };
        let q = SearchQuery {
            text,
            filters,
            page: 1 + i % 3,
            per_page: 20,
        };
        let t = Instant::now();
        let r = catalog.search(&q).expect("search");
        times.push(t.elapsed());
        found += r.total;
    }
    times.sort();
    println!(
        "search over {n}: {queries} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} hits a query on average)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        found as f64 / queries as f64
    );

    let limits = QueryLimits {
        timeout: Duration::from_secs(120),
        max_results: 1_000_000,
        max_concurrent: 4,
        max_per_member: 4,
        max_result_bytes: 1 << 30,
    };
    let mut sparql = Vec::new();
    for word in ["parkh", "bäume", "radweg"] {
        let query = format!(
            "PREFIX dct: <http://purl.org/dc/terms/> PREFIX dcat: <http://www.w3.org/ns/dcat#> \
             SELECT DISTINCT ?d WHERE {{ GRAPH ?g {{ ?d dct:title|dct:description|dcat:keyword ?t \
             FILTER(CONTAINS(LCASE(STR(?t)), \"{word}\")) }} }} LIMIT 20"
        );
        let t = Instant::now();
        catalog
            .query(&query, "application/sparql-results+json", &limits, "08136088")
            .expect("sparql");
        sparql.push(t.elapsed());
    }
    sparql.sort();
    println!(
        "SPARQL CONTAINS over {n} (first 20 hits, no stemming, no ranking): median {:.0} ms of {} runs; search p50 is {:.0}x faster",
        percentile(&sparql, 0.5),
        sparql.len(),
        percentile(&sparql, 0.5) / percentile(&times, 0.5)
    );

    let t = Instant::now();
    let space = SpaceCatalog::default();
    let (mut pages, mut bytes_total, mut slowest) = (0usize, 0usize, Duration::ZERO);
    loop {
        let p = Instant::now();
        let page = catalog
            .harvest_page(
                pages + 1,
                100,
                &space,
                &|n| format!("https://broker.kdr.example/catalog?page={n}"),
                RdfSyntax::RdfXml,
            )
            .expect("page");
        let Some(page) = page else { break };
        slowest = slowest.max(p.elapsed());
        pages += 1;
        bytes_total += page.len();
    }
    println!(
        "harvest: {pages} pages, {:.1} MB, {:.1} s in all, {:.0} ms a page on average, slowest {:.0} ms",
        bytes_total as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1000.0 / pages.max(1) as f64,
        slowest.as_secs_f64() * 1000.0
    );
}
