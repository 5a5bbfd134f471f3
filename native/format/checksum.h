// XXH3-64 (docs/format.md says why): one-shot, streaming, and the fixed-width hex form used in headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace ckptio::format {

uint64_t Hash64(const void* data, size_t len);

class StreamingHash {
 public:
  StreamingHash();
  ~StreamingHash();
  StreamingHash(StreamingHash&&) noexcept;
  StreamingHash& operator=(StreamingHash&&) noexcept;
  void Update(const void* data, size_t len);
  void UpdateU64(uint64_t value);  // little-endian
  void UpdateString(std::string_view s);  // length-prefixed, so ("ab","c") != ("a","bc")
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

constexpr size_t kHexDigestLen = 16;
std::string Hex(uint64_t value);
bool ParseHex(std::string_view hex, uint64_t* out);

}  // namespace ckptio::format
