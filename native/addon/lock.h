// The run lock: synchronous (one open and one fcntl), on the JS thread, straight on the system calls (not through
// the Env: a lock is not part of the commit protocol the fault twin exercises).
#pragma once
#include <napi.h>

namespace ckptio::addon {

// lock(path, holder) -> { fd } | { locked: true, holder }: an open-file-description lock (F_OFD_SETLK) on
// `path`, which the kernel drops when the process dies, however it dies: a killed holder never blocks the next
// run, and a live one is never taken over (unlike a pid file). `holder` (who holds it) is written into the
// file for the error the next contender reports. The file is never followed through a symlink.
Napi::Value Lock(const Napi::CallbackInfo& info);

// unlock(fd): closing the descriptor releases the lock.
Napi::Value Unlock(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
