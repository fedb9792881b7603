// rigfit C++ API: header-only RAII wrappers over the C ABI (rigfit.h).
//
// - rigfit::Session owns a fitting engine (body model + prior), rigfit::Motion a fitted
//   animation; both are move-only and free their handle in the destructor.
// - Every failing call throws rigfit::Error carrying the status and the library's last-error
//   message (rigfit::Cancelled when the progress callback cancelled the fit).
// - Arrays are std::vector with the shapes documented in rigfit.h (flat, row-major).
// - Progress callbacks are std::function<bool(const char* stage, size_t done, size_t total)>;
//   return false to cancel. Exceptions thrown by the callback are caught at the boundary and
//   cancel the fit (they never unwind through the Rust library).
#ifndef RIGFIT_HPP
#define RIGFIT_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "rigfit.h"

namespace rigfit {

class Error : public std::runtime_error {
 public:
  Error(RigfitStatus status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  RigfitStatus status() const noexcept { return status_; }

 private:
  RigfitStatus status_;
};

class Cancelled : public Error {
 public:
  using Error::Error;
};

inline void check(RigfitStatus s) {
  if (s == RIGFIT_OK) return;
  std::string msg = rigfit_last_error();
  if (s == RIGFIT_ERR_CANCELLED) throw Cancelled(s, msg);
  throw Error(s, msg);
}

namespace detail {
// Size query, then the data (see rigfit.h: out == NULL queries the size).
template <class T, class F>
std::vector<T> read(F f) {
  size_t n = 0;
  check(f(nullptr, 0, &n));
  std::vector<T> v(n);
  if (n) check(f(v.data(), v.size(), &n));
  return v;
}

inline int progress_trampoline(void* user, const char* stage, size_t done, size_t total) {
  auto* fn = static_cast<std::function<bool(const char*, size_t, size_t)>*>(user);
  try {
    return (*fn)(stage, done, total) ? 1 : 0;
  } catch (...) {
    return 0;  // never unwind into the library
  }
}
}  // namespace detail

using Progress = std::function<bool(const char* stage, size_t done, size_t total)>;

inline uint32_t abi_version() { return rigfit_abi_version(); }
inline std::string version() { return rigfit_version(); }
inline size_t num_joints() { return rigfit_num_joints(); }
inline std::string joint_name(size_t i) {
  const char* n = rigfit_joint_name(i);
  if (!n) throw Error(RIGFIT_ERR_INPUT, "joint index " + std::to_string(i) + " out of range");
  return n;
}
inline std::vector<int32_t> joint_parents() {
  return detail::read<int32_t>([](int32_t* o, size_t c, size_t* l) { return rigfit_joint_parents(o, c, l); });
}

/// Default fit settings (the library's).
inline RigfitFitOptions default_options() {
  RigfitFitOptions o{};
  check(rigfit_fit_options_default(&o));
  return o;
}

/// An uncalibrated view: focal length in pixels (<= 0: ScoreHMR's 5000), principal point at the
/// image centre.
inline RigfitView view_from_focal(float focal, uint32_t width, uint32_t height) {
  RigfitView v{};
  check(rigfit_view_from_focal(focal, width, height, &v));
  return v;
}

class Motion {
 public:
  explicit Motion(RigfitMotion* p) noexcept : p_(p) {}
  ~Motion() { rigfit_motion_free(p_); }
  Motion(Motion&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Motion& operator=(Motion&& o) noexcept {
    if (this != &o) {
      rigfit_motion_free(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Motion(const Motion&) = delete;
  Motion& operator=(const Motion&) = delete;

  RigfitMotion* get() const noexcept { return p_; }
  size_t num_frames() const { return rigfit_motion_num_frames(p_); }
  float fps() const { return rigfit_motion_fps(p_); }
  /// [num_betas]
  std::vector<float> betas() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_betas(p_, o, c, l); }); }
  /// [F * 24 * 9] local rotation matrices, row-major.
  std::vector<float> rotations() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_rotations(p_, o, c, l); }); }
  /// [F * 24 * 4] local quaternions (w, x, y, z), sign-continuous.
  std::vector<float> quaternions() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_quaternions(p_, o, c, l); }); }
  /// [F * 24 * 3] XYZ Euler angles, degrees.
  std::vector<float> euler_xyz() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_euler_xyz(p_, o, c, l); }); }
  /// [F * 3] root translations.
  std::vector<float> translations() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_translations(p_, o, c, l); }); }
  /// [F * 24 * 3] world joints (Y-up).
  std::vector<float> joints() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_joints(p_, o, c, l); }); }
  /// [V * 3] posed vertices of one frame.
  std::vector<float> vertices(size_t frame) const {
    return f([this, frame](float* o, size_t c, size_t* l) { return rigfit_motion_vertices(p_, frame, o, c, l); });
  }
  /// [24 * 3] rest joints of the motion's shape.
  std::vector<float> rest_joints() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_rest_joints(p_, o, c, l); }); }
  /// [V * 3] rest mesh of the motion's shape.
  std::vector<float> rest_vertices() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_rest_vertices(p_, o, c, l); }); }
  /// [F * 25 * 3] BODY_25 keypoints seen by camera `camera` (x px, y px, 1).
  std::vector<float> project_keypoints(size_t camera) const {
    return f([this, camera](float* o, size_t c, size_t* l) { return rigfit_motion_project_keypoints(p_, camera, o, c, l); });
  }
  /// [F * V] reprojection errors of the fit, pixels.
  std::vector<float> reprojection_px() const { return f([this](float* o, size_t c, size_t* l) { return rigfit_motion_reprojection_px(p_, o, c, l); }); }
  float mean_reprojection_px() const { return rigfit_motion_mean_reprojection_px(p_); }
  size_t num_cameras() const { return rigfit_motion_num_cameras(p_); }
  RigfitView camera(size_t index, size_t frame = 0) const {
    RigfitView v{};
    check(rigfit_motion_camera(p_, index, frame, &v));
    return v;
  }
  void add_camera(const RigfitView& view) { check(rigfit_motion_add_camera(p_, &view)); }
  void save_json(const std::string& path) const { check(rigfit_motion_save_json(p_, path.c_str())); }
  void write_glb(const std::string& path) const { check(rigfit_motion_write_glb(p_, path.c_str())); }
  void write_usda(const std::string& path) const { check(rigfit_motion_write_usda(p_, path.c_str())); }

 private:
  template <class F>
  static std::vector<float> f(F fn) { return detail::read<float>(fn); }
  RigfitMotion* p_;
};

class Session {
 public:
  /// The embedded default body and prior.
  Session() { check(rigfit_session_new_default(&p_)); }
  /// A body model .npz and a prior .safetensors; empty strings take the embedded ones.
  Session(const std::string& body_npz, const std::string& prior) {
    check(rigfit_session_new(body_npz.empty() ? nullptr : body_npz.c_str(), prior.empty() ? nullptr : prior.c_str(), &p_));
  }
  ~Session() { rigfit_session_free(p_); }
  Session(Session&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Session& operator=(Session&& o) noexcept {
    if (this != &o) {
      rigfit_session_free(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  RigfitSession* get() const noexcept { return p_; }
  size_t num_vertices() const { return rigfit_session_num_vertices(p_); }
  size_t num_faces() const { return rigfit_session_num_faces(p_); }
  size_t num_betas() const { return rigfit_session_num_betas(p_); }
  /// [num_faces * 3]
  std::vector<uint32_t> faces() const {
    return detail::read<uint32_t>([this](uint32_t* o, size_t c, size_t* l) { return rigfit_session_faces(p_, o, c, l); });
  }
  /// [V * 24]
  std::vector<float> skin_weights() const {
    return detail::read<float>([this](float* o, size_t c, size_t* l) { return rigfit_session_skin_weights(p_, o, c, l); });
  }
  /// [24 * 3] rest joints of a shape.
  std::vector<float> rest_joints(const std::vector<float>& betas = {}) const {
    return detail::read<float>([&](float* o, size_t c, size_t* l) { return rigfit_session_rest_joints(p_, betas.data(), betas.size(), o, c, l); });
  }
  /// [V * 3] rest mesh of a shape.
  std::vector<float> rest_vertices(const std::vector<float>& betas = {}) const {
    return detail::read<float>([&](float* o, size_t c, size_t* l) { return rigfit_session_rest_vertices(p_, betas.data(), betas.size(), o, c, l); });
  }

  /// Fits keypoints [frames * views.size() * 25 * 3]; `seen` [frames * views.size()] or empty.
  Motion fit(const std::vector<float>& keypoints, size_t frames, const std::vector<RigfitView>& views, float fps,
             const RigfitFitOptions* options = nullptr, Progress progress = {}, const std::vector<uint8_t>& seen = {}) const {
    RigfitMotion* out = nullptr;
    if (keypoints.size() != frames * views.size() * 75)
      throw Error(RIGFIT_ERR_INPUT, "keypoints: " + std::to_string(keypoints.size()) + " values for " + std::to_string(frames) +
                                        " frames and " + std::to_string(views.size()) + " views (75 each)");
    check(rigfit_fit(p_, keypoints.data(), seen.empty() ? nullptr : seen.data(), frames, views.size(), views.data(), fps, options,
                     progress ? detail::progress_trampoline : nullptr, progress ? &progress : nullptr, &out));
    return Motion(out);
  }

  /// Fits a keypoint file / folder / pattern seen by one camera (see rigfit_fit_files).
  Motion fit_files(const std::string& path, uint32_t width, uint32_t height, float focal, float fps = 0.0f, int64_t track_id = -1,
                   size_t frame_start = 0, size_t frame_count = 0, const RigfitFitOptions* options = nullptr, Progress progress = {}) const {
    RigfitMotion* out = nullptr;
    check(rigfit_fit_files(p_, path.c_str(), track_id, width, height, focal, fps, frame_start, frame_count, options,
                           progress ? detail::progress_trampoline : nullptr, progress ? &progress : nullptr, &out));
    return Motion(out);
  }

  /// A motion from arrays: rotations [frames * 24 * 9], translations [frames * 3].
  Motion motion(size_t frames, float fps, const std::vector<float>& betas, const std::vector<float>& rotations,
                const std::vector<float>& translations) const {
    if (rotations.size() != frames * 24 * 9 || translations.size() != frames * 3)
      throw Error(RIGFIT_ERR_INPUT, "rotations / translations do not hold " + std::to_string(frames) + " frames");
    RigfitMotion* out = nullptr;
    check(rigfit_motion_new(p_, frames, fps, betas.data(), betas.size(), rotations.data(), translations.data(), &out));
    return Motion(out);
  }

  Motion load_motion(const std::string& path) const {
    RigfitMotion* out = nullptr;
    check(rigfit_motion_load_json(p_, path.c_str(), &out));
    return Motion(out);
  }

 private:
  RigfitSession* p_ = nullptr;
};

}  // namespace rigfit

#endif  // RIGFIT_HPP
