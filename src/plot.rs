//! `rbm plot` and the PNG outputs of `sample` and `eval`: filter and sample grids, training curves,
//! free-energy histograms, ROC and precision-recall curves. Pictures are drawn into memory with
//! plotters (text in the DejaVu Sans font compiled into the binary, so they render on a machine
//! with no fonts and no display) and written atomically like every other output.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use rbm_core::{Model, VisibleKind, metrics};

use crate::cli::Columns;

/// `rbm plot` subcommands.
#[derive(Subcommand, Debug)]
pub enum PlotCommand {
    /// Each hidden unit's weights as a grey tile, scaled to its own range, tiles in a grid (image
    /// models: every visible unit Bernoulli).
    Filters(PlotFiltersArgs),
    /// Reconstruction error and training/validation free energy per epoch, from the `--report`
    /// file of `rbm train`.
    Training(PlotTrainingArgs),
    /// Histogram of the free energies of a file's rows, split by label when given, with the
    /// model's anomaly threshold as a vertical line.
    Scores(PlotScoresArgs),
}

#[derive(Args, Debug)]
pub struct PlotFiltersArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// PNG file to write.
    #[arg(long)]
    pub output: std::path::PathBuf,
    /// Image shape HxW (for example 28x28) [default: square, from the number of visible units].
    #[arg(long)]
    pub shape: Option<String>,
    /// Accepted for uniformity; plot prints nothing.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PlotTrainingArgs {
    /// JSON report written by `rbm train --report`.
    #[arg(long)]
    pub report: std::path::PathBuf,
    /// PNG file to write.
    #[arg(long)]
    pub output: std::path::PathBuf,
    /// Accepted for uniformity; plot prints nothing.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PlotScoresArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// CSV file of rows to score (`-` for standard input).
    #[arg(long)]
    pub input: String,
    /// PNG file to write.
    #[arg(long)]
    pub output: std::path::PathBuf,
    #[command(flatten)]
    pub columns: Columns,
    /// Label value that marks an anomaly; any other value is normal [default: labels must be 0
    /// or 1, and 1 marks an anomaly].
    #[arg(long)]
    pub positive_label: Option<String>,
    /// Free-energy threshold to draw [default: the model's stored threshold].
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// Accepted for uniformity; plot prints nothing.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(command: PlotCommand) -> Result<()> {
    // The picture's path is checked before anything is read or drawn.
    let (output, inputs): (&Path, Vec<&Path>) = match &command {
        PlotCommand::Filters(a) => (&a.output, vec![&a.model]),
        PlotCommand::Training(a) => (&a.output, vec![&a.report]),
        PlotCommand::Scores(a) => (&a.output, vec![&a.model, Path::new(&a.input)]),
    };
    rbm_core::OutputPath::check(output, &inputs)?;
    match command {
        PlotCommand::Filters(a) => filters(a),
        PlotCommand::Training(a) => training(a),
        PlotCommand::Scores(a) => scores(a),
    }
}

/// Whether `path` names a PNG file (by its extension), for outputs that are CSV otherwise.
pub fn is_png(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// An image's height and width in pixels, one visible unit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub height: usize,
    pub width: usize,
}

impl Shape {
    /// `--shape HxW` checked against the number of visible units, or, without it, the square
    /// whose pixels are the visible units (784 → 28x28, 64 → 8x8).
    pub fn resolve(given: Option<&str>, n_visible: usize) -> Result<Shape> {
        match given {
            Some(text) => {
                let parsed = text
                    .split_once(['x', 'X'])
                    .and_then(|(h, w)| Some((h.trim().parse::<usize>().ok()?, w.trim().parse::<usize>().ok()?)));
                let Some((height, width)) = parsed.filter(|&(h, w)| h > 0 && w > 0) else {
                    bail!("--shape {text:?}: expected HEIGHTxWIDTH, for example 28x28");
                };
                if height.checked_mul(width) != Some(n_visible) {
                    bail!(
                        "--shape {height}x{width} has {} pixels, but the model has {n_visible} visible units",
                        height.saturating_mul(width)
                    );
                }
                Ok(Shape { height, width })
            }
            None => {
                let side = (n_visible as f64).sqrt().round() as usize;
                if side < 2 || side * side != n_visible {
                    bail!(
                        "{n_visible} visible units are not a square image: pass --shape HEIGHTxWIDTH (their product must be {n_visible})"
                    );
                }
                Ok(Shape { height: side, width: side })
            }
        }
    }
}

/// Refuses models whose visible units are not all Bernoulli: tiles of pixels make sense for image
/// models, not for standardised Gaussian columns, categories or a recommender's ratings.
fn load_image_model(path: &Path, what: &str) -> Result<Model> {
    if let Some(header) = rbm_core::file_header(path)?
        && header.format == rbm_recommend::FORMAT_NAME
    {
        bail!("{}: a recommender model has no image to draw ({what} is for image models)", path.display());
    }
    let model = Model::load(path)?;
    if model.rbm.visible_kind() != Some(VisibleKind::Bernoulli) {
        bail!(
            "{}: {what} is for image models, whose visible units are all Bernoulli (pixels in [0, 1]); this model has {} visible units",
            path.display(),
            model.rbm.layer().describe()
        );
    }
    Ok(model)
}

/// Tiles of `shape` laid out in a near-square grid, each pixel drawn as a `scale`-sized square,
/// tiles separated by `GAP` pixels of the background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TileGrid {
    shape: Shape,
    scale: usize,
    columns: usize,
    rows: usize,
}

impl TileGrid {
    const GAP: usize = 2;
    /// Tiles are enlarged to about this many pixels on their longer side...
    const TILE_TARGET: usize = 48;
    /// ...while the picture stays this wide or less (down to one pixel per unit).
    const MAX_WIDTH: usize = 2400;
    /// Pictures over this many pixels are refused (about 300 MB of RGB).
    const MAX_PIXELS: usize = 100_000_000;
    const BACKGROUND: [u8; 3] = [90, 90, 110];

    fn new(shape: Shape, tiles: usize) -> Result<TileGrid> {
        let columns = (tiles as f64).sqrt().ceil().max(1.0) as usize;
        let rows = tiles.div_ceil(columns).max(1);
        let longer = shape.height.max(shape.width);
        let mut scale = Self::TILE_TARGET.div_ceil(longer).max(1);
        let mut grid = TileGrid { shape, scale, columns, rows };
        while scale > 1 && grid.size().0 > Self::MAX_WIDTH {
            scale -= 1;
            grid.scale = scale;
        }
        let (width, height) = grid.size();
        if width.saturating_mul(height) > Self::MAX_PIXELS {
            bail!(
                "{tiles} tiles of {}x{} make a picture of {width}x{height} pixels, more than the {} a picture may have: draw fewer",
                shape.height,
                shape.width,
                Self::MAX_PIXELS
            );
        }
        Ok(grid)
    }

    /// Width and height of the whole picture in pixels.
    fn size(&self) -> (usize, usize) {
        let cell = |n: usize| n * self.scale + Self::GAP;
        (self.columns * cell(self.shape.width) + Self::GAP, self.rows * cell(self.shape.height) + Self::GAP)
    }

    /// The RGB picture of `tiles`, each a row-major list of grey levels of `shape`.
    fn draw(&self, tiles: &[Vec<u8>]) -> Vec<u8> {
        let (width, height) = self.size();
        let mut rgb: Vec<u8> = Self::BACKGROUND.iter().copied().cycle().take(width * height * 3).collect();
        let Shape { height: th, width: tw } = self.shape;
        for (t, tile) in tiles.iter().enumerate() {
            let left = Self::GAP + (t % self.columns) * (tw * self.scale + Self::GAP);
            let top = Self::GAP + (t / self.columns) * (th * self.scale + Self::GAP);
            for (p, &grey) in tile.iter().enumerate() {
                let (row, column) = (p / tw, p % tw);
                for dy in 0..self.scale {
                    let y = top + row * self.scale + dy;
                    let x = left + column * self.scale;
                    rgb[(y * width + x) * 3..(y * width + x + self.scale) * 3].fill(grey);
                }
            }
        }
        rgb
    }
}

/// Grey levels of `values` scaled to their own range (lowest black, highest white); a constant
/// tile is mid-grey.
fn grey_own_range(values: impl Iterator<Item = f32> + Clone) -> Vec<u8> {
    let (low, high) = values.clone().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let span = high - low;
    values.map(|v| if span > 0.0 { ((v - low) / span * 255.0).round() as u8 } else { 128 }).collect()
}

/// Grey levels of values in [0, 1] (0 black, 1 white).
fn grey_unit(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

/// Encodes an RGB buffer as PNG and writes it atomically.
fn write_png(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<()> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(rgb, width as u32, height as u32, image::ColorType::Rgb8)
        .context("encoding the PNG picture")?;
    rbm_core::write_atomically(path, &bytes)?;
    Ok(())
}

fn filters(args: PlotFiltersArgs) -> Result<()> {
    let model = load_image_model(&args.model, "plot filters")?;
    let rbm = &model.rbm;
    let shape = Shape::resolve(args.shape.as_deref(), rbm.n_visible())?;
    let grid = TileGrid::new(shape, rbm.n_hidden())?;
    // Row j of W^T is hidden unit j's weights to every pixel, in the data's column order.
    let weights = rbm.weights();
    let tiles: Vec<Vec<u8>> = (0..rbm.n_hidden()).map(|j| grey_own_range(weights.row(j).iter().copied())).collect();
    let (width, height) = grid.size();
    write_png(&args.output, &grid.draw(&tiles), width, height)
}

/// The grid for `count` samples of an image model, checked before any sampling is done.
pub fn sample_grid(model_path: &Path, model: &Model, shape: Option<&str>, count: usize) -> Result<SampleGrid> {
    if model.rbm.visible_kind() != Some(VisibleKind::Bernoulli) {
        bail!(
            "{}: a PNG of samples is for image models, whose visible units are all Bernoulli; this model has {} visible units (write CSV instead)",
            model_path.display(),
            model.rbm.layer().describe()
        );
    }
    let shape = Shape::resolve(shape, model.rbm.n_visible())?;
    Ok(SampleGrid(TileGrid::new(shape, count)?))
}

/// Where samples of an image model go in a PNG grid (made by [`sample_grid`]).
pub struct SampleGrid(TileGrid);

impl SampleGrid {
    /// Writes `samples` (one per column, values in [0, 1]: 0 black, 1 white) as a PNG grid.
    pub fn write(&self, samples: &nalgebra::DMatrix<f32>, output: &Path) -> Result<()> {
        let tiles: Vec<Vec<u8>> = samples.column_iter().map(|c| grey_unit(c.iter().copied())).collect();
        let (width, height) = self.0.size();
        write_png(output, &self.0.draw(&tiles), width, height)
    }
}

/// Registers the embedded font under the family name plotters' text styles use.
fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // DejaVu Sans is a valid TrueType font: registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws a `width x height` picture on a white canvas with `draw` and writes it as PNG.
fn render(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(drawing_error)?;
    }
    write_png(path, &rgb, width as usize, height as usize)
}

fn drawing_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the picture: {e:?}")
}

/// A chart whose axes are both real numbers.
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// An axis label: whole numbers without a decimal point, others to six decimals with trailing zeros
/// dropped (tick positions such as 0.8999999999999999 read 0.9), tiny ones in exponent form.
fn axis_label(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else if x.abs() < 1e-4 {
        format!("{x:.2e}")
    } else {
        format!("{x:.6}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A chart with a caption and room for the axes' labels on `area`.
fn new_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: impl AsRef<str>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<Chart<'a, 'b>> {
    ChartBuilder::on(area)
        .caption(title.as_ref(), ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(drawing_error)
}

/// The legend of the chart's labelled series, framed, at `position`.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(drawing_error)
}

/// Axes, labels and a light grid, the same on every chart; at most `x_labels` labels on the x
/// axis, whole numbers written without a decimal point (epochs).
fn draw_mesh(chart: &mut Chart, x_desc: &str, y_desc: &str, x_labels: usize) -> Result<()> {
    let whole = |x: &f64| axis_label(*x);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(x_labels)
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .light_line_style(RGBColor(238, 238, 238))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(drawing_error)
}

/// `lo..hi` widened by 5% on each side (and to a unit interval around a single value), so that
/// lines at the extremes stay inside the frame.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        return lo - 0.5..hi + 0.5;
    }
    lo - 0.05 * span..hi + 0.05 * span
}

fn range_of(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)))
}

/// One epoch of a training report, as `rbm train --report` writes it.
#[derive(serde::Deserialize)]
struct ReportEpoch {
    epoch: f64,
    reconstruction_error: Option<f64>,
    free_energy_train: Option<f64>,
    free_energy_validation: Option<f64>,
}

fn read_report(path: &Path) -> Result<Vec<ReportEpoch>> {
    #[derive(serde::Deserialize)]
    struct Report {
        epochs: Vec<ReportEpoch>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a training report of rbm train --report ({e})", path.display()))?;
    if report.epochs.is_empty() {
        bail!("{}: the report has no epochs to plot", path.display());
    }
    Ok(report.epochs)
}

/// A named line of a chart: its legend text, colour and `(x, y)` points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A line chart of `series` (name, colour, points) against the epoch, with a legend.
fn epoch_chart(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    y_label: &str,
    epochs: std::ops::Range<f64>,
    series: &[Line],
) -> Result<()> {
    let (lo, hi) = range_of(series.iter().flat_map(|(_, _, points)| points.iter().map(|p| p.1)));
    let (epochs_start, epochs_end) = (epochs.start, epochs.end);
    let mut chart = new_chart(area, title, epochs.clone(), padded(lo, hi))?;
    let whole_epochs = (epochs_end - epochs_start).round() as usize + 1;
    draw_mesh(&mut chart, "epoch", y_label, whole_epochs.clamp(2, 10))?;
    for (name, colour, points) in series {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)).point_size(2))
            .map_err(drawing_error)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)
}

fn training(args: PlotTrainingArgs) -> Result<()> {
    let epochs = read_report(&args.report)?;
    let points = |value: fn(&ReportEpoch) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs.iter().filter_map(|e| value(e).filter(|v| v.is_finite()).map(|v| (e.epoch, v))).collect()
    };
    let error = points(|e| e.reconstruction_error);
    let train = points(|e| e.free_energy_train);
    let validation = points(|e| e.free_energy_validation);
    let (first, last) = range_of(epochs.iter().map(|e| e.epoch));
    let x_range = if last > first { first..last } else { first - 0.5..last + 0.5 };
    render(&args.output, 900, 760, |root| {
        root.fill(&WHITE).map_err(drawing_error)?;
        let (top, bottom) = root.split_vertically(380);
        epoch_chart(
            &top,
            "Reconstruction error",
            "mean squared error per column",
            x_range.clone(),
            &[("reconstruction error", BLUE, error)],
        )?;
        let mut energies = vec![("training rows", BLUE, train)];
        if !validation.is_empty() {
            energies.push(("validation rows", RED, validation));
        }
        epoch_chart(&bottom, "Mean free energy", "free energy", x_range, &energies)
    })
}

/// Free energies of every row of `input` under `model`, and each row's label when asked for.
fn scores_and_labels(
    model: &Model,
    input: &str,
    columns: &Columns,
    positive_label: Option<&str>,
) -> Result<(Vec<f64>, Option<Vec<bool>>)> {
    let mut reader = crate::table::TableReader::open(input, &crate::commands::spec_for_model(model, columns))?;
    crate::commands::check_width(&reader, model)?;
    let (mut energies, mut labels) = (Vec::new(), columns.label_column.as_ref().map(|_| Vec::new()));
    crate::table::for_each_piece(
        &mut reader,
        crate::commands::SCORE_CHUNK_ROWS,
        |format, mut chunk, _| {
            let found = match chunk.labels.take() {
                Some(found) => Some(crate::commands::positives(input, &found, &chunk.lines, positive_label)?),
                None => None,
            };
            Ok((crate::commands::free_energies(model, format, chunk)?, found))
        },
        |(piece, found)| {
            energies.extend(piece);
            if let (Some(all), Some(found)) = (&mut labels, found) {
                all.extend(found);
            }
            Ok(())
        },
    )?;
    if energies.is_empty() {
        bail!("{input}: no rows to score");
    }
    Ok((energies, labels))
}

fn scores(args: PlotScoresArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let threshold = args.threshold.or(model.anomaly_threshold);
    let (energies, labels) = scores_and_labels(&model, &args.input, &args.columns, args.positive_label.as_deref())?;
    let groups: Vec<(String, RGBColor, Vec<f64>)> = match &labels {
        None => vec![(format!("all rows ({})", energies.len()), BLUE, energies.clone())],
        Some(labels) => {
            let pick = |want: bool| -> Vec<f64> {
                energies.iter().zip(labels).filter(|&(_, &l)| l == want).map(|(&e, _)| e).collect()
            };
            let (normal, anomalous) = (pick(false), pick(true));
            vec![
                (format!("normal ({})", normal.len()), BLUE, normal),
                (
                    format!("anomalous, label {} ({})", args.positive_label.as_deref().unwrap_or("1"), anomalous.len()),
                    RED,
                    anomalous,
                ),
            ]
        }
    };
    let histogram = Histogram::new(&energies, threshold);
    // Split by label, each group's bars are fractions of the group, so that a small anomalous
    // group stays visible beside the normal rows.
    let fractions = labels.is_some();
    let bars: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, _, values)| {
            let counts = histogram.counts(values);
            let total = values.len().max(1) as f64;
            counts.into_iter().map(|c| if fractions { c as f64 / total } else { c as f64 }).collect()
        })
        .collect();
    let top = bars.iter().flatten().copied().fold(0.0f64, f64::max).max(f64::MIN_POSITIVE) * 1.08;
    let input = if args.input == "-" { "standard input" } else { args.input.as_str() };
    render(&args.output, 900, 560, |root| {
        root.fill(&WHITE).map_err(drawing_error)?;
        let mut chart =
            new_chart(root, format!("Free energy of the rows of {input}"), histogram.low..histogram.high, 0.0..top)?;
        let y_desc = if fractions { "fraction of the group's rows" } else { "rows" };
        draw_mesh(&mut chart, "free energy (higher: more anomalous)", y_desc, 10)?;
        for ((name, colour, _), heights) in groups.iter().zip(&bars) {
            let colour = *colour;
            let fill = colour.mix(0.45).filled();
            chart
                .draw_series(heights.iter().enumerate().filter(|(_, h)| **h > 0.0).map(|(b, &h)| {
                    let (x0, x1) = histogram.bin(b);
                    Rectangle::new([(x0, 0.0), (x1, h)], fill)
                }))
                .map_err(drawing_error)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], colour.mix(0.45).filled()));
        }
        if let Some(t) = threshold {
            chart
                .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))
                .map_err(drawing_error)?
                .label(format!("threshold {t:.4}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Equal-width bins over the values and the threshold.
struct Histogram {
    low: f64,
    high: f64,
    bins: usize,
}

impl Histogram {
    fn new(values: &[f64], threshold: Option<f64>) -> Histogram {
        let (low, high) = match range_of(values.iter().copied().chain(threshold)) {
            (low, high) if high > low => (low, high),
            (low, _) if low.is_finite() => (low - 0.5, low + 0.5),
            _ => (0.0, 1.0), // no finite value
        };
        // About the square root of the rows, between 10 and 60 bins.
        let bins = ((values.len() as f64).sqrt().ceil() as usize).clamp(10, 60);
        Histogram { low, high, bins }
    }

    fn bin(&self, b: usize) -> (f64, f64) {
        let width = (self.high - self.low) / self.bins as f64;
        (self.low + b as f64 * width, self.low + (b + 1) as f64 * width)
    }

    /// Rows per bin; the highest value falls in the last bin, non-finite values in none.
    fn counts(&self, values: &[f64]) -> Vec<usize> {
        let mut counts = vec![0; self.bins];
        for &v in values.iter().filter(|v| v.is_finite()) {
            let position = (v - self.low) / (self.high - self.low) * self.bins as f64;
            counts[(position.max(0.0) as usize).min(self.bins - 1)] += 1;
        }
        counts
    }
}

/// The ROC and precision-recall curves of `scores` against `labels`, side by side.
pub fn write_roc_pr(path: &Path, scores: &[f64], labels: &[bool]) -> Result<()> {
    let roc = metrics::roc_curve(scores, labels)
        .ok_or_else(|| anyhow!("--plot: the curves need both anomalous and normal rows among the labels"))?;
    let pr = metrics::precision_recall_curve(scores, labels).expect("positives are present");
    let auc = metrics::roc_auc(scores, labels).expect("both classes are present");
    let ap = metrics::average_precision(scores, labels).expect("positives are present");
    let positive_rate = labels.iter().filter(|&&l| l).count() as f64 / labels.len() as f64;
    render(path, 1100, 520, |root| {
        root.fill(&WHITE).map_err(drawing_error)?;
        let (left, right) = root.split_horizontally(550);
        let mut chart = new_chart(&left, format!("ROC curve (AUC {auc:.3})"), 0.0..1.0, 0.0..1.0)?;
        draw_mesh(&mut chart, "false positive rate", "true positive rate", 10)?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(160, 160, 160))).map_err(drawing_error)?;
        chart.draw_series(LineSeries::new(roc, BLUE.stroke_width(2))).map_err(drawing_error)?;

        let mut chart = new_chart(&right, format!("Precision-recall (AP {ap:.3})"), 0.0..1.0, 0.0..1.02)?;
        draw_mesh(&mut chart, "recall", "precision", 10)?;
        chart
            .draw_series(LineSeries::new([(0.0, positive_rate), (1.0, positive_rate)], RGBColor(160, 160, 160)))
            .map_err(drawing_error)?;
        // Precision holds from one recall to the next: a step curve, as average precision sums it.
        let mut steps = Vec::with_capacity(pr.len() * 2);
        let mut previous_recall = 0.0;
        for (recall, precision) in pr {
            steps.push((previous_recall, precision));
            steps.push((recall, precision));
            previous_recall = recall;
        }
        chart.draw_series(LineSeries::new(steps, RED.stroke_width(2))).map_err(drawing_error)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_inferred_for_square_images_and_checked_when_given() {
        assert_eq!(Shape::resolve(None, 784).unwrap(), Shape { height: 28, width: 28 });
        assert_eq!(Shape::resolve(None, 64).unwrap(), Shape { height: 8, width: 8 });
        assert_eq!(Shape::resolve(Some("4x5"), 20).unwrap(), Shape { height: 4, width: 5 });
        assert!(Shape::resolve(None, 20).unwrap_err().to_string().contains("--shape"));
        assert!(Shape::resolve(None, 1).is_err());
        assert!(Shape::resolve(Some("4x4"), 20).unwrap_err().to_string().contains("16 pixels"));
        assert!(Shape::resolve(Some("4by5"), 20).is_err());
        assert!(Shape::resolve(Some("0x20"), 20).is_err());
    }

    #[test]
    fn tiles_land_in_their_cells_at_scale_with_the_background_between() {
        let shape = Shape { height: 2, width: 3 };
        let grid = TileGrid::new(shape, 5).unwrap();
        // Five tiles: three columns, two rows; 2x3 tiles enlarged 16 times (48 / 3).
        assert_eq!((grid.columns, grid.rows, grid.scale), (3, 2, 16));
        let (width, height) = grid.size();
        assert_eq!((width, height), (3 * (3 * 16 + 2) + 2, 2 * (2 * 16 + 2) + 2));
        let tiles: Vec<Vec<u8>> = (0..5).map(|t| vec![t as u8 * 10, 1, 2, 3, 4, 250]).collect();
        let rgb = grid.draw(&tiles);
        assert_eq!(rgb.len(), width * height * 3);
        let pixel = |x: usize, y: usize| &rgb[(y * width + x) * 3..(y * width + x) * 3 + 3];
        assert_eq!(pixel(0, 0), TileGrid::BACKGROUND);
        // Tile 4 (second row, second column): its first pixel and its last.
        let (left, top) = (2 + (3 * 16 + 2), 2 + (2 * 16 + 2));
        assert_eq!(pixel(left, top), [40, 40, 40]);
        assert_eq!(pixel(left + 15, top + 15), [40, 40, 40]);
        assert_eq!(pixel(left + 3 * 16 - 1, top + 2 * 16 - 1), [250, 250, 250]);
        // The sixth cell is empty.
        assert_eq!(pixel(left + 3 * 16 + 2 + 5, top + 5), TileGrid::BACKGROUND);
    }

    #[test]
    fn many_tiles_shrink_to_the_maximum_width() {
        let grid = TileGrid::new(Shape { height: 28, width: 28 }, 2000).unwrap();
        assert!(grid.size().0 <= TileGrid::MAX_WIDTH);
        assert!(grid.scale >= 1);
        assert!(TileGrid::new(Shape { height: 1000, width: 1000 }, 1000).is_err());
    }

    #[test]
    fn each_tile_spans_black_to_white_over_its_own_range() {
        assert_eq!(grey_own_range([-2.0f32, 0.0, 2.0].into_iter()), vec![0, 128, 255]);
        assert_eq!(grey_own_range([0.001f32, 0.002].into_iter()), vec![0, 255]);
        assert_eq!(grey_own_range([3.0f32, 3.0].into_iter()), vec![128, 128]);
        assert_eq!(grey_unit([0.0f32, 0.5, 1.0, 7.0].into_iter()), vec![0, 128, 255, 255]);
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_label(0.8999999999999999), "0.9");
        assert_eq!(axis_label(0.30000000000000004), "0.3");
        assert_eq!(axis_label(0.048), "0.048");
        assert_eq!(axis_label(-60.0), "-60");
        assert_eq!(axis_label(0.0), "0");
        assert_eq!(axis_label(2.5e-6), "2.50e-6");
        assert_eq!(axis_label(1234.5), "1234.5");
    }

    #[test]
    fn histogram_bins_cover_the_values_and_the_threshold() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let histogram = Histogram::new(&values, Some(120.0));
        assert_eq!((histogram.low, histogram.high, histogram.bins), (0.0, 120.0, 10));
        let counts = histogram.counts(&values);
        assert_eq!(counts.iter().sum::<usize>(), 100);
        assert_eq!(counts[0], 12);
        assert_eq!(counts[9], 0);
        let constant = Histogram::new(&[5.0, 5.0], None);
        assert_eq!((constant.low, constant.high), (4.5, 5.5));
        assert_eq!(constant.counts(&[5.0, 5.0, f64::NAN]).iter().sum::<usize>(), 2);
        let nothing_finite = Histogram::new(&[f64::NAN, f64::INFINITY], None);
        assert_eq!((nothing_finite.low, nothing_finite.high), (0.0, 1.0));
    }
}
