// libFuzzer target for the checkpoint header parser and validator (native/format), built with ASan+UBSan by
// run.sh. Any input is a candidate file: whatever ParseHeader accepts must satisfy the layout invariants
// the reader relies on before it hands out views, and checksum verification must never read outside it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "format/header.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ckptio::format::ParsedHeader;
  ParsedHeader header;
  if (!ckptio::format::ParseHeader(data, size, &header).ok()) return 0;
  // Accepted: the regions must tile the data region exactly, inside the file.
  Require(header.data_start == 8 + header.header_len);
  Require(header.data_start + header.data_len == size);
  uint64_t expected_begin = 0;
  for (const ckptio::format::TensorInfo& t : header.tensors) {
    Require(t.begin == expected_begin && t.end >= t.begin && t.end <= header.data_len);
    uint64_t bytes = 0;
    Require(ckptio::format::TensorBytes(t, &bytes).ok() && bytes == t.end - t.begin);
    expected_begin = t.end;
  }
  Require(expected_begin == header.data_len);
  if (header.has_checksums) Require(header.tensor_hashes.size() == header.tensors.size());
  (void)ckptio::format::VerifyChecksums(header, data);
  return 0;
}
