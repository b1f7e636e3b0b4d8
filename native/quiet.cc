// A tiny addon with no TensorFlow dependency: points file descriptor 2 at /dev/null and back, so that
// loading libtensorflow (which prints an absl banner and a oneDNN notice straight to fd 2, whatever
// TF_CPP_MIN_LOG_LEVEL says) stays quiet unless the user asks for --verbose.
//   mute()      -> the saved descriptor of the old stderr (or -1 when nothing was changed)
//   unmute(fd)  -> puts that descriptor back on 2
#include <node_api.h>

#include <fcntl.h>
#include <unistd.h>

namespace {

napi_value Mute(napi_env env, napi_callback_info) {
  int saved = dup(2);
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (saved >= 0 && null_fd >= 0 && dup2(null_fd, 2) < 0) {
    close(saved);
    saved = -1;
  }
  if (null_fd >= 0) close(null_fd);
  napi_value v;
  napi_create_int32(env, saved, &v);
  return v;
}

napi_value Unmute(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  int32_t saved = -1;
  if (argc == 1) napi_get_value_int32(env, arg, &saved);
  if (saved >= 0) {
    dup2(saved, 2);
    close(saved);
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mute", NAPI_AUTO_LENGTH, Mute, nullptr, &f);
  napi_set_named_property(env, exports, "mute", f);
  napi_create_function(env, "unmute", NAPI_AUTO_LENGTH, Unmute, nullptr, &f);
  napi_set_named_property(env, exports, "unmute", f);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
