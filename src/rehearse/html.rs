//! `report.html`: one self-contained page (inline style and SVG charts, no
//! script, no font, nothing fetched), so it opens from the file system and
//! can be attached to an e-mail.
//!
//! Every piece of text goes through [`esc`] on its way in; the markup is
//! also well-formed XML (every element closed, attributes quoted, only the
//! five XML entities), so a strict parser reads it. Cells that carry a
//! figure of report.json say which one in `data-key`, so the two can be
//! checked against each other.

use super::report::{
    bytes, duration, maybe, per_second, rate_text, CollectionFate, Outcome, Report, SHOWN,
};
use super::steps::percent;
use super::svg::{self, Stack, BAD, GOOD, LIGHT, NEUTRAL, WARN};

/// Escapes text for an HTML (and XML) text node or quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1c2733;margin:0;background:#f4f6f8}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid #cfd6dd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
p.meta{color:#566573;margin:2px 0;font-size:13px}
.verdict{padding:14px 18px;border-radius:6px;margin:18px 0;font-size:16px}
.verdict.ok{background:#e3f2e5;border-left:6px solid #2e7d32}
.verdict.ko{background:#fbe4e4;border-left:6px solid #c62828}
.verdict ul{margin:6px 0 0;padding-left:20px;font-size:14px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid #d9dee4;border-radius:6px;padding:10px 14px;min-width:128px}
.card .n{font-size:24px;font-weight:600}
.card .l{font-size:12px;color:#566573}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%;margin:6px 0}
th,td{border:1px solid #d9dee4;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;color:#fff}
.passed{background:#2e7d32}.failed{background:#c62828}.error{background:#6a1b9a}.not_run{background:#78909c}
svg.chart{background:#fff;border:1px solid #d9dee4;border-radius:6px;margin:8px 0;font-size:12px}
svg text{fill:#1c2733}
.note{font-size:12px;color:#566573}
code{font-size:12px}
";

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let mut page =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>");
    page.push_str(&format!(
        "<title>Staging rehearsal: {}</title><style>{STYLE}</style></head><body><main>",
        esc(&r.dump.path)
    ));
    for section in [
        header,
        steps,
        rates,
        collections,
        warnings,
        drawers,
        restore,
        projection,
    ] {
        page.push_str(&section(r));
    }
    page.push_str("</main></body></html>\n");
    page
}

/// A table cell, escaped, carrying the report.json figure it shows.
fn td(text: &str, key: Option<&str>, numeric: bool) -> String {
    let class = if numeric { " class=\"num\"" } else { "" };
    match key {
        Some(k) => format!("<td{class} data-key=\"{}\">{}</td>", esc(k), esc(text)),
        None => format!("<td{class}>{}</td>", esc(text)),
    }
}

fn cell(text: &str) -> String {
    td(text, None, false)
}

fn num(text: &str, key: &str) -> String {
    td(text, Some(key), true)
}

fn head(columns: &[&str]) -> String {
    let cells: String = columns
        .iter()
        .map(|c| format!("<th>{}</th>", esc(c)))
        .collect();
    format!("<table><thead><tr>{cells}</tr></thead><tbody>")
}

fn header(r: &Report) -> String {
    let mut h = String::from("<h1>Staging rehearsal</h1>");
    h.push_str(&format!(
        "<p class=\"meta\">Dump <code>{}</code> ({}{}, {} documents) rehearsed on a fresh embedded store <code>{}</code>.</p>",
        esc(&r.dump.path),
        esc(&r.dump.format),
        if r.dump.gzip { ", gzipped" } else { "" },
        r.dump.documents,
        esc(&r.store)
    ));
    h.push_str(&format!(
        "<p class=\"meta\">Generated {} by edn-migrate {} in {}. Legacy database <code>{}</code>, drawer database <code>{}</code>. The source database was not opened.</p>",
        esc(&r.generated_at),
        esc(&r.tool_version),
        esc(&duration(r.elapsed_seconds)),
        esc(&r.legacy_db),
        esc(&r.drawer_db)
    ));
    if r.verdict.passed {
        h.push_str("<div class=\"verdict ok\" data-key=\"verdict.passed\" data-value=\"true\"><strong>Passed.</strong> Every step met its threshold: production can follow this plan.</div>");
    } else {
        h.push_str("<div class=\"verdict ko\" data-key=\"verdict.passed\" data-value=\"false\"><strong>Not passed.</strong> Do not migrate production until these are resolved:<ul>");
        for reason in &r.verdict.reasons {
            h.push_str(&format!("<li>{}</li>", esc(reason)));
        }
        h.push_str("</ul></div>");
    }
    h.push_str(&cards(r));
    h
}

fn cards(r: &Report) -> String {
    let legacy: u64 = r
        .collections
        .iter()
        .filter(|c| c.migrated)
        .map(|c| c.documents)
        .sum();
    let sum = |f: fn(&CollectionFate) -> Option<u64>| -> String {
        let values: Vec<u64> = r.collections.iter().filter_map(f).collect();
        if values.is_empty() {
            "–".into()
        } else {
            values.iter().sum::<u64>().to_string()
        }
    };
    let items = [
        (
            legacy.to_string(),
            "legacy documents to migrate",
            "cards.legacy",
        ),
        (sum(|c| c.in_drawers), "in drawers", "cards.in_drawers"),
        (sum(|c| c.quarantined), "quarantined", "cards.quarantined"),
        (sum(|c| c.unaccounted), "unaccounted", "cards.unaccounted"),
        (r.warnings.count.to_string(), "warnings", "warnings.count"),
        (
            duration(r.projection.window_seconds),
            "projected window in production",
            "cards.window",
        ),
    ];
    let mut h = String::from("<div class=\"cards\">");
    for (n, label, key) in items {
        h.push_str(&format!(
            "<div class=\"card\"><div class=\"n\" data-key=\"{}\">{}</div><div class=\"l\">{}</div></div>",
            esc(key),
            esc(&n),
            esc(label)
        ));
    }
    h.push_str("</div>");
    h
}

fn badge(outcome: Outcome) -> String {
    let class = match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Error => "error",
        Outcome::NotRun => "not_run",
    };
    format!(
        "<span class=\"badge {class}\">{}</span>",
        esc(outcome.label())
    )
}

fn steps(r: &Report) -> String {
    let mut h = String::from("<h2>Steps</h2>");
    h.push_str(&head(&[
        "step",
        "outcome",
        "result",
        "must show",
        "time",
        "documents",
        "throughput",
    ]));
    for s in &r.steps {
        let key = |field: &str| format!("steps.{}.{field}", s.name);
        h.push_str(&format!(
            "<tr>{}<td data-key=\"{}\">{}</td>{}{}{}{}{}</tr>",
            cell(&s.title),
            esc(&key("outcome")),
            badge(s.outcome),
            cell(&s.result),
            cell(&s.check),
            td(&duration(s.seconds), None, true),
            num(&maybe(s.documents), &key("documents")),
            td(&per_second(s.per_second), None, true),
        ));
    }
    h.push_str("</tbody></table>");
    h
}

fn rates(r: &Report) -> String {
    let mut h = String::from("<h2>Match rates</h2>");
    h.push_str(&head(&[
        "rate",
        "documents",
        "matched",
        "rate",
        "threshold",
        "",
        "",
    ]));
    for x in &r.rates {
        let key = |field: &str| format!("rates.{}.{field}", x.name);
        let state = match x.passed {
            Some(true) => "ok",
            Some(false) => "below",
            None => "not measured",
        };
        h.push_str(&format!(
            "<tr>{}{}{}{}{}<td>{}</td>{}</tr>",
            cell(&x.name),
            num(&x.documents.to_string(), &key("documents")),
            num(&x.matched.to_string(), &key("matched")),
            td(&rate_text(x.rate), None, true),
            td(&percent(x.threshold), None, true),
            svg::rate_bar(x.rate, x.threshold),
            cell(state),
        ));
    }
    h.push_str("</tbody></table>");
    if !r.dual_write_findings.is_empty() {
        h.push_str("<h3>Dual-write: documents not as the legacy ones (ids and paths only)</h3>");
        h.push_str(&head(&["collection", "id", "user", "problem", "what"]));
        for f in r.dual_write_findings.iter().take(SHOWN) {
            h.push_str(&format!(
                "<tr>{}{}{}{}{}</tr>",
                cell(&f.collection),
                cell(&f.id),
                cell(&f.user_id),
                cell(&f.problem),
                cell(&f.what.join("; "))
            ));
        }
        h.push_str("</tbody></table>");
    }
    h
}

fn collections(r: &Report) -> String {
    let mut h = String::from("<h2>Documents by collection</h2>");
    let bars: Vec<Stack> = r
        .collections
        .iter()
        .filter(|c| c.in_drawers.is_some())
        .map(|c| Stack {
            label: c.collection.clone(),
            parts: vec![
                (c.in_drawers.unwrap_or(0), GOOD),
                (c.quarantined.unwrap_or(0), WARN),
                (c.unaccounted.unwrap_or(0), BAD),
            ],
        })
        .collect();
    if !bars.is_empty() {
        h.push_str("<h3>Documents of the migrated collections by fate</h3>");
        h.push_str(&svg::stacked_bars(
            "Documents of the migrated collections by fate",
            &bars,
            &[
                ("in drawers", GOOD),
                ("quarantined", WARN),
                ("unaccounted", BAD),
            ],
        ));
    }
    h.push_str(&head(&[
        "collection",
        "documents",
        "in drawers",
        "quarantined",
        "unaccounted",
        "fate",
    ]));
    for c in &r.collections {
        let key = |field: &str| format!("collections.{}.{}.{field}", c.db, c.collection);
        h.push_str(&format!(
            "<tr>{}{}{}{}{}{}</tr>",
            cell(&format!("{}.{}", c.db, c.collection)),
            num(&c.documents.to_string(), &key("documents")),
            num(&maybe(c.in_drawers), &key("in_drawers")),
            num(&maybe(c.quarantined), &key("quarantined")),
            num(&maybe(c.unaccounted), &key("unaccounted")),
            cell(&c.fate),
        ));
    }
    h.push_str("</tbody></table>");
    if !r.quarantine.is_empty() {
        h.push_str("<h3>Quarantined, by reason</h3>");
        h.push_str(&head(&["collection", "reason", "documents"]));
        for (i, q) in r.quarantine.iter().enumerate() {
            h.push_str(&format!(
                "<tr>{}{}{}</tr>",
                cell(&q.collection),
                cell(&q.reason),
                num(
                    &q.documents.to_string(),
                    &format!("quarantine.{i}.documents")
                ),
            ));
        }
        h.push_str("</tbody></table>");
    }
    h
}

fn warnings(r: &Report) -> String {
    let w = &r.warnings;
    let mut h = String::from("<h2>Warnings</h2>");
    if w.by_kind.is_empty() {
        h.push_str("<p>The migration recorded no warning.</p>");
        return h;
    }
    let rows: Vec<(String, u64)> = w.by_kind.iter().map(|(k, n)| (k.clone(), *n)).collect();
    h.push_str("<h3>Warnings by kind</h3>");
    h.push_str(&svg::bars("Warnings by kind", &rows, NEUTRAL));
    h.push_str(&head(&["kind", "count"]));
    for (kind, n) in &w.by_kind {
        h.push_str(&format!(
            "<tr>{}{}</tr>",
            cell(kind),
            num(&n.to_string(), &format!("warnings.by_kind.{kind}"))
        ));
    }
    h.push_str(
        "</tbody></table><h3>Each warning (user, kind, field path, document; never a value)</h3>",
    );
    h.push_str(&head(&["user", "kind", "field path", "document"]));
    for row in w.listed.iter().take(SHOWN) {
        h.push_str(&format!(
            "<tr>{}{}{}{}</tr>",
            cell(&row.user_id),
            cell(&row.kind),
            cell(&row.field),
            cell(&row.document)
        ));
    }
    h.push_str("</tbody></table>");
    if w.listed.len() > SHOWN {
        h.push_str(&format!(
            "<p class=\"note\">… and {} more in report.json.</p>",
            w.listed.len() - SHOWN
        ));
    }
    h
}

fn drawers(r: &Report) -> String {
    let mut h = String::from("<h2>Drawers and the 16 MiB limit</h2>");
    let Some(d) = &r.drawers else {
        h.push_str("<p>The migration did not run.</p>");
        return h;
    };
    h.push_str(&format!(
        "<p><span data-key=\"drawers.count\">{}</span> drawers, {} in all; <span data-key=\"drawers.archived_snapshots\">{}</span> snapshots moved to the archive. MongoDB refuses a document over {}; the migration archives a drawer's oldest snapshots above its limit.</p>",
        d.count,
        esc(&bytes(d.total_bytes)),
        d.archived_snapshots,
        esc(&bytes(d.limit_bytes))
    ));
    let last = d.classes.len().saturating_sub(1);
    let rows: Vec<(String, u64, &'static str)> = d
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let colour = match last - i.min(last) {
                0 => BAD,
                1 => WARN,
                _ => NEUTRAL,
            };
            (c.label.clone(), c.drawers, colour)
        })
        .collect();
    h.push_str("<h3>Drawers by size (BSON bytes; amber: 12 to 16 MiB, red: over MongoDB's 16 MiB limit)</h3>");
    h.push_str(&svg::columns("Drawers by size", &rows));
    h.push_str(&head(&[
        "largest drawers",
        "bytes",
        "size",
        "of 16 MiB",
        "",
    ]));
    for x in &d.largest {
        let share = x.of_limit.clamp(0.0, 1.0) * 120.0;
        let colour = if x.of_limit >= 0.75 { BAD } else { NEUTRAL };
        h.push_str(&format!(
            "<tr>{}{}{}{}<td><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"10\" role=\"img\"><title>{}</title><rect width=\"120\" height=\"10\" fill=\"{LIGHT}\"/><rect width=\"{:.2}\" height=\"10\" fill=\"{colour}\"/></svg></td></tr>",
            cell(&x.drawer_id),
            num(&x.bytes.to_string(), &format!("drawers.largest.{}.bytes", x.drawer_id)),
            td(&bytes(x.bytes), None, true),
            td(&format!("{:.3} %", x.of_limit * 100.0), None, true),
            esc(&format!("{:.3} % of 16 MiB", x.of_limit * 100.0)),
            share.max(0.5),
        ));
    }
    h.push_str("</tbody></table>");
    h
}

fn restore(r: &Report) -> String {
    let mut h = String::from("<h2>Back to the dump after the rollback</h2>");
    let Some(c) = &r.restore else {
        h.push_str("<p>Not checked: the rehearsal stopped before the rollback.</p>");
        return h;
    };
    h.push_str(&format!(
        "<p><span data-key=\"restore.documents\">{}</span> documents in {} collections compared byte for byte (BSON) with the dump as imported: <strong data-key=\"restore.differences\">{}</strong> differ. Left out as the tool's own records: {}.</p>",
        c.documents,
        c.collections,
        c.differences,
        esc(&if c.ignored.is_empty() { "none".to_string() } else { c.ignored.join(", ") })
    ));
    if !c.listed.is_empty() {
        h.push_str(&head(&["namespace", "id", "what differs (paths only)"]));
        for d in &c.listed {
            h.push_str(&format!(
                "<tr>{}{}{}</tr>",
                cell(&d.namespace),
                cell(&d.id),
                cell(&d.what)
            ));
        }
        h.push_str("</tbody></table>");
    }
    h
}

fn projection(r: &Report) -> String {
    let p = &r.projection;
    let mut h = String::from("<h2>Projected duration in production</h2>");
    h.push_str(&format!(
        "<p><span data-key=\"projection.rehearsed_documents\">{}</span> legacy documents rehearsed; production: <span data-key=\"projection.production_documents\">{}</span> ({}), a factor of {:.2}. Maintenance window (backup, dry run, migration, validation): <strong>{}</strong>; a surgical rollback, should it be needed: {}.</p>",
        p.rehearsed_documents,
        p.production_documents,
        esc(&p.production_basis),
        p.factor,
        esc(&duration(p.window_seconds)),
        esc(&duration(p.rollback_seconds))
    ));
    h.push_str(&head(&["step", "here", "throughput here", "production"]));
    for s in &p.steps {
        let rate = r
            .steps
            .iter()
            .find(|x| x.name == s.name)
            .and_then(|x| x.per_second);
        h.push_str(&format!(
            "<tr>{}{}{}{}</tr>",
            cell(&s.title),
            td(&duration(s.seconds), None, true),
            td(&per_second(rate), None, true),
            td(&duration(s.projected_seconds), None, true),
        ));
    }
    h.push_str("</tbody></table><h3>What the projection assumes</h3><ul>");
    for a in &p.assumptions {
        h.push_str(&format!("<li>{}</li>", esc(a)));
    }
    h.push_str("</ul>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("plain ñ"), "plain ñ");
    }
}
