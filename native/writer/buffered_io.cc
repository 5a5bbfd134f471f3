#include "buffered_io.h"

#include <fcntl.h>

#include <algorithm>

#include "../io/write_all.h"

namespace ckptio::writer {

Status WriteBuffered(io::Env* env, int fd, const std::string& path, const std::vector<TensorSource>& sources,
                     uint64_t header_size, uint64_t write_behind_bytes, TensorHasher* hasher,
                     const std::function<std::string()>& render_header, std::string* header) {
  const uint64_t chunk = 8u << 20;
  uint64_t since_flush = 0, flush_start = header_size, prev_start = 0, prev_len = 0;
  for (const TensorSource& s : sources) {
    const uint64_t len = s.info.end - s.info.begin;
    for (uint64_t done = 0; done < len;) {
      const uint64_t n = std::min(chunk, len - done);
      hasher->Feed(s.info.begin + done, s.data + done, n);
      Status st = io::PwriteAll(env, fd, s.data + done, n, header_size + s.info.begin + done, path);
      if (!st.ok()) return st;
      done += n;
      since_flush += n;
      if (write_behind_bytes && since_flush >= write_behind_bytes) {
        // Start writeback of this chunk; wait for the previous one and drop it from the page cache.
        env->SyncFileRange(fd, flush_start, since_flush, SYNC_FILE_RANGE_WRITE);
        if (prev_len) {
          env->SyncFileRange(fd, prev_start, prev_len,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
          env->FadviseDontNeed(fd, prev_start, prev_len);
        }
        prev_start = flush_start;
        prev_len = since_flush;
        flush_start += since_flush;
        since_flush = 0;
      }
    }
  }
  *header = render_header();
  return io::PwriteAll(env, fd, reinterpret_cast<const unsigned char*>(header->data()), header->size(), 0, path);
}

}  // namespace ckptio::writer
