// dma_prepare's builders as library calls: the demo (determinism, sizes, held-out
// benchmark, correct answers), text directories, both import layouts, and their bad inputs.
#include "dma/prepare.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/domain_space.hpp"
#include "dma/error.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace dma {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning '" << needle << "'";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  }
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

/// A fortunes directory with `n` categories of distinct English-like text.
std::string fake_fortunes(const TempDir& dir, int n) {
  const auto root = dir.path() / "fortunes";
  for (int c = 0; c < n; ++c) {
    std::string text;
    for (int i = 0; i < 60; ++i)
      text += fmt::format("Saying {} of topic {}: a stitch in time saves {} more.\n\t\t-- Someone {}\n%\n", i, c,
                          i * 7 + c, c);
    write_text(root / fmt::format("topic{}", c), text);
  }
  return root.string();
}

DemoOptions small_demo(const TempDir& dir, const std::string& out, int categories = 3) {
  DemoOptions o;
  o.out = dir.file(out);
  o.fortunes_dir = fake_fortunes(dir, categories);
  o.categories.clear();
  for (int c = 0; c < categories; ++c) o.categories.push_back(fmt::format("topic{}", c));
  o.seq_len = 48;
  o.source_train_rows = 40;
  o.target_train_rows = 24;
  o.target_eval_rows = 8;
  o.bench_problems = 40;
  return o;
}

/// Text of a domain's train split (rows overlap by one token: drop each row's last).
std::string train_text(const DomainSpace& s, int d) {
  const auto n = s.domains()[static_cast<size_t>(d)].train_rows;
  std::vector<std::int64_t> rows(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  std::vector<std::int32_t> tokens(rows.size() * static_cast<size_t>(s.row_width()));
  s.read_train_rows(d, rows, tokens);
  std::string text;
  for (std::int64_t i = 0; i < n; ++i)
    text += bytes_tokenizer::decode(
        std::span(tokens).subspan(static_cast<size_t>(i * s.row_width()), static_cast<size_t>(s.seq_len())));
  return text;
}

TEST(PrepareDemo, SameSeedGivesAByteIdenticalFileAndAnotherSeedDoesNot) {
  TempDir dir;
  auto o = small_demo(dir, "a.space");
  const auto summary = prepare_demo(o);
  o.out = dir.file("b.space");
  prepare_demo(o);
  EXPECT_EQ(test::slurp(dir.file("a.space")), test::slurp(dir.file("b.space")));
  o.out = dir.file("c.space");
  o.seed = 2;
  prepare_demo(o);
  EXPECT_NE(test::slurp(dir.file("a.space")), test::slurp(dir.file("c.space")));
  EXPECT_NE(summary.line().find("3 source, 4 target"), std::string::npos) << summary.line();
  EXPECT_EQ(summary.file_bytes, fs::file_size(dir.file("a.space")));
}

TEST(PrepareDemo, HasTheAskedSizesFieldsAndWorkedSolutions) {
  TempDir dir;
  const auto o = small_demo(dir, "d.space");
  prepare_demo(o);
  const auto s = DomainSpace::open(o.out);
  EXPECT_EQ(s.vocab_size(), 256);
  EXPECT_EQ(s.seq_len(), 48);
  EXPECT_EQ(s.tokenizer(), "bytes");
  ASSERT_EQ(s.num_domains(), 7);
  EXPECT_EQ(s.domains_of(Field::kSource), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(s.domains_of(Field::kTarget), (std::vector<int>{3, 4, 5, 6}));
  for (int d : s.domains_of(Field::kSource)) EXPECT_EQ(s.domains()[static_cast<size_t>(d)].train_rows, 40);
  for (int d : s.domains_of(Field::kTarget)) {
    EXPECT_EQ(s.domains()[static_cast<size_t>(d)].train_rows, 24);
    EXPECT_EQ(s.domains()[static_cast<size_t>(d)].eval_rows, 8);
  }
  EXPECT_NE(train_text(s, 0).find("of topic 0:"), std::string::npos);
  EXPECT_EQ(train_text(s, 0).find("of topic 1:"), std::string::npos);
  EXPECT_NE(train_text(s, 3).find("carry"), std::string::npos);       // arithmetic, carries written out
  EXPECT_NE(train_text(s, 4).find("both sides"), std::string::npos);  // equations
  EXPECT_NE(train_text(s, 6).find("Step 2:"), std::string::npos);     // multi-step word problems
  EXPECT_EQ(s.math_benchmark().size(), 40u);
  auto short_rows = o;
  short_rows.out = dir.file("short.space");
  short_rows.seq_len = 24;
  expect_error([&] { prepare_demo(short_rows); }, "too short for the math benchmark");
  short_rows.bench_problems = 0;
  EXPECT_NO_THROW(prepare_demo(short_rows));
}

TEST(PrepareDemo, BenchmarkIsHeldOutAndItsAnswersAreRight) {
  TempDir dir;
  auto o = small_demo(dir, "d.space");
  o.target_train_rows = 200;
  o.bench_problems = 200;
  prepare_demo(o);
  const auto s = DomainSpace::open(o.out);
  std::string all = "\n";
  for (int d : s.domains_of(Field::kTarget)) all += train_text(s, d);
  const std::regex add(R"(Q: (\d+) \+ (\d+) = \?\nA: )"), mul(R"(Q: (\d+) \* (\d+) = \?\nA: )"),
      eq(R"(Q: (\d+)x \+ (\d+) = (-?\d+), x = \?\nA: )");
  int checked = 0;
  for (const auto& p : s.math_benchmark()) {
    EXPECT_EQ(all.find("\n" + p.prompt), std::string::npos) << "benchmark prompt in training text: " << p.prompt;
    EXPECT_LE(p.prompt.size() + p.answer.size(), 40u) << p.prompt;  // fits any seq_len >= 40
    std::smatch m;
    if (std::regex_match(p.prompt, m, add)) {
      EXPECT_EQ(p.answer, std::to_string(std::stol(m[1]) + std::stol(m[2])));
      ++checked;
    } else if (std::regex_match(p.prompt, m, mul)) {
      EXPECT_EQ(p.answer, std::to_string(std::stol(m[1]) * std::stol(m[2])));
      ++checked;
    } else if (std::regex_match(p.prompt, m, eq)) {
      EXPECT_EQ(std::stol(m[1]) * std::stol(p.answer) + std::stol(m[2]), std::stol(m[3])) << p.prompt;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(PrepareDemo, MissingFortunesNamesThePackage) {
  TempDir dir;
  auto o = small_demo(dir, "d.space");
  fs::create_directories(dir.path() / "empty");
  o.fortunes_dir = (dir.path() / "empty").string();
  expect_error([&] { prepare_demo(o); }, "apt-get install fortunes fortunes-min");
  o.fortunes_dir = (dir.path() / "nowhere").string();
  expect_error([&] { prepare_demo(o); }, "apt-get install fortunes fortunes-min");
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(PrepareDemo, RefusesAnExistingOutputUnlessForced) {
  TempDir dir;
  auto o = small_demo(dir, "d.space");
  prepare_demo(o);
  expect_error([&] { prepare_demo(o); }, "pass --force");
  o.force = true;
  o.seed = 5;
  EXPECT_NO_THROW(prepare_demo(o));
}

TEST(PrepareText, BuildsOneDomainPerDirectory) {
  TempDir dir;
  std::string a, b;
  for (int i = 0; i < 200; ++i) a += fmt::format("alpha line {}\n", i);
  for (int i = 0; i < 100; ++i) b += fmt::format("beta {}\n", i);
  write_text(dir.path() / "a" / "1.txt", a);
  write_text(dir.path() / "a" / "2.txt", a);
  write_text(dir.path() / "b" / "x.txt", b);
  write_text(dir.path() / "manifest.txt", "# domains\nalpha = a:source\n");
  TextOptions o;
  o.out = dir.file("t.space");
  o.manifest = dir.file("manifest.txt");
  o.domains = {parse_domain_spec(fmt::format("beta={}:target", (dir.path() / "b").string()))};
  o.seq_len = 16;
  const auto summary = prepare_text(o);
  const auto s = DomainSpace::open(o.out);
  EXPECT_EQ(s.domain_names(), (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ(s.fields(), (std::vector<Field>{Field::kSource, Field::kTarget}));
  const auto expected_rows = static_cast<std::int64_t>(2 * a.size() + 2 - 1) / 16;
  EXPECT_EQ(s.domains()[0].train_rows + s.domains()[0].eval_rows, expected_rows);
  EXPECT_NEAR(static_cast<double>(s.domains()[0].eval_rows) / static_cast<double>(expected_rows), 0.1, 0.05);
  EXPECT_NE(train_text(s, 0).find("alpha line 1"), std::string::npos);
  EXPECT_EQ(summary.domains.size(), 2u);
}

TEST(PrepareText, RefusesBadDomainLists) {
  TempDir dir;
  write_text(dir.path() / "a" / "1.txt", std::string(500, 'x'));
  write_text(dir.path() / "tiny" / "1.txt", "short");
  fs::create_directories(dir.path() / "empty");
  write_text(dir.path() / "hidden" / ".only", std::string(500, 'y'));
  TextOptions o;
  o.out = dir.file("t.space");
  o.seq_len = 16;
  auto with = [&](std::vector<std::string> specs) {
    o.domains.clear();
    for (const auto& s : specs) o.domains.push_back(parse_domain_spec(s));
    return [&] { prepare_text(o); };
  };
  const auto p = [&](const char* d) { return (dir.path() / d).string(); };
  expect_error(with({"e=" + p("empty") + ":source"}), "is empty");
  expect_error(with({"h=" + p("hidden") + ":source"}), "is empty");
  expect_error(with({"m=" + p("missing") + ":source"}), "does not exist");
  expect_error(with({"a=" + p("a") + ":source", "a=" + p("a") + ":target"}), "duplicate domain name 'a'");
  expect_error(with({"t=" + p("tiny") + ":source"}), "only 5 bytes");
  expect_error(with({}), "no domains given");
  expect_error([] { parse_domain_spec("noequals"); }, "name=dir:field");
  expect_error([] { parse_domain_spec("a=dir:web"); }, "unknown field");
  expect_error([&] { read_manifest(p("nope.txt")); }, "cannot open manifest");
  write_text(dir.path() / "bad.txt", "ok=a:source\nbroken\n");
  expect_error([&] { read_manifest(p("bad.txt")); }, "line 2");
  EXPECT_FALSE(fs::exists(o.out));
}

template <class T>
void write_bin(const fs::path& path, const std::vector<T>& tokens) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * sizeof(T)));
}

/// Every row of every split of domain d is a window of the stream t_i = base + i.
void expect_windows(const DomainSpace& s, int d, std::int32_t base) {
  const auto& info = s.domains()[static_cast<size_t>(d)];
  std::vector<std::int64_t> rows(static_cast<size_t>(info.train_rows));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(i);
  std::vector<std::int32_t> t(rows.size() * static_cast<size_t>(s.row_width()));
  s.read_train_rows(d, rows, t);
  std::vector<std::int32_t> e(static_cast<size_t>(info.eval_rows * s.row_width()));
  s.read_eval_rows(d, 0, info.eval_rows, e);
  std::set<std::int32_t> starts;
  for (const auto* v : {&t, &e})
    for (size_t r = 0; r < v->size() / static_cast<size_t>(s.row_width()); ++r) {
      const auto* row = v->data() + r * static_cast<size_t>(s.row_width());
      EXPECT_EQ((row[0] - base) % s.seq_len(), 0);
      for (int c = 1; c < s.row_width(); ++c) ASSERT_EQ(row[c], row[0] + c);
      starts.insert(row[0]);
    }
  EXPECT_EQ(static_cast<std::int64_t>(starts.size()), info.train_rows + info.eval_rows);  // no row twice
}

TEST(PrepareImport, BinShardsBecomeWindowsOfTheStream) {
  TempDir dir;
  for (auto [format, vocab] : {std::pair{ImportFormat::kBin16, 60000}, std::pair{ImportFormat::kBin32, 100000}}) {
    const auto in = dir.path() / fmt::format("in{}", vocab);
    std::vector<std::uint16_t> s16;
    std::vector<std::uint32_t> s32;
    for (int i = 0; i < 2000; ++i) s16.push_back(static_cast<std::uint16_t>(1000 + i));
    for (int i = 0; i < 3001; ++i) s32.push_back(static_cast<std::uint32_t>(70000 + i));
    if (format == ImportFormat::kBin16) {
      write_bin(in / "web" / "00.bin", std::vector<std::uint16_t>(s16.begin(), s16.begin() + 999));
      write_bin(in / "web" / "01.bin", std::vector<std::uint16_t>(s16.begin() + 999, s16.end()));
      write_bin(in / "code" / "00.bin", s16);
    } else {
      write_bin(in / "web" / "00.bin", s32);
      write_bin(in / "code" / "00.bin", s32);
    }
    ImportOptions o;
    o.out = dir.file(fmt::format("i{}.space", vocab));
    o.format = format;
    o.input = in.string();
    o.targets = {"code"};
    o.seq_len = 10;
    o.vocab_size = vocab;
    prepare_import(o);
    const auto s = DomainSpace::open(o.out);
    EXPECT_EQ(s.domain_names(), (std::vector<std::string>{"code", "web"}));
    EXPECT_EQ(s.fields(), (std::vector<Field>{Field::kTarget, Field::kSource}));
    const std::int64_t tokens = format == ImportFormat::kBin16 ? 2000 : 3001;
    EXPECT_EQ(s.domains()[1].train_rows + s.domains()[1].eval_rows, (tokens - 1) / 10);
    EXPECT_GT(s.domains()[1].eval_rows, 0);
    expect_windows(s, 1, format == ImportFormat::kBin16 ? 1000 : 70000);
  }
}

TEST(PrepareImport, EvalSplitIsCappedAndAnyPrefixSpansTheDomain) {
  TempDir dir;
  std::vector<std::uint16_t> stream(20000);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::uint16_t>(i);
  write_bin(dir.path() / "in" / "web" / "a.bin", stream);
  ImportOptions o;
  o.out = dir.file("e.space");
  o.input = (dir.path() / "in").string();
  o.seq_len = 10;
  o.vocab_size = 65536;
  o.eval_fraction = 0.5;
  o.max_eval_rows = 100;
  prepare_import(o);
  const auto s = DomainSpace::open(o.out);
  const auto& info = s.domains()[0];
  EXPECT_LE(info.eval_rows, 100);
  EXPECT_GE(info.eval_rows, 80);
  EXPECT_EQ(info.train_rows + info.eval_rows, 1999);
  expect_windows(s, 0, 0);
  std::vector<std::int32_t> first(10 * 11);
  s.read_eval_rows(0, 0, 10, first);
  std::int32_t lo = 20000, hi = 0;
  for (size_t r = 0; r < 10; ++r) lo = std::min(lo, first[r * 11]), hi = std::max(hi, first[r * 11]);
  EXPECT_GT(hi - lo, 20000 * 3 / 10) << "the first eval rows cluster in one part of the domain";
}

/// A shard file holding dataset `train` of the given shape and type, values v(r, c).
void write_shard(const fs::path& path, std::vector<hsize_t> dims, hid_t type,
                 const std::function<std::int64_t(hsize_t, hsize_t)>& v, const char* name = "train") {
  fs::create_directories(path.parent_path());
  h5::File f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  h5::Dataspace sp(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Dataset ds(H5Dcreate2(f.get(), name, type, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const hsize_t cols = dims.size() > 1 ? dims[1] : 1;
  std::vector<std::int64_t> buf;
  for (hsize_t r = 0; r < dims[0]; ++r)
    for (hsize_t c = 0; c < cols; ++c) buf.push_back(v(r, c));
  H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
}

TEST(PrepareImport, Hdf5ShardsOfThePaperLayout) {
  TempDir dir;
  const auto in = dir.path() / "shards";
  auto val = [](int shard) {
    return [shard](hsize_t r, hsize_t c) { return static_cast<std::int64_t>(shard * 1000 + r * 9 + c); };
  };
  write_shard(in / "math" / "part-0.hdf5", {30, 9}, H5T_STD_I64LE, val(0));
  write_shard(in / "math" / "part-1.hdf5", {20, 9}, H5T_STD_U16LE, val(1));
  write_shard(in / "web" / "part-0.hdf5", {40, 9}, H5T_STD_I32LE, val(2));
  ImportOptions o;
  o.out = dir.file("h.space");
  o.format = ImportFormat::kHdf5Shards;
  o.input = in.string();
  o.targets = {"math"};
  o.seq_len = 8;
  o.vocab_size = 5000;
  o.eval_fraction = 0.2;
  const auto summary = prepare_import(o);
  const auto s = DomainSpace::open(o.out);
  EXPECT_EQ(s.domain_names(), (std::vector<std::string>{"math", "web"}));
  EXPECT_EQ(s.domains()[0].field, Field::kTarget);
  EXPECT_EQ(s.domains()[0].train_rows + s.domains()[0].eval_rows, 50);
  EXPECT_EQ(s.domains()[1].train_rows + s.domains()[1].eval_rows, 40);
  EXPECT_NEAR(static_cast<double>(s.domains()[1].eval_rows), 8, 4);
  // Every imported row is one shard row, unchanged.
  std::vector<std::int64_t> rows(static_cast<size_t>(s.domains()[0].train_rows));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(i);
  std::vector<std::int32_t> t(rows.size() * 9);
  s.read_train_rows(0, rows, t);
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ((t[r * 9] % 1000) % 9, 0);
    for (size_t c = 1; c < 9; ++c) EXPECT_EQ(t[r * 9 + c], t[r * 9] + static_cast<std::int32_t>(c));
  }
  EXPECT_EQ(summary.domains[1].name, "web");
}

TEST(PrepareImport, RefusesBadShards) {
  TempDir dir;
  auto ok = [](hsize_t r, hsize_t c) { return static_cast<std::int64_t>(r + c); };
  ImportOptions o;
  o.out = dir.file("x.space");
  o.format = ImportFormat::kHdf5Shards;
  o.seq_len = 8;
  o.vocab_size = 1000;
  auto import_from = [&](const std::string& sub) {
    o.input = (dir.path() / sub).string();
    return [&] { prepare_import(o); };
  };
  write_shard(dir.path() / "rank" / "d" / "a.hdf5", {90}, H5T_STD_I32LE, ok);
  expect_error(import_from("rank"), "has rank 1");
  write_shard(dir.path() / "dtype" / "d" / "a.hdf5", {10, 9}, H5T_IEEE_F32LE, ok);
  expect_error(import_from("dtype"), "non-integer dtype");
  write_shard(dir.path() / "width" / "d" / "a.hdf5", {10, 12}, H5T_STD_I32LE, ok);
  expect_error(import_from("width"), "rows of 12 tokens but --seq-len 8 needs 9");
  write_shard(dir.path() / "vocab" / "d" / "a.hdf5", {10, 9}, H5T_STD_I32LE,
              [](hsize_t r, hsize_t) { return r == 7 ? 1000 : 1; });
  expect_error(import_from("vocab"), "token id 1000");
  write_shard(dir.path() / "name" / "d" / "a.hdf5", {10, 9}, H5T_STD_I32LE, ok, "tokens");
  expect_error(import_from("name"), "no dataset 'train'");
  write_text(dir.path() / "junk" / "d" / "a.hdf5", "not hdf5");
  expect_error(import_from("junk"), "not an HDF5 file");
  fs::create_directories(dir.path() / "none" / "d");
  expect_error(import_from("none"), "is empty");
  fs::create_directories(dir.path() / "nodomains");
  expect_error(import_from("nodomains"), "no domain subdirectories");
  write_shard(dir.path() / "good" / "d" / "a.hdf5", {10, 9}, H5T_STD_I32LE, ok);
  o.targets = {"e"};
  expect_error(import_from("good"), "--target 'e'");
  o.targets.clear();
  o.format = ImportFormat::kBin16;
  write_text(dir.path() / "odd" / "d" / "a.bin", "abc");
  expect_error(import_from("odd"), "not a whole number of 2-byte tokens");
  write_bin(dir.path() / "big" / "d" / "a.bin", std::vector<std::uint16_t>(100, 2000));
  expect_error(import_from("big"), "token id 2000");
  o.seq_len = 0;
  expect_error(import_from("big"), "--seq-len is required");
  expect_error([] { parse_import_format("npy"); }, "bin16, bin32, hdf5-shards or megatron");
  EXPECT_FALSE(fs::exists(o.out));
}

}  // namespace
}  // namespace dma
