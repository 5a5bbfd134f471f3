#include "codec.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../format/reader.h"
#include "../writer/file_image.h"
#include "args.h"
#include "errors.h"
#include "read.h"
#include "tensor_table.h"

namespace ckptio::addon {
namespace {

// malloc'd bytes handed to an ArrayBuffer that frees them when collected.
struct Malloced {
  unsigned char* data = nullptr;
  size_t size = 0;
  Malloced() = default;
  Malloced(const Malloced&) = delete;
  Malloced& operator=(const Malloced&) = delete;
  ~Malloced() { std::free(data); }
  unsigned char* Release() {
    unsigned char* out = data;
    data = nullptr;
    return out;
  }
};

class EncodeWorker final : public Napi::AsyncWorker {
 public:
  EncodeWorker(Napi::Env env, Napi::Value table, PackedTensors tensors, format::Metadata metadata, bool checksum)
      : Napi::AsyncWorker(env, "ckptio.encode"), deferred_(Napi::Promise::Deferred::New(env)),
        table_(Napi::Persistent(table)), tensors_(std::move(tensors)), metadata_(std::move(metadata)),
        checksum_(checksum) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::vector<writer::TensorSource> sources;
    status_ = UnpackTensors(tensors_, &sources);
    if (!status_.ok()) return;
    writer::FilePlan plan;
    status_ = writer::PlanFile(std::move(sources), metadata_, checksum_, "(encode)", &plan);
    if (!status_.ok()) return;
    writer::TensorHasher hasher(plan.infos, checksum_);
    writer::FileImage image(plan.ordered, plan.header_size, plan.total);
    image.HashFromSources(plan.header_size, plan.total - plan.header_size, &hasher);
    const std::vector<uint64_t> digests = hasher.Digests();
    const std::string header = format::RenderHeader(plan.infos, metadata_, checksum_ ? &digests : nullptr);
    if (header.size() != plan.header_size) {
      status_ = Status::Invalid("internal error: the header size changed while encoding", "(encode)");
      return;
    }
    image.set_header(&header);
    out_.size = plan.total;
    out_.data = static_cast<unsigned char*>(std::malloc(plan.total > 0 ? plan.total : 1));
    if (!out_.data) {
      status_ = Status::Os(ENOMEM, "malloc", "(encode)");
      return;
    }
    image.Copy(0, plan.total, out_.data);
    if (checksum_) content_id_ = writer::ContentId(plan.infos, digests);
  }
  void OnOK() override {
    Napi::Env env = Env();
    table_.Reset();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_));
      return;
    }
    const size_t size = out_.size;
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, out_.Release(), size, [](Napi::Env, void* data) { std::free(data); });
    Napi::Object out = Napi::Object::New(env);
    out.Set("bytes", Napi::Uint8Array::New(env, size, buffer, 0));
    if (!content_id_.empty()) out.Set("contentId", content_id_);
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> table_;  // keeps the tensors' memory alive while the pool reads it
  PackedTensors tensors_;
  format::Metadata metadata_;
  bool checksum_;
  Status status_;
  Malloced out_;
  std::string content_id_;
};

class DecodeWorker final : public Napi::AsyncWorker {
 public:
  DecodeWorker(Napi::Env env, Napi::Uint8Array bytes, bool verify)
      : Napi::AsyncWorker(env, "ckptio.decode"), deferred_(Napi::Promise::Deferred::New(env)),
        bytes_(Napi::Persistent(bytes)), data_(bytes.Data()), size_(bytes.ByteLength()),
        offset_(bytes.ByteOffset()), verify_(verify) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    status_ = format::ParseHeader(data_, size_, &header_);
    if (!status_.ok()) return;
    if (verify_) {
      if (!header_.has_checksums) {
        status_ = Status::Format("the file has no ckptio checksums; decode it with verify: false");
        return;
      }
      status_ = format::VerifyChecksums(header_, data_);
    }
    if (status_.ok() && header_.has_checksums) content_id_ = writer::ContentId(header_.tensors, header_.tensor_hashes);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Uint8Array bytes = bytes_.Value();
    bytes_.Reset();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_));
      return;
    }
    Napi::Object tensors = PackedTable(env, header_.tensors, offset_ + header_.data_start, bytes.ArrayBuffer());
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : header_.metadata) {
      if (!format::IsReservedKey(key)) DefineString(env, metadata, key, value);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("tensors", tensors);
    out.Set("metadata", metadata);
    out.Set("bytes", static_cast<double>(size_));
    out.Set("verified", verify_);
    out.Set("checksummed", header_.has_checksums);
    if (!content_id_.empty()) out.Set("contentId", content_id_);
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::string content_id_;
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> bytes_;  // keeps the bytes alive while the pool parses them
  const unsigned char* data_;
  size_t size_;
  size_t offset_;
  bool verify_;
  Status status_;
  format::ParsedHeader header_;
};

bool BoolOption(const Napi::Value& options, const char* key, bool fallback) {
  if (!options.IsObject()) return fallback;
  Napi::Value v = options.As<Napi::Object>().Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

}  // namespace

Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  PackedTensors tensors;
  format::Metadata metadata;
  if (!GetTensors(env, info[0], &tensors, &error) || !GetMetadata(env, info[1], &metadata, &error)) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Rejected(env, error);
  }
  auto* worker = new EncodeWorker(env, info[0], std::move(tensors), std::move(metadata), BoolOption(info[2], "checksum", true));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Rejected(env, Status::Invalid("bytes must be a Uint8Array", ""));
  }
  auto* worker = new DecodeWorker(env, info[0].As<Napi::Uint8Array>(), BoolOption(info[1], "verify", true));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace ckptio::addon
