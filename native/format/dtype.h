#pragma once
#include <cstddef>
#include <string_view>

namespace ckptio::format {

// The dtypes ckptio writes and reads as typed arrays, then (from kF8E8M0) the reference's newer dtypes, which
// ckptio only reads, as raw bytes (docs/format.md, "dtypes"). The order is the table's (dtype.cc).
enum class DType {
  kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool,
  kF8E8M0, kF8E4M3FNUZ, kF8E5M2FNUZ, kC64, kF4, kF6E2M3, kF6E3M2,
};

struct DTypeInfo {
  DType dtype;
  const char* safetensors_name;  // as in the file header: "F32"
  const char* js_name;           // as in the TypeScript API: "float32"
  // Bytes per element of the array a read returns: the element size for the typed dtypes, 1 for the raw-byte
  // ones (their bytes come back as a Uint8Array, whatever their width).
  size_t size;
  // Bits per element in the file, the reference's bit width: a tensor holds elements x bits / 8 bytes, and an
  // element count whose bits are not a whole number of bytes is invalid (F4 is 4 bits, F6_* 6).
  size_t bits;
  // Read only, as raw bytes: FromJsName does not know it, so no write accepts it.
  bool raw;
};

const DTypeInfo& Info(DType dtype);
// Every dtype the reference defines, the raw-byte ones included.
bool FromSafetensorsName(std::string_view name, DType* out);
// The dtypes ckptio writes (not the raw-byte ones).
bool FromJsName(std::string_view name, DType* out);
// How many dtypes ckptio writes: Info(static_cast<DType>(i)) for i below this, in the order (and with the codes)
// of the addon's exported `dtypes` table, which the packed tensor table's dtype codes index.
size_t DTypeCount();
// Every dtype a read can return, the raw-byte ones included: Info(static_cast<DType>(i)) for i below this.
size_t ReadableDTypeCount();

}  // namespace ckptio::format
