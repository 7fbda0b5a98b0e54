//! Pure SVG chart renderers for the dashboard: a line chart (opens and clicks over time) and a
//! bar chart of totals. Each answers a complete `<svg>` string: a fixed `viewBox` (so it scales
//! with its container, `width="100%"`), `role="img"` with an `aria-label`, a `<title>` and a
//! `<desc>`, every text XML-escaped, and nothing executable (no script, no event attributes, no
//! external references).

use std::fmt::Write as _;

/// The drawing area of every chart.
pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
/// Room under the axis for the bar chart's slanted names: the longest ("uniqueClicks", about
/// 70 px at 11 px) drops about 40 px at 35 degrees.
const BOTTOM: f64 = 72.0;

/// Line colours, in series order (distinguishable for common colour-vision deficiencies).
const COLOURS: [&str; 4] = ["#1f77b4", "#d95f02", "#1b9e77", "#7570b3"];

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// One line of a line chart.
#[derive(Clone, Debug)]
pub struct Line<'a> {
    pub name: &'a str,
    pub values: &'a [u64],
}

/// A "nice" axis maximum ≥ `max` (1, 2 or 5 times a power of ten).
fn nice_max(max: u64) -> u64 {
    if max == 0 {
        return 1;
    }
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(v) = p.checked_mul(m)
                && v >= max
            {
                return v;
            }
        }
        match p.checked_mul(10) {
            Some(n) => p = n,
            None => return max,
        }
    }
}

fn open(out: &mut String, title: &str, desc: &str) {
    let t = escape(title);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{t}"><title>{t}</title><desc>{}</desc>"#,
        escape(desc)
    );
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="22" font-family="sans-serif" font-size="14" font-weight="bold">{t}</text>"#
    );
}

fn axes(out: &mut String, max: u64) {
    let bottom = HEIGHT - BOTTOM;
    for i in 0..=4u64 {
        let y = bottom - (bottom - TOP) * (i as f64) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            WIDTH - RIGHT
        );
        // Only whole values label a grid line (a maximum of 1 or 2 has no whole quarters).
        if (u128::from(max) * u128::from(i)) % 4 == 0 {
            let v = u128::from(max) * u128::from(i) / 4;
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="11" text-anchor="end">{v}</text>"#,
                LEFT - 6.0,
                y + 4.0
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
}

/// A line chart of `lines` over the x-axis `labels` (one label per point, e.g. dates); at most
/// 8 labels are drawn, evenly spread. An empty series draws the axes and says "No data".
pub fn line_chart(title: &str, labels: &[String], lines: &[Line<'_>]) -> String {
    let points = labels.len();
    let max = nice_max(
        lines
            .iter()
            .flat_map(|l| l.values.iter().copied())
            .max()
            .unwrap_or(0),
    );
    let desc = if points == 0 {
        "No data".to_owned()
    } else {
        lines
            .iter()
            .map(|l| format!("{}: total {}", l.name, l.values.iter().sum::<u64>()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = String::new();
    open(&mut out, title, &desc);
    axes(&mut out, max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let bottom = HEIGHT - BOTTOM;
    let x = |i: usize| {
        if points <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * (i as f64) / ((points - 1) as f64)
        }
    };
    let y = |v: u64| bottom - (bottom - TOP) * (v as f64) / (max as f64);
    if points == 0 {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="13" text-anchor="middle">No data</text>"#,
            LEFT + plot_w / 2.0,
            (TOP + bottom) / 2.0
        );
    }
    let step = points.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="10" text-anchor="middle">{}</text>"#,
            x(i),
            bottom + 16.0,
            escape(label)
        );
    }
    for (n, line) in lines.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let pts: Vec<String> = line
            .values
            .iter()
            .take(points)
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        if !pts.is_empty() {
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                pts.join(" "),
                escape(line.name)
            );
        }
        // Legend.
        let lx = LEFT + 120.0 * (n as f64) + 200.0;
        let _ = write!(
            out,
            r#"<rect x="{lx:.1}" y="12" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="22" font-family="sans-serif" font-size="12">{}</text>"#,
            lx + 16.0,
            escape(line.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar chart of named totals (e.g. sent, opens, clicks), one bar each with its value.
pub fn bar_chart(title: &str, bars: &[(&str, u64)]) -> String {
    let max = nice_max(bars.iter().map(|(_, v)| *v).max().unwrap_or(0));
    let desc = if bars.is_empty() {
        "No data".to_owned()
    } else {
        bars.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = String::new();
    open(&mut out, title, &desc);
    axes(&mut out, max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let bottom = HEIGHT - BOTTOM;
    if bars.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="13" text-anchor="middle">No data</text>"#,
            LEFT + plot_w / 2.0,
            (TOP + bottom) / 2.0
        );
    }
    let slot = plot_w / (bars.len().max(1) as f64);
    for (i, (name, v)) in bars.iter().enumerate() {
        let h = (bottom - TOP) * (*v as f64) / (max as f64);
        let x = LEFT + slot * (i as f64) + slot * 0.15;
        let w = slot * 0.7;
        let name = escape(name);
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{}"><title>{name}: {v}</title></rect><text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="11" text-anchor="middle">{v}</text>"#,
            bottom - h,
            COLOURS[0],
            x + w / 2.0,
            bottom - h - 4.0,
        );
        // Names slant so that long neighbours ("unsubscribes", "complaints") never run together.
        let (lx, ly) = (x + w / 2.0, bottom + 12.0);
        let _ = write!(
            out,
            r#"<text x="{lx:.1}" y="{ly:.1}" font-family="sans-serif" font-size="11" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{name}</text>"#,
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed(svg: &str) {
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 640 320\"")
        );
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("aria-label=\""));
        assert!(svg.contains("<title>"));
        let lower = svg.to_ascii_lowercase();
        for bad in [
            "<script",
            "javascript:",
            "onload",
            "onclick",
            "href",
            "<foreignobject",
        ] {
            assert!(!lower.contains(bad), "{bad} in {svg}");
        }
        // Tags balance (a cheap well-formedness check).
        for tag in ["svg", "title", "desc", "text", "polyline", "rect"] {
            let opens =
                svg.matches(&format!("<{tag} ")).count() + svg.matches(&format!("<{tag}>")).count();
            let closes = svg.matches(&format!("</{tag}>")).count() + self_closed(svg, tag);
            assert_eq!(opens, closes, "<{tag}> unbalanced in {svg}");
        }
    }

    fn self_closed(svg: &str, tag: &str) -> usize {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter(|rest| {
                let end = rest.find('>').unwrap();
                rest[..end].ends_with('/')
            })
            .count()
    }

    #[test]
    fn line_chart_shape() {
        let labels: Vec<String> = (1..=10).map(|d| format!("03-{d:02}")).collect();
        let opens = [5, 8, 13, 4, 0, 2, 9, 11, 3, 7];
        let clicks = [1, 2, 3, 1, 0, 0, 2, 4, 1, 2];
        let svg = line_chart(
            "Opens and clicks",
            &labels,
            &[
                Line {
                    name: "opens",
                    values: &opens,
                },
                Line {
                    name: "clicks",
                    values: &clicks,
                },
            ],
        );
        well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Ten points per line; the axis tops out at a nice 20 for a maximum of 13.
        let first = svg.split("points=\"").nth(1).unwrap();
        assert_eq!(first.split('"').next().unwrap().split(' ').count(), 10);
        assert!(svg.contains(">20</text>"));
        assert!(svg.contains("opens: total 62; clicks: total 16"));
        // At most 8 x labels of 10.
        assert!(svg.matches(">03-").count() <= 8);
    }

    #[test]
    fn text_is_escaped() {
        let evil = r#"<script>alert("x")</script> & 'co'"#;
        let svg = line_chart(
            evil,
            &[evil.to_owned()],
            &[Line {
                name: evil,
                values: &[1],
            }],
        );
        well_formed(&svg);
        assert!(
            svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;")
        );
        let svg = bar_chart(evil, &[(evil, 3)]);
        well_formed(&svg);
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn empty_series_say_no_data() {
        let svg = line_chart("Nothing yet", &[], &[]);
        well_formed(&svg);
        assert!(svg.contains(">No data</text>"));
        assert!(!svg.contains("<polyline"));
        let svg = bar_chart("Totals", &[]);
        well_formed(&svg);
        assert!(svg.contains(">No data</text>"));
        // Zeros draw zero-height bars without dividing by zero.
        let svg = bar_chart("Totals", &[("sent", 0), ("opens", 0)]);
        well_formed(&svg);
        assert!(svg.contains(r#"height="0.0""#));
        assert!(!svg.contains("NaN"));
        // A maximum of 1 labels 0 and 1 once each, not 0, 0, 0, 0, 1.
        let svg = bar_chart("Totals", &[("sent", 1)]);
        assert_eq!(svg.matches(r#"text-anchor="end">0</text>"#).count(), 1);
        assert_eq!(svg.matches(r#"text-anchor="end">1</text>"#).count(), 1);
    }

    #[test]
    fn bars_scale_to_a_nice_maximum() {
        let svg = bar_chart("Totals", &[("sent", 1000), ("opens", 450), ("clicks", 80)]);
        well_formed(&svg);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("<title>sent: 1000</title>"));
        assert_eq!(nice_max(1000), 1000);
        assert_eq!(nice_max(1001), 2000);
        assert_eq!(nice_max(13), 20);
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
    }

    #[test]
    fn bar_names_slant_and_fit_below_the_axis() {
        let bars: Vec<(&str, u64)> = domain::metrics::METRICS.iter().map(|m| (*m, 7)).collect();
        let svg = bar_chart("Totals", &bars);
        well_formed(&svg);
        // Every name is drawn once, slanted and ending under its bar, so ten long names in a
        // row never run together ("unsubscribescomplaints").
        for name in domain::metrics::METRICS {
            let tag = svg
                .split("<text ")
                .find(|t| {
                    t.ends_with(&format!(">{name}</text>"))
                        || t.contains(&format!(">{name}</text>"))
                })
                .unwrap_or_else(|| panic!("{name} is drawn"));
            assert!(tag.contains("transform=\"rotate(-35 "), "{tag}");
            assert!(tag.contains("text-anchor=\"end\""), "{tag}");
        }
    }
}
