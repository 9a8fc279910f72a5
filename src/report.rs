//! What a command prints: one text summary for people, one JSON object for
//! scripts, built from the same numbers so the two never disagree.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// The result of a command, in both forms.
#[derive(Debug, Clone)]
pub struct Output {
    /// The summary printed on a terminal.
    pub text: String,
    /// The object printed with `--json`.
    pub json: Value,
}

/// A progress bar on stderr for long work; indicatif draws nothing when
/// stderr is not a terminal, so scripts and logs stay clean.
pub fn progress_bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// Lays out rows as aligned columns (the first row is the header).
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                if cell.chars().next().is_some_and(|ch| ch.is_ascii_digit()) {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let rows = vec![
            vec!["collection".to_string(), "count".to_string()],
            vec!["users".to_string(), "19".to_string()],
            vec!["training_plans".to_string(), "3".to_string()],
        ];
        assert_eq!(
            table(&rows),
            "  collection      count\n  users              19\n  training_plans      3\n"
        );
    }
}
