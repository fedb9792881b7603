/* C tests of the rigfit C ABI: version, errors on bad input, body info, a fit on keypoints the
 * test makes from a known motion, and cancel through the progress callback. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rigfit.h"

static int failures = 0;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, \
              #cond, rigfit_last_error());                                           \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

/* Rotation about z by angle a, row-major. */
static void rot_z(float a, float *r) {
  float c = cosf(a), s = sinf(a);
  float m[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
  memcpy(r, m, sizeof m);
}

static RigfitFitOptions fast_options(void) {
  RigfitFitOptions o;
  rigfit_fit_options_default(&o);
  o.hypotheses = 2;
  o.sample_step = 250;
  o.refine_tau = 10;
  o.refine_step = 5;
  o.refine_iters = 1;
  return o;
}

static int calls = 0;
static int cancel_on_refining(void *user, const char *stage, size_t done, size_t total) {
  (void)user;
  calls++;
  if (done > total) failures++;
  return strcmp(stage, "refining") != 0;
}
static int count(void *user, const char *stage, size_t done, size_t total) {
  (void)stage; (void)done; (void)total;
  (*(int *)user)++;
  return 1;
}

int main(void) {
  /* Version and static facts. */
  CHECK(rigfit_abi_version() == RIGFIT_ABI_VERSION);
  CHECK(rigfit_num_joints() == 24);
  CHECK(strcmp(rigfit_joint_name(0), "pelvis") == 0);
  CHECK(rigfit_joint_name(24) == NULL);

  /* Errors on bad input: status codes and messages naming the argument. */
  CHECK(rigfit_session_new_default(NULL) == RIGFIT_ERR_INPUT);
  CHECK(strstr(rigfit_last_error(), "out is NULL") != NULL);
  RigfitSession *bad = NULL;
  CHECK(rigfit_session_new("/nonexistent/body.npz", NULL, &bad) == RIGFIT_ERR_IO);
  CHECK(strstr(rigfit_last_error(), "/nonexistent/body.npz") != NULL);
  CHECK(bad == NULL);
  CHECK(rigfit_debug_panic() == RIGFIT_ERR_PANIC);

  RigfitSession *s = NULL;
  CHECK(rigfit_session_new_default(&s) == RIGFIT_OK);
  CHECK(strcmp(rigfit_last_error(), "") == 0);
  size_t nv = rigfit_session_num_vertices(s);
  CHECK(nv > 1000);
  float joints[72];
  size_t len = 0;
  CHECK(rigfit_session_rest_joints(s, NULL, 0, joints, 10, &len) == RIGFIT_ERR_INPUT); /* undersized */
  CHECK(len == 72 && strstr(rigfit_last_error(), "72 needed") != NULL);
  CHECK(rigfit_session_rest_joints(s, NULL, 0, joints, 72, &len) == RIGFIT_OK);

  /* A known motion: 3 frames, a bending left hip, 4 m in front of a 1200 px camera. */
  enum { F = 3 };
  float rot[F * 24 * 9], tr[F * 3];
  for (int f = 0; f < F; f++) {
    for (int j = 0; j < 24; j++) rot_z(0.0f, rot + (f * 24 + j) * 9);
    rot_z(0.2f * f, rot + (f * 24 + 1) * 9);
    tr[f * 3 + 0] = 0.0f; tr[f * 3 + 1] = 0.1f; tr[f * 3 + 2] = -4.0f;
  }
  RigfitMotion *truth = NULL;
  CHECK(rigfit_motion_new(s, F, 30.0f, NULL, 0, rot, tr, &truth) == RIGFIT_OK);
  RigfitView view;
  CHECK(rigfit_view_from_focal(1200.0f, 1000, 800, &view) == RIGFIT_OK);
  CHECK(rigfit_motion_add_camera(truth, &view) == RIGFIT_OK);
  float kp[F * 75];
  CHECK(rigfit_motion_project_keypoints(truth, 0, kp, F * 75, &len) == RIGFIT_OK && len == F * 75);

  /* Fit them: shapes and counts. */
  RigfitFitOptions o = fast_options();
  int progress_calls = 0;
  RigfitMotion *m = NULL;
  CHECK(rigfit_fit(s, kp, NULL, F, 1, &view, 30.0f, &o, count, &progress_calls, &m) == RIGFIT_OK);
  CHECK(m != NULL && progress_calls > 2);
  CHECK(rigfit_motion_num_frames(m) == F);
  CHECK(rigfit_motion_num_cameras(m) == 1);
  CHECK(rigfit_motion_quaternions(m, NULL, 0, &len) == RIGFIT_OK && len == F * 24 * 4);
  float *verts = malloc(nv * 3 * sizeof(float));
  CHECK(rigfit_motion_vertices(m, 2, verts, nv * 3, &len) == RIGFIT_OK && len == nv * 3);
  CHECK(rigfit_motion_vertices(m, F, verts, nv * 3, &len) == RIGFIT_ERR_INPUT); /* frame out of range */
  free(verts);
  CHECK(isfinite(rigfit_motion_mean_reprojection_px(m)));
  /* Bad input: NULL keypoints, zero focal. */
  RigfitMotion *none = NULL;
  CHECK(rigfit_fit(s, NULL, NULL, F, 1, &view, 30.0f, &o, NULL, NULL, &none) == RIGFIT_ERR_INPUT);
  CHECK(strstr(rigfit_last_error(), "keypoints is NULL") != NULL);
  RigfitView bad_view = view;
  bad_view.fx = 0.0f;
  CHECK(rigfit_fit(s, kp, NULL, F, 1, &bad_view, 30.0f, &o, NULL, NULL, &none) == RIGFIT_ERR_INPUT);
  CHECK(none == NULL);

  /* Cancel through the callback. */
  CHECK(rigfit_fit(s, kp, NULL, F, 1, &view, 30.0f, &o, cancel_on_refining, NULL, &none) == RIGFIT_ERR_CANCELLED);
  CHECK(none == NULL && calls >= 2);
  CHECK(strcmp(rigfit_last_error(), "cancelled") == 0);

  rigfit_motion_free(m);
  rigfit_motion_free(truth);
  rigfit_session_free(s);
  rigfit_session_free(NULL);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("test_c: all checks passed\n");
  return 0;
}
