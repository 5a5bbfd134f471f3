#include "json.h"

#include <cstdio>

namespace ckptio::format {
namespace {

constexpr int kMaxDepth = 16;

// Length of the valid UTF-8 sequence starting at p, or 0 if it is not one.
size_t Utf8SequenceLength(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; }
  else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; }
  else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; }
  else return 0;
  if (avail < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;  // overlong
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

class Parser {
 public:
  Parser(const char* data, size_t len)
      : p_(reinterpret_cast<const unsigned char*>(data)), len_(len) {}

  bool ParseDocument(JsonValue* out, std::string* error) {
    SkipSpace();
    if (!ParseValue(out, 0)) {
      *error = error_;
      return false;
    }
    SkipSpace();
    if (pos_ != len_) {
      Fail("unexpected bytes after the JSON value");
      *error = error_;
      return false;
    }
    return true;
  }

 private:
  bool Fail(const char* what) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s at byte %zu of the header", what, pos_);
    error_ = buf;
    return false;
  }

  void SkipSpace() {
    while (pos_ < len_ && (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r')) ++pos_;
  }

  bool ParseValue(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return Fail("JSON nested too deeply");
    if (pos_ >= len_) return Fail("unexpected end of JSON");
    const unsigned char c = p_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out->type = JsonValue::Type::kString;
      return ParseString(&out->string);
    }
    if (c >= '0' && c <= '9') return ParseInteger(out);
    if (c == '-') return Fail("negative number (only non-negative integers are allowed)");
    if (c == 't' || c == 'f' || c == 'n') return Fail("true/false/null are not allowed in a safetensors header");
    return Fail("invalid JSON value");
  }

  bool ParseInteger(JsonValue* out) {
    out->type = JsonValue::Type::kInteger;
    if (p_[pos_] == '0' && pos_ + 1 < len_ && p_[pos_ + 1] >= '0' && p_[pos_ + 1] <= '9') {
      return Fail("number with a leading zero");
    }
    uint64_t v = 0;
    while (pos_ < len_ && p_[pos_] >= '0' && p_[pos_] <= '9') {
      const uint64_t d = p_[pos_] - '0';
      if (v > (UINT64_MAX - d) / 10) return Fail("integer overflows 64 bits");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ < len_ && (p_[pos_] == '.' || p_[pos_] == 'e' || p_[pos_] == 'E')) {
      return Fail("fractional number (only integers are allowed)");
    }
    out->integer = v;
    return true;
  }

  bool ParseHex4(uint32_t* out) {
    if (len_ - pos_ < 4) return Fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const unsigned char c = p_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return Fail("invalid \\u escape");
    }
    *out = v;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    out->clear();
    while (true) {
      if (pos_ >= len_) return Fail("unterminated string");
      // A run of plain ASCII (no quote, backslash or control character) is appended in one piece: a header of
      // 10,000 tensors is mostly such runs, and a byte-at-a-time append was its parse's largest cost.
      size_t run = pos_;
      while (run < len_ && p_[run] >= 0x20 && p_[run] < 0x80 && p_[run] != '"' && p_[run] != '\\') ++run;
      if (run > pos_) {
        out->append(reinterpret_cast<const char*>(p_ + pos_), run - pos_);
        pos_ = run;
        continue;
      }
      const unsigned char c = p_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in string");
      if (c == '\\') {
        if (++pos_ >= len_) return Fail("unterminated escape");
        const unsigned char e = p_[pos_++];
        switch (e) {
          case '"': out->push_back('"'); break;
          case '\\': out->push_back('\\'); break;
          case '/': out->push_back('/'); break;
          case 'b': out->push_back('\b'); break;
          case 'f': out->push_back('\f'); break;
          case 'n': out->push_back('\n'); break;
          case 'r': out->push_back('\r'); break;
          case 't': out->push_back('\t'); break;
          case 'u': {
            uint32_t cp;
            if (!ParseHex4(&cp)) return false;
            if (cp >= 0xdc00 && cp <= 0xdfff) return Fail("lone low surrogate in \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
              uint32_t low;
              if (len_ - pos_ < 2 || p_[pos_] != '\\' || p_[pos_ + 1] != 'u') return Fail("lone high surrogate");
              pos_ += 2;
              if (!ParseHex4(&low)) return false;
              if (low < 0xdc00 || low > 0xdfff) return Fail("invalid surrogate pair");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            AppendUtf8(cp, out);
            break;
          }
          default:
            --pos_;
            return Fail("invalid escape");
        }
        continue;
      }
      const size_t n = Utf8SequenceLength(p_ + pos_, len_ - pos_);
      if (n == 0) return Fail("invalid UTF-8");
      out->append(reinterpret_cast<const char*>(p_ + pos_), n);
      pos_ += n;
    }
  }

  bool ParseArray(JsonValue* out, int depth) {
    out->type = JsonValue::Type::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < len_ && p_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      out->array.emplace_back();
      SkipSpace();
      if (!ParseValue(&out->array.back(), depth + 1)) return false;
      SkipSpace();
      if (pos_ >= len_) return Fail("unterminated array");
      if (p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (p_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']' in array");
    }
  }

  bool ParseObject(JsonValue* out, int depth) {
    out->type = JsonValue::Type::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < len_ && p_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= len_ || p_[pos_] != '"') return Fail("expected a string key in object");
      out->object.emplace_back();
      if (!ParseString(&out->object.back().first)) return false;
      SkipSpace();
      if (pos_ >= len_ || p_[pos_] != ':') return Fail("expected ':' after object key");
      ++pos_;
      SkipSpace();
      if (!ParseValue(&out->object.back().second, depth + 1)) return false;
      SkipSpace();
      if (pos_ >= len_) return Fail("unterminated object");
      if (p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (p_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or '}' in object");
    }
  }

  const unsigned char* p_;
  size_t len_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}


bool ParseJson(const char* data, size_t len, JsonValue* out, std::string* error) {
  Parser parser(data, len);
  return parser.ParseDocument(out, error);
}

bool IsValidUtf8(const char* data, size_t len) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < len) {
    const size_t n = Utf8SequenceLength(p + i, len - i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void AppendJsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

const char* JsonTypeName(JsonValue::Type type) {
  switch (type) {
    case JsonValue::Type::kObject: return "object";
    case JsonValue::Type::kArray: return "array";
    case JsonValue::Type::kString: return "string";
    case JsonValue::Type::kInteger: return "integer";
  }
  return "?";
}

}  // namespace ckptio::format
