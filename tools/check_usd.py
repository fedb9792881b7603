#!/usr/bin/env python3
"""Checks a rigfit UsdSkel export (.usda) with Pixar's USD (usd-core) against known answers.

    python3 tools/check_usd.py FILE.usda EXPECTED.json

EXPECTED.json (written by tests/export_usd.rs from rigfit's own forward pass):
    {"fps": 30, "num_frames": F, "frames": [f, ...],
     "joints":   [[[x, y, z] x 24] per listed frame],            world joints, metres, Y-up
     "vertex_ids": [v, ...],
     "vertices": [[[x, y, z] per vertex id] per listed frame],   posed (skinned) vertices
     "cameras": [{"path": "/Cameras/name", "width": W, "height": H, "moving": bool,
                  "positions": [[x, y, z] per listed frame],
                  "pixels": [[[u, v] x 24] per listed frame]}]}  joints projected by rigfit

Checks, each failure printed as a line starting with "FAIL":
  1. the stage opens; every USD validator registered in the installed usd-core reports no error
     (UsdValidation framework, usd-core >= 24.x; UsdUtils.ComplianceChecker on older builds);
  2. layer metadata: upAxis Y, metersPerUnit 1, timeCodesPerSecond = framesPerSecond = fps,
     start 0, end F-1;
  3. structure: one SkelRoot binding with a 24-joint Skeleton and an animation (one sample per
     frame, consecutive rotations on one hemisphere), skinned mesh with SkelBindingAPI,
     skel:skeleton bound, joint indices in range, weights summing to 1, no schema attribute
     authored as custom;
  4. joint world transforms from UsdSkel at each listed frame match "joints" within 1e-4 m;
  5. mesh points skinned by UsdSkel match "vertices" within 1e-4 m;
  6. cameras: each camera's world joints projected through USD's camera frustum land on
     rigfit's pixels within 0.05 px; moving cameras are time-sampled, static ones not.
Exit status 0 when everything passes, 1 when a check fails, 2 when usd-core is missing.
"""
import json
import sys

TOL_M = 1e-4
TOL_PX = 0.05
PIP = "python3 -m pip install usd-core==26.11"

try:
    from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdSkel
except ImportError as e:  # pragma: no cover - environment
    print(f"FAIL: usd-core (pxr) is not installed ({e}); install it with: {PIP}", file=sys.stderr)
    sys.exit(2)

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def run_validators(stage):
    """Runs every registered USD validator; returns the number of errors."""
    try:
        from pxr import UsdValidation
    except ImportError:
        UsdValidation = None
    if UsdValidation is not None:
        reg = UsdValidation.ValidationRegistry()
        validators = reg.GetOrLoadAllValidators()
        ctx = UsdValidation.ValidationContext(validators)
        errors = ctx.Validate(stage)
        n = 0
        for e in errors:
            if e.HasNoError():
                continue
            kind = e.GetType()
            text = f"{e.GetName()}: {e.GetMessage()}"
            if kind == UsdValidation.ValidationErrorType.Error:
                fail(f"USD validator error {text}")
                n += 1
            else:
                print(f"note: USD validator {kind.displayName if hasattr(kind, 'displayName') else kind}: {text}")
        print(f"ran {len(validators)} USD validators: {n} errors")
        return n
    from pxr import UsdUtils  # older usd-core

    checker = UsdUtils.ComplianceChecker(skipARKitRootLayerCheck=True)
    checker.CheckCompliance(stage.GetRootLayer().identifier)
    for e in checker.GetErrors():
        fail(f"ComplianceChecker error: {e}")
    for f in checker.GetFailedChecks():
        fail(f"ComplianceChecker failed check: {f}")
    print("ran UsdUtils.ComplianceChecker")
    return len(checker.GetErrors()) + len(checker.GetFailedChecks())


def dist(a, b):
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)) ** 0.5


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    path, exp_path = sys.argv[1], sys.argv[2]
    with open(exp_path) as fh:
        exp = json.load(fh)

    try:
        stage = Usd.Stage.Open(path)
    except Tf.ErrorException as e:
        fail(f"{path}: USD cannot open the file: {e}")
        return 1
    if stage is None:
        fail(f"{path}: USD cannot open the file")
        return 1

    # 1. validators
    run_validators(stage)

    # 2. metadata
    fps = float(exp["fps"])
    nframes = int(exp["num_frames"])
    if UsdGeom.GetStageUpAxis(stage) != UsdGeom.Tokens.y:
        fail(f"upAxis is {UsdGeom.GetStageUpAxis(stage)}, expected Y")
    if not stage.HasAuthoredMetadata("metersPerUnit") or UsdGeom.GetStageMetersPerUnit(stage) != 1.0:
        fail(f"metersPerUnit is {UsdGeom.GetStageMetersPerUnit(stage)} (authored: "
             f"{stage.HasAuthoredMetadata('metersPerUnit')}), expected an authored 1")
    if abs(stage.GetTimeCodesPerSecond() - fps) > 1e-4 or abs(stage.GetFramesPerSecond() - fps) > 1e-4:
        fail(f"timeCodesPerSecond {stage.GetTimeCodesPerSecond()} / framesPerSecond "
             f"{stage.GetFramesPerSecond()}, expected {fps}")
    if stage.GetStartTimeCode() != 0 or stage.GetEndTimeCode() != nframes - 1:
        fail(f"time range {stage.GetStartTimeCode()}..{stage.GetEndTimeCode()}, expected 0..{nframes - 1}")
    dp = stage.GetDefaultPrim()
    if not dp or not dp.IsA(UsdSkel.Root):
        fail("defaultPrim is not the SkelRoot")

    # 3. structure
    roots = [p for p in stage.Traverse() if p.IsA(UsdSkel.Root)]
    if len(roots) != 1:
        fail(f"{len(roots)} SkelRoot prims, expected 1")
        return 1
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(roots[0])
    cache.Populate(root, Usd.TraverseInstanceProxies())
    bindings = cache.ComputeSkelBindings(root, Usd.TraverseInstanceProxies())
    if len(bindings) != 1:
        fail(f"{len(bindings)} skeleton bindings under {roots[0].GetPath()}, expected 1 "
             "(a Skeleton with a skinned mesh bound through skel:skeleton)")
        return 1
    binding = bindings[0]
    skel = binding.GetSkeleton()
    sq = cache.GetSkelQuery(skel)
    joints = list(sq.GetJointOrder())
    if len(joints) != 24:
        fail(f"skeleton has {len(joints)} joints, expected 24")
        return 1
    if not sq.GetAnimQuery():
        fail("skeleton has no animation (skel:animationSource)")
        return 1
    if not sq.HasBindPose() or not sq.HasRestPose():
        fail("skeleton lacks bindTransforms or restTransforms")
    targets = binding.GetSkinningTargets()
    meshes = [t for t in targets if t.GetPrim().IsA(UsdGeom.Mesh)]
    if len(meshes) != 1:
        fail(f"{len(meshes)} skinned meshes bound to the skeleton, expected 1")
        return 1
    skq = meshes[0]
    mesh_prim = skq.GetPrim()
    if not mesh_prim.HasAPI(UsdSkel.BindingAPI):
        fail(f"{mesh_prim.GetPath()} lacks SkelBindingAPI")
    if skq.GetInterpolation() != UsdGeom.Tokens.vertex:
        fail(f"joint influences interpolation is {skq.GetInterpolation()}, expected vertex")
    nper = skq.GetNumInfluencesPerComponent()
    idx_pv = skq.GetJointIndicesPrimvar()
    w_pv = skq.GetJointWeightsPrimvar()
    idx = idx_pv.Get()
    wts = w_pv.Get()
    mesh = UsdGeom.Mesh(mesh_prim)
    points = mesh.GetPointsAttr().Get()
    npts = len(points)
    if idx is None or wts is None or len(idx) != npts * nper or len(wts) != npts * nper:
        fail(f"joint indices/weights: {None if idx is None else len(idx)} / "
             f"{None if wts is None else len(wts)} values, expected {npts} points x {nper}")
        return 1
    bad = [int(i) for i in idx if not 0 <= int(i) < 24]
    if bad:
        fail(f"{len(bad)} joint indices out of range [0, 24), e.g. {bad[0]}")
    for v in range(npts):
        s = sum(float(w) for w in wts[v * nper:(v + 1) * nper])
        if abs(s - 1.0) > 1e-3:
            fail(f"vertex {v}: joint weights sum to {s}, expected 1")
            break
    nf = len(mesh.GetFaceVertexCountsAttr().Get())
    fvi = mesh.GetFaceVertexIndicesAttr().Get()
    if any(not 0 <= int(i) < npts for i in fvi):
        fail("faceVertexIndices out of range")
    print(f"mesh {mesh_prim.GetPath()}: {npts} points, {nf} faces, {nper} influences per point")

    # Schema attributes must not be marked custom (read from the layer: Usd reports a schema
    # attribute as non-custom whatever was authored).
    layer = stage.GetRootLayer()

    def visit(spath):
        if not spath.IsPropertyPath():
            return
        spec = layer.GetAttributeAtPath(spath)
        if spec is None or not spec.custom:
            return
        prim = stage.GetPrimAtPath(spath.GetPrimPath())
        if prim and spath.name in prim.GetPrimDefinition().GetPropertyNames():
            fail(f"{spath} is a schema attribute authored as custom")

    layer.Traverse(Sdf.Path.absoluteRootPath, visit)

    # Rotation samples stay on one hemisphere per joint (interpolation takes the short arc).
    rot_attr = UsdSkel.Animation(sq.GetAnimQuery().GetPrim()).GetRotationsAttr()
    times = rot_attr.GetTimeSamples()
    if len(times) != nframes:
        fail(f"{rot_attr.GetPath()}: {len(times)} time samples, expected {nframes}")
    prev = None
    for t in times:
        cur = rot_attr.Get(t)
        if prev is not None:
            flips = [j for j, (a, b) in enumerate(zip(prev, cur)) if Gf.Dot(a, b) < 0]
            if flips:
                fail(f"time {t}: rotations of joints {flips} flip hemisphere from the previous sample")
                break
        prev = cur

    # 4. joints
    frames = [int(f) for f in exp["frames"]]
    mapper = skq.GetJointMapper()
    for k, f in enumerate(frames):
        t = Usd.TimeCode(f)
        xf = UsdGeom.XformCache(t)
        world = sq.ComputeJointWorldTransforms(xf)
        worst = max(dist(world[j].ExtractTranslation(), exp["joints"][k][j]) for j in range(24))
        print(f"frame {f}: joint world positions, largest error {worst:.2e} m")
        if not worst <= TOL_M:
            fail(f"frame {f}: UsdSkel joint positions differ from rigfit's by {worst:.3e} m (> {TOL_M})")

        # 5. skinning
        skin_xf = sq.ComputeSkinningTransforms(t)
        if mapper is not None and not mapper.IsNull() and not mapper.IsIdentity():
            skin_xf = mapper.RemapTransforms(skin_xf)
        pts = mesh.GetPointsAttr().Get(t)
        pts = type(pts)(pts)  # a copy to skin in place
        if not skq.ComputeSkinnedPoints(skin_xf, pts, t):
            fail(f"frame {f}: UsdSkel could not skin the mesh")
            continue
        l2w = UsdGeom.XformCache(t).GetLocalToWorldTransform(mesh_prim)
        worst = 0.0
        for vid, want in zip(exp["vertex_ids"], exp["vertices"][k]):
            got = l2w.Transform(Gf.Vec3d(pts[vid]))
            worst = max(worst, dist(got, want))
        print(f"frame {f}: skinned vertices, largest error {worst:.2e} m")
        if not worst <= TOL_M:
            fail(f"frame {f}: UsdSkel skinned vertices differ from rigfit's by {worst:.3e} m (> {TOL_M})")

    # 6. cameras
    cams = exp.get("cameras", [])
    found = [p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)]
    if len(found) != len(cams):
        fail(f"{len(found)} camera prims, expected {len(cams)}")
    for c in cams:
        prim = stage.GetPrimAtPath(c["path"])
        if not prim or not prim.IsA(UsdGeom.Camera):
            fail(f"no camera at {c['path']}")
            continue
        ucam = UsdGeom.Camera(prim)
        nsamples = len(UsdGeom.Xformable(prim).GetTimeSamples())
        if c["moving"] and nsamples != nframes:
            fail(f"{c['path']}: moving camera has {nsamples} transform time samples, expected {nframes}")
        if not c["moving"] and nsamples != 0:
            fail(f"{c['path']}: static camera has {nsamples} transform time samples, expected none")
        w, h = float(c["width"]), float(c["height"])
        worst_px, worst_pos = 0.0, 0.0
        for k, f in enumerate(frames):
            t = Usd.TimeCode(f)
            gcam = ucam.GetCamera(t)
            fr = gcam.frustum
            m = fr.ComputeViewMatrix() * fr.ComputeProjectionMatrix()
            worst_pos = max(worst_pos, dist(gcam.transform.ExtractTranslation(), c["positions"][k]))
            for j in range(24):
                ndc = m.Transform(Gf.Vec3d(*exp["joints"][k][j]))
                u = (ndc[0] + 1.0) * 0.5 * w
                v = (1.0 - ndc[1]) * 0.5 * h
                worst_px = max(worst_px, dist((u, v), c["pixels"][k][j]))
        print(f"{c['path']}: projection error {worst_px:.2e} px, position error {worst_pos:.2e} m")
        if not worst_px <= TOL_PX:
            fail(f"{c['path']}: joints projected through the USD camera are {worst_px:.3f} px from rigfit's (> {TOL_PX})")
        if not worst_pos <= TOL_M:
            fail(f"{c['path']}: camera position differs by {worst_pos:.3e} m")

    if failures:
        print(f"{len(failures)} check(s) failed for {path}", file=sys.stderr)
        return 1
    print(f"OK: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
