//! Results on disk: one JSON file per run and SVG plots (plotters' SVG backend: no system
//! libraries, text drawn as SVG text).

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub fn write_json(out_dir: &Path, name: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join(format!("{name}.json"));
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One chart of a figure.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub log_y: bool,
    /// Formats the x axis labels (the latency spectrum shows percentiles).
    pub percentile_x: bool,
}

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn percentile_label(x: &f64) -> String {
    // x = -log10(1 - q)
    let q = 100.0 * (1.0 - 10f64.powf(-*x));
    if *x < 0.5 {
        format!("{q:.0}%")
    } else if (x - x.round()).abs() < 1e-6 {
        let digits = (x.round() as usize).saturating_sub(2);
        format!("{q:.digits$}%")
    } else {
        format!("{q:.1}%")
    }
}

fn plain_label(x: &f64) -> String {
    if x.abs() >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x.abs() >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x.abs() >= 100.0 || *x == x.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

macro_rules! draw_panel {
    ($area:expr, $p:expr, $x:expr, $y:expr) => {{
        let mut chart = ChartBuilder::on($area)
            .caption(&$p.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d($x, $y)
            .map_err(|e| anyhow!("{e}"))?;
        let xf: &dyn Fn(&f64) -> String = if $p.percentile_x {
            &percentile_label
        } else {
            &plain_label
        };
        chart
            .configure_mesh()
            .x_desc($p.x_label.as_str())
            .y_desc($p.y_label.as_str())
            .x_label_formatter(xf)
            .y_label_formatter(&plain_label)
            .x_labels(if $p.percentile_x { 6 } else { 10 })
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (name, pts)) in $p.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(if $p.percentile_x {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }};
}

/// Draw `panels` one above the other into an SVG file.
pub fn plot(path: &Path, title: &str, panels: &[Panel]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let height = 380 * panels.len().max(1) as u32 + 50;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, p) in areas.iter().zip(panels) {
        let pts = p.series.iter().flat_map(|(_, v)| v.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            if !p.log_y || *y > 0.0 {
                y0 = y0.min(*y);
                y1 = y1.max(*y);
            }
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
        }
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
        if p.log_y {
            let lo = (y0.max(1e-3) / 1.5).max(1e-3);
            let hi = (y1 * 1.5).max(lo * 10.0);
            draw_panel!(area, p, x0..x1, (lo..hi).log_scale());
        } else {
            let hi = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
            draw_panel!(area, p, x0..x1, 0.0..hi);
        }
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// The percentile spectrum of some latency histograms (log latency over "nines").
pub fn latency_panel(title: &str, hists: &[(String, &Histogram<u64>)]) -> Panel {
    Panel {
        title: title.to_string(),
        x_label: "percentile".into(),
        y_label: "latency (ms, log scale)".into(),
        series: hists
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(n, h)| (n.clone(), crate::stats::spectrum(h)))
            .collect(),
        log_y: true,
        percentile_x: true,
    }
}

pub fn series_panel(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> Panel {
    Panel {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        series,
        log_y: false,
        percentile_x: false,
    }
}

/// Throughput and per-second latency of a traffic run.
pub fn timeline_panels(name: &str, r: &crate::traffic::TrafficResult) -> Vec<Panel> {
    let pts = |f: &dyn Fn(&crate::traffic::Second) -> f64| -> Vec<(f64, f64)> {
        r.timeline.iter().map(|s| (s.t as f64, f(s))).collect()
    };
    // Latency only for the seconds that had deliveries.
    let lat = |f: &dyn Fn(&crate::traffic::Second) -> f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .filter(|s| s.delivered > 0)
            .map(|s| (s.t as f64, f(s)))
            .collect()
    };
    vec![
        series_panel(
            &format!("{name}: messages per second"),
            "seconds since the first send",
            "messages/s",
            vec![
                ("sent/s".into(), pts(&|s| s.sent as f64)),
                ("acked/s".into(), pts(&|s| s.acked as f64)),
            ],
        ),
        series_panel(
            &format!("{name}: deliveries per second (every recipient connection)"),
            "seconds since the first send",
            "deliveries/s",
            vec![("delivered/s".into(), pts(&|s| s.delivered as f64))],
        ),
        Panel {
            log_y: true,
            ..series_panel(
                &format!("{name}: send-to-deliver latency of the deliveries received each second"),
                "seconds since the first send",
                "latency (ms, log scale)",
                vec![
                    ("p50".into(), lat(&|s| s.p50_ms)),
                    ("p99".into(), lat(&|s| s.p99_ms)),
                ],
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(&0.0), "0%");
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&2.0), "99%");
        assert_eq!(percentile_label(&3.0), "99.9%");
    }

    #[test]
    fn plots_are_svg() {
        let dir = std::env::temp_dir().join(format!("chat-bench-test-{}", std::process::id()));
        let mut h = crate::stats::hist(3);
        for v in 1..5000 {
            crate::stats::record(&mut h, v * 7);
        }
        let path = dir.join("t.svg");
        plot(
            &path,
            "test",
            &[
                latency_panel("lat", &[("a".into(), &h)]),
                series_panel(
                    "s",
                    "x",
                    "y",
                    vec![("b".into(), vec![(0.0, 1.0), (1.0, 3.0)])],
                ),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg") && text.contains("99.9%"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
