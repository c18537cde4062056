//! `report.html`: the report as one page that needs nothing else (charts are inline SVG, styles inline, no
//! script), so it can be mailed, attached to a ticket or opened years later. The full JSON report is
//! embedded in it as well, for whoever wants the numbers behind the pictures.

use std::fmt::Write as _;

use crate::report::Report;
use crate::svg::{self, escape};

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let title = format!("Spillway spike: {}", r.name.as_deref().unwrap_or(&r.target));
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{t}</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:800px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:.2em .8em;border-bottom:1px solid #eee;text-align:right}}
th{{text-align:left;font-weight:600}}h2{{margin-top:1.6em}}svg{{max-width:100%;height:auto}}.bad{{color:#b00020;font-weight:600}}</style>
</head><body>
<h1>{t}</h1>
<p>{journey} journey against <code>{target}</code>, {users} users over {elapsed:.1} s, {conns} connections, {proto}.</p>
"#,
        t = escape(&title),
        journey = r.journey,
        target = escape(&r.target),
        users = r.users.started,
        elapsed = r.elapsed_seconds,
        conns = r.connections,
        proto = if r.http2 { "HTTP/2" } else { "HTTP/1.1" },
    );

    h.push_str("<h2>Requests</h2><table>");
    row(&mut h, "sent (attempts)", &r.requests.sent.to_string());
    row(&mut h, "answered", &r.requests.answered.to_string());
    row(&mut h, "failed (no answer)", &r.requests.failed.to_string());
    row(&mut h, "retries", &r.requests.retries.to_string());
    row(&mut h, "held by the room (503)", &r.requests.held.to_string());
    row(&mut h, "per second", &format!("{:.0}", r.requests.per_second));
    for (k, v) in &r.requests.by_status {
        row(&mut h, &format!("status {k}"), &v.to_string());
    }
    for (k, v) in &r.requests.by_failure {
        row(&mut h, &format!("failure: {k}"), &v.to_string());
    }
    h.push_str("</table>");

    let series = |f: fn(&crate::record::Second) -> u64| r.timeline.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
    let mut lines = vec![("sent", "#1f77b4", series(|s| s.sent)), ("errors", "#d62728", series(|s| s.errors))];
    if r.surge.is_some() {
        lines.push(("held", "#ff7f0e", series(|s| s.held)));
        lines.push(("admitted", "#2ca02c", series(|s| s.admitted)));
        lines.push(("claims", "#9467bd", series(|s| s.claims)));
    }
    h.push_str("<h2>Timeline</h2>");
    h.push_str(&svg::lines("timeline", "Per second: requests sent, errors, admissions and claims", "seconds", &lines));

    let l = &r.latency_ms;
    h.push_str(
        "<h2>Latency</h2><p>From each request's scheduled start, so waiting for a connection counts.</p><table>",
    );
    for (k, v) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("p99.9", l.p999), ("max", l.max), ("mean", l.mean)]
    {
        row(&mut h, k, &format!("{v:.2} ms"));
    }
    h.push_str("</table>");
    let buckets: Vec<(String, u64)> =
        r.latency_buckets.iter().map(|b| (format!("<{}ms", fmt_ms(b.upto_ms)), b.count)).collect();
    h.push_str(&svg::bars("latency", "Requests by latency (bucket bounds double)", "latency", "#1f77b4", &buckets));

    if let Some(g) = &r.surge {
        let w = &g.waiting_ms;
        h.push_str("<h2>Waiting room</h2><table>");
        row(&mut h, "admitted", &g.admitted.to_string());
        row(&mut h, "walked straight in", &g.walked_in.to_string());
        for (k, v) in [("wait p50", w.p50), ("wait p90", w.p90), ("wait p99", w.p99), ("wait max", w.max)] {
            row(&mut h, k, &format!("{:.1} s", v / 1000.0));
        }
        h.push_str("</table>");
        let buckets: Vec<(String, u64)> =
            g.waiting_buckets.iter().map(|b| (format!("<{:.1}s", b.upto_ms / 1000.0), b.count)).collect();
        h.push_str(&svg::bars("waiting", "Admitted users by time waited", "waiting time", "#2ca02c", &buckets));

        let f = &g.fairness;
        h.push_str("<h2>Fairness</h2><p>Joining order against admission order. Admission times are seen at the users' polls, so users released close together can swap by up to one polling interval.</p><table>");
        row(&mut h, "users compared", &f.users.to_string());
        row(&mut h, "pairs", &f.pairs.to_string());
        row(&mut h, "inversions", &f.inversions.to_string());
        row(&mut h, "Kendall tau", &f.kendall_tau.map_or("n/a".into(), |t| format!("{t:.4}")));
        h.push_str("</table>");

        let c = &g.claims;
        h.push_str("<h2>Claims</h2><table>");
        for (k, v) in [
            ("attempted", c.attempted),
            ("confirmed", c.confirmed),
            ("held", c.held),
            ("waitlisted", c.waitlisted),
            ("sold out", c.sold_out),
            ("limit reached", c.limit_reached),
            ("refused", c.refused),
            ("errors", c.errors),
        ] {
            row(&mut h, k, &v.to_string());
        }
        row(&mut h, "capacity", &c.capacity.map_or("unknown".into(), |v| v.to_string()));
        row(&mut h, "confirmed (server)", &c.server_confirmed.map_or("unknown".into(), |v| v.to_string()));
        bad_row(&mut h, "oversold", c.oversold);
        bad_row(&mut h, "duplicate users", c.duplicate_users);
        h.push_str("</table><h3>Outcomes</h3><table>");
        for (k, v) in &g.outcomes {
            row(&mut h, k, &v.to_string());
        }
        h.push_str("</table>");
    }

    // The JSON cannot close the script element early: every `</` is written `<\/`, which JSON reads the same.
    let json = r.to_json().replace("</", "<\\/");
    let _ = write!(h, "<script type=\"application/json\" id=\"report-data\">{json}</script>\n</body></html>\n");
    h
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 { format!("{ms:.1}") } else { format!("{ms:.0}") }
}

fn row(h: &mut String, k: &str, v: &str) {
    let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
}

fn bad_row(h: &mut String, k: &str, v: u64) {
    let class = if v > 0 { " class=\"bad\"" } else { "" };
    let _ = write!(h, "<tr><th>{}</th><td{class}>{v}</td></tr>", escape(k));
}
