// libFuzzer target for the store reader: any bytes, written to a file, must open as a store
// or fail with a dma::Error, never crash, hang or corrupt memory (built with ASan + UBSan).
// Built and run by run_fuzz.sh (clang only; -fsanitize=fuzzer).
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "dma/error.hpp"
#include "dma/store.hpp"

namespace {

std::string input_path() {
  const char* dir = std::getenv("DMA_FUZZ_TMP");
  return std::string(dir ? dir : "/tmp") + "/dma_fuzz_input_" + std::to_string(getpid()) + ".h5";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5dont_atexit();  // HDF5 keeps state after some failed opens; its atexit would complain
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = input_path();
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    auto reader = dma::StoreReader::open(path);
    for (const auto& e : reader.episodes()) (void)reader.read_episode(e);
    (void)reader.read_block(0, reader.num_rows(), true);
    reader.refresh();
  } catch (const dma::Error&) {
    // the expected outcome for damaged input: one StoreError line
  }
  return 0;
}
