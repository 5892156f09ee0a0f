#pragma once
/// Error types: every failure in dma throws one of these, with a one-line message that
/// names what is wrong and how to fix it. `apps/*` mains catch dma::Error once.
#include <stdexcept>
#include <string>

namespace dma {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad configuration key or value (names the key).
class ConfigError : public Error {
  using Error::Error;
};
/// Bad input data: domain spaces, shards, text directories.
class DataError : public Error {
  using Error::Error;
};
/// A failing HDF5 call (carries HDF5's own error stack in one line).
class Hdf5Error : public Error {
  using Error::Error;
};
/// A trajectory store that is missing, foreign, of another version or mismatched.
class StoreError : public Error {
  using Error::Error;
};
/// A checkpoint that is missing, corrupt or belongs to another config / domain space.
class CheckpointError : public Error {
  using Error::Error;
};
/// A failing MPI call.
class MpiError : public Error {
  using Error::Error;
};
/// A failing NCCL or CUDA call, or a backend that cannot start here.
class NcclError : public Error {
  using Error::Error;
};
/// A collective that did not complete within the watchdog's limit.
class CommTimeout : public Error {
  using Error::Error;
};
/// A bad policy spec or a policy that cannot act.
class PolicyError : public Error {
  using Error::Error;
};

}  // namespace dma
