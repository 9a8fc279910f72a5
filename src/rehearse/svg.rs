//! The report's charts as inline SVG: no script, no font, no file beside
//! the report. Every label goes through [`esc`], like the rest of the page.

use super::html::esc;
use std::fmt::Write;

/// Green, amber, red, blue, grey: fates and outcomes, the same everywhere.
pub const GOOD: &str = "#2e7d32";
/// Quarantine, near a limit.
pub const WARN: &str = "#ef8f00";
/// Unaccounted, over a limit.
pub const BAD: &str = "#c62828";
/// Neutral bars (warning kinds, drawer sizes).
pub const NEUTRAL: &str = "#1565c0";
/// Axes and the empty part of a bar.
pub const LIGHT: &str = "#d9dee4";

const WIDTH: u32 = 1100;
const LABEL: u32 = 270;
const BAR: u32 = 22;
const GAP: u32 = 10;

/// One bar of a stacked chart: its label and its segments (value, colour).
pub struct Stack {
    /// The label on the left.
    pub label: String,
    /// The segments, left to right.
    pub parts: Vec<(u64, &'static str)>,
}

/// Horizontal stacked bars, all on the scale of the longest, with the
/// total at the end of each bar and a legend below.
pub fn stacked_bars(title: &str, bars: &[Stack], legend: &[(&str, &str)]) -> String {
    let max = bars
        .iter()
        .map(|b| b.parts.iter().map(|p| p.0).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let span = WIDTH - LABEL - 70;
    let legend_height = if legend.is_empty() { 0 } else { 30 };
    let height = bars.len() as u32 * (BAR + GAP) + 10 + legend_height;
    let mut svg = open(title, height);
    for (i, bar) in bars.iter().enumerate() {
        let y = i as u32 * (BAR + GAP) + 4;
        label(&mut svg, LABEL - 8, y + BAR / 2 + 5, "end", &bar.label);
        let mut x = LABEL as f64;
        for (value, colour) in &bar.parts {
            let w = *value as f64 / max as f64 * span as f64;
            if w > 0.0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="{BAR}" fill="{colour}"><title>{}</title></rect>"#,
                    value
                );
            }
            x += w;
        }
        let total: u64 = bar.parts.iter().map(|p| p.0).sum();
        label(
            &mut svg,
            x as u32 + 6,
            y + BAR / 2 + 5,
            "start",
            &total.to_string(),
        );
    }
    if !legend.is_empty() {
        legend_row(&mut svg, height - 12, legend);
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one colour, with the value at the end of each.
pub fn bars(title: &str, rows: &[(String, u64)], colour: &'static str) -> String {
    let stacks: Vec<Stack> = rows
        .iter()
        .map(|(label, n)| Stack {
            label: label.clone(),
            parts: vec![(*n, colour)],
        })
        .collect();
    stacked_bars(title, &stacks, &[])
}

/// Vertical columns over labelled classes, each with its count on top.
pub fn columns(title: &str, rows: &[(String, u64, &'static str)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let (top, plot, bottom) = (24, 160, 46);
    let height = top + plot + bottom;
    let slot = (WIDTH - 20) / rows.len().max(1) as u32;
    let mut svg = open(title, height);
    let _ = write!(
        svg,
        r#"<line x1="10" y1="{y}" x2="{x2}" y2="{y}" stroke="{LIGHT}"/>"#,
        y = top + plot,
        x2 = WIDTH - 10
    );
    for (i, (name, n, colour)) in rows.iter().enumerate() {
        let h = (*n as f64 / max as f64 * plot as f64).round() as u32;
        let x = 10 + i as u32 * slot;
        let y = top + plot - h;
        if h > 0 {
            let _ = write!(
                svg,
                r#"<rect x="{}" y="{y}" width="{}" height="{h}" fill="{colour}"/>"#,
                x + 6,
                slot - 12
            );
        }
        let mid = x + slot / 2;
        label(&mut svg, mid, y.saturating_sub(6), "middle", &n.to_string());
        label(&mut svg, mid, top + plot + 18, "middle", name);
    }
    svg.push_str("</svg>");
    svg
}

/// A rate on a 0–100 % bar, with a tick at the threshold.
pub fn rate_bar(rate: Option<f64>, threshold: f64) -> String {
    let (w, h) = (200.0, 14.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="rate" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{}</title><rect x="0" y="2" width="{w}" height="10" fill="{LIGHT}"/>"#,
        esc(&match rate {
            Some(r) => format!("{:.1} % against {:.1} %", r * 100.0, threshold * 100.0),
            None => "not measured".to_string(),
        })
    );
    if let Some(r) = rate {
        let colour = if r >= threshold { GOOD } else { BAD };
        let _ = write!(
            svg,
            r#"<rect x="0" y="2" width="{:.1}" height="10" fill="{colour}"/>"#,
            r.clamp(0.0, 1.0) * w
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{:.1}" y="0" width="2" height="{h}" fill="#263238"/></svg>"##,
        (threshold.clamp(0.0, 1.0) * w - 1.0).max(0.0)
    );
    svg
}

fn open(title: &str, height: u32) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"><title>{}</title>"#,
        esc(title)
    )
}

fn label(svg: &mut String, x: u32, y: u32, anchor: &str, text: &str) {
    let _ = write!(
        svg,
        r#"<text x="{x}" y="{y}" text-anchor="{anchor}">{}</text>"#,
        esc(text)
    );
}

fn legend_row(svg: &mut String, y: u32, legend: &[(&str, &str)]) {
    let mut x = LABEL;
    for (name, colour) in legend {
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/>"#,
            y - 10
        );
        label(svg, x + 17, y, "start", name);
        x += 17 + 8 * name.chars().count() as u32 + 24;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_longest() {
        let svg = bars(
            "warnings <by> kind",
            &[("a&b".into(), 10), ("c".into(), 5)],
            NEUTRAL,
        );
        assert!(svg.contains("<title>warnings &lt;by&gt; kind</title>"));
        assert!(svg.contains(">a&amp;b</text>"));
        let span = (WIDTH - LABEL - 70) as f64;
        assert!(svg.contains(&format!(r#"width="{:.1}""#, span)));
        assert!(svg.contains(&format!(r#"width="{:.1}""#, span / 2.0)));
    }

    #[test]
    fn a_rate_below_its_threshold_is_red() {
        assert!(rate_bar(Some(0.5), 0.95).contains(BAD));
        assert!(rate_bar(Some(0.99), 0.95).contains(GOOD));
        assert!(!rate_bar(None, 0.95).contains(GOOD));
    }
}
