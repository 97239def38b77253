//! Content negotiation (RFC 9110 §12.5.1), done once for every endpoint that offers several
//! formats.
//!
//! Why its own module: each endpoint used to read `Accept` its own way, and one of them served
//! CSV to `Accept: application/json, text/csv;q=0.1` because it looked for the substring
//! `text/csv`. Here the rules are the RFC's: every offer gets the quality of the *most specific*
//! media range that matches it (`text/csv` before `text/*` before `*/*`, so
//! `text/*, text/csv;q=0` refuses CSV but accepts TSV), `q=0` means "not acceptable", the highest
//! quality wins and ties go to the server's order of preference. A header that cannot be parsed
//! at all is treated like an absent one (RFC 9110 allows ignoring it), never as a refusal of
//! everything; an element that cannot be parsed is skipped.

/// One media type an endpoint can produce, with whatever the endpoint needs to produce it.
pub type Offer<F> = (&'static str, F);

/// A parsed media range with its quality and specificity.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    ty: String,
    subtype: String,
    /// Quality in thousandths (RFC 9110 allows three decimals), 0–1000.
    q: u16,
}

impl Range {
    /// 2 for `type/subtype`, 1 for `type/*`, 0 for `*/*`; `None` if it does not match.
    fn specificity_for(&self, offer: &str) -> Option<u8> {
        let (ty, subtype) = offer.split_once('/')?;
        match (self.ty.as_str(), self.subtype.as_str()) {
            ("*", "*") => Some(0),
            (t, "*") if t.eq_ignore_ascii_case(ty) => Some(1),
            (t, s) if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

/// The quality value of `q=...`: `0`, `1`, `0.5`, `0.125`, `1.000`; anything else is malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn parse_range(element: &str) -> Option<Range> {
    let mut parts = element.split(';');
    let (ty, subtype) = parts.next()?.trim().split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token(ty) || !token(subtype) || (ty == "*" && subtype != "*") {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else { continue };
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim())?;
        }
    }
    Some(Range {
        ty: ty.to_owned(),
        subtype: subtype.to_owned(),
        q,
    })
}

/// The offer the `Accept` header prefers, or `None` if it accepts none of them. `accept` is
/// `None` when the request has no `Accept` header: then the first offer is the answer.
pub fn negotiate<F: Copy>(accept: Option<&str>, offers: &[Offer<F>]) -> Option<Offer<F>> {
    let ranges: Vec<Range> = match accept {
        Some(header) => header.split(',').filter(|e| !e.trim().is_empty()).filter_map(parse_range).collect(),
        None => Vec::new(),
    };
    if ranges.is_empty() {
        return offers.first().copied();
    }
    let quality = |offer: &str| {
        ranges
            .iter()
            .filter_map(|r| Some((r.specificity_for(offer)?, r.q)))
            .max_by_key(|(specificity, _)| *specificity)
            .map_or(0, |(_, q)| q)
    };
    let mut best: Option<(u16, Offer<F>)> = None;
    for offer in offers {
        let q = quality(offer.0);
        if q > 0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, *offer));
        }
    }
    best.map(|(_, offer)| offer)
}

/// The offered media types as a list for an error message (`a, b, c`).
pub fn offered<F>(offers: &[Offer<F>]) -> String {
    offers.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::negotiate;

    const OFFERS: &[(&str, u8)] = &[("application/json", 0), ("text/csv", 1), ("text/tab-separated-values", 2)];

    fn pick(accept: Option<&str>) -> Option<&'static str> {
        negotiate(accept, OFFERS).map(|(m, _)| m)
    }

    #[test]
    fn a_lower_quality_never_wins_regression_csv_for_json_first() {
        assert_eq!(pick(Some("application/json, text/csv;q=0.1")), Some("application/json"));
        assert_eq!(pick(Some("text/csv;q=0.1, application/json")), Some("application/json"));
        assert_eq!(
            pick(Some("text/csv;q=0.5, text/tab-separated-values")),
            Some("text/tab-separated-values")
        );
    }

    #[test]
    fn the_most_specific_range_decides_and_q_zero_refuses() {
        assert_eq!(pick(Some("text/*, text/csv;q=0")), Some("text/tab-separated-values"));
        assert_eq!(pick(Some("*/*;q=0.1, text/csv")), Some("text/csv"));
        assert_eq!(pick(Some("application/json;q=0")), None);
        assert_eq!(
            pick(Some("*/*, application/json;q=0, text/csv;q=0")),
            Some("text/tab-separated-values")
        );
        assert_eq!(pick(Some("image/png")), None);
    }

    #[test]
    fn ties_go_to_the_servers_order_and_case_does_not_matter() {
        assert_eq!(pick(Some("*/*")), Some("application/json"));
        assert_eq!(pick(Some("text/*")), Some("text/csv"));
        assert_eq!(pick(Some("TEXT/CSV")), Some("text/csv"));
        assert_eq!(pick(Some("text/csv; charset=utf-8; q=1.000")), Some("text/csv"));
    }

    #[test]
    fn an_absent_or_unparsable_header_means_the_first_offer() {
        assert_eq!(pick(None), Some("application/json"));
        assert_eq!(pick(Some("")), Some("application/json"));
        assert_eq!(pick(Some("garbage")), Some("application/json"));
        // A malformed element is skipped; the rest still counts.
        assert_eq!(
            pick(Some("text/csv;q=2, text/tab-separated-values")),
            Some("text/tab-separated-values")
        );
        assert_eq!(pick(Some("text/csv;q=0.1234")), Some("application/json"));
    }
}
