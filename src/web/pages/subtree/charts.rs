//! The two pictures of the subtree overview, drawn on the server as SVG: a heat map
//! (organisations × periods, coloured by completion) and a completion trend by quarter.
//!
//! This module only computes geometry and words; the templates write the SVG, so
//! askama escapes every name. Horizontal positions are percentages of the chart's
//! width, so a chart fills its card on a desktop and on a phone while its text keeps
//! its size; vertical positions are pixels. Colours are classes (the Content Security
//! Policy forbids `style=`), defined in `static/css/30-subtree.css`.

/// A completion rate as a colour class, red to green in five steps, grey when nothing
/// counted (nothing due, or everything waived or cancelled).
pub fn completion_class(completion: Option<f64>) -> &'static str {
    match completion {
        None => "hm-none",
        Some(c) if c < 0.2 => "hm-0",
        Some(c) if c < 0.4 => "hm-1",
        Some(c) if c < 0.6 => "hm-2",
        Some(c) if c < 0.8 => "hm-3",
        Some(_) => "hm-4",
    }
}

/// The five steps of the scale with their lower bounds in percent, for the legend.
pub const SCALE: [(&str, u32, u32); 5] =
    [("hm-0", 0, 20), ("hm-1", 20, 40), ("hm-2", 40, 60), ("hm-3", 60, 80), ("hm-4", 80, 100)];

/// A rate as a whole percentage: 0.666 → "67%". Rounds down below 100 % so that an
/// unfinished period never reads 100 %.
pub fn percent(rate: f64) -> String {
    let p = (rate * 100.0).floor().clamp(0.0, 100.0);
    format!("{}%", p as u32)
}

/// A percentage (0–100) of the chart's width as an SVG length, to two decimals. Written
/// from whole hundredths: `{:.2}` on a float takes a slow exact path for many values, and
/// a root's heat map prints hundreds of them.
fn pc(x: f64) -> String {
    let hundredths = (x.clamp(0.0, 100.0) * 100.0).round() as u32;
    format!("{}.{:02}%", hundredths / 100, hundredths % 100)
}

/// Cut a name to `max` characters, with an ellipsis, for a label that cannot wrap.
pub fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// One cell of the heat map: an organisation in one period.
pub struct HeatCell {
    pub x: String,
    pub width: String,
    pub text_x: String,
    pub class: &'static str,
    /// The figure written in the cell ("67%", or "—").
    pub label: String,
    /// The cell's tooltip and accessible name: who, when, how much.
    pub title: String,
    pub href: String,
    /// Whether the figure is dark on a light colour (or light on a dark one).
    pub light_text: bool,
}

pub struct HeatRow {
    pub y: u32,
    pub text_y: u32,
    pub label: String,
    pub full_name: String,
    pub href: String,
    pub closed: bool,
    pub cells: Vec<HeatCell>,
}

pub struct HeatColumn {
    pub text_x: String,
    pub label: String,
    pub current: bool,
}

/// The heat map's geometry.
pub struct HeatMap {
    pub height: u32,
    /// The width of the label column, beyond which a name is clipped.
    pub label_width: String,
    pub columns: Vec<HeatColumn>,
    pub rows: Vec<HeatRow>,
    pub row_height: u32,
    /// Many narrow columns (months): the figures in the cells give way on a phone.
    pub dense: bool,
}

/// What one cell shows, before layout.
pub struct HeatInput {
    pub completion: Option<f64>,
    pub title: String,
    pub href: String,
}

pub struct HeatRowInput {
    pub name: String,
    pub href: String,
    pub closed: bool,
    pub cells: Vec<HeatInput>,
}

const HEAT_HEADER: u32 = 38;
const HEAT_ROW: u32 = 30;
const HEAT_GAP: u32 = 4;

/// Lay the heat map out: a label column, then one column per period.
pub fn heat_map(columns: Vec<(String, bool)>, rows: Vec<HeatRowInput>) -> HeatMap {
    let n = columns.len().max(1) as f64;
    let label_w = match columns.len() {
        0..=2 => 40.0,
        3..=4 => 34.0,
        _ => 26.0,
    };
    let col_w = (100.0 - label_w) / n;
    let cols = columns
        .into_iter()
        .enumerate()
        .map(|(j, (label, current))| HeatColumn { text_x: pc(label_w + (j as f64 + 0.5) * col_w), label, current })
        .collect();
    let rows: Vec<HeatRow> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let y = HEAT_HEADER + i as u32 * HEAT_ROW;
            HeatRow {
                y,
                text_y: y + (HEAT_ROW - HEAT_GAP) / 2 + 5,
                label: shorten(&r.name, 9),
                full_name: r.name,
                href: r.href,
                closed: r.closed,
                cells: r
                    .cells
                    .into_iter()
                    .enumerate()
                    .map(|(j, c)| {
                        let class = completion_class(c.completion);
                        HeatCell {
                            x: pc(label_w + j as f64 * col_w),
                            width: pc(col_w),
                            text_x: pc(label_w + (j as f64 + 0.5) * col_w),
                            class,
                            label: c.completion.map(percent).unwrap_or_else(|| "—".to_owned()),
                            title: c.title,
                            href: c.href,
                            light_text: matches!(class, "hm-0" | "hm-4"),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    HeatMap {
        height: HEAT_HEADER + rows.len() as u32 * HEAT_ROW + 2,
        label_width: pc(label_w - 1.0),
        columns: cols,
        rows,
        row_height: HEAT_ROW - HEAT_GAP,
        dense: n > 6.0,
    }
}

/// One bar of the trend chart.
pub struct Bar {
    pub x: String,
    pub width: String,
    pub y: u32,
    pub height: u32,
    pub text_x: String,
    pub text_y: u32,
    pub label: String,
    pub title: String,
}

/// One quarter of the trend chart: this year's bar and last year's, when they exist.
pub struct TrendGroup {
    pub label: String,
    /// "进行中", "未开始" or "无任务" under the label, when the bar is missing or unfinished.
    pub note: Option<String>,
    pub text_x: String,
    pub current: Option<Bar>,
    pub previous: Option<Bar>,
}

pub struct GridLine {
    pub y: u32,
    pub text_y: u32,
    pub label: String,
}

/// The trend chart's geometry.
pub struct Trend {
    pub height: u32,
    pub plot_left: String,
    pub label_x: String,
    pub axis_y: u32,
    pub label_y: u32,
    pub note_y: u32,
    pub grid: Vec<GridLine>,
    pub groups: Vec<TrendGroup>,
}

/// What one quarter shows, before layout: each year's completion (None: no bar) and
/// the bar's tooltip.
pub struct TrendInput {
    pub label: String,
    pub note: Option<String>,
    pub current: Option<(f64, String)>,
    pub previous: Option<(f64, String)>,
}

const PLOT_TOP: u32 = 18;
const PLOT_BOTTOM: u32 = 168;
const PLOT_LEFT: f64 = 11.0;

/// Lay the trend chart out: a 0–100 % axis, and per quarter two bars side by side
/// (last year's faint on the left, this year's on the right).
pub fn trend(groups: Vec<TrendInput>) -> Trend {
    let n = groups.len().max(1) as f64;
    let group_w = (100.0 - PLOT_LEFT) / n;
    let bar_w = (group_w * 0.3).min(9.0);
    let span = f64::from(PLOT_BOTTOM - PLOT_TOP);
    let y_of = |rate: f64| PLOT_BOTTOM - (rate.clamp(0.0, 1.0) * span).round() as u32;
    let bar = |x: f64, rate: f64, title: String| {
        let y = y_of(rate);
        Bar {
            x: pc(x),
            width: pc(bar_w),
            y,
            // A zero still shows as a hairline on the axis.
            height: (PLOT_BOTTOM - y).max(1),
            text_x: pc(x + bar_w / 2.0),
            text_y: y.saturating_sub(5).max(11),
            label: percent(rate),
            title,
        }
    };
    Trend {
        height: PLOT_BOTTOM + 44,
        plot_left: pc(PLOT_LEFT),
        label_x: pc(PLOT_LEFT - 1.5),
        axis_y: PLOT_BOTTOM,
        label_y: PLOT_BOTTOM + 20,
        note_y: PLOT_BOTTOM + 37,
        grid: [1.0, 0.75, 0.5, 0.25, 0.0]
            .into_iter()
            .map(|r| {
                let y = y_of(r);
                GridLine { y, text_y: y + 4, label: format!("{}%", (r * 100.0).round() as u32) }
            })
            .collect(),
        groups: groups
            .into_iter()
            .enumerate()
            .map(|(j, g)| {
                let centre = PLOT_LEFT + (j as f64 + 0.5) * group_w;
                TrendGroup {
                    label: g.label,
                    note: g.note,
                    text_x: pc(centre),
                    previous: g.previous.map(|(r, t)| bar(centre - bar_w - 0.6, r, t)),
                    current: g.current.map(|(r, t)| bar(centre + 0.6, r, t)),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_runs_from_red_to_green_and_grey_when_nothing_counted() {
        assert_eq!(completion_class(None), "hm-none");
        assert_eq!(completion_class(Some(0.0)), "hm-0");
        assert_eq!(completion_class(Some(0.5)), "hm-2");
        assert_eq!(completion_class(Some(0.79)), "hm-3");
        assert_eq!(completion_class(Some(1.0)), "hm-4");
    }

    #[test]
    fn a_percentage_never_rounds_up_to_done() {
        assert_eq!(percent(0.999), "99%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(2.0 / 3.0), "66%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn lengths_read_as_the_float_formatting_would_write_them() {
        for x in [0.0, 33.0, 42.25, 16.5, 91.75, 99.995, 100.0, 120.0, 1.0 / 3.0, 2.0 / 3.0 * 100.0] {
            assert_eq!(pc(x), format!("{:.2}%", (x.clamp(0.0, 100.0) * 100.0).round() / 100.0), "{x}");
        }
    }

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        assert_eq!(shorten("第二党支部（装配车间）", 8), "第二党支部（装…");
        assert_eq!(shorten("第一党支部", 8), "第一党支部");
    }

    #[test]
    fn the_heat_map_fills_the_width_with_its_columns() {
        let cells = |n: usize| {
            (0..n).map(|_| HeatInput { completion: Some(0.5), title: "t".into(), href: "/x".into() }).collect()
        };
        let m = heat_map(
            (1..=4).map(|q| (format!("Q{q}"), q == 4)).collect(),
            vec![HeatRowInput { name: "A".into(), href: "/a".into(), closed: false, cells: cells(4) }],
        );
        assert_eq!(m.rows[0].cells[0].x, "34.00%");
        assert_eq!(m.rows[0].cells[3].x, "83.50%");
        assert_eq!(m.rows[0].cells[3].width, "16.50%");
        assert!(!m.dense);
    }

    #[test]
    fn a_full_bar_reaches_the_top_and_an_empty_one_stays_visible() {
        let t = trend(vec![TrendInput {
            label: "Q1".into(),
            note: None,
            current: Some((1.0, "all".into())),
            previous: Some((0.0, "none".into())),
        }]);
        let g = &t.groups[0];
        assert_eq!(g.current.as_ref().unwrap().y, PLOT_TOP);
        assert_eq!(g.previous.as_ref().unwrap().height, 1);
    }
}
