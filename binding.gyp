{
  "targets": [{
    "target_name": "ckptio",
    "sources": [
      "native/addon/module.cc",
      "native/addon/args.cc",
      "native/addon/errors.cc",
      "native/addon/completion.cc",
      "native/addon/write.cc",
      "native/addon/read.cc",
      "native/addon/codec.cc",
      "native/addon/lock.cc",
      "native/addon/tensor_table.cc",
      "native/io/posix_env.cc",
      "native/io/write_all.cc",
      "native/format/dtype.cc",
      "native/format/checksum.cc",
      "native/format/json.cc",
      "native/format/header.cc",
      "native/format/reader.cc",
      "native/writer/file_image.cc",
      "native/writer/staging.cc",
      "native/writer/direct_io.cc",
      "native/writer/buffered_io.cc",
      "native/writer/commit.cc",
      "native/writer/copy_pool.cc",
      "native/writer/writer.cc"
    ],
    "include_dirs": [
      "native",
      "<!(node -p \"require('path').dirname(require.resolve('node-addon-api/package.json'))\")",
      "native/third_party/xxhash"
    ],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fvisibility=hidden"]
  }]
}
