#pragma once
#include <cstddef>
#include <string_view>

namespace ckptio::format {

enum class DType { kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool };

struct DTypeInfo {
  DType dtype;
  const char* safetensors_name;  // as in the file header: "F32"
  const char* js_name;           // as in the TypeScript API: "float32"
  size_t size;
};

const DTypeInfo& Info(DType dtype);
bool FromSafetensorsName(std::string_view name, DType* out);
bool FromJsName(std::string_view name, DType* out);

}  // namespace ckptio::format
