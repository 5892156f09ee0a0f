// Domain-space writer and reader: round trips on real HDF5 files, stored dtypes, order,
// and every bad input the writer or the reader must refuse with a one-line DataError.
#include "dma/domain_space.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"
#include "support/temp_dir.hpp"

namespace dma {
namespace {

using test::TempDir;

/// Row-major [rows, width] tokens with token (r, c) = f(r, c).
std::vector<std::int32_t> rows_of(int rows, int width, const std::function<int(int, int)>& f) {
  std::vector<std::int32_t> out;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < width; ++c) out.push_back(f(r, c));
  return out;
}

/// Expects `fn` to throw E with a one-line message containing `needle`.
template <class E = DataError>
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning '" << needle << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  }
}

/// Writes a 3-domain space (seq_len 7) whose tokens encode (domain, row, column).
void write_small(const std::string& path, int vocab) {
  DomainSpaceWriter w(path, vocab, 7, "test", false);
  const auto enc = [vocab](int d, int r, int c) { return (d * 1000 + r * 8 + c) % vocab; };
  w.add_domain("zeta", Field::kSource, rows_of(10, 8, [&](int r, int c) { return enc(0, r, c); }),
               rows_of(3, 8, [&](int r, int c) { return enc(0, 100 + r, c); }), "made by a test");
  w.begin_domain("alpha", Field::kTarget, "streamed");
  for (int part = 0; part < 4; ++part)
    w.append_train(rows_of(5, 8, [&](int r, int c) { return enc(1, part * 5 + r, c); }));
  w.append_eval(rows_of(2, 8, [&](int r, int c) { return enc(1, 100 + r, c); }));
  w.end_domain();
  w.add_domain("mid", Field::kSource, rows_of(30, 8, [&](int r, int c) { return enc(2, r, c); }),
               rows_of(4, 8, [&](int r, int c) { return enc(2, 100 + r, c); }), "");
  w.set_math_benchmark({{"Q: 2 + 2 = ?\nA: ", "4"}, {"Q: 10 - 3 = ?\nA: ", "7"}});
  w.close();
}

TEST(DomainSpace, RoundTripKeepsOrderFieldsRowsAndBenchmark) {
  TempDir dir;
  const auto path = dir.file("s.h5");
  write_small(path, 65536);
  auto s = DomainSpace::open(path);
  EXPECT_EQ(s.vocab_size(), 65536);
  EXPECT_EQ(s.seq_len(), 7);
  EXPECT_EQ(s.row_width(), 8);
  EXPECT_EQ(s.tokenizer(), "test");
  EXPECT_EQ(s.domain_names(), (std::vector<std::string>{"zeta", "alpha", "mid"}));
  EXPECT_EQ(s.fields(), (std::vector<Field>{Field::kSource, Field::kTarget, Field::kSource}));
  EXPECT_EQ(s.domains()[1].train_rows, 20);
  EXPECT_EQ(s.domains()[2].eval_rows, 4);
  EXPECT_EQ(s.domains()[0].provenance, "made by a test");
  EXPECT_EQ(s.domains_of(Field::kSource), (std::vector<int>{0, 2}));
  const auto shares = s.token_shares();
  EXPECT_DOUBLE_EQ(shares[0], 10.0 / 60.0);
  EXPECT_DOUBLE_EQ(shares[2], 30.0 / 60.0);
  ASSERT_EQ(s.math_benchmark().size(), 2u);
  EXPECT_EQ(s.math_benchmark()[1].prompt, "Q: 10 - 3 = ?\nA: ");
  EXPECT_EQ(s.math_benchmark()[1].answer, "7");

  // Rows come back in the order asked, duplicates included; streamed pieces line up.
  const std::vector<std::int64_t> rows = {17, 3, 17, 4, 0};
  std::vector<std::int32_t> out(rows.size() * 8);
  s.read_train_rows(1, rows, out);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int c = 0; c < 8; ++c) EXPECT_EQ(out[i * 8 + static_cast<size_t>(c)], 1000 + rows[i] * 8 + c);
  std::vector<std::int32_t> ev(2 * 8);
  s.read_eval_rows(2, 2, 2, ev);
  EXPECT_EQ(ev[0], 2000 + 102 * 8);
  EXPECT_EQ(ev[15], 2000 + 103 * 8 + 7);
}

TEST(DomainSpace, StoresTheSmallestTokenTypeAndReadsInt32) {
  TempDir dir;
  for (auto [vocab, bytes] : {std::pair{256, 1}, std::pair{65536, 2}, std::pair{70000, 4}}) {
    const auto path = dir.file(fmt::format("v{}.h5", vocab));
    write_small(path, vocab);
    {
      h5::File f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
      h5::Dataset ds(H5Dopen2(f.get(), "/domains/mid/train", H5P_DEFAULT));
      h5::Datatype t(H5Dget_type(ds.get()));
      EXPECT_EQ(H5Tget_size(t.get()), static_cast<size_t>(bytes)) << "vocab " << vocab;
    }
    auto s = DomainSpace::open(path);
    std::vector<std::int64_t> rows = {29};
    std::vector<std::int32_t> out(8);
    s.read_train_rows(2, rows, out);
    EXPECT_EQ(out[7], (2000 + 29 * 8 + 7) % vocab);
  }
}

TEST(DomainSpace, SameContentGivesByteIdenticalFiles) {
  TempDir dir;
  write_small(dir.file("a.h5"), 256);
  write_small(dir.file("b.h5"), 256);
  auto bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(dir.file("a.h5")), bytes(dir.file("b.h5")));
  EXPECT_EQ(DomainSpace::open(dir.file("a.h5")).fingerprint(), DomainSpace::open(dir.file("b.h5")).fingerprint());
}

TEST(DomainSpace, FingerprintChangesWithTheDomains) {
  TempDir dir;
  write_small(dir.file("a.h5"), 256);
  {
    DomainSpaceWriter w(dir.file("b.h5"), 256, 7, "test", false);
    w.add_domain("zeta", Field::kSource, rows_of(10, 8, [](int, int) { return 1; }),
                 rows_of(1, 8, [](int, int) { return 1; }), "");
    w.close();
  }
  EXPECT_NE(DomainSpace::open(dir.file("a.h5")).fingerprint(), DomainSpace::open(dir.file("b.h5")).fingerprint());
}

TEST(DomainSpaceWriter, RefusesAnExistingOutputUnlessForced) {
  TempDir dir;
  const auto path = dir.file("s.h5");
  write_small(path, 256);
  expect_error([&] { DomainSpaceWriter w(path, 256, 7, "bytes", false); }, "--force");
  DomainSpaceWriter w(path, 256, 3, "bytes", true);
  w.add_domain("only", Field::kSource, rows_of(2, 4, [](int, int) { return 5; }),
               rows_of(1, 4, [](int, int) { return 6; }), "");
  w.close();
  EXPECT_EQ(DomainSpace::open(path).num_domains(), 1);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST(DomainSpaceWriter, RefusesBadDomains) {
  TempDir dir;
  DomainSpaceWriter w(dir.file("s.h5"), 256, 3, "bytes", false);
  const auto ok = rows_of(2, 4, [](int, int) { return 1; });
  w.add_domain("a", Field::kSource, ok, ok, "");
  expect_error([&] { w.add_domain("a", Field::kTarget, ok, ok, ""); }, "duplicate domain name 'a'");
  expect_error([&] { w.add_domain("b", Field::kSource, {}, ok, ""); }, "empty train split");
  expect_error([&] { w.add_domain("b", Field::kSource, ok, {}, ""); }, "empty eval split");
  expect_error([&] { w.add_domain("b/c", Field::kSource, ok, ok, ""); }, "not valid");
  const auto big = rows_of(3, 4, [](int r, int c) { return r == 2 && c == 1 ? 256 : 0; });
  expect_error([&] { w.add_domain("c", Field::kSource, big, ok, ""); }, "row 2 holds token id 256");
  const auto neg = rows_of(1, 4, [](int, int) { return -1; });
  expect_error([&] { w.add_domain("d", Field::kSource, ok, neg, ""); }, "token id -1");
  const std::vector<std::int32_t> ragged(7, 1);
  expect_error([&] { w.add_domain("e", Field::kSource, ragged, ok, ""); }, "whole number of rows");
}

TEST(DomainSpaceWriter, StreamedDomainWithAnEmptySplitIsRefused) {
  TempDir dir;
  DomainSpaceWriter w(dir.file("s.h5"), 256, 3, "bytes", false);
  w.begin_domain("a", Field::kSource, "");
  w.append_train(rows_of(2, 4, [](int, int) { return 1; }));
  expect_error([&] { w.end_domain(); }, "empty eval split");
}

TEST(DomainSpaceWriter, AnAbandonedWriterLeavesNoFile) {
  TempDir dir;
  const auto path = dir.file("s.h5");
  {
    DomainSpaceWriter w(path, 256, 3, "bytes", false);
    w.add_domain("a", Field::kSource, rows_of(2, 4, [](int, int) { return 1; }),
                 rows_of(2, 4, [](int, int) { return 1; }), "");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST(DomainSpace, OpenRefusesMissingAndForeignFiles) {
  TempDir dir;
  expect_error([&] { DomainSpace::open(dir.file("nope.h5")); }, "does not exist");
  { std::ofstream(dir.file("text.h5")) << "hello"; }
  expect_error([&] { DomainSpace::open(dir.file("text.h5")); }, "not an HDF5 file");
  { h5::File f(H5Fcreate(dir.file("empty.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)); }
  expect_error([&] { DomainSpace::open(dir.file("empty.h5")); }, "no root attribute 'vocab_size'");
}

/// A foreign file with the §5 root attributes and one domain whose train dataset is `dims`.
void write_foreign(const std::string& path, std::vector<hsize_t> dims, hid_t type, const std::string& field) {
  h5::File f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  h5::write_attr_int(f.get(), "vocab_size", 256);
  h5::write_attr_int(f.get(), "seq_len", 3);
  h5::write_attr_string(f.get(), "tokenizer", "bytes");
  h5::Group d(H5Gcreate2(f.get(), "/domains", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  h5::Group g(H5Gcreate2(d.get(), "x", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  h5::write_attr_string(g.get(), "field", field);
  for (const char* split : {"train", "eval"}) {
    h5::Dataspace sp(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
    h5::Dataset ds(H5Dcreate2(g.get(), split, type, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  }
}

TEST(DomainSpace, OpenRefusesBadLayouts) {
  TempDir dir;
  write_foreign(dir.file("ok.h5"), {5, 4}, H5T_STD_I64LE, "source");
  EXPECT_EQ(DomainSpace::open(dir.file("ok.h5")).domains()[0].train_rows, 5);  // foreign but valid
  write_foreign(dir.file("rank.h5"), {20}, H5T_STD_U8LE, "source");
  expect_error([&] { DomainSpace::open(dir.file("rank.h5")); }, "rank 1");
  write_foreign(dir.file("width.h5"), {5, 9}, H5T_STD_U8LE, "source");
  expect_error([&] { DomainSpace::open(dir.file("width.h5")); }, "hold 9 tokens");
  write_foreign(dir.file("float.h5"), {5, 4}, H5T_IEEE_F32LE, "source");
  expect_error([&] { DomainSpace::open(dir.file("float.h5")); }, "not an integer dataset");
  write_foreign(dir.file("field.h5"), {5, 4}, H5T_STD_U8LE, "web");
  expect_error([&] { DomainSpace::open(dir.file("field.h5")); }, "field 'web'");
  write_foreign(dir.file("empty.h5"), {0, 4}, H5T_STD_U8LE, "source");
  expect_error([&] { DomainSpace::open(dir.file("empty.h5")); }, "empty train split");
}

TEST(DomainSpace, RowReadsCheckTheirArguments) {
  TempDir dir;
  write_small(dir.file("s.h5"), 256);
  auto s = DomainSpace::open(dir.file("s.h5"));
  std::vector<std::int32_t> out(8);
  std::vector<std::int64_t> past = {10};
  expect_error([&] { s.read_train_rows(0, past, out); }, "train row 10 is out of range");
  expect_error([&] { s.read_train_rows(3, past, out); }, "domain index 3");
  expect_error([&] { s.read_eval_rows(0, 2, 2, std::span(out.data(), 8)); }, "out of range");
}

TEST(BytesTokenizer, RoundTripsEveryByte) {
  std::string text = "Hello, world.\n\tcaf\xc3\xa9 \x01\xff";
  for (int b = 0; b < 256; ++b) text.push_back(static_cast<char>(b));
  const auto tokens = bytes_tokenizer::encode(text);
  ASSERT_EQ(tokens.size(), text.size());
  for (auto t : tokens) EXPECT_TRUE(t >= 0 && t < bytes_tokenizer::kVocab);
  EXPECT_EQ(tokens[0], 'H');
  EXPECT_EQ(tokens[text.size() - 1], 255);
  EXPECT_EQ(bytes_tokenizer::decode(tokens), text);
  const std::vector<std::int32_t> bad = {65, 300};
  expect_error([&] { bytes_tokenizer::decode(bad); }, "token id 300");
}

}  // namespace
}  // namespace dma
