// The file format (docs/format.md has the full byte layout):
//
//   [u64 LE header_len N][N bytes of JSON header, space-padded to a multiple of 8][data region]
//
// The header is a safetensors header: {"__metadata__": {string: string}, "<name>": {"dtype": "F32",
// "shape": [..], "data_offsets": [begin, end]}, ...} with offsets relative to the data region, which is
// contiguous (no holes, no overlaps) and ends exactly at the end of the file. ckptio adds, inside
// __metadata__: ckptio.format ("1"), ckptio.checksum ("xxh3-64"), ckptio.tensor_xxh3 (one 16-hex digest per
// tensor, comma-separated, in data order) and ckptio.header_xxh3 (a digest over every tensor's name, dtype,
// shape and offsets and every other metadata entry, so a flipped byte anywhere in the header is caught).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../io/status.h"
#include "dtype.h"

namespace ckptio::format {

// The reference reader's cap on the header length N (its MAX_HEADER_SIZE): 100,000,000 bytes, inclusive.
constexpr uint64_t kMaxHeaderLen = 100'000'000;
// The largest dimension a read returns: 2^53 - 1, the largest integer a JavaScript number holds exactly (and the
// largest the writer accepts). A file with a larger one (valid for the reference only when the tensor has zero
// elements) is rejected with ECKPT_FORMAT rather than returned rounded.
constexpr uint64_t kMaxDim = (1ull << 53) - 1;
// The reserved metadata keys: the ones the native writer adds to __metadata__ (see the top of this file), defined
// here once. A caller's metadata may not use them (CheckUserMetadata), and a read does not return them.
// src/format/metadata-keys.ts holds the keys the TypeScript layer writes; none of them is one of these.
inline constexpr const char kFormatKey[] = "ckptio.format";
inline constexpr const char kFormatVersion[] = "1";
inline constexpr const char kChecksumKey[] = "ckptio.checksum";
inline constexpr const char kChecksumName[] = "xxh3-64";
inline constexpr const char kTensorHashesKey[] = "ckptio.tensor_xxh3";
inline constexpr const char kHeaderHashKey[] = "ckptio.header_xxh3";
inline constexpr const char* kReservedKeys[] = {kFormatKey, kChecksumKey, kTensorHashesKey, kHeaderHashKey};

// One of kReservedKeys.
bool IsReservedKey(std::string_view key);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;  // relative to the data region
  uint64_t end = 0;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// A tensor's byte length by the reference's rule: the element count (the product of the dims, overflow-checked
// left to right, so a zero dim after dims whose product overflows does not save it), times the dtype's bits
// (overflow-checked), which must be a whole number of bytes. *bytes gets that number of bytes.
Status TensorBytes(const TensorInfo& tensor, uint64_t* bytes);

// Sorts tensors into file order (dtype size descending, then name bytewise), rejects duplicate or
// invalid names and assigns data offsets. *data_len gets the size of the data region.
Status PlanLayout(std::vector<TensorInfo>* tensors, uint64_t* data_len);

// Rejects reserved (ckptio.format, ...) and duplicate keys and invalid UTF-8.
Status CheckUserMetadata(const Metadata& metadata);

// The 8-byte length prefix plus the padded JSON header. Its length does not depend on the hash values
// (fixed-width hex), so a writer can reserve the space before the data is hashed. Without tensor_hashes
// (nullptr) no ckptio keys are written at all: a plain safetensors file, readable only with verify off.
std::string RenderHeader(const std::vector<TensorInfo>& tensors, const Metadata& user_metadata,
                         const std::vector<uint64_t>* tensor_hashes);

struct ParsedHeader {
  uint64_t header_len = 0;
  uint64_t data_start = 0;
  uint64_t data_len = 0;
  std::vector<TensorInfo> tensors;  // in data order
  Metadata metadata;                // every __metadata__ entry, ckptio's included
  bool has_checksums = false;
  std::vector<uint64_t> tensor_hashes;  // parallel to tensors when has_checksums
  uint64_t header_hash = 0;
};

// Strict validation of framing, JSON and layout (not of checksums). Never reads outside [file, file+size).
Status ParseHeader(const unsigned char* file, uint64_t file_size, ParsedHeader* out);

// Verifies the header digest and every tensor digest; the message names the first tensor at fault.
Status VerifyChecksums(const ParsedHeader& header, const unsigned char* file);

// Verifies the header digest alone (names, dtypes, shapes, offsets, metadata), which needs no tensor data.
// A header without ckptio checksums passes (there is nothing to check).
Status VerifyHeaderDigest(const ParsedHeader& header);

}  // namespace ckptio::format
