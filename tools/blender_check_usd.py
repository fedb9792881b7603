#!/usr/bin/env python3
"""Imports a rigfit UsdSkel export into headless Blender and checks it against known answers.

    python3 tools/blender_check_usd.py FILE.usda EXPECTED.json

Needs the PyPI Blender module (`python3 -m pip install 'bpy==4.5.*'`, Python 3.11). EXPECTED.json
is the file tools/check_usd.py reads (written by tests/export_usd.rs); this script uses
"joint_names", "frames", "joints", "vertex_ids", "vertices" and the cameras' "positions".

Blender's importer turns the Y-up stage into Blender's Z-up world (a +90 degree turn about X, so
Y-up (x, y, z) is Blender (x, -z, y)); positions read from Blender are turned back before they
are compared. Checks, each failure printed as a line starting with "FAIL":
  1. exactly one armature, with 24 bones named after the joints;
  2. at each listed frame, the pose-bone heads in the world match "joints" within 1e-4 m;
  3. the imported mesh, deformed by Blender's Armature modifier, matches "vertices" within 1e-4 m;
  4. each camera's world position matches within 1e-4 m, and the joints projected through
     Blender's camera (render size = the image size, pixel aspect from fx/fy) land on rigfit's
     pixels within 0.05 px (focal length, principal point and non-square pixels survive import).
Exit status 0 when everything passes, 1 when a check fails, 2 when bpy is missing.
"""
import json
import sys

TOL_M = 1e-4
TOL_PX = 0.05
PIP = "python3 -m pip install 'bpy==4.5.*'"

try:
    import bpy
    from mathutils import Vector
except ImportError as e:  # pragma: no cover - environment
    print(f"FAIL: Blender's Python module bpy is not installed ({e}); install it with: {PIP}", file=sys.stderr)
    sys.exit(2)

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def to_y_up(p):
    """Blender Z-up world -> the stage's Y-up world (inverse of the importer's +90 deg about X)."""
    return (p[0], p[2], -p[1])


def from_y_up(p):
    """The stage's Y-up world -> Blender's Z-up world."""
    return (p[0], -p[2], p[1])


def dist(a, b):
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)) ** 0.5


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    path, exp_path = sys.argv[1], sys.argv[2]
    with open(exp_path) as fh:
        exp = json.load(fh)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    res = bpy.ops.wm.usd_import(filepath=path, import_skeletons=True, import_cameras=True, set_frame_range=True)
    if "FINISHED" not in res:
        fail(f"Blender's USD import of {path} returned {res}")
        return 1
    scene = bpy.context.scene
    print(f"Blender {bpy.app.version_string}: imported {path}; scene frames "
          f"{scene.frame_start}..{scene.frame_end} at {scene.render.fps / scene.render.fps_base:g} fps")

    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        fail(f"{len(arms)} armatures after import, expected 1")
        return 1
    arm = arms[0]
    names = exp["joint_names"]
    bones = arm.data.bones
    print(f"armature '{arm.name}': {len(bones)} bones")
    if len(bones) != 24:
        fail(f"armature has {len(bones)} bones, expected 24")
    missing = [n for n in names if n not in bones]
    if missing:
        fail(f"bones missing for joints {missing}")
        return 1
    meshes = [o for o in scene.objects if o.type == "MESH"]
    if len(meshes) != 1:
        fail(f"{len(meshes)} meshes after import, expected 1")
    mesh = meshes[0] if meshes else None
    if mesh is not None and not any(m.type == "ARMATURE" and m.object == arm for m in mesh.modifiers):
        fail(f"mesh '{mesh.name}' is not deformed by the armature")

    cams = {}
    for c in exp.get("cameras", []):
        name = c["path"].rsplit("/", 1)[-1]
        obj = scene.objects.get(name)
        if obj is None or obj.type != "CAMERA":
            fail(f"no camera object '{name}' after import")
        else:
            cams[name] = (obj, c)

    from bpy_extras.object_utils import world_to_camera_view

    for k, f in enumerate(exp["frames"]):
        scene.frame_set(int(f))
        dg = bpy.context.evaluated_depsgraph_get()
        worst = 0.0
        for j, n in enumerate(names):
            head = arm.matrix_world @ arm.pose.bones[n].head
            worst = max(worst, dist(to_y_up(head), exp["joints"][k][j]))
        print(f"frame {f}: pose-bone heads, largest error {worst:.2e} m")
        if not worst <= TOL_M:
            fail(f"frame {f}: Blender's bone heads differ from rigfit's joints by {worst:.3e} m (> {TOL_M})")
        if mesh is not None:
            ev = mesh.evaluated_get(dg)
            me = ev.to_mesh()
            worst = 0.0
            for vid, want in zip(exp["vertex_ids"], exp["vertices"][k]):
                worst = max(worst, dist(to_y_up(ev.matrix_world @ me.vertices[vid].co), want))
            ev.to_mesh_clear()
            print(f"frame {f}: deformed vertices, largest error {worst:.2e} m")
            if not worst <= TOL_M:
                fail(f"frame {f}: Blender's deformed vertices differ from rigfit's by {worst:.3e} m (> {TOL_M})")
        for name, (obj, c) in cams.items():
            got = to_y_up(obj.matrix_world.translation)
            d = dist(got, c["positions"][k])
            if not d <= TOL_M:
                fail(f"frame {f}: camera '{name}' is at {tuple(round(x, 5) for x in got)} in Blender, "
                     f"expected {c['positions'][k]} ({d:.3e} m)")
            w, h = int(c["width"]), int(c["height"])
            r = scene.render
            r.resolution_x, r.resolution_y, r.resolution_percentage = w, h, 100
            r.pixel_aspect_x, r.pixel_aspect_y = 1.0, float(c["fx"]) / float(c["fy"])
            if r.pixel_aspect_y < 1.0:
                r.pixel_aspect_x, r.pixel_aspect_y = float(c["fy"]) / float(c["fx"]), 1.0
            worst = 0.0
            for j in range(24):
                p = world_to_camera_view(scene, obj, Vector(from_y_up(exp["joints"][k][j])))
                worst = max(worst, dist((p.x * w, (1.0 - p.y) * h), c["pixels"][k][j]))
            print(f"frame {f}: camera '{name}' projection error {worst:.2e} px")
            if not worst <= TOL_PX:
                fail(f"frame {f}: camera '{name}' projects joints {worst:.3f} px from rigfit's pixels (> {TOL_PX})")

    if failures:
        print(f"{len(failures)} check(s) failed for {path}", file=sys.stderr)
        return 1
    print(f"OK: {path} in Blender {bpy.app.version_string}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
