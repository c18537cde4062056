//! Charts as inline SVG, drawn here so the report is one file that opens anywhere, offline, with nothing to
//! fetch and no script to run. Every chart is well-formed XML and carries its numbers as `data-*`
//! attributes, so a test (or a curious reader) can check what was drawn.

use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn frame(id: &str, title: &str, max: f64, x_label: &str) -> String {
    let mut s = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4 {
        let y = TOP + plot_h * f64::from(i) / 4.0;
        let v = max * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{W}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            LEFT - 4.0,
            y + 3.0,
            short(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
        LEFT + (W - LEFT) / 2.0,
        H - 4.0,
        escape(x_label)
    );
    s
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One line per series over the same x positions (seconds).
pub fn lines(id: &str, title: &str, x_label: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(0);
    let max = series.iter().flat_map(|s| s.2.iter().copied()).fold(0.0f64, f64::max).max(1.0);
    let mut s = frame(id, title, max, x_label);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| LEFT + if n > 1 { plot_w * i as f64 / (n - 1) as f64 } else { 0.0 };
    for (k, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), TOP + plot_h * (1.0 - v / max)))
            .collect();
        let data: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}" data-series="{}" data-values="{}"/>"#,
            points.join(" "),
            escape(name),
            data.join(",")
        );
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            LEFT + 10.0 + 110.0 * k as f64,
            TOP + 2.0,
            LEFT + 24.0 + 110.0 * k as f64,
            TOP + 11.0,
            escape(name)
        );
    }
    if n > 1 {
        for i in [0, n / 2, n - 1] {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{i}</text>"#,
                x(i),
                H - BOTTOM + 12.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One bar per bucket, labelled below.
pub fn bars(id: &str, title: &str, x_label: &str, color: &str, buckets: &[(String, u64)]) -> String {
    let max = buckets.iter().map(|b| b.1 as f64).fold(0.0f64, f64::max).max(1.0);
    let mut s = frame(id, title, max, x_label);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let width = plot_w / buckets.len().max(1) as f64;
    let every = buckets.len().div_ceil(12).max(1);
    for (i, (label, count)) in buckets.iter().enumerate() {
        let h = plot_h * *count as f64 / max;
        let x = LEFT + width * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}" data-label="{}" data-count="{count}"><title>{}: {count}</title></rect>"#,
            x + 1.0,
            TOP + plot_h - h,
            (width - 2.0).max(1.0),
            escape(label),
            escape(label)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                x + width / 2.0,
                H - BOTTOM + 12.0,
                escape(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}
