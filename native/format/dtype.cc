#include "dtype.h"

namespace ckptio::format {
namespace {

// The dtypes ckptio writes, in enum order.
constexpr DTypeInfo kInfos[] = {
    {DType::kF64, "F64", "float64", 8, 64, false},           {DType::kF32, "F32", "float32", 4, 32, false},
    {DType::kF16, "F16", "float16", 2, 16, false},           {DType::kBF16, "BF16", "bfloat16", 2, 16, false},
    {DType::kF8E4M3, "F8_E4M3", "float8_e4m3", 1, 8, false}, {DType::kF8E5M2, "F8_E5M2", "float8_e5m2", 1, 8, false},
    {DType::kI64, "I64", "int64", 8, 64, false},             {DType::kI32, "I32", "int32", 4, 32, false},
    {DType::kI16, "I16", "int16", 2, 16, false},             {DType::kI8, "I8", "int8", 1, 8, false},
    {DType::kU64, "U64", "uint64", 8, 64, false},            {DType::kU32, "U32", "uint32", 4, 32, false},
    {DType::kU16, "U16", "uint16", 2, 16, false},            {DType::kU8, "U8", "uint8", 1, 8, false},
    {DType::kBool, "BOOL", "bool", 1, 8, false},
};

// The reference's newer dtypes, read as raw bytes, in enum order after kInfos. A separate table, so that what
// ckptio writes (kInfos, FromJsName) stays exactly the set it can also return as typed arrays.
constexpr DTypeInfo kRawInfos[] = {
    {DType::kF8E8M0, "F8_E8M0", "float8_e8m0", 1, 8, true},
    {DType::kF8E4M3FNUZ, "F8_E4M3FNUZ", "float8_e4m3fnuz", 1, 8, true},
    {DType::kF8E5M2FNUZ, "F8_E5M2FNUZ", "float8_e5m2fnuz", 1, 8, true},
    {DType::kC64, "C64", "complex64", 1, 64, true},
    {DType::kF4, "F4", "float4", 1, 4, true},
    {DType::kF6E2M3, "F6_E2M3", "float6_e2m3", 1, 6, true},
    {DType::kF6E3M2, "F6_E3M2", "float6_e3m2", 1, 6, true},
};

constexpr size_t kCount = sizeof kInfos / sizeof kInfos[0];
constexpr size_t kRawCount = sizeof kRawInfos / sizeof kRawInfos[0];

constexpr bool InEnumOrder() {
  for (size_t i = 0; i < kCount; ++i) {
    if (static_cast<size_t>(kInfos[i].dtype) != i || kInfos[i].raw || kInfos[i].bits != 8 * kInfos[i].size) return false;
  }
  for (size_t i = 0; i < kRawCount; ++i) {
    if (static_cast<size_t>(kRawInfos[i].dtype) != kCount + i || !kRawInfos[i].raw || kRawInfos[i].size != 1) return false;
  }
  return true;
}
static_assert(InEnumOrder(), "dtype tables out of enum order");

}  // namespace

const DTypeInfo& Info(DType dtype) {
  const size_t i = static_cast<size_t>(dtype);
  return i < kCount ? kInfos[i] : kRawInfos[i - kCount];
}

size_t DTypeCount() { return kCount; }

size_t ReadableDTypeCount() { return kCount + kRawCount; }

bool FromSafetensorsName(std::string_view name, DType* out) {
  for (const DTypeInfo& info : kInfos) {
    if (name == info.safetensors_name) {
      *out = info.dtype;
      return true;
    }
  }
  for (const DTypeInfo& info : kRawInfos) {
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
