// `export`: the selected episodes of a store as a D4RL-style HDF5 file, a Minari dataset
// directory, or CSV. Shapes: N exported rows, T steps of one episode, D domains, O obs_dim.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"
#include "dma/replay.hpp"
#include "dma/score.hpp"
#include "h5out.hpp"
#include "replay_internal.hpp"

namespace dma::replay {
namespace {

namespace fs = std::filesystem;

/// Balanced score of every row of a block (one per row, rows never written included).
std::vector<float> balanced_rows(const RowBlock& b, const StoreHeader& h, const EvalConfig& eval) {
  const auto d = static_cast<std::size_t>(h.num_domains());
  std::vector<float> out(static_cast<std::size_t>(b.count));
  for (std::size_t r = 0; r < out.size(); ++r) {
    const std::span<const float> losses(b.eval_loss.data() + r * d, d);
    out[r] = static_cast<float>(balanced_score(field_scores(losses, h.base_eval_loss, h.domain_fields), eval));
  }
  return out;
}

void prepare_output(const std::string& out, bool force, bool directory) {
  std::error_code ec;
  if (fs::exists(out, ec) && !force)
    throw ConfigError(fmt::format("export output '{}' already exists: remove it or pass --force", out));
  if (directory) {
    fs::create_directories(fs::path(out) / "data", ec);
    if (ec) throw ConfigError(fmt::format("cannot create export directory '{}': {}", out, ec.message()));
    return;
  }
  const auto parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw ConfigError(fmt::format("export output '{}': directory '{}' does not exist", out, parent.string()));
  if (force) fs::remove(out, ec);
}

/// Copies rows [first, first + n) of one column (width `w`) to the end of `dst`.
template <class T>
void take(std::vector<T>& dst, const std::vector<T>& src, std::size_t first, std::size_t n, std::size_t w) {
  dst.insert(dst.end(), src.begin() + static_cast<std::ptrdiff_t>(first * w),
             src.begin() + static_cast<std::ptrdiff_t>((first + n) * w));
}

// ---- d4rl ---------------------------------------------------------------------------------

ExportResult export_d4rl(const StoreReader& reader, const std::string& out, const ExportOptions& o) {
  const auto& h = reader.header();
  const EvalConfig eval = eval_config(h, reader.path(), o.score);
  const auto d = static_cast<hsize_t>(h.num_domains()), od = static_cast<hsize_t>(h.obs_dim());
  h5out::File file(out);
  const hid_t f = file.id();
  h5out::Appender obs(f, "observations", h5out::F32, od), next(f, "next_observations", h5out::F32, od),
      act(f, "actions", h5out::F32, d), rew(f, "rewards", h5out::F32, 0), term(f, "terminals", h5out::BOOL, 0),
      tout(f, "timeouts", h5out::BOOL, 0), eid(f, "infos/episode_id", h5out::I64, 0),
      step(f, "infos/step", h5out::I32, 0), loss(f, "infos/eval_loss", h5out::F32, d),
      src(f, "infos/source_score", h5out::F32, 0), tgt(f, "infos/target_score", h5out::F32, 0),
      bal(f, "infos/balanced_score", h5out::F32, 0), math(f, "infos/math_accuracy", h5out::F32, 0),
      tok(f, "infos/train_tokens", h5out::I64, 0), wall(f, "infos/wall_seconds", h5out::F32, 0);
  ExportResult res;
  std::vector<std::int64_t> ep_id, ep_start, ep_len, ep_parent, ep_branch_step;
  std::vector<std::string> ep_policy, ep_status;
  for_each_batch(reader, o.selection, [&](const RowBlock& b, const std::vector<BatchEpisode>& batch) {
    const auto balanced = balanced_rows(b, h, eval);
    for (const auto& be : batch) {
      const auto n = static_cast<hsize_t>(be.visible);
      if (n == 0) continue;
      const auto first = static_cast<std::size_t>(be.record->start - b.start);
      std::vector<std::uint8_t> timeouts(n, 0), terminals(n, 0);
      timeouts.back() = 1;  // every exported episode ends at its last row (a truncation)
      obs.append(b.observations.data() + first * od, n);
      next.append(b.next_observations.data() + first * od, n);
      act.append(b.actions.data() + first * d, n);
      rew.append(b.rewards.data() + first, n);
      term.append(terminals.data(), n);
      tout.append(timeouts.data(), n);
      eid.append(b.episode_id.data() + first, n);
      step.append(b.step.data() + first, n);
      loss.append(b.eval_loss.data() + first * d, n);
      src.append(b.source_score.data() + first, n);
      tgt.append(b.target_score.data() + first, n);
      bal.append(balanced.data() + first, n);
      math.append(b.math_accuracy.data() + first, n);
      tok.append(b.train_tokens.data() + first, n);
      wall.append(b.wall_seconds.data() + first, n);
      ep_id.push_back(be.record->id);
      ep_start.push_back(res.transitions);
      ep_len.push_back(static_cast<std::int64_t>(n));
      ep_parent.push_back(be.record->parent);
      ep_branch_step.push_back(be.record->branch_step);
      ep_policy.push_back(be.record->policy);
      ep_status.push_back(status_name(be.record->status));
      res.transitions += static_cast<std::int64_t>(n);
      ++res.episodes;
    }
  });
  for (auto* a : {&obs, &next, &act, &rew, &term, &tout, &eid, &step, &loss, &src, &tgt, &bal, &math, &tok, &wall})
    a->finish();
  std::vector<std::string> fields;
  for (Field fl : h.domain_fields) fields.emplace_back(field_name(fl));
  h5out::write_strings(f, "metadata/format", {"dma-d4rl-export"});
  h5out::write_strings(f, "metadata/source_store", {reader.path()});
  h5out::write_strings(f, "metadata/domain_names", h.domain_names);
  h5out::write_strings(f, "metadata/domain_fields", fields);
  h5out::write_strings(f, "metadata/obs_layout", h.obs_layout);
  h5out::write_strings(f, "metadata/config", {h.config_ini});
  h5out::write_strings(f, "metadata/balanced_score", {eval.score});
  h5out::write_array(f, "metadata/horizon", h5out::I64, std::vector<std::int64_t>{h.horizon});
  h5out::write_array(f, "metadata/base_eval_loss", h5out::F32, h.base_eval_loss);
  h5out::write_array(f, "metadata/episodes/id", h5out::I64, ep_id);
  h5out::write_array(f, "metadata/episodes/start", h5out::I64, ep_start);
  h5out::write_array(f, "metadata/episodes/length", h5out::I64, ep_len);
  // A tree branch's first branch_step rows are its parent's (store's episodes/parent).
  h5out::write_array(f, "metadata/episodes/parent", h5out::I64, ep_parent);
  h5out::write_array(f, "metadata/episodes/branch_step", h5out::I64, ep_branch_step);
  h5out::write_strings(f, "metadata/episodes/policy", ep_policy);
  h5out::write_strings(f, "metadata/episodes/status", ep_status);
  file.close();
  return res;
}

// ---- minari -------------------------------------------------------------------------------

std::string box_json(std::size_t n, const char* low, const char* high) {
  std::string lo = "[", hi = "[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i) lo += ", ", hi += ", ";
    lo += low;
    hi += high;
  }
  return fmt::format(R"({{"type": "Box", "dtype": "float32", "shape": [{}], "low": {}], "high": {}]}})", n, lo, hi);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    else
      out += c;
  }
  return out + "\"";
}

/// One Minari episode group: T+1 observations and infos (index 0 is the reset state: the
/// base model, its losses and zero scores), T actions, rewards, terminations, truncations.
void write_minari_episode(hid_t file, std::int64_t index, const BatchEpisode& be, const RowBlock& b,
                          const StoreHeader& h, const std::vector<float>& balanced) {
  const auto d = static_cast<std::size_t>(h.num_domains()), od = static_cast<std::size_t>(h.obs_dim());
  const auto n = static_cast<std::size_t>(be.visible);
  const auto first = static_cast<std::size_t>(be.record->start - b.start);
  const std::string g = fmt::format("episode_{}", index);
  std::vector<float> obs;
  take(obs, b.observations, first, n, od);
  take(obs, b.next_observations, first + n - 1, 1, od);
  std::vector<float> loss(h.base_eval_loss), src{0}, tgt{0}, bal{0}, math{-1}, wall{0};
  std::vector<std::int64_t> tok{0}, step{0};
  take(loss, b.eval_loss, first, n, d);
  take(src, b.source_score, first, n, 1);
  take(tgt, b.target_score, first, n, 1);
  take(bal, balanced, first, n, 1);
  take(math, b.math_accuracy, first, n, 1);
  take(wall, b.wall_seconds, first, n, 1);
  take(tok, b.train_tokens, first, n, 1);
  for (std::size_t t = 1; t <= n; ++t) step.push_back(static_cast<std::int64_t>(t));
  std::vector<std::uint8_t> terminations(n, 0), truncations(n, 0);
  truncations.back() = 1;
  h5out::write_matrix(file, g + "/observations", h5out::F32, obs.data(), n + 1, od);
  h5out::write_matrix(file, g + "/actions", h5out::F32, b.actions.data() + first * d, n, d);
  h5out::write_matrix(file, g + "/rewards", h5out::F32, b.rewards.data() + first, n, 0);
  h5out::write_matrix(file, g + "/terminations", h5out::BOOL, terminations.data(), n, 0);
  h5out::write_matrix(file, g + "/truncations", h5out::BOOL, truncations.data(), n, 0);
  h5out::write_matrix(file, g + "/infos/eval_loss", h5out::F32, loss.data(), n + 1, d);
  h5out::write_array(file, g + "/infos/source_score", h5out::F32, src);
  h5out::write_array(file, g + "/infos/target_score", h5out::F32, tgt);
  h5out::write_array(file, g + "/infos/balanced_score", h5out::F32, bal);
  h5out::write_array(file, g + "/infos/math_accuracy", h5out::F32, math);
  h5out::write_array(file, g + "/infos/wall_seconds", h5out::F32, wall);
  h5out::write_array(file, g + "/infos/train_tokens", h5out::I64, tok);
  h5out::write_array(file, g + "/infos/step", h5out::I64, step);
  h5out::Group group(file, g);
  h5::write_attr_int(group.id(), "id", index);
  h5::write_attr_int(group.id(), "total_steps", static_cast<std::int64_t>(n));
  h5::write_attr_int(group.id(), "seed", static_cast<std::int64_t>(be.record->seed & 0x7fffffffffffffffULL));
  h5::write_attr_int(group.id(), "dma_episode_id", be.record->id);
  h5::write_attr_int(group.id(), "dma_parent", be.record->parent);  // -1, or the tree root it branches from
  h5::write_attr_int(group.id(), "dma_branch_step", be.record->branch_step);
  h5::write_attr_string(group.id(), "policy", be.record->policy);
  h5::write_attr_string(group.id(), "status", status_name(be.record->status));
}

ExportResult export_minari(const StoreReader& reader, const std::string& out, const ExportOptions& o) {
  const auto& h = reader.header();
  const EvalConfig eval = eval_config(h, reader.path(), o.score);
  const auto data_dir = fs::path(out) / "data";
  const std::string main = (data_dir / "main_data.hdf5").string();
  std::error_code ec;
  fs::remove(main, ec);
  ExportResult res;
  const std::string id =
      o.dataset_id.empty() ? fmt::format("dma/{}-v0", fs::path(reader.path()).stem().string()) : o.dataset_id;
  const std::string obs_space = box_json(static_cast<std::size_t>(h.obs_dim()), "-Infinity", "Infinity");
  const std::string act_space = box_json(static_cast<std::size_t>(h.num_domains()), "0.0", "1.0");
  {
    h5out::File file(main);
    for_each_batch(reader, o.selection, [&](const RowBlock& b, const std::vector<BatchEpisode>& batch) {
      const auto balanced = balanced_rows(b, h, eval);
      for (const auto& be : batch) {
        if (be.visible == 0) continue;
        write_minari_episode(file.id(), res.episodes++, be, b, h, balanced);
        res.transitions += be.visible;
      }
    });
    // Minari 0.4 reads its metadata from the root attributes; later versions from metadata.json.
    h5::write_attr_string(file.id(), "dataset_id", id);
    h5::write_attr_int(file.id(), "total_episodes", res.episodes);
    h5::write_attr_int(file.id(), "total_steps", res.transitions);
    h5::write_attr_string(file.id(), "observation_space", obs_space);
    h5::write_attr_string(file.id(), "action_space", act_space);
    file.close();
  }
  // Minari refuses a dataset whose minari_version is not one release it knows; 0.5.0 is the
  // first with this layout (metadata.json naming data_format), read by every later release.
  std::ofstream meta(data_dir / "metadata.json");
  meta << fmt::format(
      "{{\"dataset_id\": {}, \"total_episodes\": {}, \"total_steps\": {}, \"data_format\": \"hdf5\", "
      "\"observation_space\": {}, \"action_space\": {}, \"minari_version\": \"0.5.0\", \"author\": \"dma\", "
      "\"algorithm_name\": \"dma mixing policies\", \"dma_source_store\": {}, \"dma_domain_names\": [{}], "
      "\"dma_balanced_score\": {}}}\n",
      json_string(id), res.episodes, res.transitions, json_string(obs_space), json_string(act_space),
      json_string(reader.path()),
      [&] {
        std::string s;
        for (const auto& n : h.domain_names) {
          if (!s.empty()) s += ", ";
          s += json_string(n);
        }
        return s;
      }(),
      json_string(eval.score));
  if (!meta) throw ConfigError(fmt::format("cannot write '{}'", (data_dir / "metadata.json").string()));
  return res;
}

// ---- csv ----------------------------------------------------------------------------------

std::string csv_header(const StoreHeader& h, bool with_obs) {
  std::string s =
      "episode_id,policy,status,step,reward,timeout,source_score,target_score,balanced_score,"
      "math_accuracy,train_tokens,wall_seconds";
  auto column = [&](const char* prefix, const std::string& name) {
    s += ',';
    s += csv_field(prefix + name);
  };
  for (const auto& n : h.domain_names) column("weight.", n);
  for (const auto& n : h.domain_names) column("loss.", n);
  if (with_obs)
    for (const auto& n : h.obs_layout) column("obs.", n);
  s += '\n';
  return s;
}

ExportResult export_csv(const StoreReader& reader, const std::string& out, const ExportOptions& o) {
  const auto& h = reader.header();
  const EvalConfig eval = eval_config(h, reader.path(), o.score);
  const auto d = static_cast<std::size_t>(h.num_domains()), od = static_cast<std::size_t>(h.obs_dim());
  std::ofstream file(out, std::ios::trunc);
  if (!file) throw ConfigError(fmt::format("cannot write export output '{}': check the directory", out));
  file << csv_header(h, o.csv_observations);
  ExportResult res;
  fmt::memory_buffer line;
  for_each_batch(reader, o.selection, [&](const RowBlock& b, const std::vector<BatchEpisode>& batch) {
    const auto balanced = balanced_rows(b, h, eval);
    for (const auto& be : batch) {
      const std::string policy = csv_field(be.record->policy), status = status_name(be.record->status);
      for (std::int64_t t = 0; t < be.visible; ++t) {
        const auto r = static_cast<std::size_t>(be.record->start - b.start + t);
        line.clear();
        fmt::format_to(std::back_inserter(line), "{},{},{},{},{:.9g},{},{:.9g},{:.9g},{:.9g},{:.9g},{},{:.9g}",
                       be.record->id, policy, status, t, b.rewards[r], t + 1 == be.visible ? 1 : 0, b.source_score[r],
                       b.target_score[r], balanced[r], b.math_accuracy[r], b.train_tokens[r], b.wall_seconds[r]);
        for (std::size_t k = 0; k < d; ++k) fmt::format_to(std::back_inserter(line), ",{:.9g}", b.actions[r * d + k]);
        for (std::size_t k = 0; k < d; ++k) fmt::format_to(std::back_inserter(line), ",{:.9g}", b.eval_loss[r * d + k]);
        if (o.csv_observations)
          for (std::size_t k = 0; k < od; ++k)
            fmt::format_to(std::back_inserter(line), ",{:.9g}", b.observations[r * od + k]);
        line.push_back('\n');
        file.write(line.data(), static_cast<std::streamsize>(line.size()));
      }
      res.transitions += be.visible;
      res.episodes += be.visible > 0;
    }
  });
  file.close();
  if (!file) throw ConfigError(fmt::format("writing export output '{}' failed (disk full?)", out));
  return res;
}

}  // namespace

ExportResult export_store(const std::string& store, const std::string& out, const ExportOptions& options) {
  auto reader = StoreReader::open(store);
  eval_config(reader.header(), store, options.score);  // a bad --score fails before any output
  prepare_output(out, options.force, options.format == ExportFormat::kMinari);
  switch (options.format) {
    case ExportFormat::kD4rl:
      return export_d4rl(reader, out, options);
    case ExportFormat::kMinari:
      return export_minari(reader, out, options);
    case ExportFormat::kCsv:
      return export_csv(reader, out, options);
  }
  return {};
}

}  // namespace dma::replay
