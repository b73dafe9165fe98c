// XLA FFI handlers that copy a served call's input from, and its result to, fixed host addresses, as steps
// of the compiled program itself. On a GPU they are marked command-buffer compatible, so XLA records them into
// the CUDA graph it launches for the program (its own host-offload copies run as async copies outside the graph:
// kernels/cifar10_notes.md, seventeenth session). Built and loaded by graph_io.py.
//
// The host addresses are attributes, fixed when the program is compiled: the buffers must stay alive, pinned
// (page-locked: a CUDA graph cannot record a copy from pageable memory), for as long as the program does.
#include <dlfcn.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// The CUDA driver's copies, looked up at run time: libcuda is loaded by any process that runs a CUDA program,
// and the library then needs no CUDA headers or toolkit to build.
using CopyHtoD = int (*)(uint64_t dst, const void* src, size_t bytes, void* stream);
using CopyDtoH = int (*)(void* dst, uint64_t src, size_t bytes, void* stream);

struct Driver {
  CopyHtoD htod = nullptr;
  CopyDtoH dtoh = nullptr;
};

const Driver& CudaDriver() {
  static const Driver driver = [] {
    Driver d;
    if (void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL)) {
      d.htod = reinterpret_cast<CopyHtoD>(dlsym(lib, "cuMemcpyHtoDAsync_v2"));
      d.dtoh = reinterpret_cast<CopyDtoH>(dlsym(lib, "cuMemcpyDtoHAsync_v2"));
    }
    return d;
  }();
  return driver;
}

ffi::Error Failed(const char* what, int rc) {
  return ffi::Error(ffi::ErrorCode::kInternal, std::string(what) + " failed with CUresult " + std::to_string(rc));
}

ffi::Error NoDriver() {
  return ffi::Error(ffi::ErrorCode::kUnavailable, "libcuda.so.1 or its async copies were not found");
}

ffi::Error CheckTail(size_t bytes, int64_t tail) {
  if (tail <= 0 || static_cast<size_t>(tail) >= bytes) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "tail must be positive and shorter than the result");
  }
  return ffi::Error::Success();
}

ffi::Error CopyInCpu(int64_t src, ffi::Result<ffi::AnyBuffer> out) {
  std::memcpy(out->untyped_data(), reinterpret_cast<const void*>(src), out->size_bytes());
  return ffi::Error::Success();
}

// The result's last `tail` bytes (a sequence word the host polls) are written after the rest, so a reader that
// sees them sees the whole result. `token` is returned as is (aliased): the program's only output.
ffi::Error CopyOutCpu(int64_t dst, int64_t tail, ffi::AnyBuffer result, ffi::AnyBuffer token,
                      ffi::Result<ffi::AnyBuffer> token_out) {
  const size_t bytes = result.size_bytes();
  if (ffi::Error e = CheckTail(bytes, tail); e.failure()) return e;
  char* to = reinterpret_cast<char*>(dst);
  const char* from = static_cast<const char*>(result.untyped_data());
  std::memcpy(to, from, bytes - tail);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(to + bytes - tail, from + bytes - tail, tail);
  return ffi::Error::Success();
}

ffi::Error CopyInCuda(void* stream, int64_t src, ffi::Result<ffi::AnyBuffer> out) {
  const Driver& cuda = CudaDriver();
  if (!cuda.htod) return NoDriver();
  int rc = cuda.htod(reinterpret_cast<uint64_t>(out->untyped_data()), reinterpret_cast<const void*>(src),
                     out->size_bytes(), stream);
  return rc ? Failed("cuMemcpyHtoDAsync", rc) : ffi::Error::Success();
}

// Two copies on one stream: the second (the tail) starts only once the first is complete, so the tail reaches
// host memory after the rest of the result.
ffi::Error CopyOutCuda(void* stream, int64_t dst, int64_t tail, ffi::AnyBuffer result, ffi::AnyBuffer token,
                       ffi::Result<ffi::AnyBuffer> token_out) {
  const Driver& cuda = CudaDriver();
  if (!cuda.dtoh) return NoDriver();
  const size_t bytes = result.size_bytes();
  if (ffi::Error e = CheckTail(bytes, tail); e.failure()) return e;
  char* to = reinterpret_cast<char*>(dst);
  const uint64_t from = reinterpret_cast<uint64_t>(result.untyped_data());
  if (int rc = cuda.dtoh(to, from, bytes - tail, stream)) return Failed("cuMemcpyDtoHAsync", rc);
  if (int rc = cuda.dtoh(to + bytes - tail, from + bytes - tail, tail, stream)) {
    return Failed("cuMemcpyDtoHAsync", rc);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyInCpu, CopyInCpu,
                              ffi::Ffi::Bind().Attr<int64_t>("src").Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyOutCpu, CopyOutCpu,
                              ffi::Ffi::Bind()
                                  .Attr<int64_t>("dst")
                                  .Attr<int64_t>("tail")
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyInCuda, CopyInCuda,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<void*>>()
                                  .Attr<int64_t>("src")
                                  .Ret<ffi::AnyBuffer>(),
                              {ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyOutCuda, CopyOutCuda,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<void*>>()
                                  .Attr<int64_t>("dst")
                                  .Attr<int64_t>("tail")
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>(),
                              {ffi::Traits::kCmdBufferCompatible});
