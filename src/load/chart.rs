//! SVG line charts for `spindle bench`: one line per model, connections on
//! a logarithmic x axis, or time on a linear one (plotters, SVG backend
//! only).

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart.
pub struct Series {
    /// The legend label (the model).
    pub label: String,
    /// (connections, value) points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// The colours of successive series.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes a chart titled `title` with `y_label` to `path`, connections
/// on a logarithmic x axis.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x_max = xs.fold(1.0f64, f64::max) * 2.0;
    let y_max = ys.fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((0.5f64..x_max).log_scale(), 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(e)?;
    draw_series(&mut chart, series).map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Writes a chart titled `title` with `y_label` to `path`, `x_label`
/// (seconds) on a linear x axis.
pub fn time_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x_max = xs.fold(1.0f64, f64::max) * 1.02;
    let y_max = ys.fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(e)?;
    draw_series(&mut chart, series).map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// The lines, their points and the legend.
fn draw_series<'a, X, DB>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    X: Ranged<ValueType = f64>,
    DB: DrawingBackend + 'a,
{
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 2, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

/// 12500 as `12.5k`.
fn short_number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_series() {
        let dir = std::env::temp_dir().join(format!("spindle-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.svg");
        let series = vec![
            Series {
                label: "pool".into(),
                points: vec![(1.0, 100.0), (16.0, 4000.0), (256.0, 3000.0)],
            },
            Series {
                label: "reactor".into(),
                points: vec![(1.0, 90.0), (16.0, 5000.0)],
            },
        ];
        line_chart(&path, "throughput", "requests/s", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        for text in ["throughput", "pool", "reactor", "connections", "requests/s"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // An empty chart still draws (a sweep whose every point failed).
        line_chart(&path, "empty", "x", &[]).unwrap();
        time_chart(&path, "over time", "seconds", "requests/s", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("seconds") && svg.contains("reactor"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
