#include "header.h"

#include <algorithm>
#include <cstring>

#include "checksum.h"
#include "json.h"

namespace ckptio::format {
namespace {

std::string Quote(const std::string& s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

uint64_t HeaderHash(const std::vector<TensorInfo>& tensors, const Metadata& metadata) {
  StreamingHash h;
  h.UpdateU64(tensors.size());
  for (const TensorInfo& t : tensors) {
    h.UpdateString(t.name);
    h.UpdateString(Info(t.dtype).safetensors_name);
    h.UpdateU64(t.shape.size());
    for (uint64_t d : t.shape) h.UpdateU64(d);
    h.UpdateU64(t.begin);
    h.UpdateU64(t.end);
  }
  std::vector<const std::pair<std::string, std::string>*> sorted;
  for (const auto& kv : metadata) {
    if (kv.first != kHeaderHashKey) sorted.push_back(&kv);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  h.UpdateU64(sorted.size());
  for (const auto* kv : sorted) {
    h.UpdateString(kv->first);
    h.UpdateString(kv->second);
  }
  return h.Digest();
}

uint64_t LoadLe64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool IsReservedKey(std::string_view key) {
  for (const char* reserved : kReservedKeys) {
    if (key == reserved) return true;
  }
  return false;
}

Status TensorBytes(const TensorInfo& tensor, uint64_t* bytes) {
  const DTypeInfo& dt = Info(tensor.dtype);
  auto overflow = [&] {
    return Status::Format("tensor " + Quote(tensor.name) + ": shape " + ShapeString(tensor.shape) +
                          " overflows 64 bits");
  };
  uint64_t elements = 1;
  for (uint64_t d : tensor.shape) {
    if (d != 0 && elements > UINT64_MAX / d) return overflow();
    elements *= d;
  }
  if (elements > UINT64_MAX / dt.bits) return overflow();
  const uint64_t bits = elements * dt.bits;
  if (bits % 8 != 0) {
    return Status::Format("tensor " + Quote(tensor.name) + ": shape " + ShapeString(tensor.shape) + " x " +
                          dt.safetensors_name + " is " + std::to_string(bits) + " bits, not a whole number of bytes");
  }
  *bytes = bits / 8;
  return Status::Ok();
}

Status PlanLayout(std::vector<TensorInfo>* tensors, uint64_t* data_len) {
  for (const TensorInfo& t : *tensors) {
    if (t.name == "__metadata__") return Status::Invalid("tensor name \"__metadata__\" is reserved");
    if (!IsValidUtf8(t.name.data(), t.name.size())) return Status::Invalid("tensor name is not valid UTF-8");
  }
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    const size_t sa = Info(a.dtype).bits, sb = Info(b.dtype).bits;
    return sa != sb ? sa > sb : a.name < b.name;
  });
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors->size(); ++i) {
    TensorInfo& t = (*tensors)[i];
    if (i > 0 && (*tensors)[i - 1].name == t.name) return Status::Invalid("duplicate tensor name " + Quote(t.name));
    uint64_t bytes;
    Status s = TensorBytes(t, &bytes);
    if (!s.ok()) return Status::Invalid(s.message);
    t.begin = offset;
    t.end = offset + bytes;
    offset = t.end;
  }
  // Names can tie only across dtype sizes; catch duplicates the sort did not put side by side.
  std::vector<const std::string*> names;
  for (const TensorInfo& t : *tensors) names.push_back(&t.name);
  std::sort(names.begin(), names.end(), [](auto* a, auto* b) { return *a < *b; });
  for (size_t i = 1; i < names.size(); ++i) {
    if (*names[i] == *names[i - 1]) return Status::Invalid("duplicate tensor name " + Quote(*names[i]));
  }
  *data_len = offset;
  return Status::Ok();
}

Status CheckUserMetadata(const Metadata& metadata) {
  std::vector<const std::string*> keys;
  for (const auto& [key, value] : metadata) {
    if (IsReservedKey(key)) return Status::Invalid("metadata key " + Quote(key) + " is reserved for ckptio");
    if (!IsValidUtf8(key.data(), key.size()) || !IsValidUtf8(value.data(), value.size())) {
      return Status::Invalid("metadata key or value is not valid UTF-8");
    }
    keys.push_back(&key);
  }
  std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (*keys[i] == *keys[i - 1]) return Status::Invalid("duplicate metadata key " + Quote(*keys[i]));
  }
  return Status::Ok();
}

std::string RenderHeader(const std::vector<TensorInfo>& tensors, const Metadata& user_metadata,
                         const std::vector<uint64_t>* tensor_hashes) {
  Metadata metadata = user_metadata;
  if (tensor_hashes) {
    metadata.emplace_back(kFormatKey, kFormatVersion);
    metadata.emplace_back(kChecksumKey, kChecksumName);
    std::string hashes;
    for (size_t i = 0; i < tensor_hashes->size(); ++i) {
      if (i) hashes += ",";
      hashes += Hex((*tensor_hashes)[i]);
    }
    metadata.emplace_back(kTensorHashesKey, hashes);
    metadata.emplace_back(kHeaderHashKey, Hex(HeaderHash(tensors, metadata)));
  }
  std::sort(metadata.begin(), metadata.end());

  std::string json = "{\"__metadata__\":{";
  for (size_t i = 0; i < metadata.size(); ++i) {
    if (i) json += ",";
    AppendJsonString(metadata[i].first, &json);
    json += ":";
    AppendJsonString(metadata[i].second, &json);
  }
  json += "}";
  for (const TensorInfo& t : tensors) {
    json += ",";
    AppendJsonString(t.name, &json);
    json += ":{\"dtype\":\"";
    json += Info(t.dtype).safetensors_name;
    json += "\",\"shape\":" + ShapeString(t.shape);
    json += ",\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

Status ParseHeader(const unsigned char* file, uint64_t file_size, ParsedHeader* out) {
  if (file_size < 8) {
    return Status::Format("file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  }
  const uint64_t n = LoadLe64(file);
  if (n > kMaxHeaderLen) {
    return Status::Format("header length " + std::to_string(n) + " exceeds the " +
                          std::to_string(kMaxHeaderLen) + "-byte cap");
  }
  if (n > file_size - 8) {
    return Status::Format("header length " + std::to_string(n) + " runs past the end of the file (" +
                          std::to_string(file_size) + " bytes): truncated or corrupt");
  }
  if (n < 2) return Status::Format("header length " + std::to_string(n) + " is too small for a JSON object");
  const char* json = reinterpret_cast<const char*>(file + 8);
  if (!IsValidUtf8(json, n)) return Status::Format("header is not valid UTF-8");
  JsonValue root;
  std::string error;
  if (!ParseJson(json, n, &root, &error)) return Status::Format("header is not valid JSON: " + error);
  if (root.type != JsonValue::Type::kObject) return Status::Format("header is not a JSON object");

  out->header_len = n;
  out->data_start = 8 + n;
  out->data_len = file_size - out->data_start;
  out->tensors.clear();
  out->metadata.clear();
  bool seen_metadata = false;
  for (auto& [key, value] : root.object) {
    if (key == "__metadata__") {
      if (seen_metadata) return Status::Format("duplicate \"__metadata__\" entry");
      seen_metadata = true;
      if (value.type != JsonValue::Type::kObject) return Status::Format("\"__metadata__\" is not an object");
      for (auto& [mkey, mvalue] : value.object) {
        if (mvalue.type != JsonValue::Type::kString) {
          return Status::Format("metadata " + Quote(mkey) + " is a " + JsonTypeName(mvalue.type) +
                                ", not a string");
        }
        out->metadata.emplace_back(mkey, mvalue.string);
      }
      continue;
    }
    if (value.type != JsonValue::Type::kObject) return Status::Format("tensor " + Quote(key) + " is not an object");
    TensorInfo t;
    t.name = key;
    bool has_dtype = false, has_shape = false, has_offsets = false;
    for (auto& [field, fv] : value.object) {
      if (field == "dtype") {
        if (has_dtype) return Status::Format("tensor " + Quote(key) + ": duplicate \"dtype\"");
        has_dtype = true;
        if (fv.type != JsonValue::Type::kString || !FromSafetensorsName(fv.string, &t.dtype)) {
          return Status::Format("tensor " + Quote(key) + ": unknown dtype " +
                                (fv.type == JsonValue::Type::kString ? Quote(fv.string) : "(not a string)"));
        }
      } else if (field == "shape") {
        if (has_shape) return Status::Format("tensor " + Quote(key) + ": duplicate \"shape\"");
        has_shape = true;
        if (fv.type != JsonValue::Type::kArray) return Status::Format("tensor " + Quote(key) + ": shape is not an array");
        for (const JsonValue& d : fv.array) {
          if (d.type != JsonValue::Type::kInteger) {
            return Status::Format("tensor " + Quote(key) + ": shape holds a non-integer");
          }
          t.shape.push_back(d.integer);
        }
      } else if (field == "data_offsets") {
        if (has_offsets) return Status::Format("tensor " + Quote(key) + ": duplicate \"data_offsets\"");
        has_offsets = true;
        if (fv.type != JsonValue::Type::kArray || fv.array.size() != 2 ||
            fv.array[0].type != JsonValue::Type::kInteger || fv.array[1].type != JsonValue::Type::kInteger) {
          return Status::Format("tensor " + Quote(key) + ": data_offsets is not [begin, end]");
        }
        t.begin = fv.array[0].integer;
        t.end = fv.array[1].integer;
      } else {
        return Status::Format("tensor " + Quote(key) + ": unknown field " + Quote(field));
      }
    }
    if (!has_dtype || !has_shape || !has_offsets) {
      return Status::Format("tensor " + Quote(key) + ": missing dtype, shape or data_offsets");
    }
    if (t.begin > t.end) return Status::Format("tensor " + Quote(key) + ": data_offsets begin > end");
    if (t.end > out->data_len) {
      return Status::Format("tensor " + Quote(key) + ": data_offsets [" + std::to_string(t.begin) + "," +
                            std::to_string(t.end) + "] out of range of the " + std::to_string(out->data_len) +
                            "-byte data region (truncated file?)");
    }
    uint64_t bytes;
    Status s = TensorBytes(t, &bytes);
    if (!s.ok()) return s;
    if (bytes != t.end - t.begin) {
      return Status::Format("tensor " + Quote(key) + ": shape " + ShapeString(t.shape) + " x " +
                            Info(t.dtype).safetensors_name + " is " + std::to_string(bytes) +
                            " bytes but data_offsets span " + std::to_string(t.end - t.begin));
    }
    out->tensors.push_back(std::move(t));
  }

  std::vector<const std::string*> names;
  for (const TensorInfo& t : out->tensors) names.push_back(&t.name);
  std::sort(names.begin(), names.end(), [](auto* a, auto* b) { return *a < *b; });
  for (size_t i = 1; i < names.size(); ++i) {
    if (*names[i] == *names[i - 1]) return Status::Format("duplicate tensor name " + Quote(*names[i]));
  }
  std::vector<const std::string*> keys;
  for (const auto& kv : out->metadata) keys.push_back(&kv.first);
  std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (*keys[i] == *keys[i - 1]) return Status::Format("duplicate metadata key " + Quote(*keys[i]));
  }

  // Data order, with the writer's tie-break for empty tensors, so the header digest does not depend on the
  // order of keys in the JSON.
  std::sort(out->tensors.begin(), out->tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    const size_t sa = Info(a.dtype).bits, sb = Info(b.dtype).bits;
    return sa != sb ? sa > sb : a.name < b.name;
  });
  uint64_t expected = 0;
  for (const TensorInfo& t : out->tensors) {
    if (t.begin < expected) {
      return Status::Format("tensor " + Quote(t.name) + ": data_offsets overlap the previous tensor");
    }
    if (t.begin > expected) {
      return Status::Format("tensor " + Quote(t.name) + ": hole of " + std::to_string(t.begin - expected) +
                            " bytes before its data");
    }
    expected = t.end;
  }
  if (expected != out->data_len) {
    return Status::Format("data region is " + std::to_string(out->data_len) + " bytes but tensors cover " +
                          std::to_string(expected) + " (trailing bytes or truncated file)");
  }

  // The file is valid for the reference reader from here on; what follows are ckptio's own limits and keys.
  // A dim above 2^53 - 1 cannot come back exactly as a JavaScript number: rejected, never rounded (only a
  // zero-element tensor can have one, so this is checked after the layout).
  for (const TensorInfo& t : out->tensors) {
    for (uint64_t d : t.shape) {
      if (d > kMaxDim) {
        return Status::Format("tensor " + Quote(t.name) + ": dimension " + std::to_string(d) +
                              " is above 2^53-1, the largest a JavaScript number holds exactly (shape " +
                              ShapeString(t.shape) + "); ckptio rejects it rather than return it rounded");
      }
    }
  }

  // ckptio's own keys. A file without them is plain safetensors: readable, but not verifiable.
  const std::string* format = nullptr;
  const std::string* algo = nullptr;
  const std::string* tensor_hashes = nullptr;
  const std::string* header_hash = nullptr;
  for (const auto& [key, value] : out->metadata) {
    if (key == kFormatKey) format = &value;
    else if (key == kChecksumKey) algo = &value;
    else if (key == kTensorHashesKey) tensor_hashes = &value;
    else if (key == kHeaderHashKey) header_hash = &value;
  }
  out->has_checksums = false;
  if (!format) return Status::Ok();
  if (*format != kFormatVersion) return Status::Format("unsupported ckptio format version " + Quote(*format));
  if (!algo || *algo != kChecksumName) return Status::Format(std::string("missing or unknown ") + kChecksumKey);
  if (!tensor_hashes || !header_hash) return Status::Format("missing ckptio checksum keys");
  if (!ParseHex(*header_hash, &out->header_hash)) return Status::Format(std::string("malformed ") + kHeaderHashKey);
  out->tensor_hashes.clear();
  const std::string& list = *tensor_hashes;
  if (!out->tensors.empty()) {
    size_t pos = 0;
    while (true) {
      const size_t comma = list.find(',', pos);
      const size_t len = (comma == std::string::npos ? list.size() : comma) - pos;
      uint64_t v;
      if (!ParseHex(std::string_view(list).substr(pos, len), &v)) return Status::Format(std::string("malformed ") + kTensorHashesKey);
      out->tensor_hashes.push_back(v);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  } else if (!list.empty()) {
    return Status::Format(std::string("malformed ") + kTensorHashesKey);
  }
  if (out->tensor_hashes.size() != out->tensors.size()) {
    return Status::Format(std::string(kTensorHashesKey) + " lists " + std::to_string(out->tensor_hashes.size()) +
                          " digests for " + std::to_string(out->tensors.size()) + " tensors");
  }
  out->has_checksums = true;
  return Status::Ok();
}

Status VerifyHeaderDigest(const ParsedHeader& header) {
  if (header.has_checksums && HeaderHash(header.tensors, header.metadata) != header.header_hash) {
    return Status::Checksum("header checksum mismatch: a tensor name, dtype, shape, offset or metadata entry "
                            "was altered");
  }
  return Status::Ok();
}

Status VerifyChecksums(const ParsedHeader& header, const unsigned char* file) {
  if (!header.has_checksums) {
    return Status::Checksum("file has no ckptio checksums (plain safetensors); read it with verify: false");
  }
  if (HeaderHash(header.tensors, header.metadata) != header.header_hash) {
    return Status::Checksum("header checksum mismatch: a tensor name, dtype, shape, offset or metadata entry "
                            "was altered");
  }
  const unsigned char* data = file + header.data_start;
  for (size_t i = 0; i < header.tensors.size(); ++i) {
    const TensorInfo& t = header.tensors[i];
    if (Hash64(data + t.begin, t.end - t.begin) != header.tensor_hashes[i]) {
      return Status::Checksum("checksum mismatch in tensor " + Quote(t.name) + " (data bytes " +
                              std::to_string(t.begin) + ".." + std::to_string(t.end) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace ckptio::format
