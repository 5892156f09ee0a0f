// dma_prepare on real corpus formats, each checked against an independent consumer:
// SentencePiece ids against spm_encode, JSONL (plain and zstd) against the documents
// written, Megatron .bin/.idx against a Python writer of Megatron's layout; every bad
// input ends with one line, exit code 1 and no output file.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dma/domain_space.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace dma {
namespace {

namespace fs = std::filesystem;
using test::expect_one_line_error;
using test::run_command;
using test::run_prepare;
using test::TempDir;
using Rows = std::vector<std::vector<std::int32_t>>;

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

/// Every row of domain d, train and eval, sorted (the eval split is shuffled).
Rows stored_rows(const DomainSpace& s, int d) {
  const auto& info = s.domains()[static_cast<size_t>(d)];
  const auto width = static_cast<size_t>(s.row_width());
  std::vector<std::int64_t> ids(static_cast<size_t>(info.train_rows));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i);
  std::vector<std::int32_t> train(ids.size() * width), eval(static_cast<size_t>(info.eval_rows) * width);
  s.read_train_rows(d, ids, train);
  s.read_eval_rows(d, 0, info.eval_rows, eval);
  Rows rows;
  for (const auto* split : {&train, &eval})
    for (size_t r = 0; r < split->size() / width; ++r)
      rows.emplace_back(split->begin() + static_cast<std::ptrdiff_t>(r * width),
                        split->begin() + static_cast<std::ptrdiff_t>((r + 1) * width));
  std::sort(rows.begin(), rows.end());
  return rows;
}

/// Windows of seq_len + 1 tokens at stride seq_len over `stream`, sorted.
Rows windows(const std::vector<std::int32_t>& stream, int seq_len) {
  Rows rows;
  for (size_t at = 0; at + static_cast<size_t>(seq_len) < stream.size(); at += static_cast<size_t>(seq_len))
    rows.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(at),
                      stream.begin() + static_cast<std::ptrdiff_t>(at) + seq_len + 1);
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::vector<std::int32_t> bytes_of(const std::string& text) {
  std::vector<std::int32_t> out;
  for (unsigned char c : text) out.push_back(c);
  return out;
}

/// Deterministic English-like lines: words drawn from a fixed list by a simple LCG.
std::string sentences(int lines, std::uint32_t seed) {
  static const char* kWords[] = {"the",  "cat",   "sat",   "on",   "a",     "mat",   "proof", "of",     "sum",
                                 "two",  "plus",  "three", "is",   "five",  "river", "stone", "quick",  "brown",
                                 "fox",  "jumps", "over",  "lazy", "dog",   "angle", "prime", "number", "every",
                                 "even", "odd",   "and",   "not",  "train", "model", "data",  "mixing", "agent"};
  std::string out;
  for (int l = 0; l < lines; ++l) {
    const int n = 4 + static_cast<int>((seed >> 8) % 9);
    for (int w = 0; w < n; ++w) {
      seed = seed * 1664525u + 1013904223u;
      out += kWords[(seed >> 10) % std::size(kWords)];
      out += w + 1 < n ? " " : ".\n";
    }
  }
  return out;
}

std::string jsonl(const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& t : texts) out += nlohmann::json{{"id", out.size()}, {"text", t}}.dump() + "\n";
  return out;
}

/// Compresses `text` with the zstd program into `path`.
void write_zstd(const TempDir& dir, const fs::path& path, const std::string& text) {
  write_file(dir.path() / "plain", text);
  fs::create_directories(path.parent_path());
  ASSERT_EQ(run_command(dir, fmt::format("zstd -q -f -o '{}' '{}'", path.string(), dir.file("plain"))).rc, 0);
}

/// A SentencePiece model of 200 pieces trained once by Debian's spm_train on generated text.
class SentencePieceModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_file(dir_->path() / "corpus.txt", sentences(3000, 7));
    const auto r =
        run_command(*dir_, fmt::format("spm_train --input='{}' --model_prefix='{}' --vocab_size=200 --model_type=bpe",
                                       dir_->file("corpus.txt"), dir_->file("tok")));
    ASSERT_EQ(r.rc, 0) << "spm_train (Debian package sentencepiece) failed: " << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string model() { return dir_->file("tok.model"); }
  /// Ids spm_encode gives for each line of `file`, concatenated.
  static std::vector<std::int32_t> spm_encode(const TempDir& dir, const fs::path& file) {
    const auto r =
        run_command(dir, fmt::format("spm_encode --model='{}' --output_format=id < '{}'", model(), file.string()));
    EXPECT_EQ(r.rc, 0) << r.err;
    std::vector<std::int32_t> ids;
    std::istringstream in(r.out);
    for (std::int32_t id; in >> id;) ids.push_back(id);
    return ids;
  }
  /// The id of the piece "</s>" from spm_export_vocab (one piece per line, in id order).
  static std::int32_t eos_id(const TempDir& dir) {
    const auto r = run_command(dir, fmt::format("spm_export_vocab --model='{}'", model()));
    std::istringstream in(r.out);
    std::int32_t id = 0;
    for (std::string line; std::getline(in, line); ++id)
      if (line.rfind("</s>\t", 0) == 0) return id;
    ADD_FAILURE() << "no </s> in the vocabulary";
    return -1;
  }

  static TempDir* dir_;
};
TempDir* SentencePieceModel::dir_ = nullptr;

TEST_F(SentencePieceModel, IdsAreSpmEncodesAndTheVocabIsTheModels) {
  TempDir dir;
  const auto a1 = dir.path() / "web" / "1.txt", a2 = dir.path() / "web" / "2.txt";
  write_file(a1, sentences(60, 11));
  write_file(a2, "a cat and a dog.\n\nunseen words: zebra quartz!\n" + sentences(40, 12));
  const std::vector<std::string> docs = {sentences(30, 13), "one line without newline", sentences(25, 14)};
  write_zstd(dir, dir.path() / "math" / "d.jsonl.zst", jsonl(docs));
  const auto out = dir.file("s.space");
  const auto r =
      run_prepare(dir, fmt::format("text --out '{}' --domain 'web={}:source' --domain 'math={}:target' "
                                   "--tokenizer '{}' --seq-len 16",
                                   out, (dir.path() / "web").string(), (dir.path() / "math").string(), model()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("vocab 200 (sentencepiece"), std::string::npos) << r.out;

  const auto s = DomainSpace::open(out);
  EXPECT_EQ(s.vocab_size(), 200);
  EXPECT_EQ(s.tokenizer(), "sentencepiece");
  EXPECT_EQ(s.tokenizer_model().path, fs::absolute(model()).lexically_normal().string());
  const auto sum = run_command(dir, fmt::format("sha256sum '{}'", model()));
  EXPECT_EQ(s.tokenizer_model().sha256, sum.out.substr(0, 64));

  const auto eos = eos_id(dir);
  std::vector<std::int32_t> web;  // each file one document, ended by </s>
  for (const auto& f : {a1, a2}) {
    const auto ids = spm_encode(dir, f);
    web.insert(web.end(), ids.begin(), ids.end());
    web.push_back(eos);
  }
  EXPECT_EQ(stored_rows(s, 0), windows(web, 16));
  std::vector<std::int32_t> math;  // each JSONL line one document
  for (size_t i = 0; i < docs.size(); ++i) {
    const auto f = dir.path() / fmt::format("doc{}.txt", i);
    write_file(f, docs[i]);
    const auto ids = spm_encode(dir, f);
    math.insert(math.end(), ids.begin(), ids.end());
    math.push_back(eos);
  }
  EXPECT_EQ(stored_rows(s, 1), windows(math, 16));
}

/// The parameter count dma_orchestrate's pretrain prints ("proxy with N parameters"); -1 if absent.
long proxy_parameters(const std::string& log) {
  const auto at = log.find("proxy with ");
  return at == std::string::npos ? -1 : std::stol(log.substr(at + 11));
}

TEST_F(SentencePieceModel, AProxyTrainsOnTheSpaceWithTheModelsVocabulary) {
  TempDir dir;
  write_file(dir.path() / "a" / "1.txt", sentences(200, 21));
  write_file(dir.path() / "b" / "1.txt", sentences(200, 22));
  const auto domains = fmt::format("--domain 'a={}:source' --domain 'b={}:target' --seq-len 16",
                                   (dir.path() / "a").string(), (dir.path() / "b").string());
  ASSERT_EQ(
      run_prepare(dir, fmt::format("text --out '{}' {} --tokenizer '{}'", dir.file("spm.space"), domains, model())).rc,
      0);
  ASSERT_EQ(run_prepare(dir, fmt::format("text --out '{}' {}", dir.file("bytes.space"), domains)).rc, 0);
  const auto pretrain = [&](const std::string& space) {
    const auto r =
        run_command(dir, fmt::format("'{}/dma_orchestrate' --config '{}/configs/test-tiny.ini' --mode pretrain "
                                     "--run.dir='{}' --data.space='{}' --pretrain.steps=2",
                                     DMA_BIN_DIR, DMA_SOURCE_DIR, dir.file("run-" + space), dir.file(space)));
    EXPECT_EQ(r.rc, 0) << r.out << r.err;
    EXPECT_TRUE(fs::exists(dir.path() / ("run-" + space) / "base.pt")) << r.out;
    return proxy_parameters(r.out + r.err);
  };
  // The embedding (tied with the head) has one row of d_model = 32 per token id.
  EXPECT_EQ(pretrain("spm.space") - pretrain("bytes.space"), (200 - 256) * 32);
}

TEST_F(SentencePieceModel, BadTokenizerFilesAreRefused) {
  TempDir dir;
  write_file(dir.path() / "a" / "1.txt", sentences(50, 3));
  write_file(dir.path() / "notamodel.model", "this is text, not a serialized SentencePiece model\n");
  const auto out = dir.file("s.space");
  const auto text = fmt::format("text --out '{}' --domain 'a={}:source' --tokenizer", out, (dir.path() / "a").string());
  expect_one_line_error(run_prepare(dir, fmt::format("{} '{}'", text, dir.file("notamodel.model"))),
                        "is not a SentencePiece model");
  EXPECT_FALSE(fs::exists(out));
  expect_one_line_error(run_prepare(dir, fmt::format("{} '{}'", text, dir.file("missing.model"))), "does not exist");
  EXPECT_FALSE(fs::exists(out));
}

TEST(PrepareJsonl, PlainAndZstdDocumentsBecomeByteRows) {
  TempDir dir;
  // Enough text that lines and zstd blocks cross the reader's 1 MiB pieces.
  std::vector<std::string> first, second;
  for (int i = 0; i < 3200; ++i)
    first.push_back(fmt::format("doc {} caf\u00e9 \"quoted\"\n{}", i, sentences(8, static_cast<std::uint32_t>(i))));
  for (int i = 0; i < 20; ++i) second.push_back(sentences(3, static_cast<std::uint32_t>(9000 + i)));
  const std::vector<std::string> third = {sentences(30, 77)};  // a compressed text file: one document
  write_zstd(dir, dir.path() / "d" / "a.jsonl.zst", jsonl(first));
  write_file(dir.path() / "d" / "b.jsonl", fmt::format("\n{}\n", jsonl(second)));  // blank lines are skipped
  write_zstd(dir, dir.path() / "d" / "c.txt.zst", third[0]);
  const auto out = dir.file("j.space");
  const auto r =
      run_prepare(dir, fmt::format("text --out '{}' --domain 'd={}:source' --domain 'e={}:target' --seq-len 64", out,
                                   (dir.path() / "d").string(), (dir.path() / "d" / "b.jsonl").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto s = DomainSpace::open(out);
  EXPECT_EQ(s.vocab_size(), 256);
  EXPECT_EQ(s.tokenizer(), "bytes");
  EXPECT_TRUE(s.tokenizer_model().path.empty());
  const auto join = [](std::initializer_list<const std::vector<std::string>*> files) {
    std::string text;  // documents joined by a blank line, files in name order
    for (const auto* docs : files)
      for (const auto& t : *docs) text.append(text.empty() ? "" : "\n\n").append(t);
    return text;
  };
  const auto joined = join({&first, &second, &third});
  EXPECT_GT(joined.size(), 1u << 20);
  EXPECT_EQ(stored_rows(s, 0), windows(bytes_of(joined), 64));
  EXPECT_EQ(stored_rows(s, 1), windows(bytes_of(join({&second})), 64));
}

/// Runs `text` on one domain file and expects the one-line error `needle` and no output.
void expect_text_refused(const TempDir& dir, const fs::path& input, const std::string& needle) {
  const auto out = dir.file("bad.space");
  expect_one_line_error(run_prepare(dir, fmt::format("text --out '{}' --domain 'x={}:source'", out, input.string())),
                        needle);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  EXPECT_FALSE(fs::exists(out + ".tokens.partial"));
}

TEST(PrepareJsonl, BadLinesAndStreamsAreRefused) {
  TempDir dir;
  const auto good = jsonl({sentences(40, 1), sentences(40, 2)});
  write_file(dir.path() / "notext.jsonl", good + "{\"title\": \"no text here\"}\n");
  expect_text_refused(dir, dir.path() / "notext.jsonl",
                      fmt::format("'{}' line 3 has no field \"text\"", (dir.path() / "notext.jsonl").string()));
  write_file(dir.path() / "number.jsonl", "{\"text\": 42}\n" + good);
  expect_text_refused(dir, dir.path() / "number.jsonl", "line 1: field \"text\" is not a string");
  write_file(dir.path() / "broken.jsonl", good + "{\"text\": \"unterminated\n");
  expect_text_refused(dir, dir.path() / "broken.jsonl", "line 3 is not JSON");

  write_zstd(dir, dir.path() / "good.jsonl.zst", good + good + good);
  auto bytes = test::slurp(dir.path() / "good.jsonl.zst");
  write_file(dir.path() / "cut.jsonl.zst", bytes.substr(0, bytes.size() / 2));
  expect_text_refused(dir, dir.path() / "cut.jsonl.zst", "ends inside a zstd frame");
  for (size_t i = 12; i < bytes.size() - 4; i += 7) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  write_file(dir.path() / "flipped.jsonl.zst", bytes);
  expect_text_refused(dir, dir.path() / "flipped.jsonl.zst", "is not a valid zstd stream");
  write_file(dir.path() / "plain.jsonl.zst", good);
  expect_text_refused(dir, dir.path() / "plain.jsonl.zst", "is not a valid zstd stream");
}

/// Writes <dir>/<name>.{bin,idx,json} with the Python writer of Megatron's layout.
nlohmann::json write_megatron(const TempDir& dir, const fs::path& prefix, const std::string& args) {
  fs::create_directories(prefix.parent_path());
  const auto r = run_command(dir, fmt::format("/usr/bin/python3 '{}/tests/data/write_megatron.py' '{}' {}",
                                              DMA_SOURCE_DIR, prefix.string(), args));
  EXPECT_EQ(r.rc, 0) << r.err;
  return nlohmann::json::parse(test::slurp(prefix.string() + ".json"));
}

TEST(PrepareMegatron, DocumentsOfPythonWrittenPairsInIndexOrder) {
  TempDir dir;
  const auto web = dir.path() / "in" / "web", math = dir.path() / "in" / "math";
  const auto a = write_megatron(dir, web / "part-0", "--dtype uint16 --vocab 1000 --documents 40 --seed 1");
  const auto b = write_megatron(dir, web / "part-1", "--dtype int32 --vocab 1000 --documents 30 --seed 2");
  const auto c = write_megatron(dir, math / "all", "--dtype uint8 --vocab 200 --documents 50 --seed 3");
  const auto out = dir.file("m.space");
  const auto r =
      run_prepare(dir, fmt::format("import --format megatron --out '{}' --input '{}' --target math --seq-len 8 "
                                   "--vocab 1001 --eod 1000",
                                   out, (dir.path() / "in").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto s = DomainSpace::open(out);
  ASSERT_EQ(s.domain_names(), (std::vector<std::string>{"math", "web"}));
  const auto stream = [](std::initializer_list<const nlohmann::json*> shards) {
    std::vector<std::int32_t> tokens;  // documents in order, each ended by --eod
    for (const auto* docs : shards)
      for (const auto& doc : *docs) {
        for (const auto& t : doc) tokens.push_back(t.get<std::int32_t>());
        tokens.push_back(1000);
      }
    return tokens;
  };
  EXPECT_EQ(stored_rows(s, 0), windows(stream({&c}), 8));
  EXPECT_EQ(stored_rows(s, 1), windows(stream({&a, &b}), 8));
}

/// Overwrites `bytes` at `offset` of `file`.
void patch(const fs::path& file, std::streamoff offset, const std::string& bytes) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(PrepareMegatron, BadIndexesAreRefused) {
  TempDir dir;
  const auto prefix = dir.path() / "in" / "web" / "part";
  const auto bin = prefix.string() + ".bin", idx = prefix.string() + ".idx";
  const auto out = dir.file("m.space");
  const auto import = fmt::format("import --format megatron --out '{}' --input '{}' --seq-len 8 --vocab 1000", out,
                                  (dir.path() / "in").string());
  const auto refused = [&](const std::string& needle) {
    expect_one_line_error(run_prepare(dir, import), needle);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".partial"));
  };
  const auto fresh = [&] { write_megatron(dir, prefix, "--dtype uint16 --vocab 1000 --documents 20 --seed 5"); };

  fresh();
  ASSERT_EQ(run_prepare(dir, import).rc, 0);  // the untouched pair imports
  fs::remove(out);
  patch(idx, 0, "NOTANIDX");
  refused("does not start with the magic MMIDIDX");
  fresh();
  patch(idx, 9, std::string("\x02", 1));
  refused("has index version 2");
  fresh();
  patch(idx, 17, std::string("\x06", 1));
  refused("has dtype code 6, not an integer token type");
  fresh();
  patch(idx, 17, std::string("\x63", 1));
  refused("has dtype code 99");
  fresh();
  fs::resize_file(bin, fs::file_size(bin) - 2);
  refused("do not belong together or");
  fresh();
  std::ofstream(bin, std::ios::binary | std::ios::app) << "xx";
  refused(fmt::format("but '{}' holds", bin));
  fresh();
  fs::resize_file(idx, fs::file_size(idx) - 8);
  refused("the index is truncated or corrupt");
  fresh();
  fs::remove(idx);
  refused("has no index");
  fresh();
  expect_one_line_error(
      run_prepare(dir, fmt::format("import --format bin16 --out '{}' --input '{}' --seq-len 8 --vocab 1000", out,
                                   (dir.path() / "in").string())),
      "use --format megatron");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace dma
