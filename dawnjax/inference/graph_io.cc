// XLA FFI handlers that copy a served call's input from, and its result to, fixed host addresses, as steps
// of the compiled program itself. On a GPU they are marked command-buffer compatible, so XLA records them into
// the CUDA graph it launches for the program (its own host-offload copies run as async copies outside the graph:
// kernels/cifar10_notes.md, seventeenth session). Built and loaded by graph_io.py.
//
// The host addresses are attributes, fixed when the program is compiled: the buffers must stay alive, pinned
// (page-locked: a CUDA graph cannot record a copy from pageable memory), for as long as the program does.
//
// Two ways to copy on a GPU (attribute `kernel`): 0, the driver's async copies, which become copy-engine nodes of
// the graph; 1, two small kernels that read and write the pinned host memory directly (mapped into the GPU's
// address space), so the graph holds kernels only. Their PTX is compiled by the driver when the program's
// device loads it (DawnjaxGraphIoLoadKernels, called from graph_io.py before the program first runs: loading a
// module is not allowed while XLA captures the handler's work into its graph).
#include <dlfcn.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// The CUDA driver's entry points, looked up at run time: libcuda is loaded by any process that runs a CUDA
// program, and the library then needs no CUDA headers or toolkit to build.
using CuContext = void*;
using CuFunction = void*;
using CopyHtoD = int (*)(uint64_t dst, const void* src, size_t bytes, void* stream);
using CopyDtoH = int (*)(void* dst, uint64_t src, size_t bytes, void* stream);
using DeviceGet = int (*)(int* device, int ordinal);
using PrimaryCtxRetain = int (*)(CuContext* ctx, int device);
using CtxPush = int (*)(CuContext ctx);
using CtxPop = int (*)(CuContext* ctx);
using CtxGetCurrent = int (*)(CuContext* ctx);
using ModuleLoadDataEx = int (*)(void** module, const void* image, unsigned n, int* options, void** values);
using ModuleGetFunction = int (*)(CuFunction* f, void* module, const char* name);
using LaunchKernel = int (*)(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned shared, void* stream, void** params, void** extra);
using HostGetDevicePointer = int (*)(uint64_t* dptr, void* host, unsigned flags);

struct Driver {
  CopyHtoD htod = nullptr;
  CopyDtoH dtoh = nullptr;
  DeviceGet device_get = nullptr;
  PrimaryCtxRetain primary_ctx_retain = nullptr;
  CtxPush ctx_push = nullptr;
  CtxPop ctx_pop = nullptr;
  CtxGetCurrent ctx_get_current = nullptr;
  ModuleLoadDataEx module_load = nullptr;
  ModuleGetFunction module_get_function = nullptr;
  LaunchKernel launch = nullptr;
  HostGetDevicePointer host_get_device_pointer = nullptr;

  bool has_kernels() const {
    return device_get && primary_ctx_retain && ctx_push && ctx_pop && ctx_get_current && module_load &&
           module_get_function && launch && host_get_device_pointer;
  }
};

const Driver& CudaDriver() {
  static const Driver driver = [] {
    Driver d;
    if (void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL)) {
      auto get = [lib](auto& fn, const char* name) {
        fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(lib, name));
      };
      get(d.htod, "cuMemcpyHtoDAsync_v2");
      get(d.dtoh, "cuMemcpyDtoHAsync_v2");
      get(d.device_get, "cuDeviceGet");
      get(d.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
      get(d.ctx_push, "cuCtxPushCurrent_v2");
      get(d.ctx_pop, "cuCtxPopCurrent_v2");
      get(d.ctx_get_current, "cuCtxGetCurrent");
      get(d.module_load, "cuModuleLoadDataEx");
      get(d.module_get_function, "cuModuleGetFunction");
      get(d.launch, "cuLaunchKernel");
      get(d.host_get_device_pointer, "cuMemHostGetDevicePointer_v2");
    }
    return d;
  }();
  return driver;
}

// copy_in: one thread per 4-byte word of the input, then one per trailing byte. The loads bypass the caches
// (.cv): the host rewrites the buffer between calls. copy_out: one block; the body's words first, then, after
// every thread's system-wide fence and the block's barrier, the tail (the sequence word the host polls), so a
// host that sees the tail sees the whole result. The stores write through to host memory (.wt).
constexpr char kPtx[] = R"PTX(
.version 7.0
.target sm_52
.address_size 64

.visible .entry dawnjax_copy_in(.param .u64 src, .param .u64 dst, .param .u32 n)
{
  .reg .pred p;
  .reg .b32 r<8>;
  .reg .b64 a<6>;
  ld.param.u64 a1, [src];
  ld.param.u64 a2, [dst];
  ld.param.u32 r1, [n];
  mov.u32 r2, %ctaid.x;
  mov.u32 r3, %ntid.x;
  mov.u32 r4, %tid.x;
  mad.lo.u32 r5, r2, r3, r4;
  shr.u32 r6, r1, 2;
  setp.ge.u32 p, r5, r6;
  @p bra TAIL;
  mul.wide.u32 a3, r5, 4;
  add.u64 a4, a1, a3;
  add.u64 a5, a2, a3;
  ld.global.cv.u32 r7, [a4];
  st.global.u32 [a5], r7;
  ret;
TAIL:
  sub.u32 r7, r5, r6;
  and.b32 r2, r1, 3;
  setp.ge.u32 p, r7, r2;
  @p ret;
  shl.b32 r3, r6, 2;
  add.u32 r3, r3, r7;
  cvt.u64.u32 a3, r3;
  add.u64 a4, a1, a3;
  add.u64 a5, a2, a3;
  ld.global.cv.u8 r4, [a4];
  st.global.u8 [a5], r4;
  ret;
}

.visible .entry dawnjax_copy_out(.param .u64 src, .param .u64 dst, .param .u32 body_words, .param .u32 tail_words)
{
  .reg .pred p;
  .reg .b32 r<8>;
  .reg .b64 a<6>;
  ld.param.u64 a1, [src];
  ld.param.u64 a2, [dst];
  ld.param.u32 r1, [body_words];
  ld.param.u32 r2, [tail_words];
  mov.u32 r3, %tid.x;
  mov.u32 r4, %ntid.x;
BODY:
  setp.ge.u32 p, r3, r1;
  @p bra FENCE;
  mul.wide.u32 a3, r3, 4;
  add.u64 a4, a1, a3;
  add.u64 a5, a2, a3;
  ld.global.u32 r5, [a4];
  st.global.wt.u32 [a5], r5;
  add.u32 r3, r3, r4;
  bra BODY;
FENCE:
  membar.sys;
  bar.sync 0;
  mov.u32 r3, %tid.x;
  setp.ge.u32 p, r3, r2;
  @p ret;
  add.u32 r6, r1, r3;
  mul.wide.u32 a3, r6, 4;
  add.u64 a4, a1, a3;
  add.u64 a5, a2, a3;
  ld.global.u32 r5, [a4];
  st.global.wt.u32 [a5], r5;
  ret;
}
)PTX";

constexpr unsigned kThreads = 256;  // per block of copy_in; copy_out's one block (so at most 256 tail words)

// The kernels loaded into each device's primary context (the one XLA runs in), found by the current context.
struct Kernels {
  CuContext context = nullptr;
  CuFunction copy_in = nullptr;
  CuFunction copy_out = nullptr;
};
constexpr int kMaxDevices = 64;
Kernels loaded[kMaxDevices];
std::atomic<int> loaded_count{0};
std::mutex load_mutex;

const Kernels* KernelsForCurrentContext(const Driver& cuda) {
  CuContext current = nullptr;
  if (cuda.ctx_get_current(&current) || current == nullptr) return nullptr;
  const int count = loaded_count.load(std::memory_order_acquire);
  for (int i = 0; i < count; ++i) {
    if (loaded[i].context == current) return &loaded[i];
  }
  return nullptr;
}

// Device `ordinal`'s primary context (the one XLA runs in), retained. Returns 0 or a CUresult.
int PrimaryContext(const Driver& cuda, int ordinal, CuContext* context) {
  int device = 0;
  if (int rc = cuda.device_get(&device, ordinal)) return rc;
  return cuda.primary_ctx_retain(context, device);
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

ffi::Error CopyInCpu(int64_t src, int64_t kernel, ffi::Result<ffi::AnyBuffer> out) {
  std::memcpy(out->untyped_data(), reinterpret_cast<const void*>(src), out->size_bytes());
  return ffi::Error::Success();
}

// The result's last `tail` bytes (a sequence word the host polls) are written after the rest, so a reader that
// sees them sees the whole result. `token` is returned as is (aliased): the program's only output.
// On a CPU both ways (`kernel`) are this memcpy.
ffi::Error CopyOutCpu(int64_t dst, int64_t tail, int64_t kernel, ffi::AnyBuffer result, ffi::AnyBuffer token,
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

ffi::Error NoKernels() {
  return ffi::Error(ffi::ErrorCode::kFailedPrecondition,
                    "the graph_io copy kernels are not loaded in this device's context (DawnjaxGraphIoLoadKernels)");
}

ffi::Error CopyInCuda(void* stream, int64_t src, int64_t kernel, ffi::Result<ffi::AnyBuffer> out) {
  const Driver& cuda = CudaDriver();
  const size_t bytes = out->size_bytes();
  uint64_t to = reinterpret_cast<uint64_t>(out->untyped_data());
  if (kernel) {
    if (!cuda.has_kernels()) return NoDriver();
    const Kernels* k = KernelsForCurrentContext(cuda);
    if (k == nullptr) return NoKernels();
    uint64_t from = static_cast<uint64_t>(src);
    uint32_t n = static_cast<uint32_t>(bytes);
    void* params[] = {&from, &to, &n};
    const unsigned threads = n / 4 + n % 4, blocks = (threads + kThreads - 1) / kThreads;
    int rc = cuda.launch(k->copy_in, blocks, 1, 1, kThreads, 1, 1, 0, stream, params, nullptr);
    return rc ? Failed("cuLaunchKernel(dawnjax_copy_in)", rc) : ffi::Error::Success();
  }
  if (!cuda.htod) return NoDriver();
  int rc = cuda.htod(to, reinterpret_cast<const void*>(src), bytes, stream);
  return rc ? Failed("cuMemcpyHtoDAsync", rc) : ffi::Error::Success();
}

// Two copies on one stream: the second (the tail) starts only once the first is complete, so the tail reaches
// host memory after the rest of the result. The kernel orders them itself (see kPtx).
ffi::Error CopyOutCuda(void* stream, int64_t dst, int64_t tail, int64_t kernel, ffi::AnyBuffer result,
                       ffi::AnyBuffer token, ffi::Result<ffi::AnyBuffer> token_out) {
  const Driver& cuda = CudaDriver();
  const size_t bytes = result.size_bytes();
  if (ffi::Error e = CheckTail(bytes, tail); e.failure()) return e;
  const uint64_t from = reinterpret_cast<uint64_t>(result.untyped_data());
  if (kernel) {
    if (!cuda.has_kernels()) return NoDriver();
    if (bytes % 4 || tail % 4 || tail / 4 > kThreads) {
      return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                        "kernel copies move whole 4-byte words, with at most 256 in the tail");
    }
    const Kernels* k = KernelsForCurrentContext(cuda);
    if (k == nullptr) return NoKernels();
    uint64_t src = from, to = static_cast<uint64_t>(dst);
    uint32_t body_words = static_cast<uint32_t>((bytes - tail) / 4), tail_words = static_cast<uint32_t>(tail / 4);
    void* params[] = {&src, &to, &body_words, &tail_words};
    int rc = cuda.launch(k->copy_out, 1, 1, 1, kThreads, 1, 1, 0, stream, params, nullptr);
    return rc ? Failed("cuLaunchKernel(dawnjax_copy_out)", rc) : ffi::Error::Success();
  }
  if (!cuda.dtoh) return NoDriver();
  char* to = reinterpret_cast<char*>(dst);
  if (int rc = cuda.dtoh(to, from, bytes - tail, stream)) return Failed("cuMemcpyDtoHAsync", rc);
  if (int rc = cuda.dtoh(to + bytes - tail, from + bytes - tail, tail, stream)) {
    return Failed("cuMemcpyDtoHAsync", rc);
  }
  return ffi::Error::Success();
}

}  // namespace

// Loads the copy kernels into device `ordinal`'s primary context, once per context. Returns 0 or a CUresult
// (-1: libcuda or an entry point is missing; -2: too many devices); a failed compile leaves the driver's log in
// `log`.
extern "C" int DawnjaxGraphIoLoadKernels(int ordinal, char* log, size_t log_size) {
  const Driver& cuda = CudaDriver();
  if (!cuda.has_kernels()) return -1;
  std::lock_guard<std::mutex> lock(load_mutex);
  CuContext context = nullptr;
  if (int rc = PrimaryContext(cuda, ordinal, &context)) return rc;
  const int count = loaded_count.load(std::memory_order_relaxed);
  for (int i = 0; i < count; ++i) {
    if (loaded[i].context == context) return 0;
  }
  if (count == kMaxDevices) return -2;
  if (int rc = cuda.ctx_push(context)) return rc;
  void* module = nullptr;
  int options[] = {5, 6};  // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
  void* values[] = {log, reinterpret_cast<void*>(log_size)};
  Kernels k{context, nullptr, nullptr};
  int rc = cuda.module_load(&module, kPtx, 2, options, values);
  if (!rc) rc = cuda.module_get_function(&k.copy_in, module, "dawnjax_copy_in");
  if (!rc) rc = cuda.module_get_function(&k.copy_out, module, "dawnjax_copy_out");
  CuContext popped = nullptr;
  cuda.ctx_pop(&popped);
  if (rc) return rc;
  loaded[count] = k;
  loaded_count.store(count + 1, std::memory_order_release);
  return 0;
}

// The address through which device `ordinal`'s kernels reach pinned host memory at `host` (the same address
// wherever the driver maps pinned memory at identical addresses). Returns 0 or a CUresult (-1: no libcuda).
extern "C" int DawnjaxGraphIoDevicePointer(int ordinal, uint64_t host, uint64_t* device_pointer) {
  const Driver& cuda = CudaDriver();
  if (!cuda.has_kernels()) return -1;
  CuContext context = nullptr;
  if (int rc = PrimaryContext(cuda, ordinal, &context)) return rc;
  if (int rc = cuda.ctx_push(context)) return rc;
  int rc = cuda.host_get_device_pointer(device_pointer, reinterpret_cast<void*>(host), 0);
  CuContext popped = nullptr;
  cuda.ctx_pop(&popped);
  return rc;
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyInCpu, CopyInCpu,
                              ffi::Ffi::Bind().Attr<int64_t>("src").Attr<int64_t>("kernel").Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyOutCpu, CopyOutCpu,
                              ffi::Ffi::Bind()
                                  .Attr<int64_t>("dst")
                                  .Attr<int64_t>("tail")
                                  .Attr<int64_t>("kernel")
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyInCuda, CopyInCuda,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<void*>>()
                                  .Attr<int64_t>("src")
                                  .Attr<int64_t>("kernel")
                                  .Ret<ffi::AnyBuffer>(),
                              {ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(DawnjaxCopyOutCuda, CopyOutCuda,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<void*>>()
                                  .Attr<int64_t>("dst")
                                  .Attr<int64_t>("tail")
                                  .Attr<int64_t>("kernel")
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>(),
                              {ffi::Traits::kCmdBufferCompatible});
