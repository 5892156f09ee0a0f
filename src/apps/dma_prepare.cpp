// dma_prepare: builds domain-space files (DESIGN §5, §6).
//   dma_prepare demo   --out FILE [--seed N] [--force] [size options]
//   dma_prepare text   --out FILE (--domain name=dir:field ... | --manifest FILE) [--tokenizer MODEL.model]
//   dma_prepare import --out FILE --format bin16|bin32|hdf5-shards|megatron (--input DIR | --domain ...) --seq-len N
//   --vocab N
// Exit status: 0 success, 1 bad input (one line on stderr), 2 bad usage.
#include <cstdio>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "dma/error.hpp"
#include "dma/prepare.hpp"
#include "subcommand.hpp"

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "usage: dma_prepare demo|text|import --out FILE [options]\n"
    "  demo    the embedded default: fortunes categories (source) and generated math (target)\n"
    "  text    text per domain (--domain name=path:field or --manifest FILE): plain text files, .jsonl with a\n"
    "          \"text\" field per line, either .zst-compressed; bytes as tokens, or --tokenizer MODEL.model\n"
    "          (SentencePiece)\n"
    "  import  token shards: --format bin16|bin32 (raw streams), hdf5-shards, megatron (.bin/.idx pairs),\n"
    "          --input DIR or --domain, --seq-len, --vocab\n"
    "run 'dma_prepare COMMAND --help' for a command's options; docs/data-formats.md describes every format\n";

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<dma::DomainSpec> parse_specs(const std::vector<std::string>& specs) {
  std::vector<dma::DomainSpec> out;
  for (const auto& s : specs) out.push_back(dma::parse_domain_spec(s));
  return out;
}

po::options_description common(std::string& out, bool& force) {
  po::options_description d("options");
  d.add_options()("help,h", "print this help")("out", po::value(&out)->required(), "domain-space file to write")(
      "force", po::bool_switch(&force), "overwrite --out if it exists");
  return d;
}

int run_demo(int argc, char** argv) {
  dma::DemoOptions o;
  std::string categories;
  auto d = common(o.out, o.force);
  d.add_options()("seed", po::value(&o.seed)->default_value(o.seed), "seed: the same seed gives a byte-identical file")(
      "fortunes-dir", po::value(&o.fortunes_dir)->default_value(o.fortunes_dir), "where Debian's fortunes files are")(
      "categories", po::value(&categories), "comma-separated fortunes categories (source domains)")(
      "seq-len", po::value(&o.seq_len)->default_value(o.seq_len), "context length (rows hold seq_len + 1 tokens)")(
      "source-rows", po::value(&o.source_train_rows)->default_value(o.source_train_rows),
      "max train rows per source domain")("target-train-rows",
                                          po::value(&o.target_train_rows)->default_value(o.target_train_rows),
                                          "train rows per math sub-domain (small on purpose)")(
      "target-eval-rows", po::value(&o.target_eval_rows)->default_value(o.target_eval_rows),
      "eval rows per math sub-domain")("eval-fraction",
                                       po::value(&o.eval_fraction)->default_value(o.eval_fraction, "0.1"),
                                       "source text held out for eval")(
      "bench-problems", po::value(&o.bench_problems)->default_value(o.bench_problems), "held-out exact-match problems");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_prepare", "demo")) return 0;
  if (!categories.empty()) o.categories = split_commas(categories);
  std::cout << dma::prepare_demo(o).line() << "\n";
  return 0;
}

int run_text(int argc, char** argv) {
  dma::TextOptions o;
  std::vector<std::string> specs;
  auto d = common(o.out, o.force);
  d.add_options()("domain", po::value(&specs)->composing(),
                  "name=path:field (field: source|target), repeatable; path: a directory of files or one file. "
                  "Each text file is one document; each line of a .jsonl file is one, in its string field \"text\"; "
                  "a .zst suffix is decompressed as it is read")("manifest", po::value(&o.manifest),
                                                                 "file of name=path:field lines")(
      "tokenizer", po::value(&o.tokenizer),
      "SentencePiece .model file (spm_train's output): the vocabulary becomes its piece count, each line is encoded "
      "as spm_encode does and each document ends with the model's EOS; default: bytes (vocab 256), documents "
      "joined by a blank line")("seq-len", po::value(&o.seq_len)->default_value(o.seq_len),
                                "context length (rows hold seq_len + 1 tokens)")(
      "eval-fraction", po::value(&o.eval_fraction)->default_value(o.eval_fraction, "0.1"), "rows held out per domain")(
      "max-eval-rows", po::value(&o.max_eval_rows)->default_value(o.max_eval_rows), "cap of a domain's eval rows");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_prepare", "text")) return 0;
  o.domains = parse_specs(specs);
  std::cout << dma::prepare_text(o).line() << "\n";
  return 0;
}

int run_import(int argc, char** argv) {
  dma::ImportOptions o;
  std::string format;
  std::vector<std::string> specs, targets;
  auto d = common(o.out, o.force);
  d.add_options()("format", po::value(&format)->required(),
                  "bin16|bin32: raw little-endian token streams (*.bin); hdf5-shards: *.hdf5 with a dataset 'train' of "
                  "[rows, seq_len+1]; megatron: Megatron-LM .bin/.idx pairs, documents in index order")(
      "input", po::value(&o.input), "directory with one subdirectory of shards per domain")(
      "target", po::value(&targets)->composing(),
      "domain of --input in the target field (repeatable or comma-separated)")(
      "domain", po::value(&specs)->composing(), "name=dir:field, repeatable")("manifest", po::value(&o.manifest),
                                                                              "file of name=dir:field lines")(
      "seq-len", po::value(&o.seq_len)->required(), "tokens per row, plus one (hdf5 rows hold seq_len+1)")(
      "vocab", po::value(&o.vocab_size)->required(), "vocabulary size: every token id must be below it")(
      "tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer), "tokenizer name stored in the file")(
      "eod", po::value(&o.eod),
      "megatron: token id put after each document (leave unset when the data already ends "
      "documents with one, as preprocess_data.py --append-eod does)")(
      "eval-fraction", po::value(&o.eval_fraction)->default_value(o.eval_fraction, "0.1"), "rows held out per domain")(
      "max-eval-rows", po::value(&o.max_eval_rows)->default_value(o.max_eval_rows), "cap of a domain's eval rows");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_prepare", "import")) return 0;
  o.format = dma::parse_import_format(format);
  for (const auto& t : targets)
    for (const auto& name : split_commas(t)) o.targets.push_back(name);
  o.domains = parse_specs(specs);
  std::cout << dma::prepare_import(o).line() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return dma::apps::run_subcommand("dma_prepare", command, [&] {
    if (command == "demo") return run_demo(argc - 1, argv + 1);
    if (command == "text") return run_text(argc - 1, argv + 1);
    if (command == "import") return run_import(argc - 1, argv + 1);
    std::fprintf(stderr, "dma_prepare: unknown command '%s': use demo, text or import\n", command.c_str());
    return 2;
  });
}
