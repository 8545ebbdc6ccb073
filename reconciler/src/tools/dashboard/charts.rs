//! Server-rendered SVG line charts for the dashboard: no script and nothing
//! loaded from elsewhere, so the page works behind a strict
//! Content-Security-Policy and with JavaScript off.
//!
//! A series is one value per bucket, `None` where nothing was recorded; a
//! gap breaks the line rather than drawing it through zero.

use std::fmt::Write as _;

use crate::tools::dashboard::esc;

/// One line: its name, colour and values.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<Option<f64>>,
}

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// A line chart titled `title`; `unit` is appended to the axis labels;
/// `floor_max` is the least top of the y axis (1 for a ratio).
pub fn line_chart(title: &str, unit: &str, floor_max: f64, series: &[Series<'_>]) -> String {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(floor_max, |m, v| if v.is_finite() { m.max(*v) } else { m });
    let max = if max <= 0.0 { 1.0 } else { max * 1.05 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * i as f64 / (points.max(2) - 1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title),
        esc(title)
    );
    // Axes and three grid lines with their values.
    for fraction in [0.0, 0.5, 1.0] {
        let v = max * fraction;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">{}{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            axis_value(v),
            esc(unit),
            y = y(v),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"10\" fill=\"#666\">24 h ago</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">now</text>",
        HEIGHT - 6.0,
        WIDTH - RIGHT,
        HEIGHT - 6.0
    );
    for s in series {
        // Consecutive known values form one polyline; a lone value a dot.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, svg: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        svg,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{}\"/>",
                        run[0].0,
                        run[0].1,
                        esc(s.colour)
                    );
                }
                _ => {
                    let pts: Vec<String> = run
                        .iter()
                        .map(|(px, py)| format!("{px:.1},{py:.1}"))
                        .collect();
                    let _ = write!(
                        svg,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>",
                        esc(s.colour),
                        pts.join(" ")
                    );
                }
            }
            run.clear();
        };
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) if v.is_finite() => run.push((x(i), y(*v))),
                _ => flush(&mut run, &mut svg),
            }
        }
        flush(&mut run, &mut svg);
    }
    svg.push_str("</svg><p class=\"legend\">");
    for s in series {
        let last = s.values.iter().rev().flatten().next();
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{} {}</span>",
            esc(s.colour),
            esc(s.name),
            last.map(|v| format!("({}{})", axis_value(*v), unit))
                .map(|t| esc(&t))
                .unwrap_or_else(|| "(no data)".to_owned())
        );
    }
    svg.push_str("</p></figure>\n");
    svg
}

/// A short number for an axis: 3 significant digits at most.
fn axis_value(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_breaks_the_line_and_names_are_escaped() {
        let svg = line_chart(
            "rate <1h>",
            "",
            1.0,
            &[Series {
                name: "a&b",
                colour: "#123456",
                values: vec![
                    Some(0.5),
                    Some(1.0),
                    None,
                    Some(0.2),
                    Some(0.3),
                    None,
                    Some(0.9),
                ],
            }],
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("rate &lt;1h&gt;"), "{svg}");
        assert!(svg.contains("a&amp;b (0.900)"), "{svg}");
    }
}
