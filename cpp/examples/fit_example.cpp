// Fits a keypoint file (or folder of OpenPose files) with the embedded body and prior and
// writes the rig as .glb:
//
//   fit_example <keypoints> <out.glb> [width height focal_px] [--preview]
//
// e.g. fit_example examples/data/<clip>/keypoints out/clip.glb 1920 1080 1500
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "rigfit.hpp"

int main(int argc, char** argv) {
  bool preview = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--preview") == 0) preview = true; else args.emplace_back(argv[i]);
  }
  if (args.size() != 2 && args.size() != 5) {
    std::cerr << "usage: fit_example <keypoints> <out.glb> [width height focal_px] [--preview]\n";
    return 2;
  }
  uint32_t width = args.size() == 5 ? std::stoul(args[2]) : 1920;
  uint32_t height = args.size() == 5 ? std::stoul(args[3]) : 1080;
  float focal = args.size() == 5 ? std::stof(args[4]) : 0.0f;  // 0: ScoreHMR's 5000 px
  try {
    rigfit::Session session;
    RigfitFitOptions opts = rigfit::default_options();
    if (preview) {  // a few network evaluations: seconds, rough
      opts.hypotheses = 2;
      opts.sample_step = 250;
      opts.refine_tau = 10;
      opts.refine_step = 5;
      opts.refine_iters = 1;
    }
    rigfit::Motion m = session.fit_files(args[0], width, height, focal, 0.0f, -1, 0, 0, &opts,
                                         [](const char* stage, size_t done, size_t total) {
                                           std::cerr << "\r" << stage << " " << done << "/" << total << "        ";
                                           return true;
                                         });
    std::cerr << "\n";
    std::cout << "fitted " << m.num_frames() << " frames at " << m.fps() << " fps, mean reprojection "
              << m.mean_reprojection_px() << " px\n";
    m.write_glb(args[1]);
    std::cout << "wrote " << args[1] << "\n";
  } catch (const rigfit::Error& e) {
    std::cerr << "error: " << e.what() << " (" << rigfit_status_name(e.status()) << ")\n";
    return 1;
  }
  return 0;
}
