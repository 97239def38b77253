//! Bar charts as SVG, drawn on the server: the console's usage charts need no script (the
//! console's Content Security Policy allows none) and print as they are shown.
//!
//! Why by hand and not a plotting crate: a stacked bar chart is a few rectangles; what matters
//! is what a plotting library does not give by default — every label escaped (purposes and
//! names come from members), a title and description for screen readers, colours that keep 3:1
//! contrast against white (WCAG 1.4.11) and are told apart by a pattern-free legend with text.
//! The numbers are always beside the chart as a table too.

use std::fmt::Write;

/// One bar: its label and a value per series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    pub values: Vec<u64>,
}

/// A series: its name and colour (CSS colour, ours, never a member's).
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub colour: &'static str,
}

/// Permitted and denied requests, the two series of the usage charts (dark green and dark red:
/// both over 7:1 against white).
pub const PERMIT_DENY: [Series; 2] = [
    Series {
        name: "erlaubt",
        colour: "#1b5e20",
    },
    Series {
        name: "abgelehnt",
        colour: "#b71c1c",
    },
];

/// [`PERMIT_DENY`] for the console's English pages.
pub const PERMIT_DENY_EN: [Series; 2] = [
    Series {
        name: "permitted",
        colour: "#1b5e20",
    },
    Series {
        name: "denied",
        colour: "#b71c1c",
    },
];

const WIDTH: u32 = 720;
const HEIGHT: u32 = 300;
const LEFT: u32 = 60;
const BOTTOM: u32 = 60;
const TOP: u32 = 40;

/// A stacked bar chart with a title (`id` names its `<title>` for `aria-labelledby`).
pub fn stacked_bars(id: &str, title: &str, series: &[Series], bars: &[Bar]) -> String {
    let mut svg = String::new();
    let max = bars.iter().map(|b| b.values.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT - 20) / u32::try_from(bars.len().max(1)).unwrap_or(1);
    let bar_w = (slot * 2 / 3).max(2);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" class="chart"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(title),
        escape(&describe(series, bars)),
    );
    // Axis and its top value.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#333"/><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" text-anchor="end" font-size="12">{}</text><text x="{}" y="{}" text-anchor="end" font-size="12">0</text>"##,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM,
        WIDTH - 10,
        HEIGHT - BOTTOM,
        LEFT - 6,
        TOP + 4,
        crate::german::number(max),
        LEFT - 6,
        HEIGHT - BOTTOM + 4,
    );
    for (i, bar) in bars.iter().enumerate() {
        let x = LEFT + 10 + u32::try_from(i).unwrap_or(0) * slot;
        let mut y = HEIGHT - BOTTOM;
        for (value, s) in bar.values.iter().zip(series) {
            // A value too small for a pixel still shows as one: a single denial is not nothing.
            let h = u32::try_from(u64::from(plot_h) * value / max)
                .unwrap_or(plot_h)
                .max(u32::from(*value > 0));
            if h > 0 {
                y -= h;
                let _ = write!(
                    svg,
                    r#"<rect x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="{}"><title>{}: {} {}</title></rect>"#,
                    s.colour,
                    escape(&bar.label),
                    crate::german::number(*value),
                    escape(s.name)
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"#,
            x + bar_w / 2,
            HEIGHT - BOTTOM + 18,
            escape(&fitted(&bar.label, slot))
        );
    }
    // The legend: a square and the series' name, in text.
    for (i, s) in series.iter().enumerate() {
        let x = LEFT + u32::try_from(i).unwrap_or(0) * 160;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="14" height="14" fill="{}"/><text x="{}" y="{}" font-size="13">{}</text>"#,
            HEIGHT - 24,
            s.colour,
            x + 20,
            HEIGHT - 12,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A label shortened to the width of its slot (about 7 pixels a character at 12 pixels); the
/// whole label stays in the bar's `<title>` and the chart's description.
fn fitted(label: &str, slot: u32) -> String {
    let room = usize::try_from(slot / 7).unwrap_or(usize::MAX).max(3);
    if label.chars().count() <= room {
        label.to_owned()
    } else {
        let mut short: String = label.chars().take(room - 1).collect();
        short.push('…');
        short
    }
}

/// The chart in words, for its `<desc>`.
fn describe(series: &[Series], bars: &[Bar]) -> String {
    if bars.is_empty() {
        return "Keine Werte im Zeitraum.".into();
    }
    bars.iter()
        .map(|b| {
            let parts: Vec<String> = b
                .values
                .iter()
                .zip(series)
                .map(|(v, s)| format!("{} {}", crate::german::number(*v), s.name))
                .collect();
            format!("{}: {}", b.label, parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Text as it may stand in SVG (XML) content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: [Series; 2] = PERMIT_DENY;

    #[test]
    fn labels_from_members_are_escaped_and_the_chart_describes_itself() {
        let bars = vec![
            Bar {
                label: "<script>alert(1)</script>".into(),
                values: vec![1200, 3],
            },
            Bar {
                label: "Dezember 2026".into(),
                values: vec![0, 0],
            },
        ];
        let svg = stacked_bars("u", "Anfragen je Monat", &SERIES, &bars);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(
            svg.contains("1.200 erlaubt, 3 abgelehnt"),
            "the description holds the numbers: {svg}"
        );
        assert!(svg.contains(r#"role="img""#) && svg.contains("aria-labelledby"));
        assert_eq!(svg.matches("<rect").count(), 2 + 2, "two non-empty segments and two legend squares");
        assert!(stacked_bars("e", "leer", &SERIES, &[]).contains("Keine Werte"));
    }
}
