#pragma once
// Documents of `dma_prepare text` inputs: plain text files and JSONL, either zstd-compressed.
#include <filesystem>
#include <vector>

#include "dma/prepare.hpp"

namespace dma::prep {

class DocumentEncoder;

/// The input files of a text domain: the path itself when it is a file, else the
/// directory's non-hidden files in name order. Throws DataError when there are none.
std::vector<std::filesystem::path> text_domain_files(const DomainSpec& d);

/// Streams the documents of one file into `encoder`. A `.jsonl` file holds one document per
/// line (the line's string field "text"; blank lines are skipped); any other file is one
/// document. A trailing `.zst` is decompressed as it is read. Throws DataError naming the
/// file (and line) on a bad line or a corrupt stream.
void read_documents(const std::filesystem::path& file, DocumentEncoder& encoder);

}  // namespace dma::prep
