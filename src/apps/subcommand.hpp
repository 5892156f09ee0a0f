#pragma once
// What the programs with subcommands (dma_prepare, dma_agent) share: parsing one
// subcommand's options, and turning every error into one line on stderr and an exit status.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "dma/error.hpp"

namespace dma::apps {

/// Parses `argv` against `options`; false (after printing the usage) when --help was asked.
inline bool parse_subcommand(int argc, char** argv, const boost::program_options::options_description& options,
                             const char* program, const char* command) {
  namespace po = boost::program_options;
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: " << program << " " << command << " [options]\n" << options;
    return false;
  }
  po::notify(vm);
  return true;
}

/// Runs a subcommand: its status, or 1 after a dma error, 2 after an option error (with a
/// pointer to the subcommand's --help), 1 after anything unexpected; always one line.
template <class Body>
int run_subcommand(const char* program, const std::string& command, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  } catch (const boost::program_options::error& e) {
    std::fprintf(stderr, "%s: %s: see '%s %s --help'\n", program, e.what(), program, command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: unexpected error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace dma::apps
