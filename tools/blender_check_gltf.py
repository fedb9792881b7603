"""Imports a rigfit .glb into real Blender (headless `bpy`) and checks it against rigfit's numbers.

Usage: python3 tools/blender_check_gltf.py FILE.glb EXPECTED.json
Needs the PyPI Blender module: `pip install 'bpy==4.5.*'` (Python 3.11).

EXPECTED.json (written by tests/export_gltf.rs), all positions in rigfit's Y-up world, metres:
  fps          the motion's frame rate
  frames       number of frames F
  joint_names  the 24 SMPL joint names (the bone names)
  joints       [F][24][3] joint world positions (rigfit's forward pass)
  cameras      optional {name: {"positions": [F][3], "forward": [F][3]}} (forward: the viewing
               direction, the camera's -Z axis in the world)
  vertices     optional [F][N][3] skinned vertex positions (a sample; matched to the nearest
               evaluated vertex, since the importer need not keep the vertex order)
  tolerance    metres (default 1e-4)

Blender's glTF importer converts glTF's Y-up to Blender's Z-up: (x, y, z) -> (x, -z, y).
The scene's frame rate is set to the motion's before the import, so motion frame f lands on
Blender frame f * (scene fps / motion fps) from the first key.

Checks: exactly one armature with the 24 named bones; every bone's rotation keyed, and the pelvis
location keyed, at F keyframes spanning the motion; at every frame the pose-bone head world
positions, the cameras' positions and viewing directions (cameras must not hang under the
armature), and the skinned mesh. Prints "OK ..."
and exits 0, or prints every failure and exits 1 (2: bad arguments or no bpy).
"""

import json
import math
import sys


def y_up_to_z_up(p):
    return (p[0], -p[2], p[1])


def dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def action_fcurves(action):
    """F-curves of an action: the legacy list (Blender <= 4.x) or every channelbag (4.4+, 5.x)."""
    curves = []
    layers = getattr(action, "layers", None)
    if layers is not None and len(layers) > 0:
        for layer in layers:
            for strip in layer.strips:
                for bag in getattr(strip, "channelbags", []):
                    curves.extend(bag.fcurves)
    if not curves and hasattr(action, "fcurves"):
        curves = list(action.fcurves)
    return curves


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    path, expected_path = argv[1], argv[2]
    try:
        import bpy
        import numpy as np
    except ImportError as e:
        print(f"cannot import Blender's Python module ({e}): pip install 'bpy==4.5.*' (Python 3.11)")
        return 2
    with open(expected_path) as f:
        exp = json.load(f)
    fps = float(exp["fps"])
    frames = int(exp["frames"])
    names = list(exp["joint_names"])
    tol = float(exp.get("tolerance", 1e-4))
    failures = []

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    result = bpy.ops.import_scene.gltf(filepath=path)
    if result != {"FINISHED"}:
        print(f"FAIL: import_scene.gltf returned {result}")
        return 1

    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        print(f"FAIL: expected one armature, found {[o.name for o in arms]}")
        return 1
    arm = arms[0]
    bones = [b.name for b in arm.data.bones]
    if len(bones) != 24 or set(bones) != set(names):
        print(f"FAIL: armature '{arm.name}' has {len(bones)} bones {bones}, expected the 24 {names}")
        return 1

    # Keyframes: every bone's rotation, and the pelvis location, keyed at F frames.
    ad = arm.animation_data
    if ad is None or ad.action is None:
        print(f"FAIL: armature '{arm.name}' has no action")
        return 1
    curves = action_fcurves(ad.action)
    by_path = {}
    for c in curves:
        by_path.setdefault(c.data_path, []).append(c)
    step = (scene.render.fps / scene.render.fps_base) / fps
    key_frames = None
    for name in names:
        for prop, n in (("rotation_quaternion", 4),) + ((("location", 3),) if name == names[0] else ()):
            dp = f'pose.bones["{name}"].{prop}'
            cs = by_path.get(dp, [])
            if len(cs) != n:
                failures.append(f"{dp}: {len(cs)} F-curves, expected {n}")
                continue
            for c in cs:
                ks = [k.co[0] for k in c.keyframe_points]
                if len(ks) != frames:
                    failures.append(f"{dp}[{c.array_index}]: {len(ks)} keyframes, expected {frames}")
                    continue
                if key_frames is None:
                    key_frames = ks
                want = [key_frames[0] + f * step for f in range(frames)]
                if max(abs(a - b) for a, b in zip(ks, want)) > 1e-3:
                    failures.append(f"{dp}[{c.array_index}]: keyframes at {ks}, expected {want}")
    if key_frames is None:
        print("FAIL: no keyframes found\n" + "\n".join(failures))
        return 1
    start = key_frames[0]
    lo, hi = ad.action.frame_range[:]
    if abs(lo - start) > 1e-3 or abs(hi - (start + (frames - 1) * step)) > 1e-3:
        failures.append(f"action frame range {lo}..{hi}, expected {start}..{start + (frames - 1) * step}")

    cams = {}
    for cname in exp.get("cameras", {}):
        obs = [o for o in scene.objects if o.type == "CAMERA" and o.name == cname]
        if len(obs) != 1:
            failures.append(f"camera '{cname}': found {len(obs)} camera objects of that name")
        else:
            cams[cname] = obs[0]
            parent = obs[0].parent
            while parent is not None:
                if parent == arm:
                    failures.append(f"camera '{cname}' is parented to the armature '{arm.name}': moving the character would move it")
                parent = parent.parent
    meshes = [o for o in scene.objects if o.type == "MESH" and o.find_armature() == arm]
    if exp.get("vertices") is not None and len(meshes) != 1:
        failures.append(f"expected one mesh skinned to '{arm.name}', found {[o.name for o in meshes]}")

    worst_joint = worst_cam = worst_vert = 0.0
    for f in range(frames):
        t = start + f * step
        scene.frame_set(int(math.floor(t)), subframe=t - math.floor(t))
        for j, name in enumerate(names):
            got = arm.matrix_world @ arm.pose.bones[name].head
            want = y_up_to_z_up(exp["joints"][f][j])
            d = dist(got, want)
            worst_joint = max(worst_joint, d)
            if d > tol:
                failures.append(f"frame {f}: joint {name} at {tuple(got)}, expected {want} (off by {d:.3g} m)")
        for cname, ob in cams.items():
            c = exp["cameras"][cname]
            mw = ob.matrix_world
            d = dist(mw.translation, y_up_to_z_up(c["positions"][f]))
            fwd = -mw.col[2].xyz.normalized()
            d = max(d, dist(fwd, y_up_to_z_up(c["forward"][f])))
            worst_cam = max(worst_cam, d)
            if d > tol:
                failures.append(
                    f"frame {f}: camera {cname} at {tuple(mw.translation)} looking {tuple(fwd)}, expected "
                    f"{y_up_to_z_up(c['positions'][f])} looking {y_up_to_z_up(c['forward'][f])}"
                )
        if exp.get("vertices") is not None and len(meshes) == 1:
            ob = meshes[0]
            ev = ob.evaluated_get(bpy.context.evaluated_depsgraph_get())
            me = ev.to_mesh()
            co = np.empty(len(me.vertices) * 3, dtype=np.float64)
            me.vertices.foreach_get("co", co)
            ev.to_mesh_clear()
            m = np.array(ob.matrix_world)
            co = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            want = np.array([y_up_to_z_up(p) for p in exp["vertices"][f]])
            near = np.sqrt(((want[:, None, :] - co[None, :, :]) ** 2).sum(-1)).min(1)
            worst_vert = max(worst_vert, float(near.max()))
            if near.max() > tol:
                i = int(near.argmax())
                failures.append(
                    f"frame {f}: skinned vertex sample {i} expected at {tuple(want[i])}: nearest vertex "
                    f"{near[i]:.3g} m away ({int((near > tol).sum())} of {len(want)} samples off)"
                )

    if failures:
        print(f"FAIL: {path} in Blender {bpy.app.version_string}: {len(failures)} failures")
        for line in failures[:60]:
            print("  " + line)
        return 1
    print(
        f"OK: {path} in Blender {bpy.app.version_string}: 24 bones, {frames} keyframes from frame {start}, "
        f"max joint error {worst_joint:.2e} m, camera {worst_cam:.2e}, skinned vertices {worst_vert:.2e} m"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
