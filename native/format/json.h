// A strict parser for the JSON that a safetensors header may contain, and the string escaper the writer
// uses. Hand-written on purpose: the grammar we accept is a small subset (objects, arrays, strings,
// non-negative integers), every byte is untrusted, and the parser is fuzzed (test/fuzz). It validates UTF-8,
// rejects lone surrogates, duplicate keys are kept so the schema check can name them, nesting is capped so
// no input can exhaust the stack, and integers that overflow uint64 are rejected.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ckptio::format {

struct JsonValue {
  enum class Type { kObject, kArray, kString, kInteger };
  Type type = Type::kObject;
  std::string string;
  uint64_t integer = 0;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;
};

// On failure returns false and sets *error to a message that names the byte offset.
bool ParseJson(const char* data, size_t len, JsonValue* out, std::string* error);

bool IsValidUtf8(const char* data, size_t len);

// Appends the UTF-8 encoding of code point `cp` (at most 0x10FFFF, not a surrogate) to *out.
void AppendUtf8(uint32_t cp, std::string* out);

// Appends `s` as a JSON string literal (with quotes) to *out.
void AppendJsonString(const std::string& s, std::string* out);

const char* JsonTypeName(JsonValue::Type type);

}  // namespace ckptio::format
