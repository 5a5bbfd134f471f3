#include "file_image.h"

#include <algorithm>
#include <cstring>

namespace ckptio::writer {

Status PlanFile(std::vector<TensorSource> tensors, const format::Metadata& metadata, bool checksum,
                const std::string& path, FilePlan* out) {
  Status s = format::CheckUserMetadata(metadata);
  if (!s.ok()) return s;
  out->infos.clear();
  for (const TensorSource& t : tensors) out->infos.push_back(t.info);
  uint64_t data_len = 0;
  s = format::PlanLayout(&out->infos, &data_len);
  if (!s.ok()) return s;
  // Put the sources in file order with their offsets.
  std::sort(tensors.begin(), tensors.end(), [](const TensorSource& a, const TensorSource& b) { return a.info.name < b.info.name; });
  out->ordered.clear();
  for (const format::TensorInfo& info : out->infos) {
    auto it = std::lower_bound(tensors.begin(), tensors.end(), info.name,
                               [](const TensorSource& t, const std::string& n) { return t.info.name < n; });
    out->ordered.push_back(TensorSource{info, it->data});
  }
  const std::vector<uint64_t> placeholder(out->infos.size(), 0);
  out->header_size = format::RenderHeader(out->infos, metadata, checksum ? &placeholder : nullptr).size();
  out->total = out->header_size + data_len;
  // What every reader (ckptio's, the reference's) refuses to parse is not written either.
  if (out->header_size - 8 > format::kMaxHeaderLen) {
    return Status::Invalid("the header would be " + std::to_string(out->header_size - 8) + " bytes, above the " +
                               std::to_string(format::kMaxHeaderLen) + "-byte cap readers enforce (too many tensors or too much metadata)",
                           path);
  }
  return Status::Ok();
}

void TensorHasher::Feed(uint64_t offset, const unsigned char* bytes, uint64_t len) {
  if (!enabled_) return;
  while (len > 0) {
    while (index_ < tensors_.size() && tensors_[index_].end <= offset) ++index_;
    if (index_ >= tensors_.size()) return;
    const uint64_t take = std::min(len, tensors_[index_].end - offset);
    hashes_[index_].Update(bytes, take);
    bytes += take;
    offset += take;
    len -= take;
  }
}

std::vector<uint64_t> TensorHasher::Digests() const {
  std::vector<uint64_t> out;
  for (const auto& h : hashes_) out.push_back(h.Digest());
  return out;
}

void FileImage::Copy(uint64_t offset, uint64_t len, unsigned char* dst) const {
  const uint64_t end = offset + len;
  if (offset < header_size_) {
    const uint64_t n = std::min(end, header_size_) - offset;
    if (header_) std::memcpy(dst, header_->data() + offset, n);
    else std::memset(dst, 0, n);
    dst += n;
    offset += n;
  }
  // The sources are in file order: start at the first that ends past `offset` (sinks copy a slice at a time, so
  // a scan from the front would cost slices x tensors).
  auto first = std::upper_bound(sources_.begin(), sources_.end(), offset, [this](uint64_t o, const TensorSource& t) {
    return o < header_size_ + t.info.end;
  });
  for (auto it = first; it != sources_.end(); ++it) {
    const TensorSource& s = *it;
    if (offset >= end || offset >= total_) break;
    const uint64_t tb = header_size_ + s.info.begin, te = header_size_ + s.info.end;
    if (te <= offset) continue;
    const uint64_t n = std::min(end, te) - offset;
    std::memcpy(dst, s.data + (offset - tb), n);
    dst += n;
    offset += n;
  }
  if (offset < end) std::memset(dst, 0, end - offset);
}

void FileImage::HashFromSources(uint64_t offset, uint64_t len, TensorHasher* hasher) const {
  const uint64_t end = std::min(offset + len, total_);
  for (const TensorSource& s : sources_) {
    const uint64_t tb = header_size_ + s.info.begin, te = header_size_ + s.info.end;
    if (te <= offset || tb >= end) continue;
    const uint64_t from = std::max(tb, offset), to = std::min(te, end);
    hasher->Feed(from - header_size_, s.data + (from - tb), to - from);
  }
}

std::string ContentId(const std::vector<format::TensorInfo>& infos, const std::vector<uint64_t>& digests) {
  std::string text;
  for (size_t i = 0; i < infos.size() && i < digests.size(); ++i) {
    text += infos[i].name;
    text += ':';
    text += format::Hex(digests[i]);
    text += '\n';
  }
  return format::Hex(format::Hash64(text.data(), text.size()));
}

}  // namespace ckptio::writer
