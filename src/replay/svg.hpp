#pragma once
// Internal: a small SVG writer for dma_replay's plots. Every plotted series is an element
// with class="series" (and data-name), every legend swatch class="swatch", so tests can
// count what a picture shows.
#include <string>
#include <utility>
#include <vector>

namespace dma::replay::svg {

using Points = std::vector<std::pair<double, double>>;

/// Colour `i` of `n`: a qualitative palette for up to 10, evenly spaced hues beyond.
std::string colour(std::size_t i, std::size_t n);
/// Escapes &, <, >, " for text and attributes.
std::string escape(const std::string& s);

class Canvas {
 public:
  Canvas(double width, double height, const std::string& title);
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& attrs = "");
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& attrs = "");
  void polygon(const Points& p, const std::string& fill, const std::string& attrs = "");
  void polyline(const Points& p, const std::string& stroke, double width, const std::string& attrs = "");
  void circle(double x, double y, double r, const std::string& fill, const std::string& attrs = "");
  void text(double x, double y, const std::string& s, double size = 12, const std::string& anchor = "start",
            const std::string& attrs = "");
  void raw(const std::string& s) { body_ += s; }
  /// A legend of coloured swatches, one entry per line, from (x, y).
  void legend(double x, double y, const std::vector<std::string>& names, const std::vector<std::string>& colours);
  std::string str() const;
  /// Writes the picture; throws ConfigError when the file cannot be written.
  void save(const std::string& path) const;

 private:
  double width_, height_;
  std::string body_;
};

/// A plot area mapping data coordinates to the canvas, with axes, ticks and labels.
class Axes {
 public:
  Axes(double x, double y, double w, double h, double xmin, double xmax, double ymin, double ymax);
  double px(double v) const;
  double py(double v) const;
  /// Frame, grid, ticks, axis labels and a title.
  void draw(Canvas& c, const std::string& title, const std::string& xlabel, const std::string& ylabel,
            bool x_ticks = true) const;

 private:
  double x_, y_, w_, h_, xmin_, xmax_, ymin_, ymax_;
};

/// Ticks at 1-2-5 steps covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace dma::replay::svg
