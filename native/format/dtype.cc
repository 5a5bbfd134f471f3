#include "dtype.h"

namespace ckptio::format {
namespace {

constexpr DTypeInfo kInfos[] = {
    {DType::kF64, "F64", "float64", 8},       {DType::kF32, "F32", "float32", 4},
    {DType::kF16, "F16", "float16", 2},       {DType::kBF16, "BF16", "bfloat16", 2},
    {DType::kF8E4M3, "F8_E4M3", "float8_e4m3", 1}, {DType::kF8E5M2, "F8_E5M2", "float8_e5m2", 1},
    {DType::kI64, "I64", "int64", 8},         {DType::kI32, "I32", "int32", 4},
    {DType::kI16, "I16", "int16", 2},         {DType::kI8, "I8", "int8", 1},
    {DType::kU64, "U64", "uint64", 8},        {DType::kU32, "U32", "uint32", 4},
    {DType::kU16, "U16", "uint16", 2},        {DType::kU8, "U8", "uint8", 1},
    {DType::kBool, "BOOL", "bool", 1},
};

}  // namespace

const DTypeInfo& Info(DType dtype) { return kInfos[static_cast<size_t>(dtype)]; }

bool FromSafetensorsName(std::string_view name, DType* out) {
  for (const DTypeInfo& info : kInfos) {
    if (name == info.safetensors_name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

bool FromJsName(std::string_view name, DType* out) {
  for (const DTypeInfo& info : kInfos) {
    if (name == info.js_name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

}  // namespace ckptio::format
