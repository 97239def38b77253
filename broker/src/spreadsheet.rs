//! CSV cells that spreadsheets would run as formulas, made inert.
//!
//! Excel and LibreOffice treat a cell beginning with `=`, `+`, `-` or `@` (and, in some
//! versions, a tab or carriage return) as a formula, so a value in a provider's data or a
//! purpose IRI in a report could run `=HYPERLINK(...)` or worse on a board member's desktop
//! (OWASP, "CSV Injection"). Such a cell gets a leading `'`, which spreadsheets show as text.
//! A number (`-5`, `+3.2`) is left as it is: it is data, not a formula.
//!
//! [`german_csv`] writes what German spreadsheet software opens as columns without an import
//! dialogue: Excel with German regional settings splits on `;` (the comma is the decimal
//! separator) and reads UTF-8 only after a byte-order mark, else "Bürgerbüro" arrives as
//! "BÃ¼rgerbÃ¼ro".

use std::borrow::Cow;

/// `cell` as a spreadsheet can open it safely.
pub fn safe_cell(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Rows as CSV for German spreadsheets: UTF-8 with a byte-order mark, `;` between cells, CRLF
/// line ends, every cell made inert with [`safe_cell`].
pub fn german_csv(columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>, csv::Error> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(&mut out);
    w.write_record(columns)?;
    for r in rows {
        w.write_record(r.iter().map(|c| safe_cell(c).into_owned()))?;
    }
    w.flush()?;
    drop(w);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{german_csv, safe_cell};

    #[test]
    fn german_csv_has_a_bom_semicolons_and_inert_cells() {
        let bytes = german_csv(&["Monat", "Zweck"], [vec!["Dezember 2026".into(), "=1+1; Bürger".into()]]).expect("csv");
        assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "a byte-order mark first");
        let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
        assert_eq!(text, "Monat;Zweck\r\nDezember 2026;\"'=1+1; Bürger\"\r\n");
    }

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        assert_eq!(safe_cell("=HYPERLINK(\"http://evil\")"), "'=HYPERLINK(\"http://evil\")");
        assert_eq!(safe_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(safe_cell("+49 7361 0"), "'+49 7361 0");
        assert_eq!(safe_cell("-cmd|' /C calc'!A0"), "'-cmd|' /C calc'!A0");
        assert_eq!(safe_cell("\t=1"), "'\t=1");
        assert_eq!(safe_cell("-5"), "-5");
        assert_eq!(safe_cell("+3.25"), "+3.25");
        assert_eq!(safe_cell("Innenstadt"), "Innenstadt");
        assert_eq!(safe_cell(""), "");
    }
}
