//! CSV cells that spreadsheets would run as formulas, made inert.
//!
//! Excel and LibreOffice treat a cell beginning with `=`, `+`, `-` or `@` (and, in some
//! versions, a tab or carriage return) as a formula, so a value in a provider's data or a
//! purpose IRI in a report could run `=HYPERLINK(...)` or worse on a board member's desktop
//! (OWASP, "CSV Injection"). Such a cell gets a leading `'`, which spreadsheets show as text.
//! A number (`-5`, `+3.2`) is left as it is: it is data, not a formula.

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

#[cfg(test)]
mod tests {
    use super::safe_cell;

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
