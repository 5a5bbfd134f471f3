// The safetensors encoder, pure bytes and no I/O: the plan of one file (its tensors in file order with their
// offsets, the header's size), the file's image (header then tensors) copied out on demand into whatever buffer a
// sink fills, the per-tensor digests fed in file order, and the content id derived from them. The sinks
// (direct_io.h, buffered_io.h) write the image; commit.h puts the file in place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../format/checksum.h"
#include "../format/header.h"
#include "../io/status.h"

namespace ckptio::writer {

struct TensorSource {
  format::TensorInfo info;    // name, dtype, shape; offsets are assigned by the plan
  const unsigned char* data;  // shape x dtype size bytes, kept alive by the caller until the commit ends
};

struct FilePlan {
  std::vector<format::TensorInfo> infos;  // file order (format::PlanLayout), offsets assigned
  std::vector<TensorSource> ordered;      // the sources in the same order, with the same infos
  uint64_t header_size = 0;               // the 8-byte length prefix plus the padded JSON header
  uint64_t total = 0;                     // the file's size: header_size + the data region
};

// Checks the user metadata (no reserved keys), plans the layout and sizes the header (its length does not depend
// on the digests, so it is known before any byte is hashed). A header above the readers' cap is refused here, so
// what no reader parses is never written. `path` only names the file in errors.
Status PlanFile(std::vector<TensorSource> tensors, const format::Metadata& metadata, bool checksum,
                const std::string& path, FilePlan* out);

// Feeds the data region to the per-tensor digests in file order, from wherever the bytes are (the
// caller's memory or a staging block that was just filled from it, so they are hashed while hot).
class TensorHasher {
 public:
  TensorHasher(const std::vector<format::TensorInfo>& tensors, bool enabled)
      : tensors_(tensors), hashes_(enabled ? tensors.size() : 0), enabled_(enabled) {}
  // `bytes` are data-region bytes [offset, offset+len); calls must come in increasing, gapless order.
  void Feed(uint64_t offset, const unsigned char* bytes, uint64_t len);
  std::vector<uint64_t> Digests() const;

 private:
  const std::vector<format::TensorInfo>& tensors_;
  std::vector<format::StreamingHash> hashes_;
  bool enabled_;
  size_t index_ = 0;
};

// The file image: header bytes followed by the tensors, materialized on demand into a buffer.
class FileImage {
 public:
  FileImage(const std::vector<TensorSource>& sources, uint64_t header_size, uint64_t total)
      : sources_(sources), header_size_(header_size), total_(total) {}
  // The rendered header; until it is set, the header's bytes read as zeros.
  void set_header(const std::string* header) { header_ = header; }
  // Copies image bytes [offset, offset+len) into dst, zero-filling past the end of the file.
  void Copy(uint64_t offset, uint64_t len, unsigned char* dst) const;
  // Hashes data-region bytes of image range [offset, offset+len) straight from the sources.
  void HashFromSources(uint64_t offset, uint64_t len, TensorHasher* hasher) const;

 private:
  const std::vector<TensorSource>& sources_;
  const std::string* header_ = nullptr;
  uint64_t header_size_, total_;
};

// The content id of tensors given in file order with their digests: XXH3-64 (hex) of "<name>:<tensor digest
// hex>\n" for every tensor, the same for the same tensors whatever the metadata.
std::string ContentId(const std::vector<format::TensorInfo>& infos, const std::vector<uint64_t>& digests);

}  // namespace ckptio::writer
