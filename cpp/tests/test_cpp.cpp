// C++ tests of rigfit.hpp: RAII, exceptions carrying the last error, a fit from OpenPose files
// the test writes, the same fit from arrays, and cancel through a lambda.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "rigfit.hpp"

static int failures = 0;
#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed\n";           \
      failures++;                                                                          \
    }                                                                                      \
  } while (0)

namespace fs = std::filesystem;

static RigfitFitOptions fast_options() {
  RigfitFitOptions o = rigfit::default_options();
  o.hypotheses = 2;
  o.sample_step = 250;
  o.refine_tau = 10;
  o.refine_step = 5;
  o.refine_iters = 1;
  return o;
}

// OpenPose --write_json files, one per frame.
static void write_openpose(const fs::path& dir, const std::vector<float>& kp, size_t frames) {
  fs::create_directories(dir);
  for (size_t f = 0; f < frames; f++) {
    char name[64];
    std::snprintf(name, sizeof name, "clip_%012zu_keypoints.json", f);
    std::ofstream out(dir / name);
    out.precision(9);
    out << "{\"version\":1.3,\"people\":[{\"person_id\":[0],\"pose_keypoints_2d\":[";
    for (size_t i = 0; i < 75; i++) out << (i ? "," : "") << kp[f * 75 + i];
    out << "]}]}";
  }
}

int main(int argc, char** argv) {
  fs::path work = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "rigfit_cpp_test";
  CHECK(rigfit::abi_version() == RIGFIT_ABI_VERSION);
  CHECK(rigfit::joint_name(23) == "right_hand");
  CHECK(rigfit::joint_parents().size() == 24);

  // Exceptions carry the status and the library's message.
  try {
    rigfit::Session bad("/nonexistent/body.npz", "");
    CHECK(false);
  } catch (const rigfit::Error& e) {
    CHECK(e.status() == RIGFIT_ERR_IO);
    CHECK(std::string(e.what()).find("/nonexistent/body.npz") != std::string::npos);
  }

  rigfit::Session s;
  CHECK(s.rest_joints().size() == 72);
  CHECK(s.faces().size() == s.num_faces() * 3);
  try {
    s.rest_joints(std::vector<float>(600, 0.0f));
    CHECK(false);
  } catch (const rigfit::Error& e) {
    CHECK(e.status() == RIGFIT_ERR_INPUT);
  }

  // A known motion and its keypoints.
  const size_t F = 3;
  std::vector<float> rot, tr;
  for (size_t f = 0; f < F; f++) {
    for (size_t j = 0; j < 24; j++) {
      float a = (j == 4) ? 0.3f * float(f) : 0.0f;  // left knee about x
      float m[9] = {1, 0, 0, 0, std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a)};
      rot.insert(rot.end(), m, m + 9);
    }
    tr.insert(tr.end(), {0.0f, 0.1f, -4.0f});
  }
  rigfit::Motion truth = s.motion(F, 30.0f, {0.5f}, rot, tr);
  RigfitView view = rigfit::view_from_focal(1200.0f, 1000, 800);
  truth.add_camera(view);
  std::vector<float> kp = truth.project_keypoints(0);
  CHECK(kp.size() == F * 75);
  write_openpose(work / "keypoints", kp, F);

  RigfitFitOptions o = fast_options();
  std::vector<std::string> stages;
  rigfit::Motion from_files = s.fit_files((work / "keypoints").string(), 1000, 800, 1200.0f, 30.0f, -1, 0, 0, &o,
                                          [&](const char* stage, size_t, size_t) { stages.emplace_back(stage); return true; });
  CHECK(from_files.num_frames() == F);
  CHECK(!stages.empty() && stages.back() == "done");
  CHECK(from_files.joints().size() == F * 72);
  CHECK(from_files.camera(0).fx == 1200.0f);
  rigfit::Motion from_arrays = s.fit(kp, F, {view}, 30.0f, &o);
  CHECK(from_arrays.rotations() == from_files.rotations());  // same input, same seed
  CHECK(from_arrays.translations() == from_files.translations());

  // Moves leave the source empty; a moved-from handle is safe to destroy.
  rigfit::Motion moved = std::move(from_arrays);
  CHECK(moved.num_frames() == F && from_arrays.get() == nullptr);

  // Cancel from the callback: rigfit::Cancelled; a throwing callback cancels too.
  try {
    s.fit(kp, F, {view}, 30.0f, &o, [](const char* stage, size_t, size_t) { return std::string(stage) != "refining"; });
    CHECK(false);
  } catch (const rigfit::Cancelled& e) {
    CHECK(e.status() == RIGFIT_ERR_CANCELLED);
  }
  try {
    s.fit(kp, F, {view}, 30.0f, &o, [](const char*, size_t, size_t) -> bool { throw std::runtime_error("boom"); });
    CHECK(false);
  } catch (const rigfit::Cancelled&) {
  }
  // JSON round trip.
  from_files.save_json((work / "motion.json").string());
  rigfit::Motion back = s.load_motion((work / "motion.json").string());
  CHECK(back.rotations() == from_files.rotations());

  if (failures) {
    std::cerr << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "test_cpp: all checks passed\n";
  return 0;
}
