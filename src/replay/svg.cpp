#include "svg.hpp"

#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::replay::svg {
namespace {

std::string points_attr(const Points& p) {
  std::string s;
  for (const auto& [x, y] : p) s += fmt::format("{:.1f},{:.1f} ", x, y);
  return s;
}

std::string format_tick(double v, double step) {
  const int digits = std::max(0, static_cast<int>(std::ceil(-std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", std::abs(v) < step * 1e-6 ? 0.0 : v, digits);
}

}  // namespace

std::string colour(std::size_t i, std::size_t n) {
  static const char* kPalette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (n <= 10) return kPalette[i % 10];
  // Evenly spaced hues, alternating lightness so neighbours stay apart (HSL to RGB).
  const double h = static_cast<double>(i) / static_cast<double>(n) * 360.0;
  const double l = i % 2 ? 0.38 : 0.58, s = 0.65;
  const double c = (1 - std::abs(2 * l - 1)) * s, x = c * (1 - std::abs(std::fmod(h / 60.0, 2) - 1)), m = l - c / 2;
  double r = 0, g = 0, b = 0;
  if (h < 60)
    r = c, g = x;
  else if (h < 120)
    r = x, g = c;
  else if (h < 180)
    g = c, b = x;
  else if (h < 240)
    g = x, b = c;
  else if (h < 300)
    r = x, b = c;
  else
    r = c, b = x;
  auto byte = [&](double v) { return static_cast<int>(std::lround((v + m) * 255)); };
  return fmt::format("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b));
}

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

Canvas::Canvas(double width, double height, const std::string& title) : width_(width), height_(height) {
  body_ += fmt::format("<title>{}</title>\n", escape(title));
  rect(0, 0, width, height, "#ffffff");
}

void Canvas::rect(double x, double y, double w, double h, const std::string& fill, const std::string& attrs) {
  body_ += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" {}/>\n", x, y, w,
                       h, fill, attrs);
}

void Canvas::line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                  const std::string& attrs) {
  body_ += fmt::format(
      "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"{}\" {}/>\n", x1, y1,
      x2, y2, stroke, width, attrs);
}

void Canvas::polygon(const Points& p, const std::string& fill, const std::string& attrs) {
  body_ += fmt::format("<polygon points=\"{}\" fill=\"{}\" {}/>\n", points_attr(p), fill, attrs);
}

void Canvas::polyline(const Points& p, const std::string& stroke, double width, const std::string& attrs) {
  body_ += fmt::format(
      "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
      "stroke-linejoin=\"round\" {}/>\n",
      points_attr(p), stroke, width, attrs);
}

void Canvas::circle(double x, double y, double r, const std::string& fill, const std::string& attrs) {
  body_ += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\" {}/>\n", x, y, r, fill, attrs);
}

void Canvas::text(double x, double y, const std::string& s, double size, const std::string& anchor,
                  const std::string& attrs) {
  body_ += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"{}\" {}>{}</text>\n", x, y, size,
                       anchor, attrs, escape(s));
}

void Canvas::legend(double x, double y, const std::vector<std::string>& names,
                    const std::vector<std::string>& colours) {
  const double row = names.size() > 24 ? 11 : 16;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const double yy = y + row * static_cast<double>(i);
    rect(x, yy, 12, row - 3, colours[i], fmt::format("class=\"swatch\" data-name=\"{}\"", escape(names[i])));
    text(x + 17, yy + row - 5, names[i], row - 5);
  }
}

std::string Canvas::str() const {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" "
      "height=\"{1}\" viewBox=\"0 0 {0} {1}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n{2}</svg>\n",
      width_, height_, body_);
}

void Canvas::save(const std::string& path) const {
  std::ofstream out(path, std::ios::trunc);
  out << str();
  if (!out) throw ConfigError(fmt::format("cannot write plot '{}': check the --out directory", path));
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / target, mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push_back(v);
  return ticks;
}

Axes::Axes(double x, double y, double w, double h, double xmin, double xmax, double ymin, double ymax)
    : x_(x),
      y_(y),
      w_(w),
      h_(h),
      xmin_(xmin),
      xmax_(xmax > xmin ? xmax : xmin + 1),
      ymin_(ymin),
      ymax_(ymax > ymin ? ymax : ymin + 1) {}

double Axes::px(double v) const { return x_ + (v - xmin_) / (xmax_ - xmin_) * w_; }
double Axes::py(double v) const { return y_ + h_ - (v - ymin_) / (ymax_ - ymin_) * h_; }

void Axes::draw(Canvas& c, const std::string& title, const std::string& xlabel, const std::string& ylabel,
                bool x_ticks) const {
  const auto xt = nice_ticks(xmin_, xmax_), yt = nice_ticks(ymin_, ymax_);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double v : yt) {
    c.line(x_, py(v), x_ + w_, py(v), "#e6e6e6");
    c.text(x_ - 6, py(v) + 4, format_tick(v, ystep), 10, "end");
  }
  for (double v : x_ticks ? xt : std::vector<double>{}) {
    c.line(px(v), y_ + h_, px(v), y_ + h_ + 4, "#444444");
    c.text(px(v), y_ + h_ + 16, format_tick(v, xstep), 10, "middle");
  }
  c.rect(x_, y_, w_, h_, "none", "stroke=\"#444444\"");
  c.text(x_ + w_ / 2, y_ - 8, title, 13, "middle", "font-weight=\"bold\"");
  c.text(x_ + w_ / 2, y_ + h_ + 32, xlabel, 11, "middle");
  c.text(x_ - 42, y_ + h_ / 2, ylabel, 11, "middle",
         fmt::format("transform=\"rotate(-90 {:.1f} {:.1f})\"", x_ - 42, y_ + h_ / 2));
}

}  // namespace dma::replay::svg
