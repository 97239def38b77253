//! A synthetic portal export for the benchmarks (`import_bench`, `search_bench`): `n` datasets
//! with German titles, descriptions and keywords, two distributions each, in N-Triples.

/// Words the titles are made of, so that a keyword matches a share of the datasets, not all.
pub const TOPICS: &[&str] = &[
    "Baumkataster",
    "Verkehrszählung",
    "Parkhäuser",
    "Kindertagesstätten",
    "Wahlergebnisse",
    "Haushaltsplan",
    "Radwege",
    "Spielplätze",
    "Luftqualität",
    "Bebauungspläne",
    "Friedhöfe",
    "Schulen",
    "Bibliotheken",
    "Stadtteile",
    "Einwohner",
    "Abfallkalender",
    "Hochwasser",
    "Lärmkarte",
    "Ladesäulen",
    "Denkmäler",
];

pub fn export(n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 3000);
    let themes = ["ENVI", "TRAN", "SOCI", "GOVE", "EDUC"];
    for i in 0..n {
        let d = format!("<https://portal.example/dataset/{i}>");
        let dct = "http://purl.org/dc/terms/";
        let dcat = "http://www.w3.org/ns/dcat#";
        out.push_str(&format!(
            "{d} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{dcat}Dataset> .\n"
        ));
        out.push_str(&format!("{d} <{dct}identifier> \"ds-{i:07}\" .\n"));
        out.push_str(&format!(
            "{d} <{dct}title> \"{} und {} {i}\"@de .\n",
            TOPICS[i % TOPICS.len()],
            TOPICS[(i / 7 + 3) % TOPICS.len()]
        ));
        out.push_str(&format!(
            "{d} <{dct}description> \"Bäume, Straßen und Zählstellen der Stadt, Stand {}; Datensatz Nummer {i}.\"@de .\n",
            2000 + i % 25
        ));
        for k in ["Umwelt", "Verkehr", &format!("Bezirk {}", i % 40)] {
            out.push_str(&format!("{d} <{dcat}keyword> \"{k}\" .\n"));
        }
        out.push_str(&format!(
            "{d} <{dcat}theme> <http://publications.europa.eu/resource/authority/data-theme/{}> .\n",
            themes[i % themes.len()]
        ));
        out.push_str(&format!("{d} <{dct}publisher> <https://portal.example/org> .\n"));
        out.push_str(&format!(
            "{d} <{dct}issued> \"2019-05-03\"^^<http://www.w3.org/2001/XMLSchema#date> .\n"
        ));
        out.push_str(&format!("{d} <{dct}accessRights> \"public\" .\n"));
        for (j, (media, format)) in [("text/csv", "CSV"), ("application/json", "JSON")].iter().enumerate() {
            let r = format!("<https://portal.example/dataset/{i}/resource/{j}>");
            out.push_str(&format!("{d} <{dcat}distribution> {r} .\n"));
            out.push_str(&format!(
                "{r} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{dcat}Distribution> .\n"
            ));
            out.push_str(&format!("{r} <{dcat}accessURL> <https://portal.example/files/{i}.{j}> .\n"));
            out.push_str(&format!(
                "{r} <{dcat}mediaType> <https://www.iana.org/assignments/media-types/{media}> .\n"
            ));
            out.push_str(&format!(
                "{r} <{dct}format> <http://publications.europa.eu/resource/authority/file-type/{format}> .\n"
            ));
            out.push_str(&format!(
                "{r} <{dct}license> <https://www.dcat-ap.de/def/licenses/dl-by-de/2.0> .\n"
            ));
        }
    }
    out.into_bytes()
}
