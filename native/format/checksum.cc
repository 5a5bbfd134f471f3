#include "checksum.h"

#define XXH_INLINE_ALL
#include "xxhash.h"

namespace ckptio::format {

struct StreamingHash::State {
  XXH3_state_t xxh;
};

uint64_t Hash64(const void* data, size_t len) { return XXH3_64bits(data, len); }

StreamingHash::StreamingHash() : state_(new State) { XXH3_64bits_reset(&state_->xxh); }
StreamingHash::~StreamingHash() = default;
StreamingHash::StreamingHash(StreamingHash&&) noexcept = default;
StreamingHash& StreamingHash::operator=(StreamingHash&&) noexcept = default;

void StreamingHash::Update(const void* data, size_t len) {
  if (len) XXH3_64bits_update(&state_->xxh, data, len);
}

void StreamingHash::UpdateU64(uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  Update(bytes, 8);
}

void StreamingHash::UpdateString(std::string_view s) {
  UpdateU64(s.size());
  Update(s.data(), s.size());
}

uint64_t StreamingHash::Digest() const { return XXH3_64bits_digest(&state_->xxh); }

std::string Hex(uint64_t value) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(kHexDigestLen, '0');
  for (size_t i = 0; i < kHexDigestLen; ++i) out[kHexDigestLen - 1 - i] = kDigits[(value >> (4 * i)) & 0xf];
  return out;
}

bool ParseHex(std::string_view hex, uint64_t* out) {
  if (hex.size() != kHexDigestLen) return false;
  uint64_t v = 0;
  for (char c : hex) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace ckptio::format
