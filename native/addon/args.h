// Argument checks and JS -> native conversion, on the JS thread. Each Get* returns false with *error set (an
// ECKPT_ARGS status naming the argument) instead of throwing; the caller rejects or throws it.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../format/header.h"
#include "../io/status.h"
#include "../writer/commit.h"

namespace ckptio::addon {

// A non-empty string without NUL bytes.
bool GetPath(const Napi::Value& v, const char* what, std::string* out, Status* error);

// A TypedArray, Buffer or DataView (over an ArrayBuffer or a SharedArrayBuffer, not detached): its memory, which
// stays the caller's.
bool GetBytes(const Napi::Value& v, const std::string& what, const unsigned char** data, size_t* len, Status* error);

// undefined, null, or an object of strings. Reserved keys are the writer's to reject (format::CheckUserMetadata).
bool GetMetadata(Napi::Env env, const Napi::Value& v, format::Metadata* out, Status* error);

// write()/save() options: { direct: 'auto'|'on'|'off', preallocate, writeBehindBytes, copy, checksum }; anything
// that is not an object leaves the defaults.
bool GetWriteOptions(const Napi::Value& v, writer::CommitOptions* options, bool* copy, Status* error);

// A small file a save job commits after its data file (a pointer, the manifest), copied off the JS heap.
struct SmallFile {
  std::string path;
  std::string data;
};

// save()'s `after`: { files: [[path, bytes]...], removeDir, remove: [plain file names], onConsumed: function,
// onSettled: function, lane: uint32, generation: integer }; undefined is none. Absent callbacks are left empty;
// lane 0 is no lane.
struct SaveAfter {
  std::vector<SmallFile> files;
  std::string remove_dir;
  std::vector<std::string> remove;
  Napi::Function on_consumed;
  Napi::Function on_settled;
  uint32_t lane = 0;
  uint64_t generation = 0;
};
bool GetSaveAfter(const Napi::Value& v, SaveAfter* after, Status* error);

// An array of strings (remove()'s names; the writer checks that each is a plain file name).
bool GetNames(const Napi::Value& v, const char* what, std::vector<std::string>* names, Status* error);

}  // namespace ckptio::addon
